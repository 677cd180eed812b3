"""Layers with a fixed sparse connectivity: cost and memory scale with the connections, not
with n_items x n_hidden (the Sw-dae layers of Khawar et al., WWW 2020, §3.2-3.3).

A connectivity ``pattern`` is an (n_items, n_hidden) scipy CSR matrix whose stored entries are
the connections; each layer learns one value per connection.

- :class:`SparseEncoder` maps a sparse user batch to the hidden layer. Both the input and the
  weight are sparse, so the product is a scatter over (input entry, connection) pairs: cost
  ``nnz(batch) x connections per item``.
- :class:`SparseDecoder` maps the dense hidden layer to one logit per item: the item-major
  product ``h Wᵀ`` (forward), the neuron-major ``g W`` (the gradient of the hidden layer) and
  a sampled dense-dense product (SDDMM, the gradient of the connection values).

Two sets of kernels compute them, with the same results up to float rounding:

- on the CPU in float32, the compiled kernels of :mod:`skcfae.nn._native` (``_kernels.c``,
  built on first use with the machine's C compiler): item-major sweeps over the connections
  with the users in tiles of 32, the decoder's two gradients in one sweep;
- elsewhere (GPUs, other dtypes, no compiler, ``SKCFAE_NATIVE=0``) torch's: embedding bags
  for the item- and neuron-major products (the latter over each neuron's items, CSC order),
  ``torch.sparse.sampled_addmm`` for the SDDMM, ``index_add`` for the sparse encoder.

Measured against each other in ``benchmarks/sparse_layer.py`` (results in
``benchmarks/results/sparse_layer.md``; ML-20M shape, K=1000, R=100, batch 128, 2 threads):
the three decoder products take 0.17-0.24x the time of the dense layer's GEMMs compiled,
0.25-0.31x as embedding bags and SDDMM, 0.46-0.52x with torch CSR ``sparse.mm`` (MKL on CPU;
its transposed product for the backward pass is slow); a whole epoch 0.26-0.32x the FC
network's compiled, 0.40-0.45x with the torch kernels (runs on different days, AVX2), and
0.30-0.32x compiled on a CPU with AVX-512, whose dense GEMMs run 2.3-3x faster. A gather
over the R neighbours of each item (a b x n_items x R intermediate) is 50x slower.
Block-sparse tiles after sorting items by group were judged by their work first: the
learned groups overlap too loosely (a block of 16 items already spans 3.8x more neurons per
item than it connects to), so the tiles would do at least 0.38x the dense layer's
multiply-adds.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _native
from ._rows import Batch

__all__ = ["SparseDecoder", "SparseEncoder", "pattern_init_bound"]

#: Users per slice of the item- and neuron-major products (see ``_bags``): 64 was the
#: fastest of 32-256 for both at 3,700-20,108 items, K=1000-2000, 2 threads.
_USER_SLICE = 64
#: Batch density (stored entries / (users x items)) above which SparseEncoder densifies the
#: batch on the torch kernels: the crossover measured for R-per-item patterns, K=1000, 500
#: users, 1 thread (the scatter wins at densities 0.0033-0.01, the dense-input kernel at
#: 0.039, ml-1m's).
_DENSE_INPUT_ABOVE = 0.02
#: The same for the compiled kernels, whose scatter skips the entries dropout zeroed, counted
#: in nonzero entries: on 2 threads, K=1000-2000, batch 128, the scatter was 2.7x faster at
#: ml-1m's 0.045 x 0.4 kept, and the dense-input kernel won from ~0.12 nonzero.
_NATIVE_DENSE_INPUT_ABOVE = 0.12


def pattern_init_bound(pattern: sp.csr_array) -> float:
    """Xavier-uniform bound for a sparse layer: ``sqrt(6 / (fan_in + fan_out))`` with the
    *average* numbers of connections per item and per neuron as the fans (for a dense layer
    these are n_hidden and n_items, i.e. plain Xavier)."""
    n_items, n_hidden = pattern.shape
    per_item = pattern.nnz / max(n_items, 1)
    per_neuron = pattern.nnz / max(n_hidden, 1)
    return float(np.sqrt(6.0 / max(per_item + per_neuron, 1e-12)))


class _Pattern(nn.Module):
    """Index buffers of a connectivity pattern in CSR (item-major) and CSC (neuron-major)."""

    indptr: Tensor
    cols: Tensor
    item_offsets: Tensor
    perm: Tensor
    csc_items: Tensor
    csc_offsets: Tensor

    def __init__(self, pattern: sp.csr_array | sp.csr_matrix) -> None:
        super().__init__()
        csr = sp.csr_array(pattern)
        csr.sum_duplicates()
        csr.sort_indices()
        self.n_items, self.n_hidden = csr.shape
        lengths = np.diff(csr.indptr)
        self.uniform = bool(lengths.size and np.all(lengths == lengths[0]) and lengths[0] > 0)
        indptr = torch.from_numpy(csr.indptr.astype(np.int64))
        cols = torch.from_numpy(csr.indices.astype(np.int64))
        # position of every connection in neuron-major order (stable: items stay ascending)
        perm = torch.argsort(cols, stable=True)
        item_of = torch.repeat_interleave(torch.arange(self.n_items), torch.diff(indptr))
        counts = torch.bincount(cols, minlength=self.n_hidden)
        self.register_buffer("indptr", indptr, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.register_buffer("item_offsets", indptr[:-1].clone(), persistent=False)
        self.register_buffer("perm", perm, persistent=False)
        self.register_buffer("csc_items", item_of[perm], persistent=False)
        self.register_buffer("csc_offsets", torch.cumsum(counts, 0) - counts, persistent=False)

    @property
    def nnz(self) -> int:
        return int(self.cols.shape[0])

    def __getstate__(self) -> dict[str, Any]:  # copies and pickles leave the cache behind
        state = dict(super().__getstate__())
        state.pop("_sddmm", None)
        state.pop("_ranges", None)
        return state

    def sddmm_buffers(self, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
        """Two CSR tensors of this pattern with zero values, cached per (dtype, device): the
        mask and the output of :func:`_sampled_product`."""
        key = (dtype, torch.device(device))
        cache = self.__dict__.setdefault("_sddmm", {})
        if key not in cache or cache[key][0].crow_indices().device != self.indptr.device:
            cache.clear()
            cache[key] = tuple(
                self.csr_tensor(torch.zeros(self.nnz, dtype=dtype, device=device)) for _ in range(2)
            )
        return cache[key]

    def csr_tensor(self, values: Tensor) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
            return torch.sparse_csr_tensor(
                self.indptr, self.cols, values, (self.n_items, self.n_hidden)
            )


def _init_values(pattern: sp.csr_array, generator: torch.Generator) -> Tensor:
    bound = pattern_init_bound(pattern)
    values = torch.empty(sp.csr_array(pattern).nnz)
    return values.uniform_(-bound, bound, generator=generator)


def _bags(indices: Tensor, offsets: Tensor, weights: Tensor, x: Tensor) -> Tensor:
    """Weighted sums of the rows of xᵀ (x: b x n, dense), one sum per bag of ``indices``
    starting at ``offsets``: the (b, n_bags) product. xᵀ is read in slices of
    ``_USER_SLICE`` users so that a slice stays in cache while the bags sweep it: 1.5-2x
    faster than one pass (the item-major product: 0.058 s -> 0.039 s at 20,108 items,
    K=1000, R=100, 500 users, and 0.025 s -> 0.012 s at 3,700 items, K=2000, R=200; 2x for
    the neuron-major one on ML-20M shapes; 2 threads). Inputs are detached so that torch
    takes its forward-only kernel (the products run inside the autograd functions below,
    which supply the gradients). Other devices take one slice: the gain was measured on CPU."""
    step = _USER_SLICE if x.device.type == "cpu" else max(x.shape[0], 1)
    parts = [
        F.embedding_bag(
            indices,
            x[s : s + step].detach().t().contiguous(),
            offsets,
            mode="sum",
            per_sample_weights=weights,
        )
        for s in range(0, max(x.shape[0], 1), step)
    ]
    return torch.cat(parts, dim=1).t()


def _item_major(p: _Pattern, values: Tensor, h: Tensor, bias: Tensor | None = None) -> Tensor:
    """``h Wᵀ (+ bias)`` (b, n_items): row i of the transpose sums the rows of hᵀ of item i's
    neurons."""
    if _native.available(h, values, *([] if bias is None else [bias])):
        b = None if bias is None else bias.detach().contiguous()
        return _native.item_major(p, values.detach(), h.detach(), b)
    out = _bags(p.cols, p.item_offsets, values.detach(), h)
    return out if bias is None else out + bias.detach()


def _neuron_major(p: _Pattern, values: Tensor, g: Tensor) -> Tensor:
    """``g W`` (b, n_hidden) for dense g (b, n_items): row k of the transpose sums the rows of
    gᵀ of neuron k's items (CSC order)."""
    if _native.available(g, values):
        acc, _ = _native.neuron_side(p, values.detach(), g.detach(), None, accumulate=True)
        assert acc is not None
        return acc
    weights = values.detach().index_select(0, p.perm)  # 3x faster than values[perm] (CPU)
    return _bags(p.csc_items, p.csc_offsets, weights, g)


