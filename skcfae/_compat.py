"""The one place that touches scikit-learn private API (STYLE.md §2)."""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

__all__ = ["Interval", "StrOptions", "_fit_context", "validate_params"]
