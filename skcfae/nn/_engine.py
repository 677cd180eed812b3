"""THE training loop shared by every neural model of skcfae.

A model describes its training as a :class:`Plan`: one frozen :class:`TrainConfig` built once
per fit, an optional named :class:`Validation` with a direction, and a list of
:class:`Phase` objects (name, module, row source, loss, epochs, whether validated). A phase
that depends on the result of an earlier one (pruning a trained network, stacking
pre-trained layers) is given as a factory ``trained -> Phase`` that receives the modules the
earlier phases trained, by name. :func:`train` runs the phases in order and stitches their
epochs into one ``history_`` with a ``phase`` field.

The loop itself has skorch's shape: :func:`fit_loop` (epochs, validation, early stopping
with a best-epoch checkpoint, progress) calls :func:`run_epoch` (shuffling with a seeded
generator, batches from the phase's row source) which calls :func:`train_step`
(zero_grad / loss / backward / step). Global torch RNGs are never touched.

A single-phase plan can be resumed: ``Plan.on_epoch`` receives after every epoch the complete
*loop state* (weights, optimiser state, the states of the shuffling and loss generators, the
epoch and update counts, the history, the learning-rate decays and the best epoch so far:
tensors, dicts, lists, numbers and strings only, loadable with
``torch.load(weights_only=True)``), and ``Plan.resume`` starts the loop from such a state,
so that an interrupted run continued from its last state gives bit for bit the run that was
never interrupted (on the same device).
:func:`_save_checkpoint` / :func:`_load_checkpoint` write and read one atomically.

Data-parallel (:func:`skcfae.distributed.fit_distributed`, on every rank of a
``torch.distributed`` group): the loop is the same on every rank, with rank 0's seeds and
initial weights, the same batches of the rows of all ranks (each rank computing its own rows
of each batch, :class:`~skcfae.nn._distributed.RowShard` in ``TrainState.shard``), the
gradients summed over the ranks before every ``optimizer.step`` (:func:`apply_update`), the
epoch loss summed and the validation score taken from rank 0; see
:mod:`skcfae.nn._distributed`. In one process nothing changes.

On the CPU the loop runs inside :func:`~skcfae.nn._allocator.reuse_freed_memory` (glibc
keeps the large per-step buffers for reuse instead of mapping fresh pages every step).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._progress import progress_line
from . import _distributed
from ._allocator import reuse_freed_memory
from ._distributed import RowShard
from ._rows import Batch, RowSource

__all__ = [
    "LossFn",
    "apply_update",
    "Phase",
    "Plan",
    "StepFn",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Validation",
    "fit_loop",
    "make_optimizer",
    "run_epoch",
    "train",
    "train_step",
]

logger = logging.getLogger(__name__)


@dataclass
class TrainState:
    """What a loss may need besides the batch: the seeded generator and the progress counts.

    ``shard`` is this rank's part of the rows in a data-parallel fit
    (:func:`skcfae.distributed.fit_distributed`), None in one process; ``steps_per_epoch``
    counts the updates of an epoch over the rows of all ranks.
    """

    generator: torch.Generator
    step: int = 0
    epoch: int = 0
    steps_per_epoch: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    shard: RowShard | None = None


LossFn = Callable[[nn.Module, Batch, TrainState], Tensor]
StepFn = Callable[[nn.Module, Batch, LossFn, torch.optim.Optimizer, TrainState], Tensor]
EpochHook = Callable[[nn.Module, dict[str, Any]], None]
ParamSelector = Callable[[nn.Module], list[tuple[str, nn.Parameter]]]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one fit, built once from the estimator's parameters.

    ``weight_decay`` is a coupled L2 on weight matrices (``wd/2 · ‖W‖²`` added to the loss);
    ``momentum`` is SGD's (ignored by the other optimisers);
    ``seed`` seeds the shuffling (``seed``) and the loss's generator (``seed + 1``);
    ``n_iter_no_change`` stops a validated phase after that many epochs without improvement;
    ``n_lr_decays``: the first that many times it runs out, the best epoch's weights are
    restored and the learning rate divided by 10 instead (:data:`LR_DECAY`), and training
    goes on; after the last division, for ``n_iter_no_change`` more epochs, at most
    :data:`AFTER_LAST_DECAY`.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    device: torch.device
    seed: int
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    n_iter_no_change: int | None = None
    n_lr_decays: int = 0
    verbose: int = 0
    desc: str = "fit"


@dataclass(frozen=True)
class Validation:
    """A named validation score computed after every epoch of a validated phase.

    ``score(module)`` runs in eval mode without gradients. It is written to ``history_`` as
    ``valid_<name>``; the best epoch (highest when ``greater_is_better``, else lowest) is
    restored at the end of the phase. NDCG@100 for ranking models, RMSE for rating models.
    ``label`` names it in the progress lines ("NDCG@100"); default ``name``.
    """

    name: str
    score: Callable[[nn.Module], float]
    greater_is_better: bool = True
    label: str | None = None

    @property
    def key(self) -> str:
        return f"valid_{self.name}"


@dataclass(frozen=True)
class Phase:
    """One stage of training: ``module`` learns from batches of ``rows`` under ``loss``.

    Attributes
    ----------
    name : str
        Written to every epoch record as ``phase`` when the plan has more than one phase.
    module : nn.Module
    rows : RowSource
    loss : callable ``(module, batch, state) -> scalar Tensor``
        Includes the model's corruption; randomness must come from ``state.generator``.
    epochs : int, optional
        Default: the config's.
    validate : bool, default=True
        Score each epoch with the plan's validation (if any) and keep the best epoch.
    parameters : callable ``module -> [(name, param)]``, optional
        The parameters to optimise (e.g. only a new user's vector during fold-in); default
        every parameter that requires a gradient.
    hooks : tuple of callables ``(module, record) -> None``
        Run after each epoch (eval mode, no grad) to add entries to its record.
    seed : int, optional
        Default: the config's.
    desc : str, optional
        Label of the progress bar and lines; default the config's, followed by the phase's
        name in a plan of several phases.
    step : callable ``(module, batch, loss, optimizer, state) -> Tensor``, optional
        Replaces :func:`train_step` for this phase, e.g. to make several updates per batch
        (DeepRec's dense re-feeding); returns the detached loss of the batch.
    """

    name: str
    module: nn.Module
    rows: RowSource
    loss: LossFn
    epochs: int | None = None
    validate: bool = True
    parameters: ParamSelector | None = None
    hooks: tuple[EpochHook, ...] = ()
    seed: int | None = None
    desc: str | None = None
    step: StepFn | None = None


PhaseFactory = Callable[[dict[str, nn.Module]], Phase]

#: Factor of the learning rate at each of the ``TrainConfig.n_lr_decays`` plateaus.
LR_DECAY = 0.1
#: Most epochs trained after the last decay: on small data ``n_iter_no_change`` is 19-50
#: epochs, but Sw-dae's default gained nothing after 7 of them (ml-100k, ml-latest-small,
#: lastfm-2k, 5 splits each: the same scores, 6-17% fewer epochs).
AFTER_LAST_DECAY = 10


@dataclass(frozen=True)
class Plan:
    """Everything :func:`train` needs: the config, the phases, the validation.

    ``resume`` and ``on_epoch`` need a plan of one phase (a :class:`Phase`, not a factory).
    ``resume`` is a loop state (``TrainResult.state`` or one given to ``on_epoch``) to
    continue from: its ``epoch`` epochs count towards the phase's epochs, its ``history``
    starts the new one; its optional entries ``module`` (weights), ``optimizer``, ``shuffle``
    and ``generator`` (generator states), ``step``, ``lr_decays`` (plateaus so far, which set
    the learning rate) and ``best`` (best-epoch tracking) replace the fresh ones.
    ``on_epoch(state)`` is called after every epoch with the complete loop state (CPU
    copies), e.g. to write a checkpoint.
    """

    config: TrainConfig
    phases: Sequence[Phase | PhaseFactory]
    validation: Validation | None = None
    resume: dict[str, Any] | None = None
    on_epoch: Callable[[dict[str, Any]], None] | None = None


@dataclass
class TrainResult:
    """The module of the last phase, the stitched history, and the best validated epoch."""

    module: nn.Module
    history: list[dict[str, Any]]
    best_epoch: int | None = None
    trained: dict[str, nn.Module] = field(default_factory=dict)
    #: The loop state after the last epoch of the last phase, without weights or best-epoch
    #: tracking (``epoch``, ``step``, ``optimizer``, ``shuffle``, ``generator``, ``history``):
    #: with the trained module, what continuing the training needs (``Plan.resume``).
    state: dict[str, Any] | None = None


_OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "rmsprop": torch.optim.RMSprop,
}


def _trainable(module: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in module.named_parameters() if p.requires_grad]


def make_optimizer(
    named: list[tuple[str, nn.Parameter]],
    name: str,
    learning_rate: float,
    weight_decay: float,
    momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """Optimizer over ``named`` parameters with L2 ``weight_decay`` on weight matrices only
    (biases are not penalised).

    Coupled L2 in the gradient equals adding ``weight_decay / 2 * ||W||²`` to the loss. Adam
    and SGD use torch's fused kernels on CPU and CUDA (one pass over each parameter: 4x
    faster than the default for-each Adam on a 20k-item decoder).
    """
    params = [p for _, p in named]
    # weight matrices, dense (2-D) or sparse (the connection values of skcfae.nn._sparse)
    is_weight = [p.ndim >= 2 or n.endswith("values") for n, p in named]
    weights = [p for p, w in zip(params, is_weight, strict=True) if w]
    others = [p for p, w in zip(params, is_weight, strict=True) if not w]
    groups: list[dict[str, Any]] = [
        {"params": weights, "weight_decay": weight_decay},
        {"params": others},
    ]
    groups = [g for g in groups if g["params"]]
    device = params[0].device.type if params else "cpu"
    fused = device in ("cpu", "cuda")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=learning_rate, momentum=momentum, fused=fused)
    if name == "adam":
        return torch.optim.Adam(groups, lr=learning_rate, fused=fused)
    return _OPTIMIZERS[name](groups, lr=learning_rate)


def train_step(
    module: nn.Module,
    batch: Batch,
    loss: LossFn,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
) -> Tensor:
    """One update on one batch; returns the detached loss."""
    return apply_update(optimizer, loss(module, batch, state), state)


def apply_update(optimizer: torch.optim.Optimizer, value: Tensor, state: TrainState) -> Tensor:
    """``zero_grad``, backward of the scalar ``value``, ``step``, one more update counted in
    ``state``; returns the detached value. A custom ``Phase.step`` making several updates per
    batch calls it once per update."""
    optimizer.zero_grad(set_to_none=True)
    value.backward()
    if state.shard is not None:  # data-parallel: the gradient of the global batch's mean loss
        state.shard.reduce_gradients(optimizer)
    optimizer.step()
    state.step += 1
    return value.detach()


def run_epoch(
    module: nn.Module,
    rows: RowSource,
    loss: LossFn,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    *,
    batch_size: int,
    shuffle: torch.Generator,
    device: torch.device,
    step: StepFn = train_step,
) -> float:
    """One pass over ``rows`` in a shuffled order; returns the mean loss per row."""
    module.train()
    if state.shard is not None:
        return _run_epoch_on_shard(module, rows, loss, optimizer, state, batch_size, shuffle, step)
    order = torch.randperm(rows.n_rows, generator=shuffle).to(device)
    total = torch.zeros((), device=device)
    for start in range(0, rows.n_rows, batch_size):
        batch = rows.batch(order[start : start + batch_size])
        total += step(module, batch, loss, optimizer, state) * batch.size
    return float(total) / rows.n_rows


def _run_epoch_on_shard(
    module: nn.Module,
    rows: RowSource,
    loss: LossFn,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    batch_size: int,
    shuffle: torch.Generator,
    step: StepFn,
) -> float:
    """:func:`run_epoch` on one rank of a data-parallel fit: the batches of one process's
    epoch over the rows of all ranks (the same permutation on every rank), each rank taking
    the rows of each batch that are in its shard; returns the mean loss of all ranks' rows.

    A rank with no row in a batch adds a zero gradient and steps with the others."""
    shard = state.shard
    assert shard is not None
    order = torch.randperm(shard.total, generator=shuffle)
    lo, hi = shard.offset, shard.offset + rows.n_rows
    total = torch.zeros((), device=shard.device)
    for start in range(0, shard.total, batch_size):
        chunk = order[start : start + batch_size]
        mine = chunk[(chunk >= lo) & (chunk < hi)] - lo
        shard.weight = mine.numel() / chunk.numel()
        if mine.numel() == 0:
            optimizer.zero_grad(set_to_none=True)
            shard.reduce_gradients(optimizer)
            optimizer.step()
            state.step += 1
            continue
        batch = rows.batch(mine.to(shard.device))
        total += step(module, batch, loss, optimizer, state) * batch.size
    return shard.group.sum_float(float(total)) / shard.total


def fit_loop(
    phase: Phase, config: TrainConfig, validation: Validation | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """Train ``phase.module`` in place for its epochs; return (history, best epoch).

    With a validation, each epoch is scored, the best epoch's weights are restored at the end
    and, when ``config.n_iter_no_change`` is set, training stops after that many epochs
    without improvement.
    """
    with reuse_freed_memory(config.device.type == "cpu"):
        history, best_epoch, _ = _fit_loop(phase, config, validation)
    return history, best_epoch


def _cpu(value: Any) -> Any:
    """A copy of ``value`` (nested dicts, lists and tuples of tensors) with CPU tensors."""
    if isinstance(value, Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_cpu(v) for v in value)
    return value


def _fit_loop(
    phase: Phase,
    config: TrainConfig,
    validation: Validation | None = None,
    resume: dict[str, Any] | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    *,
    desc: str | None = None,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int | None, dict[str, Any]]:
    """:func:`fit_loop`, started from the loop state ``resume`` when given (see
    :class:`Plan`), calling ``on_epoch`` with the complete loop state after every epoch;
    returns the final loop state (without weights or best-epoch tracking) as well.

    ``desc`` labels the bar and the progress lines (default ``phase.desc``, else the
    config's); ``offset`` is added to the epoch numbers those lines print, so that they match
    ``history_`` in a plan of several phases."""
    device = config.device
    seed = config.seed if phase.seed is None else phase.seed
    epochs = config.epochs if phase.epochs is None else phase.epochs
    module = phase.module.to(device)
    parallel = _distributed.current()
    shard = None
    if parallel is not None:  # data-parallel: the same start on every rank, rank 0's
        seed = parallel.broadcast_int(seed)
        parallel.broadcast_module(module, config.desc)
        config = replace(config, verbose=config.verbose if parallel.rank == 0 else 0)
        shard = parallel.shard(phase.rows.n_rows, seed + 1, device)
    n_rows = phase.rows.n_rows if shard is None else shard.total
    shuffle = torch.Generator().manual_seed(seed)
    state = TrainState(
        torch.Generator(device=device).manual_seed(seed + 1 if shard is None else shard.seed),
        steps_per_epoch=-(-n_rows // config.batch_size),
        shard=shard,
    )
    named = phase.parameters(module) if phase.parameters is not None else _trainable(module)
    opt = make_optimizer(
        named, config.optimizer, config.learning_rate, config.weight_decay, config.momentum
    )
    history: list[dict[str, Any]] = []
    sign = 1.0 if validation is None or validation.greater_is_better else -1.0
    best_score, best_epoch, best_state, since_best = -np.inf, None, None, 0
    decays, decayed_at = 0, 0  # learning-rate divisions so far, epoch of the last one
    start = 0
    if resume is not None:
        start = int(resume["epoch"])
        history = [dict(r) for r in resume.get("history", ())]
        state.step = int(resume.get("step", 0))
        if "module" in resume:
            module.load_state_dict(resume["module"])
        if "optimizer" in resume:
            # moments and step counts from the state; hyperparameters (lr, ...) from config
            fresh = [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]
            opt.load_state_dict(resume["optimizer"])
            for group, settings in zip(opt.param_groups, fresh, strict=True):
                group.update(settings)
        if "shuffle" in resume:
            shuffle.set_state(resume["shuffle"])
        if "generator" in resume:
            state.generator.set_state(resume["generator"])
        if resume.get("best") is not None:
            best = resume["best"]
            best_score, best_epoch = float(best["score"]), best["epoch"]
            best_state, since_best = best["state"], int(best["since"])
            if best_state is not None:
                best_state = {k: v.to(device) for k, v in best_state.items()}
        decays, decayed_at = int(resume.get("lr_decays", 0)), int(resume.get("lr_decayed_at", 0))
        for group in opt.param_groups:
            group["lr"] = config.learning_rate * LR_DECAY**decays

    def loop_state(full: bool) -> dict[str, Any]:
        snapshot: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.step,
            "optimizer": _cpu(opt.state_dict()),
            "shuffle": shuffle.get_state(),
            "generator": state.generator.get_state(),
            "history": [dict(r) for r in history],
            "lr_decays": decays,
            "lr_decayed_at": decayed_at,
        }
        if full:
            snapshot["module"] = _cpu(module.state_dict())
            snapshot["best"] = {
                "score": float(best_score),
                "epoch": best_epoch,
                "state": _cpu(best_state),
                "since": since_best,
            }
        return snapshot

    stop = config.n_iter_no_change

    def finished(epoch: int) -> bool:
        """Early stop after ``epoch``: a plateau with no decay left, or the epochs after the
        last decay run."""
        if validation is None or stop is None:
            return False
        last = (
            decays > 0
            and decays == config.n_lr_decays
            and epoch - decayed_at >= min(stop, AFTER_LAST_DECAY)
        )
        return since_best >= stop or last

    stopped = start > 0 and finished(start)
    state.epoch = start
    desc = desc or phase.desc or config.desc
    todo = range(start + 1, epochs + 1) if not stopped else range(0)
    # leave=True: the bar's last state (epochs run, latest metrics) stays on screen. Updated
    # by hand, not by iterating over it: a bar iterated over misses the epoch of a `break`.
    bar = tqdm(total=epochs, initial=start, desc=desc, disable=config.verbose != 1, leave=True)
    early_stop = stopped
    for epoch in todo:
        tic = time.perf_counter()
        state.epoch = epoch
        mean_loss = run_epoch(
            module,
            phase.rows,
            phase.loss,
            opt,
            state,
            batch_size=config.batch_size,
            shuffle=shuffle,
            device=device,
            step=phase.step or train_step,
        )
        if not np.isfinite(mean_loss):
            raise ValueError(
                f"{desc}: the training loss is {mean_loss} at epoch {epoch}. The learning rate "
                f"({config.learning_rate:g}) is probably too large for this data, or the input "
                "values too large (scale or binarize X); lower it and fit again."
            )
        record: dict[str, Any] = {"epoch": epoch, "train_loss": mean_loss}
        if config.n_lr_decays:
            record["learning_rate"] = opt.param_groups[0]["lr"]
        module.eval()
        with torch.no_grad():
            if validation is not None:
                if parallel is None:
                    score = float(validation.score(module))
                else:  # scored on rank 0, so that every rank makes the same decision
                    score = parallel.broadcast_float(
                        validation.score(module) if parallel.rank == 0 else 0.0
                    )
                record[validation.key] = score
                if sign * score > best_score:
                    best_score, best_epoch, since_best = sign * score, epoch, 0
                    best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    since_best += 1
            for hook in phase.hooks:
                hook(module, record)
            if (
                since_best == stop
                and decays < config.n_lr_decays
                and best_epoch is not None
                and best_state is not None
            ):
                # a plateau: from the best epoch on, at a tenth of the learning rate
                decays, decayed_at, since_best = decays + 1, epoch, 0
                module.load_state_dict(best_state)
                for group in opt.param_groups:
                    group["lr"] *= LR_DECAY
                progress_line(
                    config.verbose,
                    desc,
                    f"no improvement for {stop} epochs at epoch {epoch + offset}: back to the "
                    f"best epoch, {best_epoch + offset}, at learning rate "
                    f"{opt.param_groups[0]['lr']:.3g}",
                )
        record["dur"] = time.perf_counter() - tic
        history.append(record)
        if on_epoch is not None:
            on_epoch(loop_state(full=True))
        _report(bar, record, config.verbose)
        bar.update()
        if finished(epoch):
            logger.debug("early stop after epoch %d (best %.4f)", epoch, sign * best_score)
            early_stop = True
            break
    bar.close()
    if validation is not None and best_epoch is not None and history:
        _report_best(
            desc,
            validation,
            history[-1]["epoch"] + offset,
            best_epoch + offset,
            sign * best_score,
            stop if early_stop else None,
            config.verbose,
        )
    if validation is not None and len(history) == epochs and best_epoch is not None:
        _warn_if_improving(desc, validation.key, epochs, best_epoch, config.n_iter_no_change)
    final = loop_state(full=False)
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return history, best_epoch, final


def _save_checkpoint(path: str | os.PathLike[str], content: dict[str, Any]) -> None:
    """Write ``content`` (tensors, dicts, lists, numbers, strings) to ``path`` atomically: a
    temporary file in the same folder, flushed to disk, then renamed over ``path``."""
    path = os.fspath(path)
    tmp = os.path.join(
        os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.{os.getpid()}.tmp"
    )
    try:
        with open(tmp, "wb") as f:
            torch.save(content, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a file of :func:`_save_checkpoint` without running code from it
    (``torch.load(weights_only=True)``)."""
    try:
        content = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{os.fspath(path)!r} is not a skcfae checkpoint: {exc}") from exc
    if not isinstance(content, dict):
        raise ValueError(f"{os.fspath(path)!r} is not a skcfae checkpoint.")
    return content


def _report_best(
    desc: str,
    validation: Validation,
    last: int,
    best: int,
    score: float,
    patience: int | None,
    verbose: int,
) -> None:
    """The line that ends a validated phase at ``verbose >= 1``: where training stopped and
    why, and the best epoch (whose weights are kept) with its validation score. ``patience``
    is None when no early stop happened."""
    if patience is not None:
        how = f"stopped at epoch {last} (no improvement for {patience} epochs), "
    else:
        how = f"reached its last epoch, {last}, without an early stop; "
    label = validation.label or validation.name
    progress_line(verbose, desc, f"{how}best epoch {best} (validation {label} {score:.4g})")


def _warn_if_improving(desc: str, key: str, epochs: int, best: int, patience: int | None) -> None:
    """ConvergenceWarning when a validated phase ran all its epochs while still improving: its
    patience never ran out (without patience: the last epoch was the best)."""
    if epochs - best < (patience or 1):
        warnings.warn(
            f"{desc}: {key} was still improving when training reached its {epochs} epochs "
            f"(best epoch {best}); raise epochs or learning_rate for a better model.",
            ConvergenceWarning,
            stacklevel=4,
        )


def train(plan: Plan) -> TrainResult:
    """Run the phases of ``plan`` in order and stitch their histories.

    A factory in ``plan.phases`` is called with the modules trained so far (by phase name)
    and must return the :class:`Phase` to run. With more than one phase every record gets a
    ``phase`` field and epochs are numbered through the whole plan. ``best_epoch`` is that of
    the last validated phase (in the plan's numbering).
    """
    if (plan.resume is not None or plan.on_epoch is not None) and not (
        len(plan.phases) == 1 and isinstance(plan.phases[0], Phase)
    ):
        raise ValueError(
            f"{plan.config.desc}: only a training plan of one phase can be resumed or "
            f"checkpointed; this one has {len(plan.phases)} phase(s)."
        )
    trained: dict[str, nn.Module] = {}
    history: list[dict[str, Any]] = []
    best_epoch: int | None = None
    module: nn.Module | None = None
    final: dict[str, Any] | None = None
    several = len(plan.phases) > 1
    for item in plan.phases:
        phase = item if isinstance(item, Phase) else item(trained)
        validation = plan.validation if phase.validate else None
        offset = len(history)
        # one bar per phase, named by the phase
        desc = phase.desc or (f"{plan.config.desc} {phase.name}" if several else None)
        with reuse_freed_memory(plan.config.device.type == "cpu"):
            records, best, final = _fit_loop(
                phase,
                plan.config,
                validation,
                plan.resume,
                plan.on_epoch,
                desc=desc,
                offset=offset if several else 0,
            )
        if several:
            for record in records:
                record["phase"] = phase.name
                record["epoch"] += offset
        if validation is not None and best is not None:
            best_epoch = best + (offset if several else 0)
        history += records
        trained[phase.name] = module = phase.module
    if module is None:
        raise ValueError("a training plan needs at least one phase")
    return TrainResult(module, history, best_epoch, trained, final)


def _report(bar: Any, record: dict[str, Any], verbose: int) -> None:
    shown = {k: v for k, v in record.items() if k != "epoch"}
    if verbose == 1:
        bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
    elif verbose >= 2:
        parts = " ".join(f"{k}={v:.4g}" for k, v in shown.items())
        print(f"epoch {record['epoch']:4d} {parts}", flush=True)
