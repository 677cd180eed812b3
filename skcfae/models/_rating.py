"""The rating-prediction contract shared by every rating model (no torch here).

A rating model learns from observed ratings (the stored entries of R, any real scale, a stored
0 included; a dense R marks unobserved entries with NaN; a pair stored twice is an error) and
predicts missing ones: :meth:`RatingMixin.predict` at the stored entries of a query matrix,
clipped to the training ratings' range, :meth:`RatingMixin.score` the negative RMSE, and
``recommend`` ranks unrated items by predicted rating through the one top-n path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted

from .._typing import InteractionMatrix


class RatingMixin:
    """Mixin of the rating models (before ``RecommenderMixin`` in the bases; not public).

    A model sets ``ratings_`` (the training CSR), ``n_users_`` and ``rating_range_`` in fit
    (:meth:`_record_ratings`) and implements ``_predict_entries(known, users, items)``: raw
    predictions of the entries ``(users[j], items[j])`` from the known ratings ``known``
    (users x items; the training ratings unless ``predict(..., ratings=)``), and
    ``_decision_function_batch(X, rows)`` for ``recommend``. A model that cannot predict for
    users outside training overrides ``_folds_in`` and ``_no_fold_in_reason``.
    """

    _implicit = False
    ratings_: sp.csr_array
    n_users_: int
    rating_range_: tuple[float, float]

    def _folds_in(self) -> bool:
        return True

    def _no_fold_in_reason(self) -> str:  # pragma: no cover
        return f"{type(self).__name__} predicts for its training users only"

    def _record_ratings(self, X: sp.csr_array) -> None:
        """No rating, no model; record the users and the rating range of the training X."""
        if X.nnz == 0:
            raise ValueError(
                f"{type(self).__name__}.fit got no observed rating (X stores no entry); a "
                "rating matrix stores the observed ratings as its entries."
            )
        self.n_users_ = X.shape[0]
        self.rating_range_ = (float(X.data.min()), float(X.data.max()))

    def _predict_entries(
        self, known: sp.csr_array, users: np.ndarray, items: np.ndarray
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _split_ratings(
        self, X: sp.csr_array, X_valid: Any, rng: np.random.RandomState
    ) -> tuple[sp.csr_array, sp.csr_array | None]:
        """(training ratings, validation ratings or None): ``X_valid`` as given (held-out
        ratings of the same users and items), or with ``early_stopping`` a
        ``validation_fraction`` of the stored ratings of X held out; sets ``ratings_``."""
        name = type(self).__name__
        holdout: sp.csr_array | None = None
        if X_valid is not None:
            holdout = self._validate_interactions(
                X_valid, reset=False, caller=f"{name}.fit(X_valid)"
            )
            if holdout.shape != X.shape:
                raise ValueError(
                    f"{name}.fit: X_valid holds held-out ratings of the training users and "
                    f"items, so it must have X's shape {X.shape}; got {holdout.shape}."
                )
        elif getattr(self, "early_stopping", False):
            from ..model_selection import rating_holdout_split

            fraction = self.validation_fraction  # type: ignore[attr-defined]
            X, holdout = rating_holdout_split(X, test_size=fraction, random_state=rng)
        if holdout is not None and holdout.nnz == 0:
            raise ValueError(f"{name}.fit: the validation ratings store no entry.")
        self.ratings_ = X
        return X, holdout

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.input_tags.allow_nan = True  # a dense NaN is an unobserved rating
        return tags

    def _validate_interactions(
        self, X: InteractionMatrix, *, reset: bool, caller: str | None = None
    ) -> sp.csr_array:
        X = super()._validate_interactions(X, reset=reset, caller=caller)  # type: ignore[misc]
        if not reset and not self._folds_in() and X.shape[0] != self.n_users_:
            raise ValueError(
                f"{caller or type(self).__name__}: {self._no_fold_in_reason()}, so X must hold "
                f"the rows of the {self.n_users_} training users (one each, in order); got "
                f"{X.shape[0]} rows."
            )
        return X

    def _clip(self, values: np.ndarray) -> np.ndarray:
        low, high = self.rating_range_
        return np.clip(values, low, high)

    def predict(self, X: InteractionMatrix, *, ratings: Any = None) -> sp.csr_array:
        """Predicted ratings at the stored entries of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Its stored entries (or, dense, its non-NaN entries) are the (user, item) pairs to
            predict; their values are ignored.
        ratings : {array-like, sparse matrix} of shape (n_users, n_items), optional
            The known ratings the predictions are made from. Default: the training ratings,
            and X must then have the training shape (the 90/10 protocol: the same users and
            items, other entries). A model that folds in new users (a user-based autoencoder,
            ``kind="user"``) predicts for them from their known ratings: pass those as
            ``ratings`` with X of the same shape. Other models (item-based, ``kind="item"``)
            read ``ratings`` as the training users' (``n_users_`` rows) and cannot fold in.

        Returns
        -------
        predictions : scipy.sparse.csr_array of shape (n_users, n_items), float32
            Exactly X's stored entries, holding predicted ratings clipped to
            ``rating_range_``.
        """
        check_is_fitted(self)
        name = type(self).__name__
        pattern = self._validate_interactions(X, reset=False, caller=f"{name}.predict")
        return self._predict_validated(pattern, ratings=ratings)

    def _predict_validated(self, pattern: sp.csr_array, *, ratings: Any = None) -> sp.csr_array:
        """:meth:`predict` of a validated canonical X (the rmse scorer's path)."""
        known = self._known_ratings(ratings, pattern.shape[0], f"{type(self).__name__}.predict")
        users = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
        values = self._clip(self._predict_entries(known, users, pattern.indices))
        out = pattern.copy()
        out.data = values.astype(np.float32)
        return out

    def _known_ratings(self, ratings: Any, n_rows: int, caller: str) -> sp.csr_array:
        if ratings is None:
            known = self.ratings_
        else:
            known = self._validate_interactions(ratings, reset=False, caller=f"{caller}(ratings)")
        if known.shape[0] != n_rows:
            raise ValueError(
                f"{caller}: X has {n_rows} users but the known ratings have {known.shape[0]}; "
                "without ratings=, X must hold the training users (one row each); pass the "
                "users' known ratings as ratings=."
            )
        return known

    def score(self, X: InteractionMatrix, y: Any = None) -> float:
        """Negative RMSE of :meth:`predict` at the stored entries of X (higher is better).

        X holds held-out ratings of the training users and items (the 90/10 protocol).
        """
        check_is_fitted(self)
        truth = self._validate_interactions(X, reset=False, caller=f"{type(self).__name__}.score")
        if truth.nnz == 0:
            raise ValueError(f"{type(self).__name__}.score: X stores no rating to score.")
        pred = self._predict_validated(truth).data.astype(np.float64)
        return -float(np.sqrt(np.mean((pred - truth.data.astype(np.float64)) ** 2)))
