"""Torch building blocks and model modules (no scikit-learn in here)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._rows import Batch

__all__ = [
    "MultiLayerAE",
    "WideAE",
    "SparseLinear",
    "dense_linear",
    "dropout",
    "dropout_values",
    "init_linear",
    "l2_normalize_rows",
]

_ACTIVATIONS = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}


def dropout(x: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """Inverted dropout drawing its mask from ``generator`` (reproducible without global seeds)."""
    if p <= 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


def dropout_values(batch: Batch, p: float, generator: torch.Generator) -> Batch:
    """Dropout on a sparse batch: each stored entry is dropped with probability ``p`` and the
    kept ones scaled by ``1/(1-p)``; identical in law to dense dropout since zeros stay zero."""
    return batch.with_values(dropout(batch.vals, p, generator))


def l2_normalize_rows(batch: Batch, eps: float = 1e-12) -> Batch:
    """Divide each user's row by its Euclidean norm (``tf.nn.l2_normalize``, Liang et al.)."""
    norms = batch.row_sums(batch.vals * batch.vals).sqrt().clamp_min(eps)
    return batch.with_values(batch.vals / norms[batch.row_of])


def init_linear(weight: Tensor, bias: Tensor | None, generator: torch.Generator) -> None:
    """Liang et al.'s initialisation: Xavier-uniform weights, N(0, 0.001²) biases."""
    nn.init.xavier_uniform_(weight, generator=generator)
    if bias is not None:
        nn.init.normal_(bias, 0.0, 0.001, generator=generator)


class SparseLinear(nn.Module):
    """``x @ W + b`` for a sparse batch ``x``: cost ∝ nnz x out instead of n_in x out.

    The weight is stored as (n_in, n_out) so that ``F.embedding_bag`` (sum mode with
    per-sample weights) gathers and sums only the rows of the items a user has.
    """

    def __init__(self, n_in: int, n_out: int, generator: torch.Generator) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))
        # xavier on (n_in, n_out) has the same bound as on its transpose
        init_linear(self.weight, self.bias, generator)

    def forward(self, batch: Batch) -> Tensor:
        out = F.embedding_bag(
            batch.cols, self.weight, batch.offsets, mode="sum", per_sample_weights=batch.vals
        )
        return out + self.bias


def dense_linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` initialised from ``generator`` only (its default init, which draws from
    torch's global generator, is skipped)."""
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out)
    init_linear(layer.weight, layer.bias, generator)
    return layer


class MultiLayerAE(nn.Module):
    """The Mult-DAE / Mult-VAE network of Liang et al. (WWW 2018; Le 2020 survey §4).

    Used as baselines by Khawar et al. (WWW 2020, §4.4).

    Encoder ``[n_items -> hidden... -> n_components]`` (twice ``n_components`` outputs for the
    variational mean and log-variance), decoder the mirror image, tanh between layers, a linear
    output of logits. The first layer reads the sparse batch directly.
    """

    def __init__(
        self,
        n_items: int,
        hidden: tuple[int, ...],
        n_components: int,
        *,
        variational: bool,
        dropout: float,
        activation: str = "tanh",
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.variational = variational
        self.dropout = dropout
        self.activation = activation
        enc_dims = [n_items, *hidden, n_components * (2 if variational else 1)]
        dec_dims = [n_components, *hidden[::-1], n_items]
        self.input_layer = SparseLinear(enc_dims[0], enc_dims[1], generator)
        self.encoder = nn.ModuleList(
            dense_linear(a, b, generator) for a, b in zip(enc_dims[1:-1], enc_dims[2:], strict=True)
        )
        self.decoder = nn.ModuleList(
            dense_linear(a, b, generator) for a, b in zip(dec_dims[:-1], dec_dims[1:], strict=True)
        )
        self.n_components = n_components

    def encode(self, batch: Batch, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """Return (mean, log-variance); log-variance is zeros for the non-variational DAE."""
        batch = l2_normalize_rows(batch)
        if self.training and generator is not None:
            batch = dropout_values(batch, self.dropout, generator)
        act = _ACTIVATIONS[self.activation]
        h = self.input_layer(batch)
        for layer in self.encoder:
            h = layer(act(h))
        if not self.variational:
            return act(h), torch.zeros(())
        return h[:, : self.n_components], h[:, self.n_components :]

    def decode(self, z: Tensor) -> Tensor:
        act = _ACTIVATIONS[self.activation]
        h = z
        for i, layer in enumerate(self.decoder):
            h = layer(h if i == 0 else act(h))
        return h

    def forward(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Logits, mean and log-variance. In training mode z is sampled, else z = mean."""
        mu, logvar = self.encode(batch, generator)
        z = mu
        if self.variational and self.training and generator is not None:
            eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
            z = mu + eps * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


class WideAE(nn.Module):
    """The Sw-dae / Fc-dae network (Khawar et al., WWW 2020, §3.3 Eq. 4, §3.4 Eq. 6-7).

    ``encoders[0]`` reads the sparse batch (a :class:`SparseLinear` for a fully connected
    layer, a :class:`~skcfae.nn._sparse.SparseEncoder` for a learned structure), the other
    encoders and all decoders read dense activations. Sigmoid between layers, input dropout on
    the stored entries (the corruption), dropout on the innermost code, linear output logits.
    """

    def __init__(
        self,
        encoders: list[nn.Module],
        decoders: list[nn.Module],
        *,
        dropout: float,
        hidden_dropout: float,
        activation: str = "sigmoid",
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.decoders = nn.ModuleList(decoders)
        self.dropout = dropout
        self.hidden_dropout = hidden_dropout
        self.activation = activation

    def encode(self, batch: Batch, generator: torch.Generator | None = None) -> Tensor:
        """The innermost code h = f(x̃) (no hidden dropout)."""
        if self.training and generator is not None:
            batch = dropout_values(batch, self.dropout, generator)
        act = _ACTIVATIONS[self.activation]
        h = act(self.encoders[0](batch))
        for layer in self.encoders[1:]:
            h = act(layer(h))
        return h

    def decode(self, h: Tensor) -> Tensor:
        act = _ACTIVATIONS[self.activation]
        for layer in self.decoders[:-1]:
            h = act(layer(h))
        return self.decoders[-1](h)

    def forward(
        self, batch: Batch, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Output logits and the innermost code."""
        h = self.encode(batch, generator)
        code = h
        if self.training and generator is not None:
            h = dropout(h, self.hidden_dropout, generator)
        return self.decode(h), code
