"""Recommendations for a user set larger than memory: a stream of row blocks in, top-n out.

:func:`recommend_chunked` is :func:`skcfae.recommend` over a sequence of row blocks (an
iterator of sparse matrices, a Dask array of sparse blocks, a Dask bag of them), one block at
a time, yielding each block's top-n as it is done: memory is bounded by one block (and the
``batch_size x n_items`` score block of its batches), whatever the number of users. On a Dask
cluster the blocks are ranked where they are loaded, by the fitted model scattered once.

This module imports numpy, scipy and scikit-learn only; Dask is used when the input is a Dask
collection (and so already imported).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._ranking import recommend
from ._validation import check_flag, check_items, check_n

__all__ = ["recommend_chunked"]

_CALLER = "recommend_chunked"


def recommend_chunked(
    estimator: Any,
    chunks: Any,
    n: int = 10,
    *,
    exclude_seen: bool = True,
    items: npt.ArrayLike | None = None,
    return_scores: bool = False,
) -> Iterator[Any]:
    """Top-``n`` items for the users of a stream of row blocks, yielded block by block.

    :func:`skcfae.recommend` applied to each block of ``chunks`` in turn, lazily: a block is
    read only when the previous block's result has been taken, so memory holds one block
    and its scores, never the whole user set (the idea of
    :func:`sklearn.metrics.pairwise_distances_chunked`). The rows of a block are users
    (fold-in: they need not be training users); concatenating the yielded arrays gives
    ``skcfae.recommend(estimator, vstack(chunks), n)``. Write them out as they come (e.g.
    ``np.savetxt(file, top, fmt="%d", delimiter=",")`` per block) to keep the results out
    of memory too.

    With a Dask collection, its blocks are computed where Dask computes them: on the
    cluster of the default :class:`distributed.Client` when there is one, the fitted
    estimator being scattered to every worker once (``client.scatter(estimator,
    broadcast=True)``) and at most twice as many blocks in flight as the cluster has
    threads; without a client, one block after the other with Dask's default scheduler.

    .. versionadded:: 0.1

    Parameters
    ----------
    estimator : recommender or sklearn.pipeline.Pipeline
        A fitted skcfae recommender, or a Pipeline ending in one.
    chunks : iterable of {array-like, sparse matrix}, dask.array.Array or dask.bag.Bag
        The users, as row blocks over the estimator's items: an iterable (a list, a
        generator reading blocks from disk...) of matrices of shape (n_block_users, n_items);
        a Dask array of shape (n_users, n_items) with one block along the items (sparse
        blocks, e.g. ``dask.array.from_array(X, chunks=(10_000, -1), asarray=False)``); or
        a Dask bag whose elements are such matrices. A block with no rows gives an empty
        result. A single matrix is refused: cut it into row blocks.
    n : int, default=10
        Number of items per user, at most the number of candidate items.
    exclude_seen : bool, default=True
        Never recommend an item the user already has in their block.
    items : array-like of int, default=None
        Candidate items, as in :func:`skcfae.recommend`. None: every item.
    return_scores : bool, default=False
        Also yield the scores of the recommended items.

    Yields
    ------
    top : ndarray of shape (n_block_users, n), dtype int64
        The recommendations of one block's users, best first, -1 where a user has fewer
        than ``n`` candidate items left; blocks in input order.
    scores : ndarray of shape (n_block_users, n), dtype float32
        Only with ``return_scores=True``, then each item is a ``(top, scores)`` pair.

    Raises
    ------
    TypeError
        ``chunks`` is a single matrix, or not iterable; the estimator is not a recommender.
    ValueError
        ``n`` or ``items`` are invalid for the estimator; a Dask array has several blocks
        along the items. Errors in a block (wrong number of items...) are raised when that
        block is reached.

    See Also
    --------
    skcfae.recommend : the same for one matrix in memory.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import EASE, recommend, recommend_chunked
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(n_users=300, n_items=50, n_groups=5, random_state=0)
    >>> model = EASE(lam=10.0).fit(X[:200])
    >>> users = X[200:]
    >>> blocks = (users[i : i + 40] for i in range(0, users.shape[0], 40))
    >>> tops = list(recommend_chunked(model, blocks, n=5))
    >>> [top.shape for top in tops[-2:]]
    [(40, 5), (20, 5)]
    >>> bool(np.array_equal(np.vstack(tops), recommend(model, users, n=5)))
    True
    """
    final = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    if not hasattr(final, "recommend"):
        raise TypeError(
            f"{_CALLER} needs a skcfae recommender or a Pipeline ending in one; got "
            f"{type(final).__name__}, which has no recommend method."
        )
    check_is_fitted(final)
    # checked here, before any block is read, rather than at the first block
    exclude_seen = check_flag(exclude_seen, "exclude_seen", _CALLER)
    return_scores = check_flag(return_scores, "return_scores", _CALLER)
    n_items = getattr(final, "n_items_in_", None)
    if isinstance(n_items, int | np.integer):
        if items is None:
            n = check_n(n, int(n_items), _CALLER)
        else:
            size = check_items(items, int(n_items), _CALLER).size
            n = check_n(n, size, _CALLER, limit=f"items holds {size} items")
    options: dict[str, Any] = {
        "n": n,
        "exclude_seen": exclude_seen,
        "items": items,
        "return_scores": return_scores,
    }
    if _is_dask_collection(chunks):
        return _dask_results(estimator, chunks, options)
    if sp.issparse(chunks) or isinstance(chunks, np.ndarray) or _is_dataframe(chunks):
        shape = getattr(chunks, "shape", None)
        raise TypeError(
            f"{_CALLER} takes row blocks, not one matrix (got a {type(chunks).__name__} of "
            f"shape {shape}); cut it into blocks, e.g. (X[i : i + 10_000] for i in "
            "range(0, X.shape[0], 10_000)), or call skcfae.recommend(estimator, X, n)."
        )
    if not isinstance(chunks, Iterable):
        raise TypeError(
            f"{_CALLER} takes an iterable of row blocks (sparse matrices), a dask.array.Array "
            f"or a dask.bag.Bag; got {type(chunks).__name__}."
        )
    return (_rank_block(estimator, block, options) for block in chunks)


# ---------------------------------------------------------------------------------------------
# One block, wherever it runs
# ---------------------------------------------------------------------------------------------


def _rank_block(estimator: Any, block: Any, options: dict[str, Any]) -> Any:
    """:func:`skcfae.recommend` of one block; a block without rows gives empty arrays."""
    shape = getattr(block, "shape", None)
    if shape is not None and len(shape) == 2 and shape[0] == 0:
        top = np.empty((0, options["n"]), dtype=np.int64)
        if options["return_scores"]:
            return top, np.empty((0, options["n"]), dtype=np.float32)
        return top
    return recommend(estimator, block, **options)


def _rank_partition(estimator: Any, partition: Iterable[Any], options: dict[str, Any]) -> list:
    """The results of the blocks of one Dask bag partition, in order."""
    return [_rank_block(estimator, block, options) for block in partition]


# ---------------------------------------------------------------------------------------------
# Dask collections
# ---------------------------------------------------------------------------------------------


def _is_dask_collection(obj: Any) -> bool:
    if "dask" not in sys.modules:  # a Dask collection implies an imported dask
        return False
    import dask

    return bool(dask.is_dask_collection(obj))


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "columns")


def _default_client() -> Any:
    """The default distributed Client, or None (no distributed, or no client)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _dask_parts(chunks: Any) -> tuple[list[Any], bool]:
    """The Delayed objects of a Dask array's row blocks or a bag's partitions, and whether
    each part is a partition (a list of blocks) rather than one block."""
    import dask.array as da
    import dask.bag as db

    if isinstance(chunks, da.Array):
        if chunks.ndim != 2:
            raise ValueError(
                f"{_CALLER} needs a 2-D Dask array (n_users, n_items); got {chunks.ndim}-D."
            )
        parts = chunks.to_delayed()
        if parts.shape[1] != 1:
            raise ValueError(
                f"{_CALLER} needs every item of a user in one block, but the Dask array has "
                f"{parts.shape[1]} blocks along the items (chunks {chunks.chunks[1]}); "
                "rechunk it first: X.rechunk({1: -1})."
            )
        return list(parts[:, 0]), False
    if isinstance(chunks, db.Bag):
        return list(chunks.to_delayed()), True
    raise TypeError(
        f"{_CALLER} takes a dask.array.Array or a dask.bag.Bag of row blocks; got "
        f"{type(chunks).__name__}."
    )


