"""Utilities: discovery of the package's estimators (cf. ``sklearn.utils.discovery``)."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["all_estimators"]

_TYPES = ("ranking", "rating", "transformer", "neural")


def all_estimators(type_filter: str | list[str] | None = None) -> list[tuple[str, type]]:
    """The public estimators of skcfae, as ``(name, class)`` pairs sorted by name.

    Discovered from the public API (``skcfae.__all__``), so that a new model is listed, and
    tested by the common checks, as soon as it is exported.

    Parameters
    ----------
    type_filter : {"ranking", "rating", "transformer", "neural"} or list of them, default=None
        Keep only top-n recommenders for implicit feedback ("ranking"), rating-prediction
        models ("rating"), transformers (``ItemGrouper``) or torch models ("neural"); a list
        keeps the union. None keeps every estimator.

    Returns
    -------
    estimators : list of (str, type)

    Examples
    --------
    >>> from skcfae.utils import all_estimators
    >>> [name for name, _ in all_estimators("transformer")]
    ['ItemGrouper']
    """
    from sklearn.base import BaseEstimator, TransformerMixin

    from .base import RecommenderMixin

    package = importlib.import_module(__package__ or "skcfae")

    wanted = [type_filter] if isinstance(type_filter, str) else type_filter
    for kind in wanted or ():
        if kind not in _TYPES:
            raise ValueError(
                f"The 'type_filter' parameter of all_estimators must be one of {_TYPES} or a "
                f"list of them. Got {kind!r} instead."
            )

    def kinds(cls: Any) -> set[str]:
        out = set()
        if issubclass(cls, RecommenderMixin):
            out.add("ranking" if cls._implicit else "rating")
        if issubclass(cls, TransformerMixin):
            out.add("transformer")
        if any(c.__name__ == "NeuralRecommender" for c in cls.__mro__):  # no torch import
            out.add("neural")
        return out

    found = []
    for name in package.__all__:
        obj = getattr(package, name)
        if isinstance(obj, type) and issubclass(obj, BaseEstimator):
            if wanted is None or kinds(obj) & set(wanted):
                found.append((name, obj))
    return sorted(found)
