"""Pickling of fitted torch modules as CPU state dicts (cf. skorch)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import torch
from torch import nn

from ..exceptions import DeviceWarning

__all__ = ["load_module", "module_to_bytes"]


def module_to_bytes(module: nn.Module) -> bytes:
    """Serialise the module's state dict, moved to the CPU (never the whole module)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buf)
    return buf.getvalue()


def _usable(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    if device.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        return bool(mps is not None and mps.is_available())
    return True


def load_module(
    blob: bytes, build: Callable[[], nn.Module], device: torch.device
) -> tuple[nn.Module, torch.device]:
    """Rebuild a module from :func:`module_to_bytes` output on ``device``, or on the CPU with a
    :class:`~skcfae.exceptions.DeviceWarning` when that device is missing here."""
    if not _usable(device):
        warnings.warn(
            f"The model was trained on {device}, which is not available here; it is loaded "
            "on the CPU instead.",
            DeviceWarning,
            stacklevel=3,
        )
        device = torch.device("cpu")
    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    module = build()
    module.load_state_dict(state)
    return module.to(device).eval(), device
