"""Popularity: the most-consumed items first, the same list for everyone."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from .._compat import _fit_context
from .._typing import InteractionMatrix
from ..base import RecommenderMixin


class Popularity(RecommenderMixin, BaseEstimator):
    """Rank items by the number of training users who interacted with them.

    The non-personalised baseline (POP) of Khawar et al. (WWW 2020) and Li et al. (NCAE,
    arXiv:1712.09043). Ties are broken by the lower item index.

    Attributes
    ----------
    item_counts_ : ndarray of shape (n_items,)
        Number of training users with a stored positive entry for each item.
    n_items_in_ : int
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import Popularity
    >>> X = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1]])
    >>> Popularity().fit(X).recommend([[0, 0, 0]], n=2)
    array([[2, 0]])
    """

    _parameter_constraints: dict[str, list[Any]] = {}

    def __init__(self) -> None:
        pass

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: InteractionMatrix, y: Any = None) -> Popularity:
        """Count each item's users.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        X = self._validate_interactions(X, reset=True)
        self.item_counts_ = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float64)
        return self

    def _decision_function_batch(self, X: sp.csr_array, rows: slice) -> np.ndarray:
        return np.broadcast_to(self.item_counts_.astype(np.float32), X.shape)
