"""The recommenders. Each lives in its own private module."""

from ._ease import EASE
from ._multdae import MultDAE
from ._multvae import MultVAE
from ._popularity import Popularity

__all__ = ["EASE", "MultDAE", "MultVAE", "Popularity"]