def _both_gradients(
    p: _Pattern, values: Tensor, g: Tensor, h: Tensor, needs: tuple[bool, bool]
) -> tuple[Tensor | None, Tensor | None]:
    """``(g W, (gᵀ h) at the connections)`` for g (b, n_items), h (b, n_hidden), each when
    asked for: the compiled kernels compute both in one sweep over the connections."""
    if _native.available(g, h, values):
        acc, dots = _native.neuron_side(
            p, values.detach(), g.detach(), h.detach() if needs[1] else None, needs[0]
        )
        return acc, dots
    grad_h = _neuron_major(p, values, g) if needs[0] else None
    return grad_h, _sampled_product(p, g, h) if needs[1] else None


def _sampled_product(p: _Pattern, a: Tensor, b: Tensor) -> Tensor:
    """``(aᵀ b)[i, k]`` at the connections only (SDDMM), in CSR order: the gradient of the
    connection values of ``y = b Wᵀ`` (a = dL/dy) or of ``y = a W`` (b = dL/dy).

    The pattern's zero-valued CSR tensor is built once per device and dtype and the product
    written into a second one (``out=``): without them a third of the time went to
    allocating, zeroing and copying nnz-long vectors (K=2000, R=200, ml-1m shape, CPU). The
    result is a copy, so that gradients accumulated over several backward passes never alias.
    """
    mask, out = p.sddmm_buffers(a.dtype, a.device)
    torch.sparse.sampled_addmm(mask, a.t().contiguous(), b, beta=0.0, out=out)
    return out.values().clone()


