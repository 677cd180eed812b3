"""Warnings and errors raised by skcfae.

Hierarchy::

    UserWarning
    └── SkcfaeWarning
        ├── DeviceWarning        a requested device is missing; CPU is used instead
        └── ConvergenceWarning   (sklearn's, re-used) training stopped before converging
"""

from sklearn.exceptions import ConvergenceWarning, NotFittedError

__all__ = ["ConvergenceWarning", "DeviceWarning", "NotFittedError", "SkcfaeWarning"]


class SkcfaeWarning(UserWarning):
    """Base class of the warnings skcfae emits."""


class DeviceWarning(SkcfaeWarning):
    """The requested torch device is not available; the model falls back to the CPU."""
