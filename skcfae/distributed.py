"""Data-parallel training of the neural models with ``torch.distributed`` under ``torchrun``.

``torchrun --nproc-per-node=N script.py`` starts the script once per rank (process). Each
rank reads its own shard of the training users (:func:`shard_rows`; :func:`shard_slice`
says which rows, to read only those from disk) and passes it to :func:`fit_distributed`
with the same estimator. Every rank gets back the same fitted estimator, an ordinary one:
rank 0 saves it with :func:`skcfae.save` or pickles it, and it recommends on one machine
like any other. ::

    import torch.distributed as dist

    import skcfae
    from skcfae import MultVAE
    from skcfae.datasets import make_interactions
    from skcfae.distributed import fit_distributed, shard_rows

    X = make_interactions(2000, 300, random_state=0)  # every rank: the same users
    model = fit_distributed(MultVAE(epochs=20, random_state=0), shard_rows(X))
    if dist.get_rank() == 0:
        skcfae.save(model, "multvae.skcfae")
    dist.destroy_process_group()

Supported: :class:`~skcfae.MultDAE`, :class:`~skcfae.MultVAE`,
:class:`~skcfae.SparseWideDAE` (with the :class:`~skcfae.ItemGrouper` it fits, or one
before it in a Pipeline) and :class:`~skcfae.FCDAE`, alone or as the last step of a
Pipeline. The "Data-parallel training" section of the Scale page of the documentation says
how the work is shared and how close the result is to a fit in one process.

This module imports torch only when :func:`fit_distributed` is called.
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.utils import check_random_state

from ._typing import InteractionMatrix
from ._validation import check_has_interactions, check_interactions

__all__ = ["fit_distributed", "shard_rows", "shard_slice"]

_SUPPORTED = ("FCDAE", "MultDAE", "MultVAE", "SparseWideDAE")


def _rank_and_size(rank: int | None, world_size: int | None) -> tuple[int, int]:
    """``rank`` and ``world_size``, by default those of the initialised process group, else
    of torchrun's environment (``RANK``, ``WORLD_SIZE``)."""
    if rank is None or world_size is None:
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_available() and dist.is_initialized():
            found = (int(dist.get_rank()), int(dist.get_world_size()))
        elif "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            found = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
        else:
            raise ValueError(
                "shard_slice: pass rank and world_size, or call it under torchrun (which sets "
                "RANK and WORLD_SIZE) or after torch.distributed.init_process_group."
            )
        rank = found[0] if rank is None else rank
        world_size = found[1] if world_size is None else world_size
    if not 1 <= int(world_size) or not 0 <= int(rank) < int(world_size):
        raise ValueError(
            f"shard_slice: rank must be in [0, world_size) and world_size >= 1; got "
            f"rank={rank}, world_size={world_size}."
        )
    return int(rank), int(world_size)


