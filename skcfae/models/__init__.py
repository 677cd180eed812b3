"""The recommenders. Each lives in its own private module, loaded on first access.

The list of models is the one table ``skcfae._LAZY``: adding a model there makes it public
here and at the top level, and puts it under the package's common tests
(:func:`skcfae.utils.all_estimators`).
"""

from __future__ import annotations

import importlib
from typing import Any

from .. import _LAZY

_HELPERS = {
    "matching_width": "skcfae.models._swdae",
    "weight_diagnostics": "skcfae.models._wide",
}
_MODELS = {
    **{name: path for name, path in _LAZY.items() if path.startswith("skcfae.models.")},
    **_HELPERS,
}

__all__ = sorted(_MODELS)


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        return getattr(importlib.import_module(_MODELS[name]), name)
    raise AttributeError(f"module 'skcfae.models' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_MODELS])
