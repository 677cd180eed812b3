"""EASE: embarrassingly shallow autoencoder, a closed-form item-item model (Steck 2019)."""

from __future__ import annotations

import logging
import time
from numbers import Real
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
from sklearn.base import BaseEstimator

from .._compat import Interval, _fit_context
from .._typing import InteractionMatrix
from ..base import RecommenderMixin

logger = logging.getLogger(__name__)

#: Users per dense block when XᵀX is accumulated with dense GEMMs.
_GRAM_BLOCK = 4096


def gram_matrix(X: sp.csr_array) -> np.ndarray:
    """Dense float64 ``XᵀX``, computed sparse or by dense blocks, whichever is cheaper.

    The sparse product costs about ``Σ_u nnz_u²`` multiply-adds at sparse speed; dense blocks
    cost ``n_users · n_items²`` at BLAS speed, measured ~300x faster per multiply-add here.
    On ml-1m XᵀX is 82% dense and the dense path wins (1.6 s vs 2.3 s);
    on large sparse catalogs (ML-20M) the sparse one. Dense blocks multiply in float32 and
    accumulate in float64.
    """
    n_users, n_items = X.shape
    nnz_row = np.diff(X.indptr).astype(np.float64)
    if float(nnz_row @ nnz_row) * 300 < float(n_users) * n_items * n_items:
        return np.asarray((X.T @ X).toarray(), dtype=np.float64)
    G = np.zeros((n_items, n_items), dtype=np.float64)
    for start in range(0, n_users, _GRAM_BLOCK):
        block = X[start : start + _GRAM_BLOCK].toarray()
        G += block.T @ block
    return G


class EASE(RecommenderMixin, BaseEstimator):
    """Closed-form linear item-item autoencoder with a zero diagonal.

    Solves ``min_B ||X - XB||²_F + λ||B||²_F`` subject to ``diag(B) = 0``
    (Steck, WWW 2019, Eq. 1-8; Le 2020 survey, §6): with
    ``P = (XᵀX + λI)⁻¹``, ``B = I - P · diagMat(1 / diag(P))``. The solve is in float64; the
    scores of a user x are ``x B``.

    Parameters
    ----------
    lam : float, default=500.0
        L2 regularisation λ (Steck used 500 on ML-20M, 1000 on Netflix, 200 on MSD; choose it
        on validation users for other data).

    Attributes
    ----------
    coef_ : ndarray of shape (n_items, n_items), float32
        The item-item weights B, zero on the diagonal.
    n_items_in_ : int
    n_features_in_ : int

    Notes
    -----
    Memory is O(n_items²): about 3.2 GB of float64 for 20,000 items.

    References
    ----------
    H. Steck. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019.

    Examples
    --------
    >>> from skcfae import EASE
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(200, 100, random_state=0)
    >>> EASE(lam=50.0).fit(X).recommend(X[:2], n=3).shape
    (2, 3)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "lam": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, lam: float = 500.0) -> None:
        self.lam = lam

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: InteractionMatrix, y: Any = None) -> EASE:
        """Compute B in closed form.

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
        tic = time.perf_counter()
        G = gram_matrix(X)
        G[np.diag_indices_from(G)] += self.lam
        P = scipy.linalg.inv(G, overwrite_a=True, check_finite=False)
        B = P / (-np.diag(P))
        B[np.diag_indices_from(B)] = 0.0
        self.coef_ = B.astype(np.float32)
        logger.debug("EASE fit on %s in %.2fs", X.shape, time.perf_counter() - tic)
        return self

    def _decision_function_batch(self, X: sp.csr_array, rows: slice) -> np.ndarray:
        return np.asarray(X @ self.coef_)
