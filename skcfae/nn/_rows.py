"""Row sources: where the training loop takes its batches from.

The loop never assumes CSR user rows. It asks a :class:`RowSource` for its number of rows and
for a :class:`Batch` of given row indices. Three sources cover the models of skcfae:

- user rows of X (:func:`user_rows`: the users are the training entities, batches carry their
  ids; Mult-VAE, Sw-dae, U-AutoRec, CDAE),
- item rows of Xᵀ (:func:`item_rows`: each row is one item's column of ratings; I-AutoRec,
  V-CFN, item-based NCAE),
- rows of users the model has never seen (:func:`fold_in_rows`: batches carry no ids, so a
  model with per-user parameters can never hand a new user a training user's vector).

A padded, ordered sequence source (SVAE) only has to implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

__all__ = ["Batch", "RowSource", "SparseRows", "fold_in_rows", "item_rows", "user_rows"]


@dataclass(frozen=True)
class Batch:
    """A batch of rows in sparse form, on the training device.

    Attributes
    ----------
    offsets : Tensor of shape (b,)
        Start of each row's entries in ``cols``/``vals`` (the layout of ``F.embedding_bag``).
    counts : Tensor of shape (b,)
        Number of stored entries of each row.
    cols, vals : Tensor of shape (nnz,)
        Column index and value of each stored entry, row after row.
    n_items : int
        Number of columns (items for user rows, users for item rows).
    ids : Tensor of shape (b,) or None
        Index of each row's training entity (user or item) when the rows are training rows;
        None for fold-in rows of users never seen in training.
    """

    offsets: Tensor
    counts: Tensor
    cols: Tensor
    vals: Tensor
    n_items: int
    ids: Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.counts.shape[0])

    @property
    def row_of(self) -> Tensor:
        """Batch row of each stored entry, shape (nnz,)."""
        return torch.repeat_interleave(
            torch.arange(self.size, device=self.cols.device),
            self.counts,
            output_size=len(self.cols),
        )

    def with_values(self, vals: Tensor) -> Batch:
        """The same sparsity pattern with new values (after dropout or normalisation)."""
        return replace(self, vals=vals)

    def dense(self) -> Tensor:
        """The batch as a dense (b, n_items) tensor; only b rows are ever densified."""
        out = torch.zeros(self.size, self.n_items, dtype=self.vals.dtype, device=self.vals.device)
        out[self.row_of, self.cols] = self.vals
        return out

    def row_sums(self, vals: Tensor | None = None) -> Tensor:
        """Sum of each row's values, shape (b,)."""
        v = self.vals if vals is None else vals
        out = torch.zeros(self.size, dtype=v.dtype, device=v.device)
        return out.index_add_(0, self.row_of, v)


class RowSource(Protocol):
    """What the training loop needs from its data: a row count and batches by row index."""

    @property
    def n_rows(self) -> int: ...

    def batch(self, rows: Tensor) -> Batch: ...


class SparseRows:
    """The rows of a CSR matrix held as torch tensors on a device, gathered into batches.

    Parameters
    ----------
    X : csr_array of shape (n_rows, n_cols)
    device : torch.device
    ids : bool, default=True
        Whether the rows are training entities: batches then carry their row indices as
        ``Batch.ids``; otherwise ``Batch.ids`` is None (fold-in users).
    """

    def __init__(
        self, X: sp.csr_array | sp.csr_matrix, device: torch.device, *, ids: bool = True
    ) -> None:
        self.shape = X.shape
        self.indptr = torch.from_numpy(np.asarray(X.indptr, dtype=np.int64)).to(device)
        self.indices = torch.from_numpy(np.asarray(X.indices, dtype=np.int64)).to(device)
        self.data = torch.from_numpy(np.asarray(X.data, dtype=np.float32)).to(device)
        self.device = device
        self.ids = ids

    @property
    def n_rows(self) -> int:
        return int(self.shape[0])

    def batch(self, rows: Tensor) -> Batch:
        """Gather ``rows`` (int64 tensor on the device) into a :class:`Batch`."""
        starts = self.indptr[rows]
        counts = self.indptr[rows + 1] - starts
        offsets = torch.cumsum(counts, 0) - counts
        total = int(counts.sum())
        # position of each gathered entry in the full CSR arrays
        shift = torch.repeat_interleave(starts - offsets, counts, output_size=total)
        flat = torch.arange(total, device=self.device) + shift
        return Batch(
            offsets,
            counts,
            self.indices[flat],
            self.data[flat],
            self.shape[1],
            rows if self.ids else None,
        )

    def batches(self, batch_size: int, order: Tensor | None = None) -> Iterator[Batch]:
        """Yield consecutive batches in ``order`` (default: row order)."""
        if order is None:
            order = torch.arange(self.n_rows, device=self.device)
        for start in range(0, self.n_rows, batch_size):
            yield self.batch(order[start : start + batch_size])


def user_rows(X: sp.csr_array, device: torch.device) -> SparseRows:
    """The users (rows) of the training matrix X; batches carry user ids."""
    return SparseRows(X, device, ids=True)


def item_rows(X: sp.csr_array, device: torch.device) -> SparseRows:
    """The items of the training matrix X as rows (the rows of Xᵀ); batches carry item ids."""
    return SparseRows(sp.csr_array(X.T), device, ids=True)


def fold_in_rows(X: sp.csr_array, device: torch.device) -> SparseRows:
    """Rows of users never seen in training (or treated as such); batches carry no ids."""
    return SparseRows(X, device, ids=False)
