"""The one place that touches scikit-learn private API.

Everything else in the package imports these names from here, so that a scikit-learn release
that moves one of them needs a change in this file only.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_params,
)

try:  # public in recent scikit-learn releases
    from sklearn.model_selection import BaseCrossValidator
except ImportError:  # pragma: no cover - older releases keep it private
    from sklearn.model_selection._split import BaseCrossValidator

__all__ = [
    "BaseCrossValidator",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "_fit_context",
    "validate_params",
]