def _dask_results(estimator: Any, chunks: Any, options: dict[str, Any]) -> Iterator[Any]:
    parts, partitioned = _dask_parts(chunks)  # eager: a bad collection fails at the call
    client = _default_client()
    if client is None:
        return _local_results(estimator, parts, partitioned, options)
    return _cluster_results(client, estimator, parts, partitioned, options)


def _local_results(
    estimator: Any, parts: list[Any], partitioned: bool, options: dict[str, Any]
) -> Iterator[Any]:
    """Without a cluster: compute one part, rank it here, yield, then the next part."""
    for part in parts:
        value = part.compute()
        if partitioned:
            yield from _rank_partition(estimator, value, options)
        else:
            yield _rank_block(estimator, value, options)


def _cluster_results(
    client: Any, estimator: Any, parts: list[Any], partitioned: bool, options: dict[str, Any]
) -> Iterator[Any]:
    """On a cluster: the estimator scattered once; each part ranked on the worker that
    computes it; a window of twice the cluster's threads in flight; results in order."""
    import dask

    fn = _rank_partition if partitioned else _rank_block
    model = client.scatter(estimator, broadcast=True, hash=False)
    window = max(2, 2 * sum(client.nthreads().values()))
    todo = iter(parts)
    pending: deque[Any] = deque()

    def submit(part: Any) -> Any:
        return client.compute(dask.delayed(fn, pure=False)(model, part, options))

    try:
        pending.extend(submit(part) for part in islice(todo, window))
        while pending:
            future = pending.popleft()
            result = future.result()
            future.release()
            following = next(todo, None)
            if following is not None:
                pending.append(submit(following))
            if partitioned:
                yield from result
            else:
                yield result
    finally:  # also when the caller stops early: nothing left running for us
        if pending:
            client.cancel(list(pending))
        model.release()
