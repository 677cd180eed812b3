"""The one place that touches scikit-learn private API.

Everything else in the package imports these names from here, so that a scikit-learn release
that moves one of them needs a change in this file only.
"""

import functools
from collections.abc import Callable
from typing import Any

from sklearn.base import _fit_context as _sklearn_fit_context
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


def _fit_context(*, prefer_skip_nested_validation: bool) -> Callable[[Any], Any]:
    """scikit-learn's ``_fit_context`` (parameter validation once per fit), made atomic: if
    ``fit`` raises, or is interrupted (Ctrl-C is ``KeyboardInterrupt``), the estimator gets
    back the attributes it had before the call (its previous fit, or none), never a mix."""
    sklearn_context = _sklearn_fit_context(
        prefer_skip_nested_validation=prefer_skip_nested_validation
    )

    def decorator(fit: Callable[..., Any]) -> Callable[..., Any]:
        validated = sklearn_context(fit)

        @functools.wraps(fit)
        def atomic_fit(estimator: Any, *args: Any, **kwargs: Any) -> Any:
            before = dict(estimator.__dict__)
            try:
                return validated(estimator, *args, **kwargs)
            except BaseException:
                estimator.__dict__.clear()
                estimator.__dict__.update(before)
                raise

        return atomic_fit

    return decorator


__all__ = [
    "BaseCrossValidator",
    "Interval",
    "InvalidParameterError",
    "StrOptions",
    "_fit_context",
    "validate_params",
]
