"""All torch code of skcfae: the shared training engine, modules, losses, devices, pickling."""

from ._device import resolve_device
from ._engine import Batch, SparseRows, TrainState, train
from ._state import load_module, module_to_bytes

__all__ = [
    "Batch",
    "SparseRows",
    "TrainState",
    "load_module",
    "module_to_bytes",
    "resolve_device",
    "train",
]
