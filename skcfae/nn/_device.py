"""Device resolution: turn the user's ``device`` string into a ``torch.device``."""

from __future__ import annotations

import re

import torch

__all__ = ["resolve_device"]

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str, *, caller: str = "fit") -> torch.device:
    """Return the torch device for ``device`` ("auto", "cpu", "cuda", "cuda:N" or "mps").

    "auto" picks CUDA, then MPS, then the CPU. Asking explicitly for an accelerator that is not
    there is an error rather than a silent fallback, so that a GPU job never crawls on a CPU.
    """
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(
            f"The 'device' parameter of {caller} must be 'auto', 'cpu', 'cuda', 'cuda:N' or "
            f"'mps'. Got {device!r} instead."
        )
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"{caller} was asked for device={device!r} but torch sees no CUDA device "
                "(torch.cuda.is_available() is False). Use device='auto' or 'cpu'."
            )
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"{caller} was asked for device={device!r} but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist."
            )
    if device == "mps" and not _mps_available():
        raise ValueError(
            f"{caller} was asked for device='mps' but MPS is not available. Use 'auto' or 'cpu'."
        )
    return torch.device(device)
