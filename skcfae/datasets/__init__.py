"""Data sets: loaders for public recommender benchmarks and synthetic generators.

The loaders read a local folder (``path=``) or a copy in the data home, downloading the
official archive with checksum verification when it is missing. They need only numpy, scipy,
scikit-learn and the standard library: torch is never imported here.
"""

from ._base import clear_data_home, get_data_home
from ._hetrec import load_delicious, load_lastfm
from ._movielens import load_movielens
from ._msd import load_msd, load_netflix
from ._synthetic import make_interactions

__all__ = [
    "clear_data_home",
    "get_data_home",
    "load_delicious",
    "load_lastfm",
    "load_movielens",
    "load_msd",
    "load_netflix",
    "make_interactions",
]
