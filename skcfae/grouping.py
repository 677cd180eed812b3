"""Overlapping item groups from a spectral item embedding: the structure prior of Sw-dae.

:class:`ItemGrouper` implements Algorithms 1 and 2 of Khawar, Poon and Zhang, "Learning the
Structure of Auto-Encoding Recommenders" (WWW 2020, §3.1): embed the items in F dimensions
(the top eigenvectors of the normalised item-item co-occurrence matrix, or the scaled top
singular vectors of Xᵀ), cluster the embedded items into K centroids with k-means, and join
every item to its R nearest centroids. The result is a sparse item x group membership matrix
with R ones per row, which ``SparseWideDAE`` turns into the connectivity of its wide sparse
layer (§3.2).

This module imports numpy, scipy, joblib and scikit-learn only, never torch.
"""

from __future__ import annotations

import logging
import time
from numbers import Integral
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.csgraph as csgraph
import scipy.sparse.linalg as sla
from joblib import Memory
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, check_memory
from threadpoolctl import threadpool_limits

from ._compat import Interval, StrOptions, _fit_context
from ._progress import progress_line
from ._typing import InteractionMatrix, RandomState
from ._validation import check_has_interactions, check_interactions, check_n_items

__all__ = ["GroupedInteractions", "ItemGrouper", "auto_K"]

logger = logging.getLogger(__name__)

#: ``F="auto"`` embeds in min(K, this) dimensions: the paper's 50 (§4.3) for K >= 50.
_AUTO_F_MAX = 50

#: ``K="auto"`` takes at most this many groups (see :func:`auto_K`).
_AUTO_K_MAX = 2000


