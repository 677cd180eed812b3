"""The private base of the rating autoencoders: explicit input, predict, RMSE, fold-in.

A rating model learns from observed ratings (the stored entries of R, any real scale) and
predicts missing ones. A *user-based* model reconstructs each user's row of R; an
*item-based* one each item's column (the rows of Rᵀ: I-AutoRec, V-CFN, item-based NCAE). The
network of a rating model maps a row (sparse :class:`~skcfae.nn.Batch`) to ``hidden(batch)``,
the activations entering its last layer, and a linear ``out`` layer gives the output over the
columns; only the entries a prediction needs are ever computed from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.validation import check_is_fitted
from torch import Tensor, nn

from .._compat import StrOptions, _fit_context
from .._typing import InteractionMatrix
from ..nn import Batch, Phase, TrainConfig, Validation, fold_in_rows, item_rows, user_rows
from ..nn._engine import PhaseFactory
from ._neural import NEURAL_CONSTRAINTS, NeuralRecommender

_RATING_CONSTRAINTS: dict[str, list[Any]] = {
    **NEURAL_CONSTRAINTS,
    "kind": [StrOptions({"user", "item"})],
    "validation_fraction": NEURAL_CONSTRAINTS["validation_fraction"],
}

#: Entries whose prediction is computed at once (bounds the entries x hidden block).
_ENTRY_BLOCK = 1 << 16


class RatingNet(nn.Module):
    """A rating network: ``hidden(batch)`` feeds the linear output layer ``out`` over the
    columns (items for user rows, users for item rows); the output is ``out(hidden(batch))``."""

    out: nn.Linear

    def hidden(self, batch: Batch) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, batch: Batch) -> Tensor:
        return self.out(self.hidden(batch))


def _net(module: nn.Module) -> RatingNet:
    assert isinstance(module, RatingNet)
    return module


class _RatingAE(NeuralRecommender):
    """Rating autoencoders (not public): fit on ratings, ``predict`` at given entries, ``score``
    is -RMSE, ``recommend`` ranks unrated items by predicted rating.

    Subclasses define ``_build_module`` (a network with ``hidden(batch)`` and ``out``),
    ``_loss`` over the observed entries, and may set ``_item_based_only``.
    """

    _implicit = False
    _parameter_constraints: dict[str, list[Any]] = _RATING_CONSTRAINTS

    def __init__(self, *, kind: str, **neural: Any) -> None:
        super().__init__(**neural)
        self.kind = kind

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # a dense NaN is an unobserved rating
        return tags

    def _validate_interactions(
        self, X: InteractionMatrix, *, reset: bool, caller: str | None = None
    ) -> sp.csr_array:
        X = super()._validate_interactions(X, reset=reset, caller=caller)
        if not reset and self.kind == "item" and X.shape[0] != self.n_users_:
            raise ValueError(
                f"{caller or type(self).__name__}: an item-based {type(self).__name__} "
                f"(kind='item') reads each item's ratings by the {self.n_users_} training "
                f"users, so X must hold their rows (one per training user, in order); got "
                f"{X.shape[0]} rows. It cannot fold in new users: use kind='user' for that."
            )
        return X

    # -- orientation ---------------------------------------------------------------------------
    def _inputs(self, R: sp.csr_array) -> sp.csr_array:
        """The network's input rows for ratings R: R (user-based) or Rᵀ (item-based)."""
        return R if self.kind == "user" else sp.csr_array(R.T)

    def _n_outputs(self) -> int:
        return int(self.n_items_in_ if self.kind == "user" else self.n_users_)

    # -- fit ---------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: InteractionMatrix, y: Any = None, *, X_valid: Any = None) -> _RatingAE:
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
            entries). Each epoch is scored by their RMSE, predicted from X; the best epoch is
            kept and training stops after ``n_iter_no_change`` epochs without improvement.
            Without it, ``early_stopping=True`` holds out ``validation_fraction`` of the
            stored ratings of X instead.

        Returns
        -------
        self : object
        """
        return self._fit(X, X_valid)  # type: ignore[return-value]

    def _check_params_vs_input(self, X: sp.csr_array, **given: Any) -> None:
        """No rating, no model; records the users and the rating range of the training X."""
        if X.nnz == 0:
            raise ValueError(
                f"{type(self).__name__}.fit got no observed rating (X stores no entry); a "
                "rating matrix stores the observed ratings as its entries."
            )
        self.n_users_ = X.shape[0]
        self.rating_range_ = (float(X.data.min()), float(X.data.max()))

    def _validation_split(
        self, X: sp.csr_array, X_valid: Any, rng: np.random.RandomState
    ) -> tuple[sp.csr_array, tuple[sp.csr_array, sp.csr_array] | None]:
        name = type(self).__name__
        if X_valid is not None:
            holdout = self._validate_interactions(
                X_valid, reset=False, caller=f"{name}.fit(X_valid)"
            )
            if holdout.shape != X.shape:
                raise ValueError(
                    f"{name}.fit: X_valid holds held-out ratings of the training users and "
                    f"items, so it must have X's shape {X.shape}; got {holdout.shape}."
                )
        elif self.early_stopping:
            from ..model_selection import rating_holdout_split

            X, holdout = rating_holdout_split(
                X, test_size=self.validation_fraction, random_state=rng
            )
        else:
            self.ratings_ = X
            return X, None
        if holdout.nnz == 0:
            raise ValueError(f"{name}.fit: the validation ratings store no entry.")
        self.ratings_ = X
        return X, (X, holdout)

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        module = self._build_module(torch.Generator().manual_seed(config.seed))
        make_rows = user_rows if self.kind == "user" else item_rows
        return [Phase("train", module, make_rows(X_train, config.device), self._loss)]

    def _validation(self, train: sp.csr_array, holdout: sp.csr_array) -> Validation:
        """RMSE at the held-out entries, predicted from the training ratings."""
        inputs = self._inputs(train)
        target = np.asarray(holdout.data, dtype=np.float64)

        def rmse(module: nn.Module) -> float:
            pred = self._predict_pattern(module, inputs, holdout)
            return float(np.sqrt(np.mean((pred - target) ** 2)))

        return Validation("rmse", rmse, greater_is_better=False)

    # -- predictions -----------------------------------------------------------------------------
    def _clip(self, values: np.ndarray) -> np.ndarray:
        low, high = self.rating_range_
        return np.clip(values, low, high)

    def _predict_pattern(
        self, module: nn.Module, inputs: sp.csr_array, pattern: sp.csr_array
    ) -> np.ndarray:
        """Predicted ratings at the stored entries of ``pattern`` (users x items, canonical)
        from the network's input rows ``inputs``, in the CSR order of ``pattern``."""
        users = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
        items = pattern.indices
        rows, cols = (users, items) if self.kind == "user" else (items, users)
        out = np.empty(rows.size, dtype=np.float64)
        net = _net(module)
        device = next(net.parameters()).device
        source = fold_in_rows(inputs, device)
        net.eval()
        with torch.no_grad():
            for start in range(0, rows.size, _ENTRY_BLOCK):
                r = rows[start : start + _ENTRY_BLOCK]
                c = cols[start : start + _ENTRY_BLOCK]
                distinct, local = np.unique(r, return_inverse=True)
                batch = source.batch(torch.from_numpy(distinct).to(device))
                h = net.hidden(batch)[torch.from_numpy(local).to(device)]
                col = torch.from_numpy(c.astype(np.int64)).to(device)
                weight, bias = net.out.weight[col], net.out.bias[col]
                out[start : start + _ENTRY_BLOCK] = ((h * weight).sum(1) + bias).cpu().numpy()
        return self._clip(out)

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
            items, other entries). A user-based model (``kind="user"``) folds in new users
            from their known ratings: pass them as ``ratings`` with X of the same shape. An
            item-based model reads each item's column of ``ratings``, which must therefore
            hold the training users (n_users_ rows); it cannot fold in new users.

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
        values = self._predict_pattern(self.module_, self._inputs(known), pattern)
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

    def _decision_function_batch(self, X: sp.csr_array, rows: slice) -> np.ndarray:
        """Predicted ratings of every item for a batch of users (rows of the query X).

        User-based: the rows of X are the users' known ratings (fold-in). Item-based: the
        rows of X are the training users by position, and every item's prediction is read
        from its column of the training ratings.
        """
        module = _net(self.module_)
        module.eval()
        device = next(module.parameters()).device
        with torch.no_grad():
            if self.kind == "user":
                batch = fold_in_rows(X, device).batch(torch.arange(X.shape[0], device=device))
                scores = module.out(module.hidden(batch))
            else:
                users = torch.arange(self.n_users_, device=device)[rows]
                items = fold_in_rows(self._inputs(self.ratings_), device)
                h = module.hidden(items.batch(torch.arange(items.n_rows, device=device)))
                scores = (h @ module.out.weight[users].T + module.out.bias[users]).T
        return self._clip(scores.cpu().numpy())


def masked_squared_error(pred: Tensor, batch: Batch) -> Tensor:
    """``Σ_{observed (r, c)} (pred[r, c] - x_rc)² / b``: the squared error over the stored
    entries of the batch only, per row on average; unobserved entries are never read."""
    err = pred[batch.row_of, batch.cols] - batch.vals
    return (err * err).sum() / batch.size
