"""Top-k ranking metrics, RMSE and GridSearchCV scorers for recommenders.

The ranking metrics follow Liang et al. (WWW 2018) and Khawar et al. (WWW 2020), §4.2:
relevance is binary (any stored positive entry of the held-out matrix is relevant),

- ``DCG@k = sum_{r=1..k} rel(r) / log2(r + 1)``, ``NDCG@k = DCG@k / IDCG@k`` where the ideal
  DCG ranks ``min(k, |held-out|)`` relevant items first;
- ``Recall@k = hits@k / min(k, |held-out|)`` (so that a perfect ranking scores 1);
- ``Precision@k = hits@k / k`` and ``HitRate@k = 1 if hits@k > 0``.

Users without any held-out item are undefined (NaN per user) and left out of averages.

The per-user kernels work on ranked lists of item indices and live in the private
``skcfae._ranking`` (with the top-k and ``recommend``), so that estimators evaluate batch by
batch from ``recommend`` without building a dense score matrix; this module only validates
the inputs and averages.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.utils.metadata_routing import MetadataRequest

from ._compat import Interval, StrOptions, validate_params
from ._ranking import KERNELS, recommend, recommend_validated, score_fold_in, topk_from_scores
from ._typing import InteractionMatrix, RandomState
from ._validation import check_interactions, check_n, check_n_items, check_same_pattern
from .model_selection import _sequence_times, _temporal_split

__all__ = sorted(
    [
        "hit_rate_at_k",
        "hit_rate_scorer",
        "holdout_scorer",
        "ndcg_at_k",
        "ndcg_scorer",
        "precision_at_k",
        "precision_scorer",
        "recall_at_k",
        "recall_scorer",
        "rmse",
        "rmse_scorer",
        "temporal_scorer",
    ]
)

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
    k = check_n(k, Y.shape[1], caller, name="k", limit=f"at most n_items={Y.shape[1]}")
    top = topk_from_scores(scores, k)
    per_user = KERNELS[name](top, Y, k)
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
    ranks ``min(k, |held-out|)`` relevant items first. As in Khawar et al. (WWW 2020, §4.2)
    and Liang et al. (WWW 2018).

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
    1 even when there are more than ``k`` of them; Khawar et al. (WWW 2020, §4.2) and Liang et
    al. (WWW 2018).

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

    Binary relevance as in Khawar et al. (WWW 2020, §4.2).

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

    With one held-out item per user (leave-one-out, as in NCAE: Li, Zheng and Wu, arXiv
    1712.09043, 2017) this is the usual HR@k; binary relevance as in Khawar et al. (WWW 2020,
    §4.2).

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

    The rating-prediction metric of CFN (Strub and Mary, 2015) and AutoRec (Sedhain et al.,
    WWW 2015). ``y_true`` is read as the rating models read their data:

    - ``y_true`` sparse: the observed ratings are its *stored* entries (a stored 0 is a rating;
      a (user, item) entry stored twice is an error);
    - ``y_true`` dense: NaN marks an unobserved entry, and every other entry (0 included) is
      an observed rating.

    ``y_pred`` is either sparse with exactly the sparsity pattern of the observed entries (as
    a rating model's ``predict`` returns) or dense of the same shape, read at those entries
    (and finite everywhere). A dense ``y_true`` needs a dense ``y_pred``.

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

    References
    ----------
    Strub and Mary. Collaborative Filtering with Stacked Denoising AutoEncoders and Sparse
    Inputs. NIPS 2015 Workshop on Machine Learning for eCommerce.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skcfae.metrics import rmse
    >>> y_true = sp.csr_array([[5.0, 0.0, 3.0], [0.0, 4.0, 0.0]])
    >>> y_pred = sp.csr_array([[4.0, 0.0, 3.0], [0.0, 3.0, 0.0]])
    >>> round(rmse(y_true, y_pred), 4)
    0.8165
    >>> dense = np.array([[5.0, np.nan, 3.0], [np.nan, 4.0, np.nan]])  # NaN: not rated
    >>> round(rmse(dense, np.array([[4.0, 9.0, 3.0], [9.0, 3.0, 9.0]])), 4)
    0.8165
    """
    if not sp.issparse(y_true) and sp.issparse(y_pred):
        raise TypeError(
            "rmse: y_true is dense (every non-NaN entry a rating) but y_pred is sparse; pass "
            "y_true as a sparse matrix of the observed ratings, or y_pred.toarray()."
        )
    T = check_interactions(
        y_true, caller="rmse", implicit=False, dtype=np.float64, input_name="y_true"
    )
    return _rmse_validated(T, y_pred)


