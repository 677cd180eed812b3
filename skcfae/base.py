"""RecommenderMixin: validation, batching and the one top-n path of every recommender."""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._typing import InteractionMatrix
from ._validation import check_interactions

__all__ = ["RecommenderMixin", "recommend"]

#: Users scored at once by ``decision_function``/``recommend``: bounds memory by
#: batch x n_items, whatever the number of users.
DEFAULT_BATCH_USERS = 1000


class RecommenderMixin:
    """Mixin for recommenders: validated input, batched scores, top-n and ``score``.

    Subclasses implement ``_decision_function_batch(X_batch) -> ndarray (b, n_items)`` on a
    validated CSR batch, and call ``self._validate_interactions(X, reset=True)`` in ``fit``.
    """

    #: Implicit models need non-negative interactions; explicit (rating) models set False.
    _implicit = True

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = self._implicit
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags

    # -- validation -------------------------------------------------------------------------
    def _validate_interactions(
        self, X: InteractionMatrix, *, reset: bool, caller: str | None = None
    ) -> sp.csr_array:
        name = type(self).__name__
        caller = caller or f"{name}.{'fit' if reset else 'predict'}"
        X = check_interactions(X, caller=caller, implicit=self._implicit)
        if reset:
            self.n_items_in_ = X.shape[1]
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_items_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting {self.n_items_in_} "
                f"features as input: X has {X.shape[1]} items but {name} was fitted on "
                f"{self.n_items_in_}; pass rows over the same item columns."
            )
        return X

    def _decision_function_batch(self, X: sp.csr_array) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _batch_users(self) -> int:
        return int(getattr(self, "batch_size", None) or DEFAULT_BATCH_USERS)

    # -- public API -------------------------------------------------------------------------
    def decision_function(self, X: InteractionMatrix) -> np.ndarray:
        """Score every item for each user (row) of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions of the users to score; they need not be training users.

        Returns
        -------
        scores : ndarray of shape (n_users, n_items)
            Higher is better. Dense by nature: prefer :meth:`recommend` for many users.
        """
        check_is_fitted(self)
        X = self._validate_interactions(
            X, reset=False, caller=f"{type(self).__name__}.decision_function"
        )
        step = self._batch_users()
        parts = [
            np.asarray(self._decision_function_batch(X[i : i + step]), dtype=np.float32)
            for i in range(0, X.shape[0], step)
        ]
        return np.vstack(parts)

    def recommend(
        self, X: InteractionMatrix, n: int = 10, *, exclude_seen: bool = True
    ) -> np.ndarray:
        """Top-``n`` items for each user (row) of X, best first.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions of the users to recommend for (fold-in); they need not be training
            users.
        n : int, default=10
            Number of items per user, at most ``n_items_in_``.
        exclude_seen : bool, default=True
            Never recommend an item the user already has in X.

        Returns
        -------
        items : ndarray of shape (n_users, n), dtype int64
            Item indices, best first; -1 pads rows with fewer than ``n`` candidate items.
        """
        check_is_fitted(self)
        name = type(self).__name__
        X = self._validate_interactions(X, reset=False, caller=f"{name}.recommend")
        _check_n(n, self.n_items_in_, f"{name}.recommend")
        step = self._batch_users()
        out = np.empty((X.shape[0], n), dtype=np.int64)
        for i in range(0, X.shape[0], step):
            out[i : i + step] = self._recommend_batch(X[i : i + step], n, exclude_seen)
        return out

    def _recommend_batch(self, X: sp.csr_array, n: int, exclude_seen: bool) -> np.ndarray:
        return _topk_masked(self._decision_function_batch(X), X, n, exclude_seen)

    def score(self, X: InteractionMatrix, y: Any = None) -> float:
        """NDCG@100 on a fixed 80/20 fold-in/hold-out split of each row of X.

        Lets ``GridSearchCV(est, grid, cv=UserSplit(...))`` work with ``scoring=None``. Rows with
        fewer than 5 interactions are not evaluated (as in Liang et al. 2018).
        """
        from .metrics import ndcg_scorer

        check_is_fitted(self)
        X = self._validate_interactions(X, reset=False, caller=f"{type(self).__name__}.score")
        return float(ndcg_scorer(k=100)(self, X))


def _topk_masked(scores: Any, X: sp.csr_array, n: int, exclude_seen: bool) -> np.ndarray:
    """Top-``n`` columns of ``scores`` per row, seen items of X masked, -1 where none is left."""
    from .metrics import _topk_from_scores

    scores = np.array(scores, dtype=np.float32)
    if exclude_seen:
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        scores[rows, X.indices] = -np.inf
    top = _topk_from_scores(scores, n)
    top[np.take_along_axis(scores, top, axis=1) == -np.inf] = -1
    return top


def _check_n(n: Any, n_items: int, caller: str) -> None:
    if isinstance(n, bool) or not isinstance(n, Integral) or int(n) < 1:
        raise ValueError(
            f"The 'n' parameter of {caller} must be an int in the range [1, {n_items}]. "
            f"Got {n!r} instead."
        )
    if int(n) > n_items:
        raise ValueError(
            f"The 'n' parameter of {caller} must be an int in the range [1, {n_items}] "
            f"(the model knows {n_items} items). Got {n} instead."
        )


def recommend(
    estimator: Any, X: InteractionMatrix, n: int = 10, *, exclude_seen: bool = True
) -> np.ndarray:
    """Top-``n`` items for each row of X from a recommender or a Pipeline ending in one.

    Parameters
    ----------
    estimator : recommender or sklearn.pipeline.Pipeline
        A fitted skcfae recommender, or a Pipeline whose last step is one; the earlier steps'
        ``transform`` is applied to X first.
    X : {array-like, sparse matrix} of shape (n_users, n_items)
    n : int, default=10
    exclude_seen : bool, default=True

    Returns
    -------
    items : ndarray of shape (n_users, n), dtype int64, best first, padded with -1.
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
    return estimator.recommend(X, n, exclude_seen=exclude_seen)