def shard_slice(n_rows: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """The rows of one rank: a contiguous block of ``n_rows // world_size`` or one more.

    Block ``rank`` of ``world_size`` consecutive blocks, ``rank * n_rows // world_size`` to
    ``(rank + 1) * n_rows // world_size``: the shards of two ranks differ by at most one row,
    and stacked in rank order they are the rows in their order, so that a data-parallel fit
    sees the training set of a fit in one process (see :func:`fit_distributed`).

    Parameters
    ----------
    n_rows : int
        Number of training users (rows) of all ranks together.
    rank, world_size : int, optional
        Default: those of the initialised ``torch.distributed`` process group, else the
        ``RANK`` and ``WORLD_SIZE`` that ``torchrun`` sets.

    Returns
    -------
    rows : slice

    Examples
    --------
    >>> from skcfae.distributed import shard_slice
    >>> [shard_slice(10, rank, 3) for rank in range(3)]
    [slice(0, 3, None), slice(3, 6, None), slice(6, 10, None)]
    """
    rank, world_size = _rank_and_size(rank, world_size)
    n_rows = int(n_rows)
    return slice(rank * n_rows // world_size, (rank + 1) * n_rows // world_size)


def shard_rows(X: InteractionMatrix, rank: int | None = None, world_size: int | None = None) -> Any:
    """The rows of X that one rank trains on: ``X[shard_slice(X.shape[0], rank, world_size)]``.

    A :class:`~skcfae.grouping.GroupedInteractions` (the output of an ItemGrouper) keeps its
    ``membership``.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        All training users, the same on every rank.
    rank, world_size : int, optional
        As in :func:`shard_slice`.

    Returns
    -------
    X_shard : sparse matrix or ndarray of shape (n_shard_users, n_items)

    Examples
    --------
    >>> from skcfae.datasets import make_interactions
    >>> from skcfae.distributed import shard_rows
    >>> X = make_interactions(101, 20, random_state=0)
    >>> shard_rows(X, rank=1, world_size=2).shape
    (51, 20)
    """
    from .grouping import GroupedInteractions

    membership = getattr(X, "membership", None)
    matrix: Any
    if sp.issparse(X):
        matrix = X if X.format == "csr" else sp.csr_array(X)
    else:
        matrix = np.asarray(X)
    part = matrix[shard_slice(matrix.shape[0], rank, world_size)]
    if membership is not None:
        return GroupedInteractions(part, membership=membership)
    return part


def fit_distributed(estimator: Any, X: InteractionMatrix, *, X_valid: Any = None) -> Any:
    """Fit a neural recommender data-parallel, on this rank's shard of the training users.

    Call it on every rank of a job started by ``torchrun --nproc-per-node=N script.py``, with
    the same estimator (same parameters) on every rank and this rank's rows as X
    (:func:`shard_rows`). It initialises the default ``torch.distributed`` process group from
    torchrun's environment unless it is initialised already: backend NCCL when the model's
    ``device`` is a CUDA device, gloo otherwise (CPU). With ``device="auto"`` or ``"cuda"``
    each rank uses the GPU of its ``LOCAL_RANK``. The group is left initialised: call
    ``torch.distributed.destroy_process_group()`` at the end of the script.

    The training is that of one process over the rows of all ranks stacked in rank order
    (with :func:`shard_rows`, X itself): the same ``batch_size`` (the global batch), the same
    shuffling, the same number of updates, each update the gradient of the mean loss over
    the whole batch, of which each rank computes its rows' part (all-reduced). The initial
    weights and the seeds are rank 0's. Only the random corruption (dropout) and the
    variational noise differ: each rank draws its own for its rows.

    Parameters
    ----------
    estimator : MultDAE, MultVAE, SparseWideDAE or FCDAE, or a Pipeline ending in one
        Fitted in place. The steps of a Pipeline before the model (an
        :class:`~skcfae.ItemGrouper`) are fitted once, on rank 0, on the rows of all ranks,
        and sent to every rank; each rank then transforms its own rows. Not supported:
        ``warm_start=True``, ``checkpoint``, ``record_diagnostics=True``, a stacked
        SparseWideDAE (``stacked_sizes``), and the models with per-user parameters (CDAE,
        NCF), item-based models, SVAE and DeepRec, which train in one process.
    X : {array-like, sparse matrix} of shape (n_shard_users, n_items)
        This rank's training users: at least one user and one interaction on every rank,
        the same items on every rank.
    X_valid : sparse matrix or tuple (X_fold_in, X_holdout), optional
        Validation users, as in the model's ``fit``: the *same* on every rank (checked). They
        are scored on rank 0, and the score decides the best epoch and the early stop of
        every rank. Without it, a model with ``early_stopping`` holds out
        ``validation_fraction`` of every rank's users (drawn on each rank from its shard),
        gathered into one validation set, the same on every rank, scored on rank 0.

    Returns
    -------
    estimator : object
        The fitted ``estimator``, the same on every rank: identical weights, best epoch and
        history (but for the ``dur`` of each epoch; ``train_loss`` is the mean over the
        rows of all ranks).

    Raises
    ------
    ValueError
        On every rank, when any rank's X is invalid, the ranks' items, parameters or
        validation users differ, or an unsupported parameter is set.
    TypeError
        For an estimator other than those supported.

    See Also
    --------
    shard_rows : this rank's rows of X.

    Notes
    -----
    *Tolerance.* Without random corruption (``dropout=0``, and ``hidden_dropout=0`` for the
    wide models) the data-parallel fit computes the updates of the fit in one process on the
    stacked rows, summed in another order: each rank sums its rows' gradients, then the
    ranks' sums are added. Float32 sums in another order differ in their last bits
    (relative 1e-7), and Adam carries that on: on the test data (240 users, 3 epochs of 4
    updates, 2 ranks) the weights differed by at most 9e-8 and the training losses by at
    most 1e-7, relative; the test allows 1e-5. With one rank the fit is the one-process fit
    bit for bit, dropout included. With dropout, or Mult-VAE's sampling, the ranks draw
    other random numbers than one process would, so only the distribution of the result is
    the same.

    *ItemGrouper.* Its co-occurrence, spectral embedding and k-means need the interactions
    of all training users, so the rows of all ranks are gathered on rank 0 (one copy of the
    training matrix there, for the grouping only), the grouper is fitted there with the seed
    a fit in one process uses, and the fitted grouper is sent to every rank. The groups are
    those of the fit in one process. To avoid the gathering, fit the ItemGrouper beforehand
    and pass ``grouper.transform(shard_rows(X))`` (its ``membership`` must be the same on
    every rank; checked).
    """
    caller = "fit_distributed"
    model = estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator
    _check_supported(model, caller)
    from .grouping import GroupedInteractions
    from .nn import _distributed

    group = _init_group(model, caller)
    group.same_everywhere(_params_text(estimator), "the estimator's parameters", caller)
    membership = getattr(X, "membership", None)
    error = None
    try:
        X = check_interactions(X, caller=caller)
        check_has_interactions(X, f"{caller} (this rank's shard)")
    except (TypeError, ValueError) as exc:
        error = str(exc)
    group.agree(error, caller)
    n_items = group.all_gather_int(X.shape[1])
    if len(set(n_items)) > 1:
        raise ValueError(
            f"{caller}: the ranks' X have different numbers of items ({n_items} by rank); "
            "give every rank rows over the same item columns."
        )
    if membership is not None:
        group.same_everywhere(_digest(membership), "the membership carried by X", caller)
        X = GroupedInteractions(X, membership=membership)
    if isinstance(estimator, Pipeline):
        for i, (name, step) in enumerate(estimator.steps[:-1]):
            if step is None or step == "passthrough":
                continue
            fitted = group.fit_on_rank0(step, X)
            estimator.steps[i] = (name, fitted)
            X = fitted.transform(X)
    if X_valid is not None:
        group.same_everywhere(_digest(X_valid), "X_valid", caller)
        valid = X_valid
    elif model.early_stopping:
        X, valid = _validation_users(group, model, X, caller)
    else:
        valid = None
    with _distributed.data_parallel(group):
        model.fit(X, X_valid=valid)
    return estimator


def _check_supported(model: Any, caller: str) -> None:
    from .models import FCDAE, MultDAE, MultVAE, SparseWideDAE

    if not isinstance(model, FCDAE | MultDAE | MultVAE | SparseWideDAE):
        raise TypeError(
            f"{caller} trains {', '.join(_SUPPORTED[:-1])} and {_SUPPORTED[-1]}, alone or as "
            f"the last step of a Pipeline; got {type(model).__name__}. Models with per-user "
            "parameters (CDAE, NCF), item-based models, SVAE and DeepRec train in one process: "
            "call their fit."
        )
    name = type(model).__name__
    if getattr(model, "warm_start", False) or getattr(model, "checkpoint", None) is not None:
        raise ValueError(
            f"{caller}: {name} with warm_start=True or a checkpoint cannot train data-parallel; "
            "set warm_start=False and checkpoint=None."
        )
    if getattr(model, "record_diagnostics", False):
        raise ValueError(
            f"{caller}: {name}(record_diagnostics=True) cannot train data-parallel (its bound "
            "counts the users of one rank); set record_diagnostics=False."
        )
    if getattr(model, "stacked_sizes", ()):
        raise ValueError(
            f"{caller}: a stacked SparseWideDAE (stacked_sizes={model.stacked_sizes!r}) groups "
            "the codes of all users between its layers and cannot train data-parallel; set "
            "stacked_sizes=()."
        )


def _init_group(model: Any, caller: str) -> Any:
    """The default process group as a ``DataParallel``, initialised from torchrun's
    environment when needed; the current CUDA device set to the rank's GPU."""
    import torch
    import torch.distributed as dist

    from .nn import resolve_device
    from .nn._distributed import DataParallel

    if not dist.is_available():
        raise RuntimeError(f"{caller}: this build of torch has no torch.distributed.")
    device = resolve_device(model.device, caller=f"{type(model).__name__}.fit")
    if device.type == "cuda":
        index = device.index if device.index is not None else int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(index)
    elif device.type != "cpu":
        raise ValueError(
            f"{caller}: data-parallel training runs on the CPU (gloo) or on CUDA devices "
            f"(NCCL); got device={model.device!r} ({device.type}). Use 'cpu' or 'cuda'."
        )
    if not dist.is_initialized():
        missing = [
            k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ
        ]
        if missing:
            raise RuntimeError(
                f"{caller} found no torch.distributed process group and no torchrun "
                f"environment ({', '.join(missing)} unset): start the script with "
                "`torchrun --nproc-per-node=N script.py`, or call "
                "torch.distributed.init_process_group first."
            )
        use_nccl = device.type == "cuda" and dist.is_nccl_available()
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return DataParallel()


def _params_text(estimator: Any) -> str:
    """The parameters of ``estimator`` (of every step of a Pipeline) as text; RandomState
    instances, which differ between processes, left out."""
    if isinstance(estimator, Pipeline):
        return repr([(name, _params_text(step)) for name, step in estimator.steps])
    if not hasattr(estimator, "get_params"):
        return repr(estimator)
    params = estimator.get_params(deep=False)
    kept = sorted(
        (k, repr(v))
        for k, v in params.items()
        if not isinstance(v, np.random.RandomState | np.random.Generator)
    )
    return repr((type(estimator).__name__, kept))


def _digest(value: Any) -> str:
    """A digest of a matrix (or a tuple of them) to compare across ranks."""
    if isinstance(value, tuple):
        return repr(tuple(_digest(v) for v in value))
    try:
        csr = sp.csr_array(value)
    except (TypeError, ValueError):
        return repr(type(value))
    h = hashlib.sha256(repr((csr.shape, str(csr.dtype))).encode())
    csr = sp.csr_array(csr, copy=True)
    csr.sum_duplicates()
    for part in (csr.indptr, csr.indices, csr.data):
        h.update(np.ascontiguousarray(part).tobytes())
    return h.hexdigest()


def _validation_users(
    group: Any, model: Any, X: sp.csr_array, caller: str
) -> tuple[sp.csr_array, sp.csr_array | None]:
    """The model's own validation split, data-parallel: ``validation_fraction`` of every
    rank's users (those with at least 5 interactions) drawn on each rank from its shard and
    gathered in rank order, the same on every rank. Returns (training rows, validation
    users), or (X, None) when ``early_stopping="auto"`` finds fewer than 10 in all."""
    from .grouping import GroupedInteractions
    from .model_selection import MIN_SPLIT_INTERACTIONS, draw_validation_users
    from .models._neural import _MIN_AUTO_VALID_USERS  # the rule of one process, over all ranks

    membership = getattr(X, "membership", None)
    base = group.broadcast_int(check_random_state(model.random_state).randint(2**31 - 1))
    seed = np.random.SeedSequence([base, group.rank]).generate_state(1)[0]
    rows, _ = draw_validation_users(X, model.validation_fraction, np.random.RandomState(seed))
    n_valid = group.all_gather_int(rows.size)
    n_train = group.all_gather_int(X.shape[0] - rows.size)
    if model.early_stopping == "auto" and sum(n_valid) < _MIN_AUTO_VALID_USERS:
        return X, None
    if sum(n_valid) < 1 or min(n_train) < 1:
        raise ValueError(
            f"{caller}: validation_fraction={model.validation_fraction} of each rank's users "
            f"(validation users by rank: {n_valid}, among those with at least "
            f"{MIN_SPLIT_INTERACTIONS} interactions; training users left: {n_train}) leaves "
            "no validation user or a rank without training users; pass more users, X_valid, "
            "another validation_fraction or early_stopping=False."
        )
    keep = np.ones(X.shape[0], dtype=bool)
    keep[rows] = False
    valid = sp.csr_array(sp.vstack(group.all_gather_object(X[rows]), format="csr"))
    train = X[keep]
    if membership is not None:
        train = GroupedInteractions(train, membership=membership)
    return train, valid
