"""Data-parallel training: what one rank of a ``torch.distributed`` group does differently.

:func:`skcfae.distributed.fit_distributed` fits an estimator on every rank of the default
process group, each rank holding its own shard of the training rows, inside
:func:`data_parallel`. The training engine (:mod:`skcfae.nn._engine`) asks :func:`current`
whether it trains in such a group; outside one (the usual case) nothing changes. Inside:

- **Same start.** The seed of each phase and the initial weights are broadcast from rank 0.
- **Same batches.** An epoch is the single-process epoch over the rows of all ranks stacked
  in rank order: every rank draws the same permutation of the ``total`` rows from the same
  shuffling generator and cuts it into the same batches of ``batch_size`` rows; each rank
  computes the loss of the rows of each batch that are in its shard (:class:`RowShard`). So
  every rank makes ``ceil(total / batch_size)`` updates per epoch, and none waits for a
  collective that another never calls.
- **Same update.** After ``backward`` each rank's gradient (of the mean loss of its rows of
  the batch) is weighted by its rows / the batch's rows and the weighted gradients are summed
  over the ranks (one all-reduce of all gradients): the gradient of the mean loss of the
  global batch, as in one process. All ranks then apply the same optimiser step to the same
  weights and stay identical.
- **Own noise.** The corruption and sampling generator of the loss is rank 0's seed on rank
  0 and a different one, derived from it, on every other rank, so that two ranks never draw
  the same dropout mask for their rows.
- **Same decisions.** The epoch's loss is summed over the ranks; the validation score is
  computed on rank 0 and broadcast, so early stopping keeps the same epoch and stops every
  rank after the same epoch.

:func:`fit_on_all_rows` fits a scikit-learn estimator that needs all training rows (the
``ItemGrouper`` of ``SparseWideDAE``) once, on rank 0, from the rows of all ranks gathered in
rank order, and gives every rank the fitted copy.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DataParallel", "RowShard", "current", "data_parallel", "fit_on_all_rows"]

_CURRENT: ContextVar[DataParallel | None] = ContextVar("skcfae_data_parallel", default=None)


def current() -> DataParallel | None:
    """The data-parallel group the fits of this context train in; None in one process."""
    return _CURRENT.get()


@contextlib.contextmanager
def data_parallel(group: DataParallel) -> Iterator[DataParallel]:
    """Run the fits inside the ``with`` block data-parallel in ``group``."""
    token = _CURRENT.set(group)
    try:
        yield group
    finally:
        _CURRENT.reset(token)


class DataParallel:
    """Collectives of the default ``torch.distributed`` process group (initialised).

    Tensors travel on ``device``: the current CUDA device with the NCCL backend, else the CPU
    (gloo); a tensor elsewhere is copied there and back.
    """

    def __init__(self) -> None:
        self.rank = int(dist.get_rank())
        self.world_size = int(dist.get_world_size())
        self.backend = str(dist.get_backend())
        if self.backend == "nccl":
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            self.device = torch.device("cpu")

    # -- numbers and objects ---------------------------------------------------------------
    def all_gather_int(self, value: int) -> list[int]:
        """``value`` of every rank, in rank order."""
        mine = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        out = [torch.zeros_like(mine) for _ in range(self.world_size)]
        dist.all_gather(out, mine)
        return [int(t.item()) for t in out]

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value``."""
        t = torch.tensor([int(value)], dtype=torch.int64, device=self.device)
        dist.broadcast(t, src=0)
        return int(t.item())

    def broadcast_float(self, value: float) -> float:
        """Rank 0's ``value`` (the others' is ignored)."""
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.broadcast(t, src=0)
        return float(t.item())

    def sum_float(self, value: float) -> float:
        """Sum of ``value`` over the ranks (float64)."""
        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item())

    def all_gather_object(self, value: Any) -> list[Any]:
        """``value`` (picklable) of every rank, in rank order."""
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable; the others' is ignored)."""
        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self._object_device())
        return box[0]

    def agree(self, error: str | None, caller: str) -> None:
        """Raise the same ``ValueError`` on every rank when any rank has an ``error``
        message, so that no rank goes on alone to a collective the others never reach."""
        errors = self.all_gather_object(error)
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if failed:
            detail = "; ".join(f"rank {r}: {e}" for r, e in failed)
            raise ValueError(f"{caller}: {detail}")

    def same_everywhere(self, text: str, what: str, caller: str) -> None:
        """ValueError on every rank unless ``text`` is the same on all ranks."""
        digest = hashlib.sha256(text.encode()).hexdigest()
        digests = self.all_gather_object(digest)
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise ValueError(
                f"{caller}: {what} must be the same on every rank, but rank {differ[0]}'s "
                "differ from rank 0's; pass the same on every rank."
            )

    def _object_device(self) -> torch.device | None:
        return self.device if self.backend == "nccl" else None

    # -- training ----------------------------------------------------------------------------
    def shard(self, n_rows: int, seed: int, device: torch.device) -> RowShard:
        """This rank's place among the rows of all ranks (a collective: call it on every rank
        at the start of every phase). ``seed`` is the loss generator's seed on rank 0;
        ``device`` the training device."""
        counts = self.all_gather_int(n_rows)
        offset = sum(counts[: self.rank])
        return RowShard(self, offset, n_rows, sum(counts), self._rank_seed(seed), device)

    def _rank_seed(self, seed: int) -> int:
        if self.rank == 0:
            return int(seed)
        sequence = np.random.SeedSequence([int(seed) % 2**63, self.rank])
        return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))

    def broadcast_module(self, module: nn.Module, caller: str) -> None:
        """Rank 0's weights and buffers into ``module`` on every rank."""
        shapes = [(k, tuple(v.shape), str(v.dtype)) for k, v in module.state_dict().items()]
        self.same_everywhere(repr(shapes), "the network built from the parameters", caller)
        with torch.no_grad():
            for value in module.state_dict().values():
                buf = value.detach().to(self.device, copy=True)
                dist.broadcast(buf, src=0)
                value.copy_(buf)

    def reduce_gradients(self, optimizer: torch.optim.Optimizer, weight: float) -> None:
        """Replace the gradient of every parameter of ``optimizer`` by the sum over the ranks
        of ``weight`` times it (a missing gradient counts as zero), in one all-reduce."""
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            elif p.grad.is_sparse:
                p.grad = p.grad.to_dense()
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params]).to(self.device)
        flat.mul_(weight)
        dist.all_reduce(flat)
        start = 0
        for p in params:
            n = p.numel()
            p.grad.copy_(flat[start : start + n].view_as(p.grad))
            start += n

    # -- estimators fitted once ---------------------------------------------------------------
    def fit_on_rank0(self, estimator: Any, X: sp.csr_array) -> Any:
        """``estimator`` fitted on rank 0 on the rows of every rank's X (stacked in rank
        order), then sent to every rank; an error on rank 0 is raised on every rank."""
        parts: list[Any] | None = [None] * self.world_size if self.rank == 0 else None
        dist.gather_object(X, parts, dst=0)
        fitted: Any = None
        failure: str | None = None
        if self.rank == 0:
            assert parts is not None
            try:
                fitted = estimator.fit(sp.csr_array(sp.vstack(parts, format="csr")))
            except Exception as exc:  # raised below, after the others have heard of it
                failure = f"{type(exc).__name__}: {exc}"
                self.broadcast_object((None, failure))
                raise
        fitted, failure = self.broadcast_object((fitted, failure))
        if failure is not None:
            raise RuntimeError(
                f"rank 0 failed to fit {type(estimator).__name__} on the rows of all ranks: "
                f"{failure}"
            )
        return estimator if self.rank == 0 else fitted


@dataclass
class RowShard:
    """One rank's part of the rows of a phase: rows ``offset .. offset + n_rows`` of the
    ``total`` rows of all ranks stacked in rank order.

    ``seed`` seeds this rank's loss generator; ``device`` is the training device; ``weight``
    is set by the engine before each update to this rank's rows of the batch / the batch's
    rows.
    """

    group: DataParallel
    offset: int
    n_rows: int
    total: int
    seed: int
    device: torch.device
    weight: float = 1.0

    def reduce_gradients(self, optimizer: torch.optim.Optimizer) -> None:
        """The gradient of the mean loss of the global batch, on every rank."""
        self.group.reduce_gradients(optimizer, self.weight)


def fit_on_all_rows(estimator: Any, X: sp.csr_array) -> Any:
    """``estimator.fit(X)``; in a data-parallel fit, the estimator fitted once on the rows of
    all ranks (on rank 0, then sent to every rank), so that every rank gets the same one."""
    group = current()
    if group is None:
        return estimator.fit(X)
    return group.fit_on_rank0(estimator, X)
