"""The one ranking path: batching, seen-item masking, top-k, per-user ranking metrics.

Everything that turns scores into ranked lists, and ranked lists into metric values, lives here,
below :mod:`skcfae.base` (the recommenders) and :mod:`skcfae.metrics` (the public metrics and
scorers), which both import it and never each other:

- :func:`iter_row_batches` cuts the users (rows) of a matrix into batches; every loop over
  users in chunks (scoring, recommending, validation NDCG, hidden codes) uses it, so that memory
  is bounded by ``batch_size x n_items`` whatever the number of users;
- :func:`topk_from_scores` ranks the columns of a dense score block; :func:`rank_batch` (and
  its thin wrapper :func:`topk_masked`) masks the seen items, restricts the ranking to a
  candidate set and pads short lists with -1;
- :func:`ndcg_from_topk`, :func:`recall_from_topk`, :func:`precision_from_topk` and
  :func:`hit_rate_from_topk` (together :data:`KERNELS`) score ranked lists of item indices
  against held-out items, user by user, so that evaluation runs batch by batch from
  ``recommend`` without a dense users x items matrix;
- :func:`recommend` is the Pipeline-aware ``skcfae.recommend``; :func:`recommend_validated`
  and :func:`score_fold_in` are the internal paths that take already validated CSR input.

The metric definitions (binary relevance; ``Recall@k = hits / min(k, |held-out|)``) follow
Liang et al., WWW 2018 and Khawar et al., WWW 2020, §4.2.

This module imports numpy, scipy and scikit-learn only, never torch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._typing import InteractionMatrix, RandomState
from ._validation import check_n, check_n_items
from .model_selection import _fold_in_split

__all__ = [
    "KERNELS",
    "VALID_K",
    "hit_rate_from_topk",
    "iter_row_batches",
    "ndcg_from_topk",
    "precision_from_topk",
    "rank_batch",
    "recall_from_topk",
    "recommend",
    "recommend_validated",
    "score_fold_in",
    "topk_from_scores",
    "topk_masked",
]

#: Cut-off of the NDCG by which a fit scores its validation users (the neural models' early
#: stopping, ``EASE(lam="auto")``).
VALID_K = 100

# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------


def iter_row_batches(X: sp.csr_array, batch_size: int) -> Iterator[tuple[slice, sp.csr_array]]:
    """Consecutive row batches of ``X``: ``(rows, X[rows])`` with ``rows`` a slice.

    The one batching helper of the package: ``decision_function``, ``recommend``, validation
    scoring and hidden-code loops all cut their users with it. The slice lets a caller cut a
    matching matrix (``holdout[rows]``) or fill an output (``out[rows] = ...``).

    Parameters
    ----------
    X : {sparse matrix, ndarray} of shape (n_users, n_items)
        Anything sliceable by rows, typically a validated CSR matrix.
    batch_size : int
        Rows per batch (the last one may be shorter), at least 1.

    Yields
    ------
    rows : slice
        ``slice(start, stop)`` of the batch's rows in X.
    X_batch : same type as X, of shape (stop - start, n_items)
        ``X[rows]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae._ranking import iter_row_batches
    >>> [(rows.start, rows.stop, b.shape) for rows, b in iter_row_batches(np.eye(5), 2)]
    [(0, 2, (2, 5)), (2, 4, (2, 5)), (4, 5, (1, 5))]
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, Integral) or batch_size < 1:
        raise ValueError(
            "The 'batch_size' parameter of iter_row_batches must be an int in the range "
            f"[1, inf). Got {batch_size!r} instead."
        )
    n_rows = int(X.shape[0])
    step = int(batch_size)
    for start in range(0, n_rows, step):
        rows = slice(start, min(start + step, n_rows))
        yield rows, X[rows]


# ---------------------------------------------------------------------------------------------
# Top-k
# ---------------------------------------------------------------------------------------------


