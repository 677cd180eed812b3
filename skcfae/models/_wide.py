"""The private base of Sw-dae and Fc-dae (Khawar et al., WWW 2020): the wide sigmoid network,
its likelihoods, and the weight diagnostics of §5.5."""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
from torch import Tensor, nn

from .._compat import Interval, StrOptions
from ..nn import Batch, TrainState
from ..nn._engine import EpochHook
from ..nn._losses import logistic_nll, multinomial_nll
from ..nn._modules import WideAE
from ._neural import NEURAL_CONSTRAINTS, NeuralRecommender

__all__ = ["weight_diagnostics"]

_WIDE_CONSTRAINTS: dict[str, list[Any]] = {
    **NEURAL_CONSTRAINTS,
    "epochs": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "K": [Interval(Integral, 1, None, closed="left")],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "hidden_dropout": [Interval(Real, 0, 1, closed="left")],
    "loss": [StrOptions({"multinomial", "logistic"})],
    "l2_reg": [Interval(Real, 0, None, closed="left")],
    "record_diagnostics": ["boolean"],
}


def weight_diagnostics(W: Any) -> tuple[float, float]:
    """Spectral norm ``||W||₂`` and stable rank ``||W||²_F / ||W||²₂`` of a weight matrix.

    Khawar et al. (WWW 2020, §5.5). ``W`` is a dense array or a scipy sparse
    matrix; the largest singular value comes from ARPACK (``svds``, a fixed start vector) on
    sparse or large matrices, from LAPACK on small dense ones.
    """
    if min(W.shape) <= 2 or (not sp.issparse(W) and W.size <= 250_000):
        dense = W.toarray() if sp.issparse(W) else np.asarray(W)
        sigma = float(np.linalg.norm(dense.astype(np.float64), ord=2))
        fro2 = float(np.sum(dense.astype(np.float64) ** 2))
    else:
        v0 = np.full(min(W.shape), 1.0 / np.sqrt(min(W.shape)))
        sigma = float(spla.svds(W, k=1, v0=v0, return_singular_vectors=False, tol=1e-4)[0])
        data = W.data if sp.issparse(W) else np.asarray(W)
        fro2 = float(np.sum(np.asarray(data, dtype=np.float64) ** 2))
    return sigma, (fro2 / sigma**2 if sigma > 0 else 0.0)


class _WideDAE(NeuralRecommender):
    """Shared body of SparseWideDAE and FCDAE: parameters, module, loss, diagnostics."""

    _parameter_constraints = _WIDE_CONSTRAINTS

    def __init__(
        self,
        K: int,
        *,
        dropout: float,
        hidden_dropout: float,
        loss: str,
        l2_reg: float,
        record_diagnostics: bool,
        **neural: Any,
    ) -> None:
        super().__init__(**neural)
        self.K = K
        self.dropout = dropout
        self.hidden_dropout = hidden_dropout
        self.loss = loss
        self.l2_reg = l2_reg
        self.record_diagnostics = record_diagnostics

    def _auto_updates(self) -> int:
        # 30 / learning_rate Adam updates: 3,000 at 1e-2, 10,000 at 3e-3 and, at the paper's
        # 1e-3, 30,000 (its 100 epochs of batch 500 on ML-20M are ~27,000).
        return math.ceil(round(30 / self.learning_rate, 6))

    # -- connectivity: encoder and decoder layers, outermost first -----------------------------
    def _layers(self, generator: torch.Generator) -> tuple[list[nn.Module], list[nn.Module]]:
        raise NotImplementedError  # pragma: no cover

    def _build_module(self, generator: torch.Generator) -> WideAE:
        encoders, decoders = self._layers(generator)
        return self._wide(encoders, decoders)

    def _wide(self, encoders: list[nn.Module], decoders: list[nn.Module]) -> WideAE:
        return WideAE(encoders, decoders, dropout=self.dropout, hidden_dropout=self.hidden_dropout)

    def _weight_decay(self) -> float:
        return 2.0 * self.l2_reg

    def _l1(self) -> float:
        return 0.0

    def _loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        batch = batch.with_values(torch.ones_like(batch.vals))  # binary history (§4)
        return self._reconstruction_loss(module, batch, state)

    def _reconstruction_loss(self, module: nn.Module, batch: Batch, state: TrainState) -> Tensor:
        """-log p(x | f(x̃)) (Eq. 5) of the batch's values as they are, plus Fc-reg's ℓ1."""
        logits, code = module(batch, state.generator)
        if self.loss == "multinomial":
            value = multinomial_nll(logits, batch)
        else:  # Bernoulli likelihood of Eq. 4: sigmoid outputs, summed over items
            value = logistic_nll(logits, batch)
        if self._l1() > 0:
            value = value + self._l1() * code.abs().sum(dim=1).mean()
        return value

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:
        # scores are the decoder outputs before the softmax / sigmoid (§4, §4.2)
        return module(batch.with_values(torch.ones_like(batch.vals)))[0]

    def _epoch_hooks(self, X_train: sp.csr_array) -> tuple[EpochHook, ...]:
        if not self.record_diagnostics:
            return ()
        n_users = X_train.shape[0]

        def record(module: nn.Module, rec: dict[str, Any]) -> None:
            rec.update(_diagnostics(module, n_users))

        return (record,)


def _weights(module: nn.Module) -> list[tuple[str, Any]]:
    """(name, weight as scipy/numpy (n_in, n_out) or (n_out, n_in)) of every layer."""
    out = []
    for part in ("encoders", "decoders"):
        for i, layer in enumerate(getattr(module, part)):
            if hasattr(layer, "weight_matrix"):
                W = layer.weight_matrix()
            else:
                W = layer.weight.detach().cpu().numpy()
            out.append((f"{part[:3]}{i}", W))
    return out


def _diagnostics(module: nn.Module, n_users: int) -> dict[str, float]:
    """Spectral norm and stable rank of every weight, and the bound of §5.5:
    ``sqrt(Π_j ||W_j||²₂ · Σ_j srank(W_j) / n)`` (Neyshabur et al. [19, Thm. 1])."""
    rec: dict[str, float] = {}
    prod, srank_sum = 1.0, 0.0
    for name, W in _weights(module):
        sigma, srank = weight_diagnostics(W)
        rec[f"spectral_norm_{name}"] = sigma
        rec[f"stable_rank_{name}"] = srank
        prod *= sigma**2
        srank_sum += srank
    rec["generalization_bound"] = float(np.sqrt(prod * srank_sum / max(n_users, 1)))
    return rec
