"""Top-k ranking metrics, RMSE and GridSearchCV scorers for recommenders.

The ranking metrics follow Liang et al. 2018 and ``papers/000_a2475424b54d3d60.txt`` §4.2:
relevance is binary (any stored positive entry of the held-out matrix is relevant),

- ``DCG@k = sum_{r=1..k} rel(r) / log2(r + 1)``, ``NDCG@k = DCG@k / IDCG@k`` where the ideal
  DCG ranks ``min(k, |held-out|)`` relevant items first;
- ``Recall@k = hits@k / min(k, |held-out|)`` (so that a perfect ranking scores 1);
- ``Precision@k = hits@k / k`` and ``HitRate@k = 1 if hits@k > 0``.

Users without any held-out item are undefined (NaN per user) and left out of averages.

The private ``_*_from_topk`` kernels work on a ranked list of item indices, so that estimators
can evaluate batch by batch from ``recommend`` without building a dense score matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.utils._param_validation import Interval, validate_params

from ._typing import InteractionMatrix, RandomState
from ._validation import check_interactions

__all__ = sorted(
    [
        "hit_rate_at_k",
        "hit_rate_scorer",
        "ndcg_at_k",
        "ndcg_scorer",
        "precision_at_k",
        "precision_scorer",
        "recall_at_k",
        "recall_scorer",
        "rmse",
        "rmse_scorer",
    ]
)

# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


def _topk_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
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
    n_users, n_items = scores.shape
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    if k > n_items:
        raise ValueError(
            f"Cannot rank the top k={k} items among only n_items={n_items}; use k <= {n_items}."
        )
    if n_users == 0:
        return np.empty((0, k), dtype=np.int64)
    if np.isnan(scores).any():
        raise ValueError(
            "scores contain NaN, so items cannot be ranked; the model may have diverged "
            "(try a lower learning rate)."
        )
    # k-th largest value of each row; everything strictly above it is in, and among the
    # items equal to it the lowest indices fill the remaining places.
    kth = np.partition(scores, n_items - k, axis=1)[:, n_items - k][:, None]
    chosen = scores >= kth
    surplus = np.flatnonzero(chosen.sum(axis=1) > k)  # rows with more ties than places
    if surplus.size:
        sub, sub_kth = scores[surplus], kth[surplus]
        above, ties = sub > sub_kth, sub == sub_kth
        need = k - above.sum(axis=1, keepdims=True)
        chosen[surplus] = above | (ties & (np.cumsum(ties, axis=1) <= need))
    cols = np.nonzero(chosen)[1].reshape(n_users, k)  # ascending item index per row
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")  # stable: ties keep the lower index
    return np.take_along_axis(cols, order, axis=1).astype(np.int64, copy=False)


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


def _ndcg_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user NDCG@k of ranked lists ``top`` (-1 pads, never a hit); NaN without held-out."""
    hits, n_rel = _hits(top, y_true, k)
    discount = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    # sequential sums, row by row: a perfect ranking gives exactly 1.0, and a user's value
    # does not depend on the other users of the batch (as a BLAS product's rounding can)
    dcg = np.cumsum(hits * discount, axis=1)[:, -1]
    ideal = np.concatenate([[np.nan], np.cumsum(discount)])[np.minimum(n_rel, k)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return dcg / ideal


def _recall_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user Recall@k = hits / min(k, |held-out|); NaN without held-out items."""
    hits, n_rel = _hits(top, y_true, k)
    denom = np.minimum(n_rel, k).astype(np.float64)
    denom[denom == 0] = np.nan
    return hits.sum(axis=1) / denom


def _precision_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user Precision@k = hits / k; NaN without held-out items."""
    hits, n_rel = _hits(top, y_true, k)
    out = hits.sum(axis=1) / float(k)
    out[n_rel == 0] = np.nan
    return out


def _hit_rate_from_topk(top: np.ndarray, y_true: sp.csr_array, k: int) -> np.ndarray:
    """Per-user HitRate@k: 1.0 if any of the top k is held out; NaN without held-out items."""
    hits, n_rel = _hits(top, y_true, k)
    out: np.ndarray = np.asarray(hits.any(axis=1), dtype=np.float64)
    out[n_rel == 0] = np.nan
    return out


_KERNELS: dict[str, Callable[[np.ndarray, sp.csr_array, int], np.ndarray]] = {
    "ndcg": _ndcg_from_topk,
    "recall": _recall_from_topk,
    "precision": _precision_from_topk,
    "hit_rate": _hit_rate_from_topk,
}

# ---------------------------------------------------------------------------------------------
# Public metrics
# ---------------------------------------------------------------------------------------------


def _ranking_metric(
    name: str, y_true: InteractionMatrix, y_score: npt.ArrayLike, k: int, average: bool
) -> float | np.ndarray:
    caller = f"{name}_at_k"
    Y = check_interactions(y_true, caller=caller)
    if sp.issparse(y_score):
        raise TypeError(
            f"{caller} needs y_score as a dense array of scores (missing entries of a sparse "
            "matrix would read as 0); pass y_score.toarray()."
        )
    scores = np.asarray(y_score)
    if scores.dtype.kind not in "biuf":
        raise TypeError(f"{caller} needs numeric y_score, got dtype {scores.dtype}.")
    if scores.shape != Y.shape:
        raise ValueError(
            f"{caller}: y_true has shape {Y.shape} but y_score has shape {scores.shape}; "
            "both must be (n_users, n_items)."
        )
    if np.isnan(scores).any():
        raise ValueError(f"{caller}: y_score contains NaN; use -inf for excluded items.")
    if k > Y.shape[1]:
        raise ValueError(
            f"The 'k' parameter of {caller} must be at most n_items={Y.shape[1]}. Got {k} instead."
        )
    top = _topk_from_scores(scores, k)
    per_user = _KERNELS[name](top, Y, k)
    if not average:
        return per_user
    evaluated = ~np.isnan(per_user)
    if not evaluated.any():
        raise ValueError(
            f"{caller}: no user has a held-out item in y_true, so the average is undefined."
        )
    return float(per_user[evaluated].mean())


_RANKING_CONSTRAINTS: dict[str, list[Any]] = {
    "y_true": ["array-like", "sparse matrix"],
    "y_score": ["array-like", "sparse matrix"],
    "k": [Interval(Integral, 1, None, closed="left")],
    "average": ["boolean"],
}


@validate_params(_RANKING_CONSTRAINTS, prefer_skip_nested_validation=True)
def ndcg_at_k(
    y_true: InteractionMatrix, y_score: npt.ArrayLike, *, k: int = 100, average: bool = True
) -> float | np.ndarray:
    """Normalized discounted cumulative gain of the top-``k`` items (NDCG@k).

    ``DCG@k = sum_{r=1..k} rel(r) / log2(r + 1)`` with binary relevance (an item is relevant
    when it is stored with a positive value in ``y_true``), divided by the best DCG@k, which
    ranks ``min(k, |held-out|)`` relevant items first. As in ``papers/000_a2475424b54d3d60.txt``
    §4.2 and Liang et al. 2018.

    Parameters
    ----------
    y_true : {array-like, sparse matrix} of shape (n_users, n_items)
        Held-out interactions; stored positive entries are relevant.
    y_score : array-like of shape (n_users, n_items)
        Scores, higher is better; ``-inf`` excludes an item (e.g. the fold-in items). Ties are
        broken by the lower item index.
    k : int, default=100
        Length of the ranked list, at most ``n_items``.
    average : bool, default=True
        Return the mean over users with at least one held-out item; otherwise the per-user
        values, NaN for users without held-out items.

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    See Also
    --------
    recall_at_k, ndcg_scorer

    References
    ----------
    Liang, Krishnan, Hoffman and Jebara. Variational Autoencoders for Collaborative
    Filtering. WWW 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.metrics import ndcg_at_k
    >>> y_true = np.array([[1, 0, 1, 0]])
    >>> y_score = np.array([[0.1, 0.5, 0.9, 0.0]])
    >>> round(ndcg_at_k(y_true, y_score, k=3), 4)  # ranks [2, 1, 0]: 1.5 / 1.6309
    0.9197
    """
    return _ranking_metric("ndcg", y_true, y_score, k, average)


@validate_params(_RANKING_CONSTRAINTS, prefer_skip_nested_validation=True)
def recall_at_k(
    y_true: InteractionMatrix, y_score: npt.ArrayLike, *, k: int = 20, average: bool = True
) -> float | np.ndarray:
    """Recall of the top-``k`` items, normalized by ``min(k, |held-out|)`` (Recall@k).

    ``Recall@k = hits@k / min(k, |held-out|)``, so that ranking all held-out items first scores
    1 even when there are more than ``k`` of them; ``papers/000_a2475424b54d3d60.txt`` §4.2 and
    Liang et al. 2018.

    Parameters
    ----------
    y_true : {array-like, sparse matrix} of shape (n_users, n_items)
        Held-out interactions; stored positive entries are relevant.
    y_score : array-like of shape (n_users, n_items)
        Scores, higher is better; ``-inf`` excludes an item.
    k : int, default=20
        Length of the ranked list, at most ``n_items``.
    average : bool, default=True
        Return the mean over users with at least one held-out item; otherwise the per-user
        values, NaN for users without held-out items.

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    See Also
    --------
    ndcg_at_k, precision_at_k, recall_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.metrics import recall_at_k
    >>> y_true = np.array([[1, 0, 1, 0]])
    >>> y_score = np.array([[0.1, 0.5, 0.9, 0.0]])
    >>> recall_at_k(y_true, y_score, k=2)
    0.5
    """
    return _ranking_metric("recall", y_true, y_score, k, average)


@validate_params(_RANKING_CONSTRAINTS, prefer_skip_nested_validation=True)
def precision_at_k(
    y_true: InteractionMatrix, y_score: npt.ArrayLike, *, k: int = 20, average: bool = True
) -> float | np.ndarray:
    """Fraction of the top-``k`` items that are held out (Precision@k = hits@k / k).

    Binary relevance as in ``papers/000_a2475424b54d3d60.txt`` §4.2.

    Parameters
    ----------
    y_true : {array-like, sparse matrix} of shape (n_users, n_items)
        Held-out interactions; stored positive entries are relevant.
    y_score : array-like of shape (n_users, n_items)
        Scores, higher is better; ``-inf`` excludes an item.
    k : int, default=20
        Length of the ranked list, at most ``n_items``.
    average : bool, default=True
        Return the mean over users with at least one held-out item; otherwise the per-user
        values, NaN for users without held-out items.

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    See Also
    --------
    recall_at_k, precision_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.metrics import precision_at_k
    >>> y_true = np.array([[1, 0, 1, 0]])
    >>> y_score = np.array([[0.1, 0.5, 0.9, 0.0]])
    >>> precision_at_k(y_true, y_score, k=2)
    0.5
    """
    return _ranking_metric("precision", y_true, y_score, k, average)


@validate_params(_RANKING_CONSTRAINTS, prefer_skip_nested_validation=True)
def hit_rate_at_k(
    y_true: InteractionMatrix, y_score: npt.ArrayLike, *, k: int = 10, average: bool = True
) -> float | np.ndarray:
    """Whether any of the top-``k`` items is held out (HitRate@k, HR@k).

    With one held-out item per user (leave-one-out, ``papers/003``) this is the usual HR@k;
    binary relevance as in ``papers/000_a2475424b54d3d60.txt`` §4.2.

    Parameters
    ----------
    y_true : {array-like, sparse matrix} of shape (n_users, n_items)
        Held-out interactions; stored positive entries are relevant.
    y_score : array-like of shape (n_users, n_items)
        Scores, higher is better; ``-inf`` excludes an item.
    k : int, default=10
        Length of the ranked list, at most ``n_items``.
    average : bool, default=True
        Return the mean over users with at least one held-out item; otherwise the per-user
        values, NaN for users without held-out items.

    Returns
    -------
    score : float or ndarray of shape (n_users,)

    See Also
    --------
    recall_at_k, hit_rate_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.metrics import hit_rate_at_k
    >>> y_true = np.array([[0, 0, 1, 0], [1, 0, 0, 0]])
    >>> y_score = np.array([[0.1, 0.5, 0.9, 0.0], [0.1, 0.5, 0.9, 0.0]])
    >>> hit_rate_at_k(y_true, y_score, k=2)
    0.5
    """
    return _ranking_metric("hit_rate", y_true, y_score, k, average)


@validate_params(
    {"y_true": ["array-like", "sparse matrix"], "y_pred": ["array-like", "sparse matrix"]},
    prefer_skip_nested_validation=True,
)
def rmse(y_true: InteractionMatrix, y_pred: InteractionMatrix) -> float:
    """Root mean squared error of predicted ratings at the observed entries.

    The rating-prediction metric of ``papers/002`` (CFN) and AutoRec.

    - ``y_true`` sparse: the observed ratings are its *stored* entries (a stored 0 is a rating);
      ``y_pred`` is either sparse with exactly the same sparsity pattern (as returned by a
      rating model's ``predict``) or dense of the same shape (read at those entries).
    - ``y_true`` dense: every entry is an observed rating and ``y_pred`` must be dense of the
      same shape.

    Parameters
    ----------
    y_true : {array-like, sparse matrix} of shape (n_users, n_items)
        Observed ratings.
    y_pred : {array-like, sparse matrix} of shape (n_users, n_items)
        Predicted ratings.

    Returns
    -------
    rmse : float

    See Also
    --------
    rmse_scorer

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from skcfae.metrics import rmse
    >>> y_true = sp.csr_array([[5.0, 0.0, 3.0], [0.0, 4.0, 0.0]])
    >>> y_pred = sp.csr_array([[4.0, 0.0, 3.0], [0.0, 3.0, 0.0]])
    >>> round(rmse(y_true, y_pred), 4)
    0.8165
    """
    if sp.issparse(y_true):
        T = check_interactions(y_true, caller="rmse", implicit=False, dtype=np.float64)
        if T.nnz == 0:
            raise ValueError("rmse: y_true stores no rating, so the RMSE is undefined.")
        if sp.issparse(y_pred):
            P = check_interactions(y_pred, caller="rmse", implicit=False, dtype=np.float64)
            if P.shape != T.shape:
                raise ValueError(
                    f"rmse: y_true has shape {T.shape} but y_pred has shape {P.shape}."
                )
            if not (np.array_equal(T.indptr, P.indptr) and np.array_equal(T.indices, P.indices)):
                raise ValueError(
                    f"rmse: y_pred must store predictions at exactly the entries of y_true "
                    f"(same sparsity pattern); y_true stores {T.nnz} entries and y_pred "
                    f"{P.nnz}, not at the same positions. Use the output of predict(y_true) "
                    "or a dense y_pred."
                )
            pred = P.data
        else:
            dense = _check_dense_ratings(y_pred, "y_pred")
            if dense.shape != T.shape:
                raise ValueError(
                    f"rmse: y_true has shape {T.shape} but y_pred has shape {dense.shape}."
                )
            rows = np.repeat(np.arange(T.shape[0]), np.diff(T.indptr))
            pred = dense[rows, T.indices]
        true = T.data
    else:
        if sp.issparse(y_pred):
            raise TypeError(
                "rmse: y_true is dense (every entry a rating) but y_pred is sparse; pass "
                "y_true as a sparse matrix of the observed ratings, or y_pred.toarray()."
            )
        true = _check_dense_ratings(y_true, "y_true")
        pred = _check_dense_ratings(y_pred, "y_pred")
        if true.shape != pred.shape:
            raise ValueError(
                f"rmse: y_true has shape {true.shape} but y_pred has shape {pred.shape}."
            )
        if true.size == 0:
            raise ValueError("rmse: y_true is empty, so the RMSE is undefined.")
    return float(np.sqrt(np.mean((np.asarray(true) - np.asarray(pred)) ** 2)))


def _check_dense_ratings(a: Any, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"rmse needs numeric {name}, got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(f"rmse needs a 2-D {name} (n_users, n_items), got shape {arr.shape}.")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"rmse: {name} contains NaN or infinite values.")
    return arr


# ---------------------------------------------------------------------------------------------
# Scorers
# ---------------------------------------------------------------------------------------------


class _RankingScorer:
    """``scorer(estimator, X, y=None) -> float``: a top-k metric on a fold-in/hold-out split.

    Each row of X is split with :func:`skcfae.model_selection.fold_in_split`; the estimator
    recommends ``k`` unseen items from the fold-in part and the metric is averaged over the
    users with at least one held-out item. Picklable, so ``GridSearchCV(n_jobs=...)`` works.
    """

    def __init__(
        self, metric: str, k: int, holdout_fraction: float, random_state: RandomState
    ) -> None:
        self.metric = metric
        self.k = k
        self.holdout_fraction = holdout_fraction
        self.random_state = random_state

    def __call__(self, estimator: Any, X: InteractionMatrix, y: Any = None) -> float:
        from .base import recommend
        from .model_selection import fold_in_split

        caller = f"{self.metric}_scorer"
        X = check_interactions(X, caller=caller)
        fold_in, holdout = fold_in_split(
            X, test_size=self.holdout_fraction, random_state=self.random_state
        )
        users = np.flatnonzero(np.diff(holdout.indptr) > 0)
        if users.size == 0:
            raise ValueError(
                f"{caller}: no user of X has a held-out item; rows need at least 5 "
                f"interactions and holdout_fraction={self.holdout_fraction} of them must "
                "round down to at least one."
            )
        n = min(self.k, X.shape[1])
        top = np.asarray(recommend(estimator, fold_in[users], n=n, exclude_seen=True))
        if n < self.k:  # catalog smaller than k: the missing places are empty (-1)
            top = np.hstack([top, np.full((top.shape[0], self.k - n), -1, dtype=top.dtype)])
        return float(np.mean(_KERNELS[self.metric](top, holdout[users], self.k)))

    def __repr__(self) -> str:
        return (
            f"{self.metric}_scorer(k={self.k}, holdout_fraction={self.holdout_fraction}, "
            f"random_state={self.random_state!r})"
        )


class _RMSEScorer:
    """``scorer(estimator, X, y=None) -> -rmse(X, estimator.predict(X))``."""

    def __call__(self, estimator: Any, X: InteractionMatrix, y: Any = None) -> float:
        X = check_interactions(X, caller="rmse_scorer", implicit=False)
        return -rmse(X, estimator.predict(X))

    def __repr__(self) -> str:
        return "rmse_scorer()"


_SCORER_CONSTRAINTS: dict[str, list[Any]] = {
    "k": [Interval(Integral, 1, None, closed="left")],
    "holdout_fraction": [Interval(Real, 0, 1, closed="neither")],
    "random_state": ["random_state"],
}

_SCORER_DOC = """{title}

    Splits each row of ``X`` into fold-in and hold-out items with
    :func:`skcfae.model_selection.fold_in_split` (rows with fewer than 5 interactions are not
    evaluated), ranks the unseen items with :func:`skcfae.recommend` from the fold-in part (so
    it works on Pipelines), and averages :func:`{metric}` over the users with at least one
    held-out item: the strong-generalization protocol of ``papers/000_a2475424b54d3d60.txt``
    §4.1-4.2. When ``k`` exceeds the number of items, the missing places count as misses.

    Parameters
    ----------
    k : int, default={k}
        Length of the ranked list.
    holdout_fraction : float, default=0.2
        Fraction of each row's interactions held out for evaluation.
    random_state : int, RandomState instance or None, default=0
        Seed of the fold-in/hold-out split; an int gives the same split on every call.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``, for ``GridSearchCV(scoring=...)`` and
        ``cross_validate``. Higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import Popularity
    >>> from skcfae.metrics import {name}
    >>> X = (np.random.RandomState(0).rand(20, 30) < 0.4).astype(float)
    >>> scorer = {name}(k=10)
    >>> scorer
    {repr}
    >>> 0.0 <= scorer(Popularity().fit(X), X) <= 1.0
    True
    """


def _make_doc(name: str, metric: str, title: str, k: int) -> str:
    rep = f"{name.removesuffix('_scorer')}_scorer(k=10, holdout_fraction=0.2, random_state=0)"
    return _SCORER_DOC.format(title=title, metric=metric, k=k, name=name, repr=rep)


@validate_params(_SCORER_CONSTRAINTS, prefer_skip_nested_validation=True)
def ndcg_scorer(
    k: int = 100, *, holdout_fraction: float = 0.2, random_state: RandomState = 0
) -> Callable[..., float]:
    return _RankingScorer("ndcg", k, holdout_fraction, random_state)


@validate_params(_SCORER_CONSTRAINTS, prefer_skip_nested_validation=True)
def recall_scorer(
    k: int = 20, *, holdout_fraction: float = 0.2, random_state: RandomState = 0
) -> Callable[..., float]:
    return _RankingScorer("recall", k, holdout_fraction, random_state)


@validate_params(_SCORER_CONSTRAINTS, prefer_skip_nested_validation=True)
def precision_scorer(
    k: int = 20, *, holdout_fraction: float = 0.2, random_state: RandomState = 0
) -> Callable[..., float]:
    return _RankingScorer("precision", k, holdout_fraction, random_state)


@validate_params(_SCORER_CONSTRAINTS, prefer_skip_nested_validation=True)
def hit_rate_scorer(
    k: int = 10, *, holdout_fraction: float = 0.2, random_state: RandomState = 0
) -> Callable[..., float]:
    return _RankingScorer("hit_rate", k, holdout_fraction, random_state)


ndcg_scorer.__doc__ = _make_doc(
    "ndcg_scorer", "ndcg_at_k", "Scorer for NDCG@k of held-out items.", 100
)
recall_scorer.__doc__ = _make_doc(
    "recall_scorer", "recall_at_k", "Scorer for Recall@k of held-out items.", 20
)
precision_scorer.__doc__ = _make_doc(
    "precision_scorer", "precision_at_k", "Scorer for Precision@k of held-out items.", 20
)
hit_rate_scorer.__doc__ = _make_doc(
    "hit_rate_scorer", "hit_rate_at_k", "Scorer for HitRate@k of held-out items.", 10
)


def rmse_scorer() -> Callable[..., float]:
    """Scorer for rating models: the negative RMSE of ``predict`` at the stored entries of X.

    ``scorer(estimator, X, y=None)`` returns ``-rmse(X, estimator.predict(X))``: the model
    predicts the ratings stored in X from X itself (reconstruction error, as a rating
    autoencoder's ``score``). For the 90/10 protocol of ``papers/002`` (CFN), split with
    :func:`skcfae.model_selection.rating_holdout_split`, fit on the training part and call
    :func:`rmse` on the test part. Higher (closer to 0) is better, as sklearn expects.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None) -> float``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from skcfae.metrics import rmse_scorer
    >>> class Mean:  # a stand-in rating model predicting 4 everywhere
    ...     def predict(self, X):
    ...         X = sp.csr_array(X, copy=True)
    ...         X.data[:] = 4.0
    ...         return X
    >>> X = sp.csr_array([[5.0, 0.0, 3.0], [0.0, 4.0, 0.0]])
    >>> round(rmse_scorer()(Mean(), X), 4)
    -0.8165
    """
    return _RMSEScorer()
