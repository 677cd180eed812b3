"""skcfae: scikit-learn-compatible autoencoder recommenders for collaborative filtering.

Importing ``skcfae`` is light: the torch models load on first access, so ``skcfae.metrics``,
``skcfae.model_selection`` and ``skcfae.datasets`` work without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._persist import load as load
from ._persist import save as save
from .base import RecommenderMixin as RecommenderMixin
from .base import recommend as recommend

__version__ = "0.1.0.dev0"

_LAZY = {
    "ALSWR": "skcfae.models._alswr",
    "AutoRec": "skcfae.models._autorec",
    "BPR": "skcfae.models._bpr",
    "BiasedMF": "skcfae.models._biasedmf",
    "CDAE": "skcfae.models._cdae",
    "CFN": "skcfae.models._cfn",
    "DeepRec": "skcfae.models._deeprec",
    "EALS": "skcfae.models._eals",
    "EASE": "skcfae.models._ease",
    "FCDAE": "skcfae.models._fcdae",
    "ItemGrouper": "skcfae.grouping",
    "MultDAE": "skcfae.models._multdae",
    "MultVAE": "skcfae.models._multvae",
    "NCAE": "skcfae.models._ncae",
    "NCAEImplicit": "skcfae.models._ncae_implicit",
    "NCF": "skcfae.models._ncf",
    "Popularity": "skcfae.models._popularity",
    "SLIM": "skcfae.models._slim",
    "SVAE": "skcfae.models._svae",
    "SparseWideDAE": "skcfae.models._swdae",
    "WMF": "skcfae.models._wmf",
    "recommend_chunked": "skcfae._chunked",
}

__all__ = sorted(["RecommenderMixin", "__version__", "load", "recommend", "save", *_LAZY])


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'skcfae' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