class _DecoderProduct(torch.autograd.Function):
    """``y = h Wᵀ + bias`` for dense h (b, n_hidden) and the sparse W (n_items, n_hidden).

    The compiled forward adds the bias as it stores each output (a separate addition wrote a
    second b x n_items block: 0.08 s of a 2.5 s epoch on ML-20M's shape), last, so that the
    result is the same to the bit."""

    @staticmethod
    def forward(ctx: Any, h: Tensor, values: Tensor, bias: Tensor, p: _Pattern) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(h, values)
        ctx.pattern = p
        return _item_major(p, values, h, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        h, values = ctx.saved_tensors
        needs = ctx.needs_input_grad
        grad_h, grad_values = _both_gradients(ctx.pattern, values, grad, h, (needs[0], needs[1]))
        return grad_h, grad_values, grad.sum(0) if needs[2] else None, None


class _EncoderProduct(torch.autograd.Function):
    """``h = x W`` for a dense input batch x (b, n_items): the transpose of _DecoderProduct."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, values: Tensor, p: _Pattern) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, values)
        ctx.pattern = p
        return _neuron_major(p, values, x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, values = ctx.saved_tensors
        p: _Pattern = ctx.pattern
        grad_x = _item_major(p, values, grad) if ctx.needs_input_grad[0] else None
        grad_values = None
        if ctx.needs_input_grad[1]:
            grad_values = _both_gradients(p, values, x, grad, (False, True))[1]
        return grad_x, grad_values, None


class _SparseInputProduct(torch.autograd.Function):
    """``h = x W`` for a sparse batch x (its rows' offsets, counts, cols, vals) through the
    compiled kernels; the gradient flows to the connection values only (x is data)."""

    @staticmethod
    def forward(ctx: Any, values: Tensor, *batch_and_pattern: Any) -> Tensor:  # type: ignore[override]
        *batch, p = batch_and_pattern
        ctx.save_for_backward(*batch)
        ctx.pattern = p
        return _native.sparse_rows(p, values.detach(), *batch)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        offsets, counts, cols, vals = ctx.saved_tensors
        grad_values = _native.sparse_rows_grad(
            ctx.pattern, offsets, counts, cols, vals, grad.contiguous()
        )
        return grad_values, None, None, None, None, None


class SparseEncoder(nn.Module):
    """``h = x W + b`` for a sparse batch ``x`` and a sparse (n_items, n_hidden) weight ``W``.

    Two kernels, chosen per batch by its density: up to ``dense_input_above`` entries per
    user and item, a scatter over the (input entry, connection) pairs (cost ``nnz(x) x
    connections per item``: best for sparse users); above it the batch is densified (b x
    n_items, that batch only) and multiplied neuron-major like the decoder's backward (cost
    ``b x nnz(W)``, vectorised: faster for dense users). Both give the same result.

    Parameters
    ----------
    pattern : sparse matrix of shape (n_items, n_hidden)
        The connections: stored entries of ``W``.
    generator : torch.Generator
        Seeds the Xavier-style initialisation (see :func:`pattern_init_bound`).
    values : Tensor, optional
        Initial connection values in the CSR order of ``pattern`` (e.g. surviving weights
        after pruning); default random.
    dense_input_above : float or None, default=None
        Batch density (stored entries / (users x items)) above which the dense-input kernel
        is used. None: 0.02 on the torch kernels; on the compiled ones (which skip the entries
        dropout set to zero) 0.12 of nonzero entries, so that ml-1m's batches (0.045 stored,
        0.018 kept at dropout 0.6) take the scatter.
    """

    def __init__(
        self,
        pattern: sp.csr_array,
        generator: torch.Generator,
        values: Tensor | None = None,
        dense_input_above: float | None = None,
    ) -> None:
        super().__init__()
        self.pattern = _Pattern(pattern)
        init = _init_values(pattern, generator) if values is None else values.clone()
        self.values = nn.Parameter(init)
        self.bias = nn.Parameter(torch.empty(self.pattern.n_hidden))
        nn.init.normal_(self.bias, 0.0, 0.001, generator=generator)
        self.dense_input_above = dense_input_above

    def forward(self, batch: Batch | Tensor) -> Tensor:
        """``x W + b`` for a sparse :class:`Batch` or a dense (b, n_items) tensor (the
        activations of a previous layer in a stacked network)."""
        if isinstance(batch, Tensor):
            out = _EncoderProduct.apply(batch, self.values, self.pattern)
        elif self._dense_input(batch):
            out = _EncoderProduct.apply(batch.dense(), self.values, self.pattern)
        else:
            out = self._scatter(batch)
        return out + self.bias

    def _native_scatter(self, batch: Batch) -> bool:
        return _native.available(self.values, batch.vals) and not batch.vals.requires_grad

    def _dense_input(self, batch: Batch) -> bool:
        cells = batch.size * batch.n_items
        if self.dense_input_above is not None:
            return len(batch.cols) > self.dense_input_above * cells
        if self._native_scatter(batch):
            return int(torch.count_nonzero(batch.vals)) > _NATIVE_DENSE_INPUT_ABOVE * cells
        return len(batch.cols) > _DENSE_INPUT_ABOVE * cells

    def _scatter(self, batch: Batch) -> Tensor:
        p = self.pattern
        if self._native_scatter(batch):
            parts = (batch.offsets, batch.counts, batch.cols, batch.vals)
            contiguous = [t.contiguous() for t in parts]
            return _SparseInputProduct.apply(self.values, *contiguous, p)
        if p.uniform:  # R connections per item (Sw-dae): gather whole rows, no index maths
            R = p.nnz // p.n_items
            cols = p.cols.view(p.n_items, R)[batch.cols]
            target = (batch.row_of[:, None] * p.n_hidden + cols).view(-1)
            contrib = (batch.vals[:, None] * self.values.view(p.n_items, R)[batch.cols]).view(-1)
            flat = torch.zeros(batch.size * p.n_hidden, dtype=contrib.dtype, device=cols.device)
            return flat.index_add(0, target, contrib).view(batch.size, p.n_hidden)
        starts = p.indptr[batch.cols]
        counts = p.indptr[batch.cols + 1] - starts
        total = int(counts.sum())
        entry = torch.repeat_interleave(
            torch.arange(len(batch.cols), device=starts.device), counts, output_size=total
        )
        offsets = torch.cumsum(counts, 0) - counts
        conn = torch.arange(total, device=starts.device) + (starts - offsets)[entry]
        target = batch.row_of[entry] * p.n_hidden + p.cols[conn]
        flat = torch.zeros(batch.size * p.n_hidden, dtype=self.values.dtype, device=starts.device)
        flat = flat.index_add(0, target, batch.vals[entry] * self.values[conn])
        return flat.view(batch.size, p.n_hidden)

    def weight_matrix(self) -> sp.csr_array:
        """The weight as a scipy CSR matrix (n_items, n_hidden), on the CPU."""
        return _to_scipy(self.pattern, self.values)


class SparseDecoder(nn.Module):
    """``logits = h Wᵀ + b`` for a dense hidden batch ``h`` and a sparse (n_items, n_hidden)
    weight ``W``; the output is a dense (b, n_items) tensor of logits.

    Parameters are as in :class:`SparseEncoder`.
    """

    def __init__(
        self,
        pattern: sp.csr_array,
        generator: torch.Generator,
        values: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.pattern = _Pattern(pattern)
        init = _init_values(pattern, generator) if values is None else values.clone()
        self.values = nn.Parameter(init)
        self.bias = nn.Parameter(torch.empty(self.pattern.n_items))
        nn.init.normal_(self.bias, 0.0, 0.001, generator=generator)

    def forward(self, h: Tensor) -> Tensor:
        return _DecoderProduct.apply(h, self.values, self.bias, self.pattern)

    def weight_matrix(self) -> sp.csr_array:
        """The weight as a scipy CSR matrix (n_items, n_hidden), on the CPU."""
        return _to_scipy(self.pattern, self.values)


def _to_scipy(p: _Pattern, values: Tensor) -> sp.csr_array:
    return sp.csr_array(
        (
            values.detach().cpu().numpy(),
            p.cols.cpu().numpy(),
            p.indptr.cpu().numpy(),
        ),
        shape=(p.n_items, p.n_hidden),
    )
