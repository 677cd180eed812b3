"""The private base of Mult-VAE and Mult-DAE (Liang et al. 2018): network, loss, parameters."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import torch
from torch import Tensor, nn

from .._compat import Interval
from ..nn import Batch
from ..nn._losses import multinomial_nll
from ..nn._modules import MultiLayerAE
from ._neural import NEURAL_CONSTRAINTS, NeuralRecommender

_MULT_CONSTRAINTS: dict[str, list[Any]] = {
    **NEURAL_CONSTRAINTS,
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "hidden_layer_sizes": [tuple, list],
    "dropout": [Interval(Real, 0, 1, closed="left")],
    "l2_reg": [Interval(Real, 0, None, closed="left")],
}


class _BaseMultAE(NeuralRecommender):
    """Shared body of MultVAE and MultDAE: the [n_items -> hidden -> n_components] network
    with a multinomial likelihood, L2-normalised input and input dropout (not public)."""

    _parameter_constraints: dict[str, list[Any]] = _MULT_CONSTRAINTS
    #: Whether the encoder outputs a mean and log-variance (Mult-VAE) or a code (Mult-DAE).
    _variational: bool

    def __init__(
        self,
        n_components: int,
        *,
        hidden_layer_sizes: tuple[int, ...],
        dropout: float,
        l2_reg: float,
        **neural: Any,
    ) -> None:
        super().__init__(**neural)
        self.n_components = n_components
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.l2_reg = l2_reg

    def _build_module(self, generator: torch.Generator) -> nn.Module:
        return MultiLayerAE(
            self.n_items_in_,
            tuple(self.hidden_layer_sizes),
            self.n_components,
            variational=self._variational,
            dropout=self.dropout,
            generator=generator,
        )

    def _weight_decay(self) -> float:
        return 2.0 * self.l2_reg  # gradient of l2_reg * ||W||²

    def _scores(self, module: nn.Module, batch: Batch) -> Tensor:
        return module(batch)[0]

    @staticmethod
    def _nll(logits: Tensor, batch: Batch) -> Tensor:
        return multinomial_nll(logits, batch)
