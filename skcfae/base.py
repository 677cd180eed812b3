"""RecommenderMixin: validation, batching and the one top-n path of every recommender.

The ranking itself (seen-item masking, top-k, candidate sets, batching) lives in
:mod:`skcfae._ranking`, shared with :mod:`skcfae.metrics`; this module adds the estimator side:
input validated once, then passed on as canonical CSR.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from numbers import Integral
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from ._progress import batch_bar
from ._ranking import iter_row_batches, rank_batch, recommend, score_fold_in
from ._typing import InteractionMatrix
from ._validation import (
    check_flag,
    check_has_interactions,
    check_interactions,
    check_items,
    check_n,
    check_n_items,
)

__all__ = ["RecommenderMixin", "recommend"]

#: Users scored at once by ``decision_function``/``recommend``: bounds memory by
#: batch x n_items, whatever the number of users.
DEFAULT_BATCH_USERS = 1000


def shared_args(values: dict[str, Any], base: type) -> dict[str, Any]:
    """The arguments among ``values`` (a model's ``locals()`` in its ``__init__``) that the
    ``__init__`` chain of ``base`` takes: the parameters a model shares with its siblings,
    passed on as ``super().__init__(**shared_args(locals(), Base))``, so that each is assigned
    once, by the base that owns it (scikit-learn's ``KMeans`` / ``_BaseKMeans`` pattern)."""
    names: list[str] = []
    for cls in base.__mro__:
        if "__init__" in vars(cls) and cls.__module__.startswith("skcfae."):
            for p in inspect.signature(cls.__init__).parameters.values():  # type: ignore[misc]
                if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                    names.append(p.name)
    return {name: values[name] for name in names}


class RecommenderMixin:
    """Mixin for recommenders: validated input, batched scores, top-n and ``score``.

    Subclasses implement ``_decision_function_batch(X_batch, rows) -> ndarray (b, n_items)``
    on a validated CSR batch (``rows``: the slice of the query's rows it holds, for models
    whose rows are training users by position, as item-based rating models), and call
    ``self._validate_interactions(X, reset=True)`` in ``fit``.
    """

    #: Implicit models need non-negative interactions; explicit (rating) models set False.
    _implicit = True
    #: Set by ``fit`` (:func:`skcfae._validation.check_n_items`); declared for type checkers
    #: only: the attribute does not exist before ``fit``.
    n_items_in_: int

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
        """X as canonical CSR float32 (implicit or explicit per ``_implicit``), items counted.

        ``reset=True`` (in ``fit``) records ``n_items_in_``/``n_features_in_``; otherwise X must
        have that many columns. The result is passed on as is: nothing below re-validates it.
        """
        caller = caller or f"{type(self).__name__}.{'fit' if reset else 'predict'}"
        X = check_interactions(X, caller=caller, implicit=self._implicit)
        if reset and self._implicit:
            check_has_interactions(X, caller)
        check_n_items(self, X, reset=reset)
        return X

    def _decision_function_batch(
        self, X: sp.csr_array, rows: slice
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _batch_users(self) -> int:
        return int(getattr(self, "batch_size", None) or DEFAULT_BATCH_USERS)

    def _user_batches(self, X: sp.csr_array, caller: str) -> Iterator[tuple[slice, sp.csr_array]]:
        """The row batches of X, with a progress bar over them at ``verbose=1`` when there are
        several (estimators without ``verbose`` are silent)."""
        size = self._batch_users()
        verbose = getattr(self, "verbose", 0)
        verbose = int(verbose) if isinstance(verbose, Integral) else 0
        return batch_bar(iter_row_batches(X, size), -(-X.shape[0] // size), caller, verbose)

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
        parts = [
            np.asarray(self._decision_function_batch(Xb, rows), dtype=np.float32)
            for rows, Xb in self._user_batches(X, f"{type(self).__name__}.decision_function")
        ]
        return np.vstack(parts)

    @overload
    def recommend(
        self,
        X: InteractionMatrix,
        n: int = ...,
        *,
        exclude_seen: bool = ...,
        items: npt.ArrayLike | None = ...,
        return_scores: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def recommend(
        self,
        X: InteractionMatrix,
        n: int = ...,
        *,
        exclude_seen: bool = ...,
        items: npt.ArrayLike | None = ...,
        return_scores: Literal[True],
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def recommend(
        self,
        X: InteractionMatrix,
        n: int = 10,
        *,
        exclude_seen: bool = True,
        items: npt.ArrayLike | None = None,
        return_scores: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Top-``n`` items for each user (row) of X, best first.

        Computed batch by batch (``batch_size`` users at a time, or 1000): memory is bounded
        by a batch x n_items score block, never a users x items matrix. An estimator with
        ``verbose=1`` shows a progress bar over the batches when there are several.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions of the users to recommend for (fold-in); they need not be training
            users.
        n : int, default=10
            Number of items per user, at most ``n_items_in_`` (at most ``len(items)`` with
            ``items``).
        exclude_seen : bool, default=True
            Never recommend an item the user already has in X.
        items : array-like of int, default=None
            Candidate items (column indices): only these can be recommended, e.g. the items
            in stock. Non-empty, integers in ``[0, n_items_in_)``, no duplicates; their order
            does not matter (ties go to the lower item index). None: every item.

            .. versionadded:: 0.1
        return_scores : bool, default=False
            Also return the scores of the recommended items.

            .. versionadded:: 0.1

        Returns
        -------
        items : ndarray of shape (n_users, n), dtype int64
            Item indices, best first; -1 pads rows with fewer than ``n`` candidate items
            left (after ``exclude_seen``).
        scores : ndarray of shape (n_users, n), dtype float32
            Only with ``return_scores=True``: :meth:`decision_function` at the returned
            items, non-increasing along each row; ``-inf`` at the -1 places.
        """
        check_is_fitted(self)
        caller = f"{type(self).__name__}.recommend"
        X = self._validate_interactions(X, reset=False, caller=caller)
        out: np.ndarray | tuple[np.ndarray, np.ndarray] = self._recommend_validated(
            X, n, exclude_seen=exclude_seen, items=items, return_scores=return_scores, caller=caller
        )
        return out

    def _recommend_validated(
        self,
        X: sp.csr_array,
        n: int,
        *,
        exclude_seen: bool,
        items: npt.ArrayLike | None,
        return_scores: bool,
        caller: str,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """:meth:`recommend` of a validated canonical CSR X (checked columns): the batch loop."""
        exclude_seen = check_flag(exclude_seen, "exclude_seen", caller)
        return_scores = check_flag(return_scores, "return_scores", caller)
        if items is None:
            candidates = None
            n = check_n(n, self.n_items_in_, caller)
        else:
            candidates = check_items(items, self.n_items_in_, caller)
            n = check_n(n, candidates.size, caller, limit=f"items holds {candidates.size} items")
        top = np.empty((X.shape[0], n), dtype=np.int64)
        scores = np.empty((X.shape[0], n), dtype=np.float32) if return_scores else None
        for rows, Xb in self._user_batches(X, caller):
            top[rows], batch_scores = self._recommend_batch(Xb, rows, n, exclude_seen, candidates)
            if scores is not None:
                scores[rows] = batch_scores
        return top if scores is None else (top, scores)

    def _recommend_batch(
        self,
        X: sp.csr_array,
        rows: slice,
        n: int,
        exclude_seen: bool,
        items: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self._decision_function_batch(X, rows)
        return rank_batch(scores, X, n, exclude_seen=exclude_seen, items=items)

    def score(self, X: InteractionMatrix, y: Any = None) -> float:
        """NDCG@100 on a fixed 80/20 fold-in/hold-out split of each row of X.

        Lets ``GridSearchCV(est, grid, cv=UserSplit(...))`` work with ``scoring=None``: the
        same value as ``skcfae.metrics.ndcg_scorer(k=100)(self, X)``. Rows with fewer than 5
        interactions are not evaluated (as in Liang et al., WWW 2018).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions of evaluation users (implicit feedback).
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        caller = f"{type(self).__name__}.score"
        # the ranking protocol reads X as implicit feedback, whatever the model; validated
        # once here, then split and ranked without another copy
        X = check_interactions(X, caller=caller)
        check_n_items(self, X, reset=False)
        return score_fold_in(
            self,
            X,
            metric="ndcg",
            k=100,
            holdout_fraction=0.2,
            random_state=0,
            caller=caller,
        )
