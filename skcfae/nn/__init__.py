"""All torch code of skcfae: the training plan and loop, row sources, modules, losses, devices,
pickling."""

from ._device import resolve_device
from ._engine import (
    Phase,
    Plan,
    TrainConfig,
    TrainResult,
    TrainState,
    Validation,
    fit_loop,
    make_optimizer,
    run_epoch,
    train,
    train_step,
)
from ._rows import Batch, RowSource, SparseRows, fold_in_rows, item_rows, user_rows
from ._state import load_module, module_to_bytes

__all__ = [
    "Batch",
    "Phase",
    "Plan",
    "RowSource",
    "SparseRows",
    "TrainConfig",
    "TrainResult",
    "TrainState",
    "Validation",
    "fit_loop",
    "fold_in_rows",
    "item_rows",
    "load_module",
    "make_optimizer",
    "module_to_bytes",
    "resolve_device",
    "run_epoch",
    "train",
    "train_step",
    "user_rows",
]
