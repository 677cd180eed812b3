"""Warnings and errors raised by skcfae.

Hierarchy::

    UserWarning
    └── SkcfaeWarning
        ├── DeviceWarning        a requested device is missing; CPU is used instead
        ├── UnusedParameterWarning  a parameter was set but has no effect here
        └── ConvergenceWarning   (sklearn's, re-used) training stopped before converging
"""

from sklearn.exceptions import ConvergenceWarning, NotFittedError

__all__ = [
    "ConvergenceWarning",
    "DeviceWarning",
    "NotFittedError",
    "SkcfaeWarning",
    "UnusedParameterWarning",
]


class SkcfaeWarning(UserWarning):
    """Base class of the warnings skcfae emits."""


class DeviceWarning(SkcfaeWarning):
    """The requested torch device is not available; the model falls back to the CPU."""


class UnusedParameterWarning(SkcfaeWarning):
    """A parameter was set but has no effect in this context (e.g. SparseWideDAE's ``K``
    after an ItemGrouper, whose groups it uses instead)."""
