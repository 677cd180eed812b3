"""Losses, written for sparse targets so that no dense (batch x items) target is built."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from . import _native
from ._rows import Batch

__all__ = ["gaussian_kl", "logistic_nll", "multinomial_nll"]


class _MultinomialNLL(torch.autograd.Function):
    """``-mean_u Σ_i x_ui log softmax(z_u)_i`` with a hand-written, fused backward.

    Forward keeps ``log softmax`` (one fused pass); backward is
    ``(softmax(z_u) · Σ_i x_ui - x_u) / b``: one exp, one in-place scaling and a sparse
    subtraction, instead of autograd's chain through logsumexp (several full passes over the
    batch x items logits: the bottleneck after the GEMMs). The gradient is written over the
    saved log-probabilities: on CPU a fresh batch x items buffer costs as much as the exp
    (page faults), and a second backward through the same graph fails loudly (autograd's
    version check on the saved tensor).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logits: Tensor, row_of: Tensor, cols: Tensor, vals: Tensor
    ) -> Tensor:
        logp = torch.log_softmax(logits, dim=1)
        b = logits.shape[0]
        picked = torch.zeros(b, dtype=logits.dtype, device=logits.device)
        picked.index_add_(0, row_of, logp[row_of, cols] * vals)
        ctx.save_for_backward(logp, row_of, cols, vals)
        return -picked.sum() / b

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        logp, row_of, cols, vals = ctx.saved_tensors
        b = logp.shape[0]
        totals = torch.zeros(b, dtype=logp.dtype, device=logp.device).index_add_(0, row_of, vals)
        scale = grad / b
        out = logp.exp_().mul_((totals * scale)[:, None])
        out.index_put_((row_of, cols), -vals * scale, accumulate=True)
        return out, None, None, None


def multinomial_nll(logits: Tensor, target: Batch) -> Tensor:
    """Mean over users of ``-Σ_i x_ui log softmax(logits_u)_i`` (Liang et al. 2018, Eq. 2).

    ``x`` stays sparse: only its stored entries are gathered from the log-probabilities.
    """
    return _MultinomialNLL.apply(logits, target.row_of, target.cols, target.vals)


class _LogisticNLL(torch.autograd.Function):
    """``Σ_ui [softplus(z_ui) - x_ui z_ui] / b``: binary cross-entropy with logits, whose
    target is sparse (``BCE(z, x) = softplus(z) - x z`` for any x).

    No dense target is built, and both passes are one sweep over the logits in their own
    memory layout (a sparse decoder returns item-major logits; mixing them with a row-major
    dense target made ``binary_cross_entropy_with_logits`` the slowest op of a Sw-dae step).
    Backward is ``(sigmoid(z) - x) / b``: one sigmoid and a sparse subtraction. With the
    compiled kernels (float32 on the CPU) forward computes the softplus sum and the sigmoid,
    already divided by b, in one pass (``_native.logistic``), and backward uses it as it is.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, logits: Tensor, row_of: Tensor, cols: Tensor, vals: Tensor
    ) -> Tensor:
        b = logits.shape[0]
        observed = (logits[row_of, cols] * vals).sum()
        fused = None
        if _native.available(logits):  # saves sigmoid(z) / b, 1 / b in float32 as grad / b
            fused = _native.logistic(logits, float(torch.tensor(1.0) / b))
        ctx.sigmoid = fused is not None
        if fused is None:
            ctx.save_for_backward(logits, row_of, cols, vals)
            return (torch.nn.functional.softplus(logits).sum() - observed) / b
        sig, softplus_sum = fused
        ctx.save_for_backward(sig, row_of, cols, vals)
        return (softplus_sum.to(logits.dtype) - observed) / b

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        saved, row_of, cols, vals = ctx.saved_tensors
        scale = grad / saved.shape[0]
        if ctx.sigmoid:  # sigmoid(z) / b: scaled already where the loss is not weighted
            out = saved if bool(grad == 1.0) else saved.mul_(grad)
        else:
            out = torch.sigmoid(saved).mul_(scale)
        out.index_put_((row_of, cols), -vals * scale, accumulate=True)
        return out, None, None, None


def logistic_nll(logits: Tensor, target: Batch) -> Tensor:
    """Mean over users of ``-Σ_i [x_ui log σ(z_ui) + (1 - x_ui) log(1 - σ(z_ui))]``, the
    Bernoulli likelihood of Khawar et al. (WWW 2020) Eq. 4 summed over items; ``x``
    stays sparse."""
    return _LogisticNLL.apply(logits, target.row_of, target.cols, target.vals)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Mean over users of KL(N(mu, exp(logvar)) || N(0, I))."""
    return (0.5 * (torch.exp(logvar) + mu * mu - 1.0 - logvar)).sum(dim=1).mean()
