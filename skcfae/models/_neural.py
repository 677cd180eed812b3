"""Shared estimator plumbing of the neural recommenders: fit, validation, scoring, pickling.

A neural model subclasses :class:`NeuralRecommender` and writes three methods: its module
(``_build_module``), its loss with corruption (``_loss``) and its eval-mode scores
(``_scores``). ``fit`` turns the estimator's parameters into a training plan
(:class:`skcfae.nn.Plan`: config, validation, phases) and hands it to
:func:`skcfae.nn.train`, the one epoch loop of the package.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
from collections.abc import Callable
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from torch import Tensor, nn

from .._compat import Interval, StrOptions, _fit_context
from .._ranking import VALID_K, iter_row_batches, ndcg_from_topk, topk_masked
from .._typing import InteractionMatrix
from .._validation import check_layer_sizes
from ..base import RecommenderMixin
from ..nn import (
    Batch,
    Phase,
    Plan,
    TrainConfig,
    TrainState,
    Validation,
    fold_in_rows,
    load_module,
    module_to_bytes,
    resolve_device,
    train,
    user_rows,
)
from ..nn._distributed import current as _data_parallel
from ..nn._engine import EpochHook, PhaseFactory, _load_checkpoint, _save_checkpoint

#: Parameter constraints every neural model shares (merged into each model's own).
NEURAL_CONSTRAINTS: dict[str, list[Any]] = {
    "epochs": [Interval(Integral, 1, None, closed="left")],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "early_stopping": ["boolean", StrOptions({"auto"})],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
    "device": [str],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}

#: Constraints of ``warm_start`` and ``checkpoint``, for the models that take them (merged into
#: their own constraints next to :data:`NEURAL_CONSTRAINTS`; see :class:`NeuralRecommender`).
RESUME_CONSTRAINTS: dict[str, list[Any]] = {
    "warm_start": ["boolean"],
    "checkpoint": [str, os.PathLike, None],
}

#: Parameters that may differ between the fit that wrote a checkpoint and the one resuming it.
_NOT_FINGERPRINTED = frozenset({"checkpoint", "verbose", "warm_start"})
_CHECKPOINT_FORMAT = "skcfae-checkpoint"
_CHECKPOINT_VERSION = 1

#: ``early_stopping="auto"`` validates only with at least this many validation users.
_MIN_AUTO_VALID_USERS = 10


class NeuralRecommender(RecommenderMixin, BaseEstimator):
    """Base class of the torch recommenders (not public).

    ``__init__`` assigns the parameters every neural model shares (those of
    :data:`NEURAL_CONSTRAINTS`); a subclass stores its own parameters and passes these on
    with ``super().__init__(...)``, as scikit-learn's ``KMeans`` does with ``_BaseKMeans``.
    Subclasses define ``_build_module(generator)``, ``_loss(module, batch, state)`` and
    ``_scores(module, batch)``; optionally ``_phases`` (several training stages),
    ``_weight_decay``, ``_epoch_hooks`` and ``_check_params_vs_input``.

    Resuming (opt-in per model: a model that lists ``warm_start: bool = False`` and
    ``checkpoint: str | None = None`` among its parameters, assigns them in its
    ``__init__`` and merges :data:`RESUME_CONSTRAINTS`, gets both; models that train several
    phases refuse them with a ``ValueError``):

    - ``warm_start=True``: a ``fit`` of a fitted model trains a copy of ``module_`` for
      ``epochs`` more epochs, continuing the Adam moments and step count, the shuffling and
      corruption generators and the epoch numbering (``history_`` is extended), so that two
      fits of 3 epochs equal one of 6 on the same data and device. X must have the shape of
      the previous fit's. That state is kept in the private ``_train_state`` after a fit
      with ``warm_start=True`` (pickles keep it, :func:`skcfae.save` drops it); without it
      (fitted with ``warm_start=False``, or loaded with :func:`skcfae.load`) the weights
      continue with a fresh optimiser and generators. With validation, the weights continue
      from the best epoch kept by the previous fit and the best epoch is chosen among the
      new epochs. The changed learning rate of a warm fit is used; the network's shapes must
      not change (``ValueError``).
    - ``checkpoint=PATH``: after every epoch, the complete training state (weights,
      optimiser, generator states, epoch, history, best epoch) and a fingerprint of the
      parameters and the training data are written to PATH atomically. A later ``fit`` finding
      PATH continues from it, and ends with the model of a fit never interrupted (bit for
      bit on the CPU); a PATH written with other parameters (``verbose`` aside) or data is a
      ``ValueError``. A finished fit's PATH is kept: fitting again returns its result at once.
      Needs an int (or None without a validation split drawn from X) ``random_state``.
      Cannot be combined with ``warm_start=True``.
    """

    _optimizer = "adam"
    #: Set by ``fit``; declared for type checkers only.
    history_: list[dict[str, Any]]
    #: ``epochs="auto"`` trains ``max(_auto_epochs, ceil(_auto_updates() / steps per epoch))``
    #: epochs, for models that accept it (see SparseWideDAE); ``_auto_updates()`` is
    #: ``_auto_steps`` unless a model scales it (see _WideDAE).
    _auto_epochs = 100
    _auto_steps = 3000
    #: ``n_iter_no_change="auto"`` waits ``max(10, ceil(_auto_patience_steps / steps per
    #: epoch))`` epochs, for models that accept it (see SparseWideDAE).
    _auto_patience_steps = 200

    def __init__(
        self,
        *,
        epochs: int | str,
        batch_size: int,
        learning_rate: float,
        early_stopping: bool | str,
        validation_fraction: float,
        n_iter_no_change: int | None,
        device: str,
        random_state: Any,
        verbose: int,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- to implement -----------------------------------------------------------------------
    def _build_module(self, generator: torch.Generator) -> nn.Module:  # pragma: no cover
        """The network, every initial value drawn from ``generator``; called again with a
        fresh generator when a pickle is loaded, so it must rebuild the fitted architecture
        from parameters and fitted attributes alone."""
        raise NotImplementedError

    def _loss(
        self, module: nn.Module, batch: Batch, state: TrainState
    ) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- optional hooks -----------------------------------------------------------------------
    def _weight_decay(self) -> float:
        return 0.0

    def _epoch_hooks(self, X_train: sp.csr_array) -> tuple[EpochHook, ...]:
        return ()

    def _check_params_vs_input(self, X: sp.csr_array, **given: Any) -> None:
        """Data-dependent parameter checks; override to add some."""

    def _phases(
        self, X_train: sp.csr_array, config: TrainConfig, **given: Any
    ) -> list[Phase | PhaseFactory]:
        """The training stages; default one phase over the training users."""
        module = self._build_module(torch.Generator().manual_seed(config.seed))
        rows = user_rows(X_train, config.device)
        return [Phase("train", module, rows, self._loss, hooks=self._epoch_hooks(X_train))]

    def _steps_per_epoch(self, n_rows: int) -> int:
        """Optimiser updates in an epoch over ``n_rows`` training rows."""
        return -(-n_rows // self.batch_size)

    def _n_epochs(self, n_rows: int) -> int:
        """``epochs``, with "auto" resolved for ``n_rows`` training rows."""
        if self.epochs == "auto":
            return max(self._auto_epochs, -(-self._auto_updates() // self._steps_per_epoch(n_rows)))
        return int(self.epochs)

    def _auto_updates(self) -> int:
        """The fewest optimiser updates ``epochs="auto"`` trains."""
        return self._auto_steps

    def _patience(self, n_rows: int) -> int | None:
        """``n_iter_no_change``, with "auto" resolved for ``n_rows`` training rows."""
        if self.n_iter_no_change == "auto":
            return max(10, -(-self._auto_patience_steps // self._steps_per_epoch(n_rows)))
        return self.n_iter_no_change

    def _train_config(self, X_train: sp.csr_array, seed: int) -> TrainConfig:
        group = _data_parallel()  # data-parallel: the rows of all ranks
        n_rows = X_train.shape[0] if group is None else sum(group.all_gather_int(X_train.shape[0]))
        return TrainConfig(
            epochs=self._n_epochs(n_rows),
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            device=self.device_,
            seed=seed,
            optimizer=self._optimizer,
            weight_decay=self._weight_decay(),
            n_iter_no_change=self._patience(n_rows),
            n_lr_decays=getattr(self, "n_lr_decays", 0),
            verbose=self.verbose,
            desc=type(self).__name__,
        )

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
        return self._fit(X, X_valid)

    def _fit(self, X: InteractionMatrix, X_valid: Any, **given: Any) -> NeuralRecommender:
        """``fit``, with ``given``: structure that came with X (passed to the hooks)."""
        name = type(self).__name__
        for param, value in self.get_params(deep=False).items():
            if param.endswith("_sizes"):
                check_layer_sizes(value, param, f"{name}.fit")
        warm = bool(getattr(self, "warm_start", False)) and hasattr(self, "module_")
        checkpoint = getattr(self, "checkpoint", None)
        if warm and checkpoint is not None:
            raise ValueError(
                f"{name}.fit: warm_start=True and checkpoint={checkpoint!r} cannot be combined; "
                "set one of them."
            )
        fitted_items = getattr(self, "n_items_in_", None)
        X = self._validate_interactions(X, reset=True)
        kept = getattr(self, "_train_state", None) if warm else None
        if warm:
            shape = kept["shape"] if kept is not None else (X.shape[0], fitted_items)
            if tuple(X.shape) != tuple(shape):
                raise ValueError(
                    f"{name}.fit: warm_start=True continues the previous fit, on X of shape "
                    f"{tuple(shape)}; got X of shape {tuple(X.shape)}. Pass the same users "
                    "and items, or set warm_start=False to train from scratch."
                )
        self._check_params_vs_input(X, **given)
        rng = check_random_state(self.random_state)
        if not warm:
            self.device_ = resolve_device(self.device, caller=f"{name}.fit")
        X_train, valid = self._validation_split(X, X_valid, rng)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        validation = None if valid is None else self._validation(*valid)
        config = self._train_config(X_train, seed)
        phases = self._phases(X_train, config, **given)
        resume = on_epoch = None
        single = phases[0] if len(phases) == 1 else None
        if (warm or checkpoint is not None) and not isinstance(single, Phase):
            param = "warm_start=True" if warm else "checkpoint"
            raise ValueError(
                f"{name}.fit: {param} needs a model trained in one phase; with these "
                f"parameters {name} trains {len(phases)} phases (pretraining, stacking or "
                "pruning). Set warm_start=False and checkpoint=None."
            )
        if warm and isinstance(single, Phase):
            phase = single
            module = self._warm_module(phase.module)
            if kept is not None:
                # a warm fit starts at its learning_rate, with its own plateaus
                drop = ("shape", "lr_decays", "lr_decayed_at")
                resume = {k: v for k, v in kept.items() if k not in drop}
                resume["history"] = self.history_
            else:
                resume = {"epoch": len(self.history_), "history": self.history_}
            epochs = (config.epochs if phase.epochs is None else phase.epochs) + resume["epoch"]
            phases = [dataclasses.replace(phase, module=module, epochs=epochs)]
        if checkpoint is not None:
            resume, on_epoch = self._checkpointing(checkpoint, X_train, valid)
        result = train(Plan(config, phases, validation, resume=resume, on_epoch=on_epoch))
        self.history_ = result.history
        self.module_ = result.module
        if validation is not None:
            self.best_epoch_ = result.best_epoch
        if getattr(self, "warm_start", False) and result.state is not None:
            state = {k: v for k, v in result.state.items() if k != "history"}
            self._train_state = {**state, "shape": tuple(X.shape)}
        else:
            self.__dict__.pop("_train_state", None)
        return self

    def _warm_module(self, fresh: nn.Module) -> nn.Module:
        """A copy of ``module_`` to continue training (a failed fit keeps ``module_``), after
        checking that the current parameters build a network of the same shapes."""
        old = {k: tuple(v.shape) for k, v in self.module_.state_dict().items()}
        new = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
        if old != new:
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            raise ValueError(
                f"{type(self).__name__}.fit: warm_start=True continues the fitted network, but "
                f"the current parameters build another one (tensors {changed[:5]} differ). "
                "Restore the parameters of the previous fit or set warm_start=False."
            )
        return copy.deepcopy(self.module_)

    def _fingerprint(
        self, X_train: sp.csr_array, valid: tuple[sp.csr_array, sp.csr_array] | None
    ) -> dict[str, Any]:
        """What a checkpoint must match: the parameters (as text) and a digest of the data."""
        params = {
            k: repr(v)
            for k, v in sorted(self.get_params(deep=False).items())
            if k not in _NOT_FINGERPRINTED
        }
        params["device_"] = str(self.device_)
        digest = hashlib.sha256()
        for m in (X_train, *(valid or ())):
            csr = sp.csr_array(m)
            digest.update(repr((csr.shape, csr.nnz, str(csr.dtype))).encode())
            for part in (csr.indptr, csr.indices, csr.data):
                digest.update(np.ascontiguousarray(part).tobytes())
        return {"params": params, "data": digest.hexdigest(), "shape": list(X_train.shape)}

    def _checkpointing(
        self,
        path: str | os.PathLike[str],
        X_train: sp.csr_array,
        valid: tuple[sp.csr_array, sp.csr_array] | None,
    ) -> tuple[dict[str, Any] | None, Callable[[dict[str, Any]], None]]:
        """The loop state to resume from (None without a file at ``path``) and the per-epoch
        writer of ``path``; a file of another fit is a ValueError."""
        name = type(self).__name__
        fingerprint = self._fingerprint(X_train, valid)
        resume = None
        if os.path.exists(path):
            content = _load_checkpoint(path)
            if (
                content.get("format") != _CHECKPOINT_FORMAT
                or content.get("version") != _CHECKPOINT_VERSION
            ):
                raise ValueError(f"{name}.fit: {os.fspath(path)!r} is not a skcfae checkpoint.")
            if content.get("estimator") != name:
                raise ValueError(
                    f"{name}.fit: checkpoint {os.fspath(path)!r} was written by "
                    f"{content.get('estimator')}; pass another path or delete it."
                )
            old = content.get("params", {})
            new = fingerprint["params"]
            changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            if changed:
                detail = ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in changed)
                raise ValueError(
                    f"{name}.fit: checkpoint {os.fspath(path)!r} was written by a fit with other "
                    f"parameters ({detail}); pass another path, delete it, or restore them."
                )
            if content.get("data") != fingerprint["data"]:
                raise ValueError(
                    f"{name}.fit: checkpoint {os.fspath(path)!r} was written by a fit on other "
                    f"training data (shape {tuple(content.get('shape', ()))}, now "
                    f"{tuple(X_train.shape)}, or other values); pass another path or delete it."
                )
            resume = content["state"]

        def write(state: dict[str, Any]) -> None:
            content = {
                "format": _CHECKPOINT_FORMAT,
                "version": _CHECKPOINT_VERSION,
                "estimator": name,
                **fingerprint,
                "state": state,
            }
            self._write_checkpoint(path, content)

        return resume, write

    def _write_checkpoint(self, path: str | os.PathLike[str], content: dict[str, Any]) -> None:
        _save_checkpoint(path, content)

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
        rows, n_eligible = model_selection.draw_validation_users(X, self.validation_fraction, rng)
        if self.early_stopping == "auto" and rows.size < _MIN_AUTO_VALID_USERS:
            return X, None
        if rows.size < 1 or rows.size >= X.shape[0]:
            raise ValueError(
                f"{name}.fit: validation_fraction={self.validation_fraction} of {X.shape[0]} "
                f"users ({n_eligible} with at least {model_selection.MIN_SPLIT_INTERACTIONS} "
                "interactions) leaves no training or no validation user; pass more users, "
                "change it or set early_stopping=False."
            )
        valid = np.zeros(X.shape[0], dtype=bool)
        valid[rows] = True
        fold_in, holdout = model_selection.fold_in_split(X[valid], random_state=rng)
        return X[~valid], (fold_in, holdout)

    def _validation(self, fold_in: sp.csr_array, holdout: sp.csr_array) -> Validation:
        """NDCG@100 of the held-out items of the validation users, from their fold-in items."""
        keep = np.flatnonzero(np.diff(holdout.indptr) > 0)
        if keep.size == 0:
            raise ValueError(
                f"{type(self).__name__}.fit: no validation user has a held-out item; "
                "validation users need at least 5 interactions."
            )
        fold_in, holdout = fold_in[keep], holdout[keep]
        k = min(VALID_K, self.n_items_in_)

        def ndcg(module: nn.Module) -> float:
            parts = []
            for rows, Xb in iter_row_batches(fold_in, self._batch_users()):
                scores = self._module_scores(module, Xb)  # a fresh block: masked in place
                top = topk_masked(scores, Xb, k, True, overwrite_scores=True)
                parts.append(ndcg_from_topk(top, holdout[rows], k))
            return float(np.nanmean(np.concatenate(parts)))

        return Validation("ndcg", ndcg, greater_is_better=True, label=f"NDCG@{k}")

    # -- scoring ----------------------------------------------------------------------------
    def _module_apply(
        self, module: nn.Module, X: sp.csr_array, fn: Callable[[nn.Module, Batch], Tensor]
    ) -> np.ndarray:
        """``fn(module, batch)`` on the rows of X as fold-in users (no ids), in eval mode
        without gradients, as a numpy array; X is one batch."""
        device = next(module.parameters()).device
        rows = fold_in_rows(X, device)
        with torch.no_grad():
            batch = rows.batch(torch.arange(X.shape[0], device=device))
            # row-major: the sparse decoders return item-major (transposed) logits, and
            # torch transposes a 128 x 20,108 block in 2-4 ms where numpy takes 18
            return fn(module, batch).cpu().contiguous().numpy()

    def _module_scores(self, module: nn.Module, X: sp.csr_array) -> np.ndarray:
        return self._module_apply(module, X, self._scores)

    def _decision_function_batch(self, X: sp.csr_array, rows: slice) -> np.ndarray:
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