def auto_K(n_items: int) -> int:
    """The number of groups of ``K="auto"``: ``min(2000, 2 * n_items // 3)``, at least 1.

    Khawar et al. (WWW 2020, §4.3, §5.3 and Figure 5) searched K in multiples of 1000 and
    found Sw-dae better the wider it was. 2000 beat 1000 on the validation users of all 5
    ml-1m splits and tied on lastfm-2k; on ml-latest-small (488 training users) it lost on
    split 0, 0.364 vs 0.370 (``benchmarks/results/defaults.md``). The cap keeps a default
    fit on ml-1m under a minute on 2 cores (35 s; 71 s on a slower machine). Two thirds of
    the items leaves 1.5 items per k-means cluster on small catalogues, where K cannot exceed
    the items (ml-100k's 1,682 items: K = 1121).
    """
    return max(1, min(_AUTO_K_MAX, 2 * n_items // 3))


#: Up to this many items the embedding comes from a dense eigendecomposition of the
#: n_items x n_items matrix (exact, no ARPACK restriction F < n_items); above it, from ARPACK
#: on a matrix-free operator, unless F is a large fraction of the items.
_DENSE_MAX_ITEMS = 500

#: ARPACK residual tolerance. The operator multiplies in float32 (~1e-7 relative error), so
#: asking for float64 machine precision only adds iterations (235 instead of 191 products for
#: tol=1e-5 on ML-20M shape, same eigenvalues to 1e-8).
_ARPACK_TOL = 1e-6

#: Entries of the items x centroids distance block computed at once (32 MB of float64).
_ASSIGN_BLOCK = 1 << 22

#: k-means on fewer than this many item x centroid x dimension products runs single-threaded.
_SMALL_KMEANS = 1 << 24

#: "sum" normalisation leaves a row as it is when |row sum| <= this x its l1 norm.
_SUM_GUARD = 1e-6


# -- the embedding (Algorithm 1 steps 1-4, Algorithm 2 steps 1-4) ------------------------------
def _item_scaling(X: sp.csr_array, method: str) -> np.ndarray:
    """Column scaling s with ``(X diag(s))ᵀ(X diag(s))`` = Δ (laplacian) or XᵀX (svd).

    For the laplacian, ``s = D^-1/2`` with ``D_ii = Σ_j (XᵀX)_ij = (Xᵀ(X 1))_i`` (Eq. 1-2),
    computed from X without forming XᵀX. Items with no interaction have degree 0: their
    scaling is 0 rather than 1/0, so their rows and columns of Δ are zero.
    """
    n_items = X.shape[1]
    if method == "svd":
        return (np.bincount(X.indices, minlength=n_items) > 0).astype(np.float64)
    row_sums = np.asarray(X.sum(axis=1), dtype=np.float64).ravel()
    degree = np.asarray(X.T @ row_sums, dtype=np.float64).ravel()
    scale = np.zeros(n_items)
    positive = degree > 0
    scale[positive] = 1.0 / np.sqrt(degree[positive])
    return scale


def _unit_eigenvectors(X: sp.csr_array, scale: np.ndarray) -> sp.csr_array | None:
    """The eigenvectors of Δ for eigenvalue 1 when the co-occurrence graph is disconnected.

    Items are linked when a user shares them. On each connected component c of that graph
    (items with interactions only) ``Δ D^1/2 1_c = D^1/2 1_c``, so eigenvalue 1, the
    largest, has one eigenvector per component: column c is ``D^1/2 1_c`` of unit length,
    components by decreasing total degree. Lanczos from one start vector finds only one
    vector per distinct eigenvalue in exact arithmetic, and ARPACK missed 9 to 10 of them
    on 32 planted disjoint blocks (``benchmarks/results/grouping_F.md``): they are given to
    it instead. None when the graph is connected (the usual case for real data).
    """
    n_users, n_items = X.shape
    # The user-item graph with an edge per interaction, each stored once (user -> item):
    # undirected components need no transpose (0.25 s on ML-20M shape, ARPACK 7 s).
    n = n_users + n_items
    indptr = np.concatenate([X.indptr, np.full(n_items, X.nnz, dtype=X.indptr.dtype)])
    graph = sp.csr_array((np.ones(X.nnz, dtype=np.int8), X.indices + n_users, indptr), (n, n))
    _, labels = csgraph.connected_components(graph, directed=False)
    items = np.flatnonzero(scale > 0)
    components, comp = np.unique(labels[n_users + items], return_inverse=True)
    if components.size <= 1:
        return None
    degree = 1.0 / scale[items] ** 2
    total = np.bincount(comp, weights=degree)
    rank = np.empty(components.size, dtype=np.int64)
    rank[np.argsort(-total, kind="stable")] = np.arange(components.size)
    return sp.csr_array(
        (np.sqrt(degree / total[comp]), (items, rank[comp])), shape=(n_items, components.size)
    )


def _top_eigenpairs(
    X: sp.csr_array,
    scale: np.ndarray,
    n_components: int,
    seed: int,
    solver: str,
    known: sp.csr_array | None = None,
    *,
    verbose: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Top eigenpairs of ``M = AᵀA`` with ``A = X diag(scale)``, largest eigenvalue first.

    ``solver="dense"`` forms M (n_items²) and calls LAPACK ``eigh``; ``"arpack"`` runs
    Lanczos (``scipy.sparse.linalg.eigsh``) on the matrix-free operator
    ``v -> Aᵀ(A v)``: two sparse products of cost nnz(X) each, never M itself. M is the
    Laplacian Δ of Eq. 1 (Algorithm 1) or XᵀX, whose eigenvectors are the left singular
    vectors of Xᵀ (Algorithm 2, §3.1.3). ``known`` (arpack only): orthonormal top
    eigenvectors of M with eigenvalue 1 (:func:`_unit_eigenvectors`), taken as they are;
    Lanczos runs on M deflated of them for the others. When there are more of them than
    ``n_components``, any ``n_components`` orthonormal combinations are top eigenvectors:
    fixed random ones (seeded by ``seed``), so that every component still has its own
    direction (the first ``n_components`` alone would put the other components at 0).
    ``verbose >= 1`` reports the solver, F and the time on stderr.
    """
    n_items = X.shape[1]
    n_known = 0 if known is None else known.shape[1]
    tic = time.perf_counter()
    if solver == "dense":
        A64 = X.astype(np.float64, copy=True)
        A64.data *= scale[A64.indices]
        M_sparse = A64.T @ A64
        nonzeros = M_sparse.nnz
        M = np.asarray(M_sparse.toarray(), dtype=np.float64)
        del M_sparse
        progress_line(
            verbose,
            "ItemGrouper",
            f"co-occurrence matrix formed: {n_items:,} x {n_items:,}, {nonzeros:,} nonzeros",
            time.perf_counter() - tic,
        )
        tic = time.perf_counter()
        lo = n_items - n_components
        with threadpool_limits(1, user_api="blas"):
            values, vectors = scipy.linalg.eigh(M, subset_by_index=[lo, n_items - 1])
        how = f"LAPACK eigh of the dense {n_items:,} x {n_items:,} matrix"
    elif known is not None and n_known >= n_components:
        values, vectors = np.ones(n_components), known.toarray()
        if n_known > n_components:
            rotation = np.random.RandomState(seed).standard_normal((n_known, n_components))
            vectors = np.asarray(known @ np.linalg.qr(rotation)[0])
        how = f"none: the top F are the {n_known:,} component eigenvectors (eigenvalue 1)"
    else:
        A = X.astype(np.float32, copy=True)
        A.data *= scale[A.indices].astype(np.float32)
        At = sp.csr_array(A.T)
        U = sp.csr_array((n_items, 0)) if known is None else known
        Ut = sp.csr_array(U.T)

        def deflate(v: np.ndarray) -> np.ndarray:
            return v if n_known == 0 else v - U @ (Ut @ v)

        products = [0]

        def matvec(v: np.ndarray) -> np.ndarray:
            products[0] += 1
            v32 = np.asarray(deflate(np.ravel(v)), dtype=np.float32)
            return deflate(np.asarray(At @ (A @ v32), dtype=np.float64))

        op = sla.LinearOperator((n_items, n_items), matvec=matvec, dtype=np.float64)
        v0 = deflate(np.random.RandomState(seed).uniform(-1.0, 1.0, n_items))
        # ARPACK's many level-2 BLAS calls on n_items-long vectors slow down several-fold
        # with more than one BLAS thread (measured 18 s vs 7 s on ML-20M shape, 2 cores).
        with threadpool_limits(1, user_api="blas"):
            values, vectors = sla.eigsh(
                op, k=n_components - n_known, which="LA", v0=v0, tol=_ARPACK_TOL
            )
        if n_known:
            values = np.concatenate([np.ones(n_known), values])
            vectors = np.hstack([U.toarray(), vectors])
        how = f"ARPACK eigsh (Lanczos) on the matrix-free operator, {products[0]} products"
        if n_known:
            how += f", {n_known} component eigenvectors given"
    progress_line(
        verbose, "ItemGrouper", f"eigensolver: {how}; F={n_components}", time.perf_counter() - tic
    )
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    # Eigenvectors are defined up to sign: make the largest |entry| of each positive
    # (the rule of sklearn's svd_flip), so that a fit does not depend on the solver's sign.
    pivot = np.argmax(np.abs(vectors), axis=0)
    vectors *= np.sign(vectors[pivot, np.arange(vectors.shape[1])])
    return values, vectors


def _normalize_rows(P: np.ndarray, normalize: str | None) -> np.ndarray:
    """Row normalisation of Algorithm 1 step 4 / Algorithm 2 step 4 (see ItemGrouper Notes)."""
    if normalize is None:
        return P
    if normalize == "l2":
        norms = np.linalg.norm(P, axis=1)
        norms[norms == 0] = 1.0
        return P / norms[:, None]
    sums = P.sum(axis=1)
    ok = np.abs(sums) > _SUM_GUARD * np.abs(P).sum(axis=1)
    out = P.copy()
    out[ok] /= sums[ok, None]
    return out


def _choose_solver(n_items: int, n_components: int) -> str:
    if n_items <= _DENSE_MAX_ITEMS or 4 * n_components >= n_items:
        return "dense"
    return "arpack"


def _spectral_embedding(
    X: sp.csr_array,
    n_components: int,
    *,
    method: str = "laplacian",
    normalize: str | None = "l2",
    seed: int = 0,
    solver: str = "auto",
    verbose: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Item embedding of Algorithm 1 (laplacian) or 2 (svd), rows normalised.

    Returns ``(embedding, eigenvalues)``: ``embedding`` of shape (n_items, n_components),
    float64, rows of items without interactions all zero; ``eigenvalues`` of Δ or XᵀX
    (the squared singular values of X), largest first. ``verbose >= 1`` reports the
    co-occurrence step and the eigensolver on stderr.
    """
    if solver == "auto":
        solver = _choose_solver(X.shape[1], n_components)
    tic = time.perf_counter()
    scale = _item_scaling(X, method)
    # Lanczos misses copies of a repeated eigenvalue: eigenvalue 1 of Δ is repeated once per
    # connected component, so those eigenvectors are given to it. (LAPACK finds them all.)
    known = _unit_eigenvectors(X, scale) if method == "laplacian" and solver == "arpack" else None
    if verbose >= 1:  # ASCII only: stderr may not encode more
        what = "Laplacian D^-1/2 X^T X D^-1/2" if method == "laplacian" else "X^T X"
        line = (
            f"co-occurrence {what}: item scaling of {X.shape[1]:,} items from the {X.nnz:,} "
            f"nonzeros of X ({X.shape[0]:,} users)"
        )
        if solver != "dense":
            line += ", the matrix applied matrix-free (never formed)"
        if known is not None:
            line += f", {known.shape[1]:,} connected components"
        progress_line(verbose, "ItemGrouper", line, time.perf_counter() - tic)
    values, vectors = _top_eigenpairs(X, scale, n_components, seed, solver, known, verbose=verbose)
    if method == "svd":
        # P = U_F Σ_F with Σ_F = sqrt of the eigenvalues of XᵀX (Algorithm 2, step 3).
        vectors = vectors * np.sqrt(np.clip(values, 0.0, None))
    # Eigenvectors beyond the rank of X may put arbitrary weight on items with no
    # interaction; their embedding is defined as zero.
    vectors[scale == 0] = 0.0
    return _normalize_rows(vectors, normalize), values


def _cached_spectral_embedding(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    shape: tuple[int, int],
    n_components: int,
    method: str,
    normalize: str | None,
    verbose: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_spectral_embedding` of the CSR matrix ``(data, indices, indptr)``.

    The function that ``ItemGrouper(memory=...)`` caches. It takes the CSR arrays rather than
    the matrix, so that joblib's hash of the arguments depends on the interactions alone, not
    on the flags scipy keeps on a matrix object. The Lanczos start vector and the signs are
    fixed, so the result does not depend on ``random_state``: a search over K, R and the seed
    shares one embedding per training set. ``verbose`` is not part of the cache key.
    """
    X = sp.csr_array((data, indices, indptr), shape=shape)
    return _spectral_embedding(
        X, n_components, method=method, normalize=normalize, seed=0, verbose=verbose
    )


# -- grouping (Algorithm 1 steps 5-6) ---------------------------------------------------------
def _nearest_centroids(
    E: np.ndarray, centroids: np.ndarray, R: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """The R nearest centroids of every row of E, by squared Euclidean distance, in blocks.

    Returns ``(nearest, labels, inertia)``: ``nearest`` (n_items, R) int32 sorted ascending,
    ``labels`` the single nearest centroid of each item, ``inertia`` the sum of squared
    distances to it. Never holds more than ``_ASSIGN_BLOCK`` distances at once.
    """
    n, K = E.shape[0], centroids.shape[0]
    nearest = np.empty((n, R), dtype=np.int32)
    labels = np.empty(n, dtype=np.int64)
    inertia = 0.0
    c_sq = np.einsum("ij,ij->i", centroids, centroids)
    step = max(1, _ASSIGN_BLOCK // K)
    for start in range(0, n, step):
        block = E[start : start + step]
        d = block @ centroids.T
        d *= -2.0
        d += c_sq
        d += np.einsum("ij,ij->i", block, block)[:, None]
        np.maximum(d, 0.0, out=d)
        if R == K:
            chosen = np.broadcast_to(np.arange(K), d.shape)
        else:
            chosen = np.argpartition(d, R - 1, axis=1)[:, :R]
        chosen = np.sort(chosen, axis=1)
        nearest[start : start + step] = chosen
        # The label is taken among the R chosen, so that it is one of them even under ties.
        d_chosen = np.take_along_axis(d, chosen, axis=1)
        best = np.argmin(d_chosen, axis=1)
        labels[start : start + step] = chosen[np.arange(chosen.shape[0]), best]
        inertia += float(d_chosen[np.arange(chosen.shape[0]), best].sum())
    return nearest, labels, inertia


def _membership_matrix(nearest: np.ndarray, K: int) -> sp.csr_array:
    n, R = nearest.shape
    index_dtype = np.int32 if n * R < 2**31 else np.int64
    return sp.csr_array(
        (
            np.ones(n * R, dtype=np.float32),
            nearest.ravel().astype(index_dtype, copy=False),
            np.arange(0, n * R + 1, R, dtype=index_dtype),
        ),
        shape=(n, K),
    )


class GroupedInteractions(sp.csr_array):
    """Interactions (CSR float32) that carry the item groups learned by :class:`ItemGrouper`.

    A plain :class:`scipy.sparse.csr_array` in every respect, plus the attribute
    ``membership``: the grouper's ``membership_`` (n_items x K, R ones per row). It is what
    :meth:`ItemGrouper.transform` returns, so that the next step of a Pipeline
    (``SparseWideDAE``) can read ``getattr(X, "membership", None)`` and build its
    connectivity from the learned groups.

    Parameters
    ----------
    arg1 : sparse matrix, array-like or tuple
        Anything :class:`scipy.sparse.csr_array` accepts.
    shape, dtype, copy
        As for :class:`scipy.sparse.csr_array`.
    membership : csr_array of shape (n_items, K) or None, default=None
        The item groups; None when unknown.

    Notes
    -----
    Read ``membership`` before any operation that builds a new matrix: slicing, arithmetic
    and ``astype`` return matrices whose ``membership`` is None (scipy builds them through
    the class constructor); :meth:`copy` keeps it.
    """

    def __init__(
        self,
        arg1: Any,
        shape: tuple[int, int] | None = None,
        dtype: Any = None,
        copy: bool = False,
        *,
        membership: sp.csr_array | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(arg1, shape=shape, dtype=dtype, copy=copy, **kwargs)
        self.membership = membership

    def copy(self) -> GroupedInteractions:
        """Copy of the interactions, sharing the same ``membership``."""
        out = super().copy()
        out.membership = self.membership
        return out  # type: ignore[no-any-return]


class ItemGrouper(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Learn K overlapping item groups from implicit feedback (Sw-dae structure learning).

    Follows Khawar, Poon and Zhang (WWW 2020, §3.1): embed each item as a row of the top
    ``F`` eigenvectors of the normalised co-occurrence matrix ``Δ = D^-1/2 XᵀX D^-1/2``
    (Eq. 1-3, Algorithm 1, ``method="laplacian"``) or of ``P = U_F Σ_F`` from the truncated
    SVD of Xᵀ (Algorithm 2, ``method="svd"``); normalise the rows; run k-means with ``K``
    centroids on the items; join each item to its ``R`` nearest centroids (``R < K``). Item
    ``i`` belongs to group ``k`` when ``membership_[i, k] == 1``.

    The values of X are used as given: counts weigh co-occurrences (``Y = XᵀX``); binarize X
    first for the paper's 0/1 feedback.

    ``transform`` returns X unchanged but as a :class:`GroupedInteractions`, which carries
    ``membership_`` to the next step of a Pipeline (``SparseWideDAE``).

    Parameters
    ----------
    K : int or "auto", default="auto"
        Number of groups (k-means centroids); at most the number of items. The paper searched
        multiples of 1000 (§4.3). ``"auto"`` is ``min(2000, 2 * n_items // 3)``
        (:func:`auto_K`); ``K_`` holds the value used.

        .. versionchanged:: 0.1
           Default "auto" instead of 1000 (see :class:`~skcfae.SparseWideDAE`, Notes).
    R : int or None, default=None
        Number of groups per item (degree of overlap), ``1 <= R <= K``. None means
        ``max(1, round(K / 10))`` (rounding half up), the 10% sparsity used throughout the
        paper (§4.3, Figure 6). ``R == K`` puts every item in every group, the fully
        connected end of the paper's sparsity sweep.
    F : int or "auto", default="auto"
        Dimension of the item embedding (number of eigenvectors). ``"auto"`` means
        ``min(50, K)``: the paper's 50 (§4.3) when K >= 50, K eigenvectors for K groups
        below, as in Ng, Jordan and Weiss (see Notes). Clamped to the number of items;
        ``F_`` holds the value used.

        .. versionchanged:: 0.1.0
           The default changed from 50 to ``"auto"``: with K < 50, F = 50 failed to recover
           planted groups with ``method="laplacian"`` (see Notes). Nothing changes for
           K >= 50.
    method : {"laplacian", "svd"}, default="laplacian"
        ``"laplacian"``: Algorithm 1, eigenvectors of Δ; discounts popular items and was
        the more accurate in the paper (§5.7, Table 6). ``"svd"``: Algorithm 2, scaled left
        singular vectors of Xᵀ.
    normalize : {"l2", "sum"} or None, default="l2"
        Row normalisation of the embedding before k-means (Algorithm 1 step 4). ``"l2"``:
        unit Euclidean length, as in Ng, Jordan and Weiss, the reference [20] the paper
        follows. ``"sum"``: divide each row by its sum, the paper's literal wording; rows
        whose sum is (nearly) zero are left as they are. None: no normalisation. See Notes.
    kmeans : {"full", "minibatch"}, default="full"
        ``"full"``: :class:`sklearn.cluster.KMeans` (greedy k-means++ init, Lloyd).
        ``"minibatch"``: :class:`sklearn.cluster.MiniBatchKMeans`. See Notes for timings.
    n_init : int, default=1
        Number of k-means runs with different seeds; the best inertia is kept.
    max_iter : int, default=100
        Maximum number of k-means iterations (passes over the items for ``"minibatch"``).
    memory : str, joblib.Memory or None, default=None
        Caches the spectral embedding, as ``memory`` of :class:`sklearn.pipeline.Pipeline`
        does: None caches nothing, a str is the path of a joblib cache directory, or a
        :class:`joblib.Memory`. The embedding depends on X, F, method and normalize only, so
        the fits of a search over K, R or random_state on one training set compute it once,
        also in the ``n_jobs`` worker processes of a search (see Notes).

        .. versionadded:: 0.1.0
    random_state : int, RandomState instance or None, default=None
        Seeds k-means; an int gives identical groups on every fit. The spectral embedding
        does not depend on it (fixed Lanczos start vector).
    verbose : int, default=0
        0 prints nothing; 1 or more prints one line per step of ``fit`` to stderr, with its
        time in seconds: the co-occurrence matrix (items, nonzeros of X), the eigensolver
        (which one, F), k-means (K, iterations, inertia) and the R-per-item membership (or
        that the embedding was loaded from ``memory``).

        .. versionadded:: 0.1

    Attributes
    ----------
    membership_ : scipy.sparse.csr_array of shape ``(n_items, K_)``, float32
        1.0 where an item belongs to a group; exactly ``R_`` ones per row, column indices
        sorted.
    embedding_ : ndarray of shape ``(n_items, F_)``
        The normalised item embedding that k-means clustered; zero rows for items without
        any interaction.
    eigenvalues_ : ndarray of shape ``(F_,)``
        Top eigenvalues of Δ (laplacian) or of XᵀX (svd: the squared singular values of
        X), largest first.
    centroids_ : ndarray of shape ``(K_, F_)``
        The k-means centroids.
    labels_ : ndarray of shape (n_items,)
        Nearest centroid of each item (its k-means cluster).
    inertia_ : float
        Sum of squared distances of the items to their nearest centroid.
    n_iter_ : int
        Iterations of the kept k-means run (passes over the items for ``"minibatch"``).
    K_ : int
        The number of groups used (``K``, or :func:`auto_K` of the items for ``"auto"``).
    R_ : int
        The number of groups per item used (``R``, or its default from ``K_``).
    F_ : int
        The embedding dimension used: ``F``, or ``min(50, K)`` for ``"auto"``, at most the
        number of items.
    embedding_cached_ : bool
        Whether this fit loaded the embedding from ``memory`` instead of computing it (as
        ``check_call_in_cache`` of joblib saw it just before the call); always False with
        ``memory=None``.
    timings_ : dict of str to float
        Seconds spent by this fit in ``"spectrum"`` (embedding, or loading it from memory),
        ``"kmeans"`` and ``"assign"`` (R nearest centroids), as in the paper's Table 6.
    n_items_in_ : int
        Number of items (columns of X) seen in fit.
    n_features_in_ : int
        Same as ``n_items_in_``, for scikit-learn.

    See Also
    --------
    sklearn.cluster.SpectralClustering : the non-overlapping relative of Algorithm 1.
    sklearn.decomposition.TruncatedSVD : the projection of Algorithm 2.

    Notes
    -----
    *Row normalisation.* Algorithm 1 says "normalize each row so that the sum is 1" citing
    Ng, Jordan and Weiss [20], whose algorithm divides each row by its Euclidean norm.
    Eigenvector rows have entries of both signs, so their sums can be arbitrarily close to
    zero and dividing by them flings such items far from every other item; the sign of an
    eigenvector (which no solver fixes) even changes which items are affected. ``"l2"``
    (the default) follows [20]: it maps items onto the unit sphere, where k-means compares
    directions. On planted groups (``tests/test_grouping.py``,
    ``benchmarks/results/grouping.md``) ``"l2"`` recovers them at least as well as the
    alternatives, and ``"sum"`` worst.

    *Eigen-solver.* For Algorithm 1 the top F eigenvectors of Δ are the top right singular
    vectors of ``X D^-1/2``, so Δ is never formed: ARPACK's Lanczos (``eigsh``) runs on the
    operator ``v -> D^-1/2 Xᵀ(X (D^-1/2 v))`` (two float32 sparse products of cost nnz(X));
    the degrees are ``D = Xᵀ(X 1)``. Algorithm 2 uses the same code with ``D = I``. On
    ML-20M-shaped data (10M interactions) forming XᵀX would cost Σ nnz_u² = 1.6e9
    multiply-adds and hold hundreds of millions of non-zeros, while the operator costs 2e7
    per product. There ARPACK took 7 s for F = 50, PROPACK's bidiagonalisation
    (``svds(solver="propack")``) 4x longer for the same vectors, and randomized SVD (4 to
    10 power iterations) was no faster and far from the top eigenvectors on the flat
    spectrum of Δ (``benchmarks/results/grouping.md``). BLAS runs single-threaded around
    ARPACK, k-means++ and the assignment, which were 1.3x to 8x slower with two BLAS
    threads on two cores. Up to 500 items, or when
    ``4 F >= n_items``, a dense ``eigh`` of the n_items x n_items matrix is used instead
    (on ml-1m's 3,706 items ARPACK takes 0.35 s, the dense route 6 s).

    *k-means.* The paper found k-means the slow step (Table 6: 529 of 684 s on ML-20M).
    With F = 50 and single-threaded BLAS during its init, full k-means (greedy k-means++,
    Lloyd) takes 3 s on ML-20M shape for K = 1000, and mini-batch k-means is no faster
    and 9% worse in inertia; for K = 15000 full k-means takes 29-50 s (k-means++ dominates)
    against 27-35 s for mini-batch, whose inertia is 4x-7x worse. Both recover planted
    groups equally (``benchmarks/results/grouping.md``). Hence ``kmeans="full"``.

    *Items without interactions* have degree 0; their rows of Δ are defined as zero (no
    division by zero), their embedding is zero and they still join the R centroids nearest
    to the origin.

    *Embedding dimension.* The paper embeds in F = 50 dimensions with K in the thousands
    (§4.3). With K < 50 most of those eigenvectors of Δ describe structure inside the groups,
    and after row normalisation they weigh as much as the K that separate them: on 8 planted
    disjoint blocks of 25 items, Algorithm 1 with F = 50 found them with an adjusted Rand
    index (ARI) of 0.51 (0.40 on average over 3 seeds), Algorithm 2, which weighs the
    directions by Σ, with 1.0. ``F="auto"``, ``min(50, K)``, gave ARI 1.0 on such blocks for
    K = 4 to 64 with Algorithm 1 (0.99 to 1.0 with Algorithm 2), and 0.995 to 1.0 on
    ``make_interactions`` data with 1 group per item for K = 4 to 32 (0.96 at K = 64,
    Algorithm 1), where F = 50 gave 0.05 to 0.90. Weighting the 50 eigenvectors by a power
    of their eigenvalue instead fixed the clean blocks but not the generated data (ARI 0.48
    to 0.87 at K = 4). For K >= 50 ``"auto"`` is the paper's F = 50, so its results there
    (K = 1000 on ml-1m: same ``membership_`` as F = 50) are unchanged
    (``benchmarks/results/grouping_F.md``).

    *Disconnected data.* When no user links two sets of items, the co-occurrence graph has
    several components and the top eigenvalue of Δ, 1, is repeated once per component.
    Lanczos finds only some copies of a repeated eigenvalue (ARPACK found 22 or 23 of 32 on
    32 disjoint blocks, ARI 0.91 to 0.92), so the solver takes these eigenvectors,
    ``D^1/2 1_c`` for each component c, as known and runs ARPACK on Δ deflated of them;
    with more components than F, it takes F fixed random orthonormal combinations of them.
    Finding the components costs 0.25 s on ML-20M shape.

    *Caching.* The embedding does not depend on K, R or random_state (a fixed Lanczos start
    vector, signs fixed), so with ``memory`` set, every fit on the same training set after
    the first loads it from the joblib cache instead of solving the eigenproblem: a
    :class:`~sklearn.model_selection.GridSearchCV` over K and R computes it once per CV
    fold, also with ``n_jobs > 1``, whose workers share the cache directory (two workers
    that start the same fold at the same moment may both compute it). Loading took 0.03 s
    on ml-1m (computing 0.34 s) and 0.26 s on ML-20M shape (computing 4.7 s; hashing and
    storing added 0.4 s to that first fit). Entries stay in the directory until it is
    removed or cleared (``joblib.Memory(path).clear()``).

    References
    ----------
    F. Khawar, L. K. M. Poon and N. L. Zhang. Learning the Structure of Auto-Encoding
    Recommenders. WWW 2020, doi:10.1145/3366423.3380135 (§3.1, Eq. 1-3, Algorithms 1 and 2;
    §4.3; §5.7, Table 6).

    A. Y. Ng, M. I. Jordan and Y. Weiss. On Spectral Clustering: Analysis and an Algorithm.
    NIPS 2001.

    Examples
    --------
    >>> from skcfae.datasets import make_interactions
    >>> from skcfae.grouping import ItemGrouper
    >>> X = make_interactions(300, 60, n_groups=6, random_state=0)
    >>> grouper = ItemGrouper(K=6, R=2, random_state=0).fit(X)
    >>> grouper.membership_.shape
    (60, 6)
    >>> grouper.F_
    6
    >>> grouper.membership_.sum(axis=1).min()
    np.float32(2.0)
    >>> Xt = grouper.transform(X)
    >>> Xt.membership is grouper.membership_
    True
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "K": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "R": [Interval(Integral, 1, None, closed="left"), None],
        "F": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "method": [StrOptions({"laplacian", "svd"})],
        "normalize": [StrOptions({"l2", "sum"}), None],
        "kmeans": [StrOptions({"full", "minibatch"})],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "memory": [None, str, Memory],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        K: int | str = "auto",
        *,
        R: int | None = None,
        F: int | str = "auto",
        method: str = "laplacian",
        normalize: str | None = "l2",
        kmeans: str = "full",
        n_init: int = 1,
        max_iter: int = 100,
        memory: str | Memory | None = None,
        random_state: RandomState = None,
        verbose: int = 0,
    ) -> None:
        self.K = K
        self.R = R
        self.F = F
        self.method = method
        self.normalize = normalize
        self.kmeans = kmeans
        self.n_init = n_init
        self.max_iter = max_iter
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.input_tags.positive_only = True
        tags.target_tags.required = False
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    # -- validation -------------------------------------------------------------------------
    def _validate(self, X: InteractionMatrix, *, reset: bool, caller: str) -> sp.csr_array:
        X = check_interactions(X, caller=caller)
        if reset:
            check_has_interactions(X, caller)
        check_n_items(self, X, reset=reset)
        return X

    def _check_params_vs_input(self, n_items: int) -> tuple[int, int, int]:
        """Resolve K, R and F against the data; raise for impossible combinations."""
        K = auto_K(n_items) if self.K == "auto" else int(self.K)
        if K > n_items:
            raise ValueError(
                f"The 'K' parameter of ItemGrouper.fit must be at most the number of items: "
                f"X has {n_items} feature(s) (items) but K={K}, and k-means cannot "
                f"place more centroids than items. Use K <= {n_items}."
            )
        R = max(1, (K + 5) // 10) if self.R is None else int(self.R)
        if R > K:
            raise ValueError(
                f"The 'R' parameter of ItemGrouper.fit must be an int in the range "
                f"[1, K={K}]: an item cannot join more groups than exist. Got R={R}; "
                f"use R < K (the paper uses R = K / 10)."
            )
        F = min(_AUTO_F_MAX, K) if self.F == "auto" else int(self.F)
        return K, R, min(F, n_items)

    # -- fit / transform --------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: InteractionMatrix, y: Any = None) -> ItemGrouper:
        """Learn the item embedding, the K centroids and the membership matrix.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Implicit feedback, non-negative; any scipy sparse format.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted grouper.
        """
        return self._fit(self._validate(X, reset=True, caller="ItemGrouper.fit"))

    def _fit(self, X: sp.csr_array) -> ItemGrouper:
        K, R, F = self._check_params_vs_input(X.shape[1])
        rng = check_random_state(self.random_state)
        kmeans_seed = int(rng.randint(np.iinfo(np.int32).max))

        tic = time.perf_counter()
        # The embedding is a function of X, F, method and normalize alone, so every clone in a
        # search over K and R (and random_state) shares one cache entry per training set.
        embed = check_memory(self.memory).cache(_cached_spectral_embedding, ignore=["verbose"])
        args = (X.indptr, X.indices, X.data, X.shape, F, self.method, self.normalize)
        verbose = int(self.verbose)  # positional: a Memory's wrapper may take no keywords
        hit = bool(embed.check_call_in_cache(*args, verbose))
        embedding, values = embed(*args, verbose)
        t_spectrum = time.perf_counter() - tic
        if hit:
            progress_line(
                verbose, "ItemGrouper", f"spectral embedding (F={F}) loaded from memory", t_spectrum
            )

        tic = time.perf_counter()
        centroids, n_iter, km_inertia = self._kmeans(embedding, K, kmeans_seed)
        t_kmeans = time.perf_counter() - tic
        progress_line(
            verbose,
            "ItemGrouper",
            f"k-means ({self.kmeans}, n_init={self.n_init}): K={K} centroids of "
            f"{embedding.shape[0]:,} items in F={F} dimensions, {n_iter} iterations, "
            f"inertia {km_inertia:.4g}",
            t_kmeans,
        )

        tic = time.perf_counter()
        with threadpool_limits(1, user_api="blas"):  # argpartition, not the GEMM, dominates
            nearest, labels, inertia = _nearest_centroids(embedding, centroids, R)
        membership = _membership_matrix(nearest, K)
        t_assign = time.perf_counter() - tic
        progress_line(
            verbose,
            "ItemGrouper",
            f"membership: each item joins its R={R} nearest of the K={K} groups "
            f"({membership.nnz:,} item-group links)",
            t_assign,
        )

        self.embedding_ = embedding
        self.eigenvalues_ = values
        self.centroids_ = centroids
        self.labels_ = labels
        self.inertia_ = inertia
        self.n_iter_ = n_iter
        self.membership_ = membership
        self.K_ = K
        self.R_ = R
        self.F_ = F
        self.embedding_cached_ = hit
        self.timings_ = {"spectrum": t_spectrum, "kmeans": t_kmeans, "assign": t_assign}
        logger.debug(
            "ItemGrouper fit on %s: spectrum %.2fs%s, k-means %.2fs, assign %.2fs",
            X.shape,
            t_spectrum,
            " (cached)" if hit else "",
            t_kmeans,
            t_assign,
        )
        return self

    def _kmeans(self, embedding: np.ndarray, K: int, seed: int) -> tuple[np.ndarray, int, float]:
        """Centroids, iterations and inertia of the kept k-means run."""
        if self.kmeans == "full":
            km: KMeans | MiniBatchKMeans = KMeans(
                n_clusters=K, n_init=self.n_init, max_iter=self.max_iter, random_state=seed
            )
        else:
            km = MiniBatchKMeans(
                n_clusters=K, n_init=self.n_init, max_iter=self.max_iter, random_state=seed
            )
        # The k-means++ init makes one small BLAS call per centroid, several times slower with
        # more than one BLAS thread; Lloyd iterations use OpenMP threads, except on small
        # problems, where starting threads costs more than it saves.
        small = embedding.shape[0] * K * max(1, embedding.shape[1]) < _SMALL_KMEANS
        with threadpool_limits(1, user_api=None if small else "blas"):
            km.fit(embedding)
        centers = np.asarray(km.cluster_centers_, dtype=np.float64)
        return centers, int(km.n_iter_), float(km.inertia_)

    def transform(self, X: InteractionMatrix) -> GroupedInteractions:
        """Pass X on, carrying the learned groups.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Interactions over the items seen in fit.

        Returns
        -------
        Xt : GroupedInteractions of shape (n_users, n_items)
            X as a CSR float32 matrix, with ``Xt.membership`` set to ``membership_``.
        """
        check_is_fitted(self)
        X = self._validate(X, reset=False, caller="ItemGrouper.transform")
        return GroupedInteractions(X, membership=self.membership_)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit_transform(self, X: InteractionMatrix, y: Any = None) -> GroupedInteractions:
        """Fit, then pass X on carrying the learned groups (X is validated once).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
            Implicit feedback, non-negative; any scipy sparse format.
        y : None
            Ignored.

        Returns
        -------
        Xt : GroupedInteractions of shape (n_users, n_items)
            X as a CSR float32 matrix, with ``Xt.membership`` set to ``membership_``.
        """
        X = self._validate(X, reset=True, caller="ItemGrouper.fit_transform")
        self._fit(X)
        return GroupedInteractions(X, membership=self.membership_)
