"""The private base of the factorisation rating models (BiasedMF, ALS-WR): the epoch loop with
RMSE validation, best-epoch keeping and early stopping, on numpy arrays (no torch)."""

from __future__ import annotations

import time
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from .._compat import Interval, _fit_context
from .._typing import InteractionMatrix
from ..base import RecommenderMixin
from ._rating import RatingMixin

_FACTOR_CONSTRAINTS: dict[str, list[Any]] = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "l2_reg": [Interval(Real, 0, None, closed="left")],
    "epochs": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}

#: Rows whose predictions are computed at once (bounds an entries x n_components block).
_ENTRY_BLOCK = 1 << 16


def _entry_ids(X: sp.csr_array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, ratings as float64) of the stored entries of canonical CSR X."""
    users = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))
    return users, X.indices.astype(np.int64), np.asarray(X.data, dtype=np.float64)


def _dot_rows(A: np.ndarray, B: np.ndarray, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
    """``Σ_f A[rows_a[j], f] · B[rows_b[j], f]`` for every j, by blocks of entries."""
    out = np.empty(rows_a.size, dtype=np.float64)
    for start in range(0, rows_a.size, _ENTRY_BLOCK):
        a = A[rows_a[start : start + _ENTRY_BLOCK]]
        b = B[rows_b[start : start + _ENTRY_BLOCK]]
        out[start : start + _ENTRY_BLOCK] = np.einsum("ij,ij->i", a, b)
    return out


class _FactorModel(RatingMixin, RecommenderMixin, BaseEstimator):
    """Factorisation rating models (not public): ``epochs`` sweeps over the ratings, each
    scored by the RMSE of held-out ratings when validating; the best epoch's parameters kept.

    Subclasses define ``_init_params(X, rng)`` (a dict of arrays), ``_epoch(params, X, rng)``
    (one sweep in place; returns the training loss), ``_params_entries(params, users, items)``
    (raw predictions of training users) and ``_set_fitted(params)``.
    """

    _implicit = False
    _parameter_constraints: dict[str, list[Any]] = _FACTOR_CONSTRAINTS

    def __init__(
        self,
        n_components: int,
        *,
        l2_reg: float,
        epochs: int,
        early_stopping: bool,
        validation_fraction: float,
        n_iter_no_change: int | None,
        random_state: Any,
        verbose: int,
    ) -> None:
        self.n_components = n_components
        self.l2_reg = l2_reg
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: InteractionMatrix, y: Any = None, *, X_valid: Any = None) -> _FactorModel:
        """Learn from the observed ratings (stored entries) of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Ratings: every stored entry is an observed rating (a stored 0 too); a dense X marks
            unobserved entries with NaN. A (user, item) pair stored twice is an error.
        y : None
            Ignored.
        X_valid : sparse matrix of shape (n_users, n_items), optional
            Held-out ratings of the same users and items (the 90/10 protocol's validation
            entries). Each epoch is scored by their RMSE; the best epoch is kept and training
            stops after ``n_iter_no_change`` epochs without improvement. Without it,
            ``early_stopping=True`` holds out ``validation_fraction`` of the stored ratings of
            X instead.

        Returns
        -------
        self : object
        """
        X = self._validate_interactions(X, reset=True)
        self._record_ratings(X)
        rng = check_random_state(self.random_state)
        X, holdout = self._split_ratings(X, X_valid, rng)
        params = self._init_params(X, rng)
        history: list[dict[str, Any]] = []
        best: tuple[float, int, dict[str, np.ndarray]] | None = None
        if holdout is not None:
            h_users, h_items, h_truth = _entry_ids(holdout)
        for epoch in range(1, self.epochs + 1):
            tic = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch}
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                record["train_loss"] = float(self._epoch(params, X, rng))
            if not np.isfinite(record["train_loss"]) or not all(
                np.all(np.isfinite(v)) for v in params.values()
            ):
                raise ValueError(
                    f"{type(self).__name__}.fit: training diverged at epoch {epoch} (non-finite "
                    "loss or factors). The ratings are probably too large for the learning rate "
                    f"(largest: {X.data.max():.3g}); scale them or lower the learning rate."
                )
            if holdout is not None:
                pred = self._clip(self._params_entries(params, h_users, h_items))
                valid = float(np.sqrt(np.mean((pred - h_truth) ** 2)))
                record["valid_rmse"] = valid
                if best is None or valid < best[0]:
                    best = (valid, epoch, {k: v.copy() for k, v in params.items()})
            record["dur"] = time.perf_counter() - tic
            history.append(record)
            if self.verbose:
                print(
                    " ".join(
                        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in record.items()
                    )
                )
            if (
                best is not None
                and self.n_iter_no_change is not None
                and epoch - best[1] >= self.n_iter_no_change
            ):
                break
        if best is not None:
            self.best_epoch_ = best[1]
            params = best[2]
        self.history_ = history
        self._set_fitted(params)
        return self

    # -- subclass hooks ------------------------------------------------------------------------
    def _init_params(
        self, X: sp.csr_array, rng: np.random.RandomState
    ) -> dict[str, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def _epoch(
        self, params: dict[str, np.ndarray], X: sp.csr_array, rng: np.random.RandomState
    ) -> float:  # pragma: no cover
        raise NotImplementedError

    def _params_entries(
        self, params: dict[str, np.ndarray], users: np.ndarray, items: np.ndarray
    ) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _set_fitted(self, params: dict[str, np.ndarray]) -> None:  # pragma: no cover
        raise NotImplementedError
