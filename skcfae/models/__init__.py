"""The recommenders. Each lives in its own private module."""

from ._ease import EASE
from ._fcdae import FCDAE
from ._multdae import MultDAE
from ._multvae import MultVAE
from ._popularity import Popularity
from ._swdae import SparseWideDAE, matching_width
from ._wide import weight_diagnostics

__all__ = [
    "EASE",
    "FCDAE",
    "MultDAE",
    "MultVAE",
    "Popularity",
    "SparseWideDAE",
    "matching_width",
    "weight_diagnostics",
]
