"""The private base of the rating autoencoders: user or item rows, RMSE validation, fold-in.

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
from torch import Tensor, nn

from .._compat import StrOptions, _fit_context
from .._typing import InteractionMatrix
from ..nn import Batch, Phase, TrainConfig, Validation, fold_in_rows, item_rows, user_rows
from ..nn._engine import PhaseFactory
from ._neural import NEURAL_CONSTRAINTS, NeuralRecommender
from ._rating import RatingMixin

_RATING_CONSTRAINTS: dict[str, list[Any]] = {
    **NEURAL_CONSTRAINTS,
    "kind": [StrOptions({"user", "item"})],
    "validation_fraction": NEURAL_CONSTRAINTS["validation_fraction"],
}

#: Entries whose prediction is computed at once (bounds the entries x hidden block).
_ENTRY_BLOCK = 1 << 16


class RatingNet(nn.Module):
    """A rating network: ``hidden(batch)`` feeds the linear output layer ``out`` over the
    columns (items for user rows, users for item rows), and ``finish`` maps its result to the
    rating scale (identity by default; e.g. ``2.25 · tanh(z) + 2.75`` for 0.5-5 ratings). The
    output is ``finish(out(hidden(batch)))``; predictions compute ``out`` only at the entries
    they need."""

    out: nn.Linear

    def hidden(self, batch: Batch) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def finish(self, z: Tensor) -> Tensor:
        return z

    def forward(self, batch: Batch) -> Tensor:
        return self.finish(self.out(self.hidden(batch)))


def _net(module: nn.Module) -> RatingNet:
    assert isinstance(module, RatingNet)
    return module


class _RatingAE(RatingMixin, NeuralRecommender):
    """Rating autoencoders (not public): fit on ratings, ``predict`` at given entries, ``score``
    is -RMSE, ``recommend`` ranks unrated items by predicted rating.

    Subclasses define ``_build_module`` (a :class:`RatingNet`) and ``_loss`` over the observed
    entries; a model of one orientation only (DeepRec) fixes ``kind`` as a class attribute.
    """

    _parameter_constraints: dict[str, list[Any]] = _RATING_CONSTRAINTS

    def __init__(self, *, kind: str, **neural: Any) -> None:
        super().__init__(**neural)
        self.kind = kind

    def _folds_in(self) -> bool:
        return bool(self.kind == "user")

    def _no_fold_in_reason(self) -> str:
        return (
            f"an item-based {type(self).__name__} (kind='item') reads each item's ratings by "
            "the training users and cannot fold in new users (use kind='user' for that)"
        )

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
        self._record_ratings(X)

    def _validation_split(
        self, X: sp.csr_array, X_valid: Any, rng: np.random.RandomState
    ) -> tuple[sp.csr_array, tuple[sp.csr_array, sp.csr_array] | None]:
        X, holdout = self._split_ratings(X, X_valid, rng)
        return X, (None if holdout is None else (X, holdout))

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        module = self._build_module(torch.Generator().manual_seed(config.seed))
        make_rows = user_rows if self.kind == "user" else item_rows
        return [Phase("train", module, make_rows(X_train, config.device), self._loss)]

    def _validation(self, train: sp.csr_array, holdout: sp.csr_array) -> Validation:
        """RMSE at the held-out entries, predicted from the training ratings."""
        users = np.repeat(np.arange(holdout.shape[0]), np.diff(holdout.indptr))
        target = np.asarray(holdout.data, dtype=np.float64)

        def rmse(module: nn.Module) -> float:
            pred = self._clip(self._module_entries(module, train, users, holdout.indices))
            return float(np.sqrt(np.mean((pred - target) ** 2)))

        return Validation("rmse", rmse, greater_is_better=False, label="RMSE")

    # -- predictions -----------------------------------------------------------------------------
    def _predict_entries(
        self, known: sp.csr_array, users: np.ndarray, items: np.ndarray
    ) -> np.ndarray:
        return self._module_entries(self.module_, known, users, items)

    def _module_entries(
        self, module: nn.Module, known: sp.csr_array, users: np.ndarray, items: np.ndarray
    ) -> np.ndarray:
        """Raw predictions of the entries (users[j], items[j]) by ``module``, whose input rows
        are those of ``known`` (user-based) or of its transpose (item-based)."""
        inputs = self._inputs(known)
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
                z = net.finish((h * weight).sum(1) + bias)
                out[start : start + _ENTRY_BLOCK] = z.cpu().numpy()
        return out

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
                scores = module(batch)
            else:
                users = torch.arange(self.n_users_, device=device)[rows]
                items = fold_in_rows(self._inputs(self.ratings_), device)
                h = module.hidden(items.batch(torch.arange(items.n_rows, device=device)))
                z = (h @ module.out.weight[users].T + module.out.bias[users]).T
                scores = module.finish(z)
        return self._clip(scores.cpu().numpy())


def masked_squared_error(pred: Tensor, batch: Batch) -> Tensor:
    """``Σ_{observed (r, c)} (pred[r, c] - x_rc)² / b``: the squared error over the stored
    entries of the batch only, per row on average; unobserved entries are never read."""
    err = pred[batch.row_of, batch.cols] - batch.vals
    return (err * err).sum() / batch.size