def topk_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores of each row, best first.

    Ties are broken by the lower item index, so the result is deterministic; ``-inf`` scores
    (excluded items) come last. Runs in O(n_items) per row (a partition, then a sort of k).

    Parameters
    ----------
    scores : ndarray of shape (n_users, n_items)
    k : int
        At most ``n_items``.

    Returns
    -------
    top : ndarray of shape (n_users, k), dtype int64
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D (n_users, n_items), got shape {scores.shape}.")
    # row-major: a partition along the rows of a column-major block (the transposed,
    # item-major logits of the sparse decoders) took 48 ms instead of 6 (128 x 20,108)
    scores = np.ascontiguousarray(scores)
    n_users, n_items = scores.shape
    k = check_n(
        k,
        n_items,
        "topk_from_scores",
        name="k",
        limit=f"cannot rank the top k={k} items among only n_items={n_items}",
    )
    if n_users == 0:
        return np.empty((0, k), dtype=np.int64)
    if np.isnan(scores).any():
        raise ValueError(
            "scores contain NaN, so items cannot be ranked; the model may have diverged "
            "(try a lower learning rate)."
        )
    n_threads = min(_threads(), n_users) if scores.size >= _PARALLEL_ABOVE else 1
    if n_threads == 1:
        return _topk_rows(scores, k)
    # rows are ranked independently: slices of them in threads (numpy's partition and
    # comparisons release the GIL), 8.4 -> 4.6 ms for 128 x 20,108 scores on 2 cores
    bounds = np.linspace(0, n_users, n_threads + 1).astype(int).tolist()
    parts = _pool().map(lambda lo, hi: _topk_rows(scores[lo:hi], k), bounds[:-1], bounds[1:])
    return np.concatenate(list(parts))


#: Scores in a block below which one thread ranks it (a thread's start costs more).
_PARALLEL_ABOVE = 1 << 20
_pool_lock = threading.Lock()
_pools: list[ThreadPoolExecutor] = []
if hasattr(os, "register_at_fork"):  # a forked child has none of the pool's threads
    os.register_at_fork(after_in_child=_pools.clear)


def _threads() -> int:
    """Threads for ranking: the CPUs this process may use, at most ``OMP_NUM_THREADS`` (set
    by joblib in its workers, so that parallel searches do not oversubscribe)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    limit = os.environ.get("OMP_NUM_THREADS", "")
    if limit.isdigit() and int(limit) > 0:
        n = min(n or 1, int(limit))
    return max(1, n or 1)


def _pool() -> ThreadPoolExecutor:
    with _pool_lock:
        if not _pools:
            _pools.append(ThreadPoolExecutor(_threads(), thread_name_prefix="skcfae-topk"))
        return _pools[0]


def _topk_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """:func:`topk_from_scores` of a row-major block without NaN."""
    n_items = scores.shape[1]
    # the k largest of each row (argpartition: ties at the k-th value placed arbitrarily);
    # where no other item equals the k-th value, they are the only choice
    cols = np.argpartition(scores, n_items - k, axis=1)[:, n_items - k :]
    kth = np.take_along_axis(scores, cols[:, :1], axis=1)
    cols.sort(axis=1)  # ascending item index per row: the tie order of the sort below
    surplus = np.flatnonzero(np.count_nonzero(scores >= kth, axis=1) > k)
    if surplus.size:  # more items tie at the k-th value than places: the lowest indices
        sub, sub_kth = scores[surplus], kth[surplus]
        above, ties = sub > sub_kth, sub == sub_kth
        need = k - above.sum(axis=1, keepdims=True)
        chosen = above | (ties & (np.cumsum(ties, axis=1) <= need))
        cols[surplus] = np.nonzero(chosen)[1].reshape(surplus.size, k)
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")  # stable: ties keep the lower index
    return np.take_along_axis(cols, order, axis=1).astype(np.int64, copy=False)


def rank_batch(
    scores: npt.ArrayLike,
    X: sp.csr_array,
    n: int,
    *,
    exclude_seen: bool = True,
    items: np.ndarray | None = None,
    overwrite_scores: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``n`` items of one batch of users and their scores: the single top-k path.

    Scores are cast to float32; with ``exclude_seen`` the items stored in the user's row of
    ``X`` get ``-inf``; with ``items`` only those columns are ranked (the score block is
    restricted to them, ranked, and the positions mapped back to item indices, so the cost is
    O(n_candidates) per user). A place whose score is ``-inf`` (no candidate left) holds item
    -1 and score ``-inf``.

    Parameters
    ----------
    scores : array-like of shape (n_users, n_items)
        Scores of every item for the users of the batch, higher is better; NaN is an error.
    X : scipy.sparse.csr_array of shape (n_users, n_items)
        The users' (validated) interactions, read for ``exclude_seen``.
    n : int
        Length of the lists, at most the number of candidates.
    exclude_seen : bool, default=True
        Never rank an item stored in the user's row of X.
    items : ndarray of int64, optional
        Candidate items, ascending, without duplicates (as returned by
        :func:`skcfae._validation.check_items`); None ranks every item.
    overwrite_scores : bool, default=False
        Mask the seen items in ``scores`` itself where it is a row-major float32 array (the
        caller's fresh block), instead of in a copy.

    Returns
    -------
    top : ndarray of shape (n_users, n), dtype int64
        Item indices, best first (ties: the lower item index first), -1 where none is left.
    top_scores : ndarray of shape (n_users, n), dtype float32
        ``scores`` at ``top``, non-increasing along each row; ``-inf`` at the -1 places.
    """
    if items is None:
        block = np.array(
            scores, dtype=np.float32, order="C", copy=None if overwrite_scores else True
        )
        if exclude_seen:
            rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
            block[rows, X.indices] = -np.inf
        top = topk_from_scores(block, n)
        vals = np.take_along_axis(block, top, axis=1)
        top[vals == -np.inf] = -1
        return top, vals
    block = np.ascontiguousarray(np.asarray(scores)[:, items], dtype=np.float32)
    if exclude_seen:
        position = np.full(X.shape[1], -1, dtype=np.int64)
        position[items] = np.arange(items.size)
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        cols = position[X.indices]
        candidate = cols >= 0
        block[rows[candidate], cols[candidate]] = -np.inf
    local = topk_from_scores(block, n)
    vals = np.take_along_axis(block, local, axis=1)
    top = items[local]
    top[vals == -np.inf] = -1
    return top, vals


