"""Shared estimator plumbing of the neural recommenders: fit, validation, scoring, pickling.

A neural model subclasses :class:`NeuralRecommender` and writes three methods: its module
(``_build_module``), its loss with corruption (``_loss``) and its eval-mode scores (``_scores``).
The epoch loop itself is :func:`skcfae.nn.train`, shared by all.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from torch import Tensor, nn

from .._compat import Interval, _fit_context
from .._typing import InteractionMatrix
from ..base import RecommenderMixin, _topk_masked
from ..nn import Batch, SparseRows, TrainState, load_module, module_to_bytes, resolve_device, train

#: Parameter constraints every neural model shares (merged into each model's own).
NEURAL_CONSTRAINTS: dict[str, list[Any]] = {
    "epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
    "device": [str],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}

VALID_K = 100


class NeuralRecommender(RecommenderMixin, BaseEstimator):
    """Base class of the torch recommenders (not public).

    Subclasses define ``__init__`` with their parameters (including those of
    :data:`NEURAL_CONSTRAINTS`), ``_build_module(generator)``, ``_loss(module, batch, state)``
    and ``_scores(module, batch)``; optionally ``_optimizer``/``_weight_decay``.
    """

    _optimizer = "adam"
    #: ``history_`` phase names of the first and the second training (see ``_second_stage``).
    _phases = ("dense", "retrain")
    #: ``epochs="auto"`` trains ``max(100, ceil(_auto_steps / steps per epoch))`` epochs, for
    #: models that accept it (see SparseWideDAE).
    _auto_steps = 3000

    # -- to implement -----------------------------------------------------------------------
    def _build_module(self, generator: torch.Generator) -> nn.Module:  # pragma: no cover
        raise NotImplementedError

    def _loss(
        self, module: nn.Module, batch: Batch, state: TrainState
    ) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _weight_decay(self) -> float:
        return 0.0

    def _epoch_hooks(self) -> tuple[Any, ...]:
        return ()

    def _prepare(self, X_train: sp.csr_array, seed: int) -> None:
        """Data-dependent set-up before the module is built (e.g. learning a structure)."""

    def _second_stage(self, module: nn.Module) -> nn.Module | None:
        """A module to train further after the first training (e.g. after pruning), or None."""
        return None

    def _second_stage_epochs(self) -> int:
        return self._n_epochs()

    def _n_epochs(self) -> int:
        """``epochs``, with "auto" resolved for the training set of the current fit."""
        if self.epochs == "auto":
            return max(100, -(-self._auto_steps // self._steps_per_epoch))
        return int(self.epochs)

    @property
    def n_parameters_(self) -> int:
        """Number of trainable parameters of the fitted network."""
        return int(sum(p.numel() for p in self.module_.parameters() if p.requires_grad))

    # -- fit --------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: InteractionMatrix, y: Any = None, *, X_valid: Any = None) -> NeuralRecommender:
        """Train the network on the users (rows) of X.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Training interactions.
        y : None
            Ignored; present for API consistency.
        X_valid : sparse matrix or tuple (X_fold_in, X_holdout), optional
            Validation users. A matrix is split 80/20 per row into fold-in and hold-out; a
            tuple is used as given. Each epoch is scored by NDCG@100 on the hold-out, the best
            epoch's weights are kept, and training stops after ``n_iter_no_change`` epochs
            without improvement. Without it, ``early_stopping=True`` holds out
            ``validation_fraction`` of the training users instead.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        X = self._validate_interactions(X, reset=True)
        self._check_params_vs_input(X)
        rng = check_random_state(self.random_state)
        self.device_ = resolve_device(self.device, caller=f"{type(self).__name__}.fit")
        X_train, valid = self._validation_split(X, X_valid, rng)
        self._steps_per_epoch = -(-X_train.shape[0] // self.batch_size)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        self._prepare(X_train, seed)
        module = self._build_module(torch.Generator().manual_seed(seed))
        valid_fn = None if valid is None else self._make_valid_fn(*valid)

        def run(module: nn.Module, epochs: int) -> list[dict[str, Any]]:
            return train(
                module,
                X_train,
                loss=self._loss,
                epochs=epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                optimizer=self._optimizer,
                weight_decay=self._weight_decay(),
                device=self.device_,
                seed=seed,
                valid_fn=valid_fn,
                n_iter_no_change=self.n_iter_no_change,
                epoch_hooks=self._epoch_hooks(),
                verbose=self.verbose,
                desc=type(self).__name__,
            )

        self._n_fit_users = X_train.shape[0]
        history = run(module, self._n_epochs())
        last_phase = history
        second = self._second_stage(module)
        if second is not None:
            last_phase = run(second, self._second_stage_epochs())
            for record in history:
                record["phase"] = self._phases[0]
            for record in last_phase:
                record["phase"] = self._phases[1]
                record["epoch"] += len(history)
            history = history + last_phase
            module = second
        self.history_ = history
        self.module_ = module
        if valid is not None:
            best = int(np.nanargmax([h["valid_ndcg"] for h in last_phase]))
            self.best_epoch_ = last_phase[best]["epoch"]
        return self

    def _check_params_vs_input(self, X: sp.csr_array) -> None:
        """Data-dependent parameter checks; override to add some."""

    def _validation_split(
        self, X: sp.csr_array, X_valid: Any, rng: np.random.RandomState
    ) -> tuple[sp.csr_array, tuple[sp.csr_array, sp.csr_array] | None]:
        if X_valid is None and not self.early_stopping:
            return X, None
        from .. import model_selection

        name = type(self).__name__
        if X_valid is not None:
            if isinstance(X_valid, tuple):
                if len(X_valid) != 2:
                    raise ValueError(
                        f"{name}.fit: X_valid must be a matrix or a (fold_in, holdout) pair; "
                        f"got a tuple of length {len(X_valid)}."
                    )
                fold_in, holdout = (
                    self._validate_interactions(m, reset=False, caller=f"{name}.fit(X_valid)")
                    for m in X_valid
                )
                if fold_in.shape != holdout.shape:
                    raise ValueError(
                        f"{name}.fit: X_valid fold-in {fold_in.shape} and hold-out "
                        f"{holdout.shape} must have the same shape."
                    )
            else:
                X_valid = self._validate_interactions(
                    X_valid, reset=False, caller=f"{name}.fit(X_valid)"
                )
                fold_in, holdout = model_selection.fold_in_split(X_valid, random_state=rng)
            return X, (fold_in, holdout)
        n_valid = int(round(self.validation_fraction * X.shape[0]))
        if n_valid < 1 or n_valid >= X.shape[0]:
            raise ValueError(
                f"{name}.fit: validation_fraction={self.validation_fraction} of {X.shape[0]} "
                "users leaves no training or no validation user; pass more users or change it."
            )
        perm = rng.permutation(X.shape[0])
        fold_in, holdout = model_selection.fold_in_split(
            X[np.sort(perm[:n_valid])], random_state=rng
        )
        return X[np.sort(perm[n_valid:])], (fold_in, holdout)

    def _make_valid_fn(self, fold_in: sp.csr_array, holdout: sp.csr_array) -> Any:
        from ..metrics import _ndcg_from_topk

        keep = np.flatnonzero(np.diff(holdout.indptr) > 0)
        if keep.size == 0:
            raise ValueError(
                f"{type(self).__name__}.fit: no validation user has a held-out item; "
                "validation users need at least 5 interactions."
            )
        fold_in, holdout = fold_in[keep], holdout[keep]
        k = min(VALID_K, self.n_items_in_)

        def valid_ndcg(module: nn.Module) -> float:
            parts = []
            for i in range(0, fold_in.shape[0], self._batch_users()):
                Xb = fold_in[i : i + self._batch_users()]
                top = _topk_masked(self._module_scores(module, Xb), Xb, k, True)
                parts.append(_ndcg_from_topk(top, holdout[i : i + self._batch_users()], k))
            return float(np.nanmean(np.concatenate(parts)))

        return valid_ndcg

    # -- scoring ----------------------------------------------------------------------------
    def _module_scores(self, module: nn.Module, X: sp.csr_array) -> np.ndarray:
        device = next(module.parameters()).device
        rows = SparseRows(X, device)
        with torch.no_grad():
            return (
                self._scores(module, rows.batch(torch.arange(X.shape[0], device=device)))
                .cpu()
                .numpy()
            )

    def _decision_function_batch(self, X: sp.csr_array) -> np.ndarray:
        self.module_.eval()
        return self._module_scores(self.module_, X)

    # -- pickling: a CPU state dict, rebuilt on load (GPU-trained models load on CPU) -------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        if "module_" in state:
            state = dict(state)
            state["module_"] = module_to_bytes(state["module_"])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.get("module_")
        super().__setstate__(state)
        if isinstance(blob, bytes):
            self.module_, self.device_ = load_module(
                blob, lambda: self._build_module(torch.Generator()), self.device_
            )

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "module_")