def _rmse_validated(T: sp.csr_array, y_pred: InteractionMatrix) -> float:
    """:func:`rmse` of a y_true already validated as ratings (canonical CSR, not copied)."""
    if T.nnz == 0:
        raise ValueError("rmse: y_true stores no rating, so the RMSE is undefined.")
    if sp.issparse(y_pred):
        P = check_interactions(
            y_pred, caller="rmse", implicit=False, dtype=np.float64, input_name="y_pred"
        )
        check_same_pattern(
            T,
            P,
            caller="rmse",
            names=("y_true", "y_pred"),
            stores="predictions",
            hint=" Use the output of predict(y_true) or a dense y_pred.",
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
    true = np.asarray(T.data, dtype=np.float64)
    return float(np.sqrt(np.mean((true - np.asarray(pred)) ** 2)))


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
    users with at least one held-out item (:func:`skcfae._ranking.score_fold_in`, also behind
    ``RecommenderMixin.score``). X is validated once, here. Picklable, so
    ``GridSearchCV(n_jobs=...)`` works.
    """

    def __init__(
        self, metric: str, k: int, holdout_fraction: float, random_state: RandomState
    ) -> None:
        self.metric = metric
        self.k = k
        self.holdout_fraction = holdout_fraction
        self.random_state = random_state

    def __call__(self, estimator: Any, X: InteractionMatrix, y: Any = None) -> float:
        caller = f"{self.metric}_scorer"
        X = check_interactions(X, caller=caller)  # the only validation on this path
        return score_fold_in(
            estimator,
            X,
            metric=self.metric,
            k=self.k,
            holdout_fraction=self.holdout_fraction,
            random_state=self.random_state,
            caller=caller,
        )

    def __repr__(self) -> str:
        return (
            f"{self.metric}_scorer(k={self.k}, holdout_fraction={self.holdout_fraction}, "
            f"random_state={self.random_state!r})"
        )


class _RMSEScorer:
    """``scorer(estimator, X, y=None) -> -rmse(X, estimator.predict(X))``.

    X is validated once, as ratings. A rating model may expose ``_predict_validated(X)``
    (``predict`` of an already validated X); the scorer then calls it directly, after checking
    the column count, instead of letting ``predict`` validate X again.
    """

    def __call__(self, estimator: Any, X: InteractionMatrix, y: Any = None) -> float:
        X = check_interactions(X, caller="rmse_scorer", implicit=False)
        if hasattr(estimator, "_predict_validated") and hasattr(estimator, "n_items_in_"):
            check_n_items(estimator, X, reset=False)
            pred = estimator._predict_validated(X)
        else:
            pred = estimator.predict(X)
        return -_rmse_validated(X, pred)

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
    held-out item: the strong-generalization protocol of Liang et al. (WWW 2018) and Khawar et
    al. (WWW 2020, §4.1-4.2). When ``k`` exceeds the number of items, the missing places count
    as misses.

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


class _TemporalScorer:
    """``scorer(estimator, X, y=None, *, timestamps) -> float``: a top-k metric on the
    temporal fold-in/hold-out split of X (see :func:`temporal_scorer`). It requests
    ``timestamps`` from scikit-learn's metadata routing for ``score``. Picklable."""

    def __init__(self, metric: str, k: int, holdout_fraction: float) -> None:
        self.metric = metric
        self.k = k
        self.holdout_fraction = holdout_fraction

    def __call__(
        self, estimator: Any, X: InteractionMatrix, y: Any = None, *, timestamps: Any = None
    ) -> float:
        caller = "temporal_scorer"
        if timestamps is None:
            raise ValueError(
                f"{caller} splits each user's interactions by time and got no timestamps; "
                "call scorer(estimator, X, timestamps=T). In GridSearchCV or cross_validate, "
                "enable scikit-learn's metadata routing "
                "(sklearn.set_config(enable_metadata_routing=True)) and pass timestamps=T to "
                "fit (params= in cross_validate): the scorer requests them."
            )
        X = check_interactions(X, caller=caller)  # the only validation on this path
        times = _sequence_times(timestamps, X, caller)
        fold_in, holdout, T_fold_in, _ = _temporal_split(X, times, self.holdout_fraction, 5)
        users = np.flatnonzero(np.diff(holdout.indptr) > 0)
        if users.size == 0:
            raise ValueError(
                f"{caller}: no user of X has a held-out item; rows need at least 5 "
                f"interactions and holdout_fraction={self.holdout_fraction} of them must "
                "round down to at least one."
            )
        n = min(self.k, X.shape[1])
        final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        method = getattr(final, "recommend", None)
        if method is not None and "timestamps" in inspect.signature(method).parameters:
            top = recommend(estimator, fold_in[users], n, timestamps=T_fold_in[users])
        else:  # an order-free model ranks from the same (earliest) fold-in items
            top = recommend_validated(estimator, fold_in[users], n, exclude_seen=True)
        top = np.asarray(top)
        if n < self.k:  # catalog smaller than k: the missing places are empty (-1)
            top = np.hstack([top, np.full((top.shape[0], self.k - n), -1, dtype=top.dtype)])
        return float(np.mean(KERNELS[self.metric](top, holdout[users], self.k)))

    def get_metadata_routing(self) -> MetadataRequest:
        """The scorer's metadata request: ``timestamps`` for ``score``, by default."""
        request = MetadataRequest(owner=type(self).__name__)
        request.score.add_request(param="timestamps", alias=True)
        return request

    def __repr__(self) -> str:
        return (
            f"temporal_scorer(metric={self.metric!r}, k={self.k}, "
            f"holdout_fraction={self.holdout_fraction})"
        )


@validate_params(
    {
        "metric": [StrOptions(set(KERNELS))],
        "k": [Interval(Integral, 1, None, closed="left")],
        "holdout_fraction": [Interval(Real, 0, 1, closed="neither")],
    },
    prefer_skip_nested_validation=True,
)
def temporal_scorer(
    metric: str = "ndcg", *, k: int = 100, holdout_fraction: float = 0.2
) -> Callable[..., float]:
    """Scorer of the latest interactions, ranked from the earlier ones (temporal split).

    ``scorer(estimator, X, y=None, *, timestamps)`` splits each row of X with
    :func:`skcfae.model_selection.temporal_split` (time-sorted: the first 80% fold-in, the
    last 20% held out; rows with fewer than 5 interactions are not evaluated), ranks the
    unseen items from the fold-in part with :func:`skcfae.recommend` (so Pipelines work) and
    averages ``metric`` at ``k`` over the users with a held-out item: the evaluation protocol
    of Sachdeva, Manco, Ritacco and Pudi (*Sequential Variational Autoencoders for
    Collaborative Filtering*, WSDM 2019, and their notebook; Le's survey of autoencoder
    recommenders, §5). A sequence model (its ``recommend`` takes ``timestamps``, as
    :class:`skcfae.SVAE`) gets the fold-in items' times; any other recommender ranks from the
    same fold-in items, so both are scored on the same split.

    The scorer requests ``timestamps`` through scikit-learn's metadata routing, so that with
    ``sklearn.set_config(enable_metadata_routing=True)``, ``GridSearchCV(...,
    scoring=temporal_scorer()).fit(X, timestamps=T)`` and ``cross_validate(...,
    params={"timestamps": T})`` hand each test fold its rows of T.

    Parameters
    ----------
    metric : {"ndcg", "recall", "precision", "hit_rate"}, default="ndcg"
        The per-user metric (as :func:`ndcg_at_k`, :func:`recall_at_k`,
        :func:`precision_at_k`, :func:`hit_rate_at_k`).
    k : int, default=100
        Length of the ranked list; places beyond the number of items count as misses.
    holdout_fraction : float, default=0.2
        Fraction of each row's interactions held out: its latest ones (rounded down).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y=None, *, timestamps) -> float``; higher is better. Without
        ``timestamps`` it raises a ``ValueError``.

        .. versionadded:: 0.1

    See Also
    --------
    skcfae.model_selection.temporal_split, ndcg_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import Popularity
    >>> from skcfae.metrics import temporal_scorer
    >>> X = (np.random.RandomState(0).rand(20, 30) < 0.4).astype(float)
    >>> T = np.random.RandomState(1).rand(20, 30)  # a time per entry
    >>> scorer = temporal_scorer(k=10)
    >>> scorer
    temporal_scorer(metric='ndcg', k=10, holdout_fraction=0.2)
    >>> 0.0 <= scorer(Popularity().fit(X), X, timestamps=T) <= 1.0
    True
    """
    return _TemporalScorer(metric, k, holdout_fraction)


def rmse_scorer() -> Callable[..., float]:
    """Scorer for rating models: the negative RMSE of ``predict`` at the stored entries of X.

    ``scorer(estimator, X, y=None)`` returns ``-rmse(X, estimator.predict(X))``: the model
    predicts the ratings stored in X from X itself (reconstruction error, as a rating
    autoencoder's ``score``). For the 90/10 protocol of CFN (Strub and Mary, 2015), split with
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


# ---------------------------------------------------------------------------------------------
# Scorer of given held-out items (leave-one-out)
# ---------------------------------------------------------------------------------------------


class _HoldoutScorer:
    """``scorer(estimator, X, y) -> float``: a top-k metric of the held-out items ``y`` ranked
    from the users' interactions ``X`` (see :func:`holdout_scorer`). Picklable."""

    def __init__(self, metric: str, k: int) -> None:
        self.metric = metric
        self.k = k

    def __call__(self, estimator: Any, X: InteractionMatrix, y: Any = None) -> float:
        caller = "holdout_scorer"
        if y is None:
            raise ValueError(
                f"{caller} scores held-out items given as y, a matrix of X's shape, and got "
                "y=None; pass them to the search: GridSearchCV(..., cv=[(rows, rows)])"
                ".fit(X_train, X_valid) with rows = np.arange(n_users)."
            )
        X = check_interactions(X, caller=caller)
        Y = check_interactions(y, caller=caller, input_name="y")
        if Y.shape != X.shape:
            raise ValueError(
                f"{caller}: X has shape {X.shape} but y has shape {Y.shape}; y holds the "
                "held-out items of the same users over the same items."
            )
        users = np.flatnonzero(np.diff(Y.indptr) > 0)
        if users.size == 0:
            raise ValueError(f"{caller}: no user has a held-out item in y.")
        n = min(self.k, X.shape[1])
        top = np.asarray(recommend_validated(estimator, X[users], n, exclude_seen=True))
        if n < self.k:  # catalog smaller than k: the missing places are empty (-1)
            top = np.hstack([top, np.full((top.shape[0], self.k - n), -1, dtype=top.dtype)])
        return float(np.mean(KERNELS[self.metric](top, Y[users], self.k)))

    def __repr__(self) -> str:
        return f"holdout_scorer(metric={self.metric!r}, k={self.k})"


@validate_params(
    {
        "metric": [StrOptions(set(KERNELS))],
        "k": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def holdout_scorer(metric: str = "ndcg", *, k: int = 100) -> Callable[..., float]:
    """Scorer of given held-out items: rank from X, look for y (leave-one-out searches).

    ``scorer(estimator, X, y)`` ranks, for every user (row) with at least one held-out item
    in ``y``, the items not in their row of ``X`` with :func:`skcfae.recommend` (so
    Pipelines work), and averages ``metric`` at ``k`` over those users. It is the
    evaluation of the leave-one-out protocol of Li, Zheng and Wu (NCAE, arXiv:1712.09043,
    §5.1): HR@k and NDCG@k of each user's held-out item among all items the user has not
    interacted with in training. ``X`` and ``y`` should not share entries (a held-out item
    that is also in X is excluded from the ranking, so it always misses).

    The users are the same in training and scoring, so a search gets one split whose
    training and test rows are all the rows, and the held-out items as ``y``::

        train, valid, test = leave_one_out_validation_split(X, times, random_state=0)
        rows = np.arange(X.shape[0])
        search = GridSearchCV(model, grid, cv=[(rows, rows)], scoring={
            "hr": holdout_scorer("hit_rate", k=100), "ndcg": holdout_scorer("ndcg", k=100)},
            refit=False).fit(train, valid)

    (every skcfae recommender ignores ``y`` in ``fit``). Then refit the best candidate on
    ``train + valid`` and score it with ``holdout_scorer(...)(model, train + valid, test)``.

    Parameters
    ----------
    metric : {"ndcg", "recall", "precision", "hit_rate"}, default="ndcg"
        The per-user metric (as :func:`ndcg_at_k`, :func:`recall_at_k`,
        :func:`precision_at_k`, :func:`hit_rate_at_k`). With one held-out item per user,
        recall and hit rate coincide.
    k : int, default=100
        Length of the ranked list (§5.1 uses 100); places beyond the number of items count
        as misses.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``. Higher is better. ``y=None`` is an error.

        .. versionadded:: 0.1

    See Also
    --------
    skcfae.model_selection.leave_one_out_validation_split, ndcg_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import Popularity
    >>> from skcfae.metrics import holdout_scorer
    >>> X = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]])
    >>> y = np.array([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    >>> scorer = holdout_scorer("hit_rate", k=1)
    >>> scorer
    holdout_scorer(metric='hit_rate', k=1)
    >>> scorer(Popularity().fit(X), X, y)  # user 0 gets item 1 (a hit), user 1 item 2
    0.5
    """
    return _HoldoutScorer(metric, k)