def topk_masked(
    scores: npt.ArrayLike,
    X: sp.csr_array,
    n: int,
    exclude_seen: bool,
    overwrite_scores: bool = False,
) -> np.ndarray:
    """Top-``n`` columns of ``scores`` per row, seen items of X masked, -1 where none is left.

    :func:`rank_batch` without its scores, for the validation loops of the neural models.
    """
    return rank_batch(scores, X, n, exclude_seen=exclude_seen, overwrite_scores=overwrite_scores)[0]


# ---------------------------------------------------------------------------------------------
# Per-user metric kernels on ranked lists
# ---------------------------------------------------------------------------------------------


def _hits(top: np.ndarray, y_true: sp.csr_array, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Relevance of the first ``k`` ranked items, and the number of relevant items per user.

    Returns
    -------
    hits : ndarray of shape (n_users, k), dtype bool
    n_relevant : ndarray of shape (n_users,), dtype int64
    """
    top = np.asarray(top)
    if top.ndim != 2:
        raise ValueError(f"top must be 2-D (n_users, >= k), got shape {top.shape}.")
    n_users, n_items = y_true.shape
    if top.shape[0] != n_users:
        raise ValueError(
            f"top has {top.shape[0]} rows but y_true has {n_users} users; they must match."
        )
    if top.shape[1] < k:
        raise ValueError(f"top has {top.shape[1]} columns, fewer than k={k}.")
    top = top[:, :k].astype(np.int64, copy=False)
    y_true = sp.csr_array(y_true)
    rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(y_true.indptr))
    positive = y_true.data > 0
    keys = rows[positive] * n_items + y_true.indices[positive].astype(np.int64)
    if not y_true.has_canonical_format:
        keys = np.unique(keys)
    n_relevant = np.bincount(rows[positive], minlength=n_users).astype(np.int64)
    valid = (top >= 0) & (top < n_items)
    query = np.arange(n_users, dtype=np.int64)[:, None] * n_items + top
    if keys.size == 0:
        return np.zeros(top.shape, dtype=bool), n_relevant
    pos = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    hits = valid & (keys[pos] == query)
    return hits, n_relevant


def ndcg_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user NDCG@k of ranked lists ``top`` (-1 pads, never a hit); NaN without held-out.

    Parameters
    ----------
    top : ndarray of shape (n_users, >= k) of int
        Ranked item indices, best first; only the first ``k`` columns count.
    y_true : scipy.sparse.csr_array of shape (n_users, n_items)
        Held-out interactions; stored positive entries are relevant.
    k : int

    Returns
    -------
    ndcg : ndarray of shape (n_users,), dtype float64
    """
    hits, n_rel = _hits(top, y_true, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    # sequential sums, row by row: a perfect ranking gives exactly 1.0, and a user's value
    # does not depend on the other users of the batch (as a BLAS product's rounding can)
    dcg = np.cumsum(hits * discount, axis=1)[:, -1]
    ideal = np.concatenate([[np.nan], np.cumsum(discount)])[np.minimum(n_rel, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = dcg / ideal
    return out


def recall_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user Recall@k = hits / min(k, |held-out|); NaN without held-out items.

    Parameters and returns as :func:`ndcg_from_topk`.
    """
    hits, n_rel = _hits(top, y_true, k)
    denom = np.minimum(n_rel, k).astype(np.float64)
    denom[denom == 0] = np.nan
    out: np.ndarray = hits.sum(axis=1) / denom
    return out


def precision_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user Precision@k = hits / k; NaN without held-out items.

    Parameters and returns as :func:`ndcg_from_topk`.
    """
    hits, n_rel = _hits(top, y_true, k)
    out: np.ndarray = hits.sum(axis=1) / float(k)
    out[n_rel == 0] = np.nan
    return out


def hit_rate_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user HitRate@k: 1.0 if any of the top k is held out; NaN without held-out items.

    Parameters and returns as :func:`ndcg_from_topk`.
    """
    hits, n_rel = _hits(top, y_true, k)
    out: np.ndarray = np.asarray(hits.any(axis=1), dtype=np.float64)
    out[n_rel == 0] = np.nan
    return out


#: Metric name -> per-user kernel ``kernel(top, y_true, k) -> ndarray (n_users,)``.
KERNELS: dict[str, Callable[[np.ndarray, sp.csr_array, int], np.ndarray]] = {
    "ndcg": ndcg_from_topk,
    "recall": recall_from_topk,
    "precision": precision_from_topk,
    "hit_rate": hit_rate_from_topk,
}

# ---------------------------------------------------------------------------------------------
# recommend, on any recommender or a Pipeline ending in one
# ---------------------------------------------------------------------------------------------


@overload
def recommend(
    estimator: Any,
    X: InteractionMatrix,
    n: int = ...,
    *,
    exclude_seen: bool = ...,
    items: npt.ArrayLike | None = ...,
    return_scores: Literal[False] = ...,
    timestamps: InteractionMatrix | None = ...,
) -> np.ndarray: ...


@overload
def recommend(
    estimator: Any,
    X: InteractionMatrix,
    n: int = ...,
    *,
    exclude_seen: bool = ...,
    items: npt.ArrayLike | None = ...,
    return_scores: Literal[True],
    timestamps: InteractionMatrix | None = ...,
) -> tuple[np.ndarray, np.ndarray]: ...


def recommend(
    estimator: Any,
    X: InteractionMatrix,
    n: int = 10,
    *,
    exclude_seen: bool = True,
    items: npt.ArrayLike | None = None,
    return_scores: bool = False,
    timestamps: InteractionMatrix | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Top-``n`` items for each row of X from a recommender or a Pipeline ending in one.

    Parameters
    ----------
    estimator : recommender or sklearn.pipeline.Pipeline
        A fitted skcfae recommender, or a Pipeline whose last step is one; the earlier steps'
        ``transform`` is applied to X first.
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions of the users to recommend for; they need not be training users.
    n : int, default=10
        Number of items per user, at most the number of candidate items.
    exclude_seen : bool, default=True
        Never recommend an item the user already has in X.
    items : array-like of int, default=None
        Candidate items: only these (column indices of the matrix the last step sees) can be
        recommended. Non-empty, in ``[0, n_items)``, no duplicates; ``n`` may not exceed its
        length. None: every item.

        .. versionadded:: 0.1
    return_scores : bool, default=False
        Also return the scores of the recommended items.

        .. versionadded:: 0.1
    timestamps : {array-like, sparse matrix} of shape (n_users, n_items), default=None
        Time of each interaction of X, for a sequence model (:class:`skcfae.SVAE`), with the
        sparsity pattern of the matrix the last step sees; passed to its ``recommend``. A
        recommender whose ``recommend`` takes no timestamps refuses them (``TypeError``).

        .. versionadded:: 0.1

    Returns
    -------
    items : ndarray of shape (n_users, n), dtype int64
        Best first, padded with -1 where a row has fewer than ``n`` candidate items left.
    scores : ndarray of shape (n_users, n), dtype float32
        Only with ``return_scores=True``: the recommender's ``decision_function`` at the
        returned items, non-increasing along each row; ``-inf`` at the -1 places.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import Popularity, recommend
    >>> X = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 1]])
    >>> model = Popularity().fit(X)
    >>> recommend(model, [[0, 1, 0, 0]], n=2)
    array([[0, 2]])
    >>> recommend(model, [[0, 1, 0, 0]], n=1, items=[1, 3], return_scores=True)
    (array([[3]]), array([[1.]], dtype=float32))
    """
    if isinstance(estimator, Pipeline):
        if len(estimator.steps) > 1:
            X = estimator[:-1].transform(X)
        estimator = estimator.steps[-1][1]
    if not hasattr(estimator, "recommend"):
        raise TypeError(
            f"recommend needs a skcfae recommender or a Pipeline ending in one; got "
            f"{type(estimator).__name__}, which has no recommend method."
        )
    # only pass the newer keywords when used, so that any object with the older
    # recommend(X, n, exclude_seen=...) signature keeps working
    extra: dict[str, Any] = {}
    if items is not None:
        extra["items"] = items
    if return_scores:
        extra["return_scores"] = True
    if timestamps is not None:
        extra["timestamps"] = timestamps
    out: np.ndarray | tuple[np.ndarray, np.ndarray] = estimator.recommend(
        X, n, exclude_seen=exclude_seen, **extra
    )
    return out


def recommend_validated(
    estimator: Any, X: sp.csr_array, n: int, *, exclude_seen: bool = True
) -> np.ndarray:
    """:func:`recommend` for X already validated by :func:`~skcfae._validation.check_interactions`.

    On a skcfae recommender (not a Pipeline) X goes straight to the ranking loop, checked only
    for its number of columns: no copy, no second validation. Anything else (a Pipeline, whose
    earlier steps may return any matrix, or another object with a ``recommend`` method) goes
    through :func:`recommend`.

    Parameters
    ----------
    estimator : recommender or sklearn.pipeline.Pipeline
    X : scipy.sparse.csr_array of shape (n_users, n_items)
        Canonical CSR float32 (sorted indices, no duplicates), non-negative.
    n : int
    exclude_seen : bool, default=True

    Returns
    -------
    items : ndarray of shape (n_users, n), dtype int64
    """
    if not isinstance(estimator, Pipeline) and hasattr(estimator, "_recommend_validated"):
        check_is_fitted(estimator)
        check_n_items(estimator, X, reset=False)
        top: np.ndarray = estimator._recommend_validated(
            X,
            n,
            exclude_seen=exclude_seen,
            items=None,
            return_scores=False,
            caller=f"{type(estimator).__name__}.recommend",
        )
        return top
    return recommend(estimator, X, n, exclude_seen=exclude_seen)


def score_fold_in(
    estimator: Any,
    X: sp.csr_array,
    *,
    metric: str,
    k: int,
    holdout_fraction: float,
    random_state: RandomState,
    caller: str,
) -> float:
    """Mean top-``k`` metric of ``estimator`` on a fold-in/hold-out split of each row of X.

    The strong-generalization protocol (Liang et al., WWW 2018; Khawar et al., WWW 2020,
    §4.1-4.2) behind the ranking scorers and ``RecommenderMixin.score``: each row is split by
    :func:`skcfae.model_selection.fold_in_split`, the estimator recommends ``k`` unseen items
    from the fold-in part, and :data:`KERNELS[metric] <KERNELS>` is averaged over the users
    with a held-out item. When ``k`` exceeds the number of items, the missing places are -1
    (misses).

    Parameters
    ----------
    estimator : recommender or sklearn.pipeline.Pipeline
    X : scipy.sparse.csr_array of shape (n_users, n_items)
        Validated by ``check_interactions`` (implicit): it is not validated again.
    metric : {"ndcg", "recall", "precision", "hit_rate"}
    k : int
    holdout_fraction : float
    random_state : int, RandomState instance or None
    caller : str
        Name used in error messages.

    Returns
    -------
    score : float
    """
    fold_in, holdout = _fold_in_split(
        X, test_size=holdout_fraction, min_interactions=5, random_state=random_state
    )
    users = np.flatnonzero(np.diff(holdout.indptr) > 0)
    if users.size == 0:
        raise ValueError(
            f"{caller}: no user of X has a held-out item; rows need at least 5 "
            f"interactions and holdout_fraction={holdout_fraction} of them must "
            "round down to at least one."
        )
    n = min(k, X.shape[1])
    top = np.asarray(recommend_validated(estimator, fold_in[users], n, exclude_seen=True))
    if n < k:  # catalog smaller than k: the missing places are empty (-1)
        top = np.hstack([top, np.full((top.shape[0], k - n), -1, dtype=top.dtype)])
    return float(np.mean(KERNELS[metric](top, holdout[users], k)))
