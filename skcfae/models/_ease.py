"""EASE: embarrassingly shallow autoencoder, a closed-form item-item model (Steck 2019)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from .._compat import Interval, StrOptions, _fit_context
from .._ranking import VALID_K, iter_row_batches, ndcg_from_topk, topk_masked
from .._typing import InteractionMatrix
from ..base import RecommenderMixin

logger = logging.getLogger(__name__)

#: Users per dense block when XᵀX is accumulated with dense GEMMs.
_GRAM_BLOCK = 4096
#: Validation users scored at once by ``lam="auto"``.
_SCORE_BATCH = 2048
#: The neighbourhood variant (``max_neighbors``) holds XᵀX dense, to gather its systems from,
#: only while it takes at most this many bytes of float64: catalogues up to 11,585 items.
#: Above, XᵀX is never formed: each system is gathered from the item columns of X.
_DENSE_GRAM_BYTES = 2**30
#: Upper bound on the entries of the block of XᵀX rows computed at once to choose neighbours.
_SELECT_BLOCK = 2**24
#: Float64 entries of the neighbourhood systems gathered and solved at once.
_SYSTEM_BLOCK = 2**21
#: Most systems in one batch; when gathered from X, also most (system, user) cells of the
#: block-diagonal product and most entries of the gathered columns.
_SYSTEM_BATCH = 4096
_GATHER_CELLS = 2**22
_GATHER_NNZ = 2**22
#: Users whose scores (a sparse product with the neighbourhood B) are densified at once.
_SPARSE_SCORE_ROWS = 128


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


def _check_finite_gram(G: np.ndarray, X: sp.csr_array) -> None:
    if not np.all(np.isfinite(G)):
        raise ValueError(
            f"EASE.fit: XᵀX overflows (largest value of X: {X.data.max():.3g}); scale or "
            "binarize X."
        )


def _check_memory(n_items: int, *, validating: bool) -> None:
    """Refuse, before allocating, a catalogue whose dense float64 matrices exceed the
    machine's physical memory: the Gram matrix, its inverse and B (and the Gram matrix of the
    non-validation users with ``lam="auto"``)."""
    need = n_items * n_items * (8 + 8 + 8 + 4 + (8 if validating else 0))
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not a POSIX system: cannot tell
        return
    if need > have:
        raise MemoryError(
            f"EASE on {n_items:,} items needs about {need / 2**30:,.1f} GiB (dense "
            f"{n_items:,} x {n_items:,} float64 matrices) but this machine has "
            f"{have / 2**30:,.1f} GiB. Pass max_neighbors, e.g. EASE(max_neighbors=200): "
            "each item is then regressed on its 200 most similar items only, in memory "
            "n_items x max_neighbors (see EASE's docstring); or use a model whose memory "
            "grows with the interactions: SLIM, SparseWideDAE, MultDAE or WMF."
        )


def _inverse_spd(G: np.ndarray) -> np.ndarray:
    """``G⁻¹`` of a symmetric positive definite matrix by Cholesky (LAPACK potrf + potri):
    half the flops of an LU inverse. ``G`` is overwritten."""
    c, info = lapack.dpotrf(G, lower=False, overwrite_a=True, clean=False)
    if info == 0:
        P, info = lapack.dpotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"XᵀX + λI is not positive definite (LAPACK info {info}).")
    upper = np.triu_indices_from(P, 1)
    P[upper[1], upper[0]] = P[upper]  # potri fills the upper triangle only
    return P


def _ease_weights(G: np.ndarray, lam: float) -> np.ndarray:
    """B = I - P diagMat(1 / diag(P)) with P = (G + λI)⁻¹ (Steck 2019, Eq. 8); float32."""
    G = G.copy()
    G[np.diag_indices_from(G)] += lam
    P = _inverse_spd(G)
    B = P / (-np.diag(P))
    B[np.diag_indices_from(B)] = 0.0
    return B.astype(np.float32)


def _scores(X: sp.csr_array, B: np.ndarray | sp.csr_array) -> np.ndarray:
    """``X B`` as a dense array; with a sparse B, the sparse product of a few rows at a time
    is densified (its sparse form takes 3x the memory of the dense rows)."""
    if not sp.issparse(B):
        return np.asarray(X @ B)
    out = np.empty((X.shape[0], B.shape[1]), dtype=np.float32)
    for start in range(0, X.shape[0], _SPARSE_SCORE_ROWS):
        out[start : start + _SPARSE_SCORE_ROWS] = (
            X[start : start + _SPARSE_SCORE_ROWS] @ B
        ).toarray()
    return out


# -- the neighbourhood variant (max_neighbors) ----------------------------------------------


def _select_rows(
    C: sp.csr_array, items: np.ndarray, norms: np.ndarray, max_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of ``items`` from their rows ``C`` of XᵀX (sorted indices): the items j ≠ i
    with ``C_ij > 0``, at most ``max_neighbors`` of them, those of largest cosine
    ``C_ij / (norms_i norms_j)`` first (ties: the lower j). Returns the number of neighbours
    of each row and their indices, sorted within each row."""
    row = np.repeat(np.arange(items.size), np.diff(C.indptr))
    keep = (C.data > 0) & (C.indices != items[row])
    counts = np.bincount(row[keep], minlength=items.size)
    for r in np.flatnonzero(counts > max_neighbors):
        seg = slice(C.indptr[r], C.indptr[r + 1])
        # the row's constant norms_i does not change its order
        score = np.where(keep[seg], C.data[seg] / norms[C.indices[seg]], -np.inf)
        kth = np.partition(score, score.size - max_neighbors)[score.size - max_neighbors]
        chosen = score > kth
        ties = np.flatnonzero(score == kth)[: max_neighbors - np.count_nonzero(chosen)]
        chosen[ties] = True
        keep[seg] = chosen
    return np.minimum(counts, max_neighbors), C.indices[keep]


def _neighbours(
    X: sp.csr_array, G: np.ndarray | None, max_neighbors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every item's neighbourhood (see :func:`_select_rows`) as CSR ``(indptr, indices)``.

    The rows of XᵀX are computed a block at a time, from the dense ``G`` when given, else as
    sparse products ``X[:, block]ᵀ X`` whose blocks are cut so that their entries stay below
    :data:`_SELECT_BLOCK` (bounded by ``Σ_{u ∋ i} nnz_u`` per item i)."""
    n_items = X.shape[1]
    if G is not None:
        diag = np.diag(G)
        bounds = [*range(0, n_items, max(1, _SELECT_BLOCK // n_items)), n_items]
    else:
        diag = np.bincount(X.indices, weights=np.square(X.data), minlength=n_items)
        user_nnz = np.diff(X.indptr)
        work = np.bincount(X.indices, weights=np.repeat(user_nnz, user_nnz), minlength=n_items)
        cum = np.cumsum(np.minimum(work, n_items))
        bounds = [0]
        while bounds[-1] < n_items:
            done = cum[bounds[-1] - 1] if bounds[-1] else 0.0
            stop = int(np.searchsorted(cum, done + _SELECT_BLOCK, side="right"))
            bounds.append(min(n_items, max(stop, bounds[-1] + 1)))
        XT = X.T.tocsr()
    norms = np.sqrt(np.where(diag > 0, diag, 1.0))
    counts, indices = [], []
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        C = sp.csr_array(G[start:stop]) if G is not None else XT[start:stop] @ X
        C.sort_indices()
        c, i = _select_rows(C, np.arange(start, stop), norms, max_neighbors)
        counts.append(c)
        indices.append(i)
    indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return indptr, np.concatenate(indices).astype(np.int32)


def _system_batches(
    order: np.ndarray, sizes: np.ndarray, cost: np.ndarray | None, n_users: int
) -> Iterator[np.ndarray]:
    """Consecutive runs of ``order`` (items by increasing neighbourhood size) whose systems,
    padded to the largest of the run (plus the item itself), hold at most
    :data:`_SYSTEM_BLOCK` entries. Gathered from X (``cost``: the entries of each item's
    gathered columns), a run also holds at most :data:`_GATHER_NNZ` entries and
    :data:`_GATHER_CELLS` (system, user) cells."""
    most = _SYSTEM_BATCH if cost is None else max(1, min(_SYSTEM_BATCH, _GATHER_CELLS // n_users))
    start = 0
    while start < order.size:
        window = order[start : start + most]
        fits = np.arange(1, window.size + 1) * (sizes[window] + 1.0) ** 2 <= _SYSTEM_BLOCK
        if cost is not None:
            fits &= np.cumsum(cost[window]) <= _GATHER_NNZ
        stop = start + max(1, window.size if fits.all() else int(np.argmin(fits)))
        yield order[start:stop]
        start = stop


def _gather_dense(G: np.ndarray, cols: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``G[c, c]`` for each row ``c`` of ``cols`` (b, m), zero where ``valid`` is False."""
    A = G[cols[:, :, None], cols[:, None, :]]
    A *= valid[:, :, None] & valid[:, None, :]
    return A


def _gather_sparse(Xc: sp.csc_array, cols: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``X[:, c]ᵀ X[:, c]`` for each row ``c`` of ``cols`` (b, m) from CSC ``Xc``, zero where
    ``valid`` is False, by one sparse product: the columns of the b systems are stacked and
    each system's users are shifted into a range of its own, so that the product is block
    diagonal and costs ``Σ_u |x_u ∩ c|²`` per system, no cross terms."""
    b, m = cols.shape
    n_users = Xc.shape[0]
    Y = Xc[:, np.where(valid, cols, Xc.shape[1] - 1).ravel()]  # the last column is empty
    system = np.repeat(np.arange(b * m, dtype=np.int64) // m, np.diff(Y.indptr))
    Z = sp.csr_array((Y.data, Y.indices + system * n_users, Y.indptr), shape=(b * m, b * n_users))
    P = (Z @ Z.T).tocoo()
    A = np.zeros((b, m, m))
    A[P.row // m, P.row % m, P.col % m] = P.data
    return A


def _neighbourhood_weights(
    X: sp.csr_array, max_neighbors: int, lams: list[float]
) -> list[sp.csr_array]:
    """The neighbourhood-restricted EASE weights B (float32 CSR) of X for each λ in ``lams``.

    Column i of EASE's B is the ridge regression of item i on all other items
    (``B_{-i,i} = (G_{-i,-i} + λI)⁻¹ G_{-i,i}``, G = XᵀX; Steck 2019, Eq. 1-8); here it is the
    regression on the neighbourhood N(i) of :func:`_neighbours` only,
    ``B_{N,i} = (G_{N,N} + λI)⁻¹ G_{N,i}``, zero elsewhere. The systems are solved in float64,
    a batch of items of similar neighbourhood size at a time (LAPACK gesv, batched), padded
    to the largest with rows that solve to zero.
    """
    tic = time.perf_counter()
    n_users, n_items = X.shape
    max_neighbors = min(max_neighbors, n_items - 1)
    if max_neighbors < 1:  # a single item: B = 0
        return [sp.csr_array((n_items, n_items), dtype=np.float32) for _ in lams]
    if n_items * n_items * 8 <= _DENSE_GRAM_BYTES:
        with np.errstate(over="ignore", invalid="ignore"):  # checked just below
            G = gram_matrix(X)
        _check_finite_gram(G, X)
        source: np.ndarray | sp.csc_array = G
        indptr, indices = _neighbours(X, G, max_neighbors)
    else:  # float64 products: the sums of a popular item's column stay exact
        X = X.astype(np.float64)
        Xc = X.tocsc()
        source = sp.csc_array(  # plus an empty column, gathered for the padding
            (Xc.data, Xc.indices, np.append(Xc.indptr, Xc.indptr[-1])),
            shape=(n_users, n_items + 1),
        )
        del Xc
        indptr, indices = _neighbours(X, None, max_neighbors)
    logger.debug(
        "EASE: %d neighbours chosen (%s path) in %.1fs",
        indices.size,
        "dense" if isinstance(source, np.ndarray) else "sparse",
        time.perf_counter() - tic,
    )
    sizes = np.diff(indptr)
    order = np.argsort(sizes, kind="stable")
    order = order[sizes[order] > 0]
    data = [np.zeros(indices.size, dtype=np.float32) for _ in lams]
    dense = isinstance(source, np.ndarray)
    cost = None
    if not dense:  # entries of the columns gathered for each item: its and its neighbours'
        popularity = np.bincount(X.indices, minlength=n_items)
        owner = np.repeat(np.arange(n_items), sizes)
        cost = np.bincount(owner, weights=popularity[indices], minlength=n_items)
        cost += popularity
    for batch in _system_batches(order, sizes, cost, n_users):
        m = int(sizes[batch[-1]])
        slot = np.arange(m)
        valid = slot < sizes[batch][:, None]
        where = (indptr[batch][:, None] + slot)[valid]
        cols = np.zeros((batch.size, m + 1), dtype=np.int64)
        cols[:, :m][valid] = indices[where]
        cols[:, m] = batch
        mask = np.column_stack([valid, np.ones(batch.size, dtype=bool)])
        A = (_gather_dense if dense else _gather_sparse)(source, cols, mask)
        rhs = A[:, :m, m, None].copy()
        for lam, out in zip(lams, data, strict=True):
            system = A[:, :m, :m].copy()
            system[:, slot, slot] += lam
            out[where] = np.linalg.solve(system, rhs)[:, :, 0][valid]
    logger.debug("EASE: %d systems solved in %.1fs", order.size, time.perf_counter() - tic)
    # row i of (data, indices, indptr) is column i of B
    return [sp.csr_array((d, indices, indptr), shape=(n_items, n_items)).T.tocsr() for d in data]


class EASE(RecommenderMixin, BaseEstimator):
    """Closed-form linear item-item autoencoder with a zero diagonal.

    Solves ``min_B ||X - XB||²_F + λ||B||²_F`` subject to ``diag(B) = 0``
    (Steck, WWW 2019, Eq. 1-8; Le 2020 survey, §6): with
    ``P = (XᵀX + λI)⁻¹``, ``B = I - P · diagMat(1 / diag(P))``. The solve is in float64
    (Cholesky); the scores of a user x are ``x B``.

    With ``max_neighbors`` the model fits catalogues whose dense ``n_items x n_items``
    matrices do not fit in memory: column i of B is EASE's ridge regression of item i on its
    ``max_neighbors`` most similar items only (see Notes), and ``coef_`` is sparse.

    Parameters
    ----------
    lam : float or "auto", default="auto"
        L2 regularisation λ. "auto" chooses it from ``lams`` as ``RidgeCV`` chooses its
        alpha: ``validation_fraction`` of the users (among those with at least 5
        interactions) are held out, each split 80/20 into fold-in and hold-out items; B is
        solved for every λ on the other users and the λ with the best NDCG@100 of the
        held-out items is refitted on all users (``lam_``). That costs ``len(lams) + 1``
        solves instead of one; pass a float to skip it. With ``max_neighbors`` it costs about
        two fits (neighbourhoods chosen and systems gathered once on the other users, once
        on all) plus ``len(lams) - 1`` extra batched solves. Steck used 500 on ML-20M, 1000
        on Netflix and 200 on MSD; on smaller data the best λ is smaller (100 on
        ml-latest-small and lastfm-2k in our study), and the fixed 500 lost up to 10%. The
        candidates are a factor 2 apart: near the optimum NDCG@100 changes by well under 1%
        per factor 2.
    lams : tuple of float, default=(50, 100, 200, 400, 800)
        Candidates of ``lam="auto"`` (unused otherwise).
    validation_fraction : float, default=0.1
        Fraction of the users held out by ``lam="auto"``.
    max_neighbors : int or None, default=None
        None: exact (dense) EASE. An int k: the neighbourhood variant for big catalogues.
        Each item i is regressed on at most k items, those that co-occur with it (share a
        user) with the largest cosine ``G_ij / sqrt(G_ii G_jj)``, ``G = XᵀX``; memory is
        ``O(n_items · k)``, never ``n_items²``. Measured on 5 strong-generalization splits at
        dense EASE's λ, test NDCG@100 relative to exact EASE: k=500 -0.3% on ml-1m and
        -0.4% on lastfm-2k, k=200 -1.6% and -0.5%, k=100 -3.4% and -2.0%; see Notes and
        ``benchmarks/results/ease_large.md``.

        .. versionadded:: 0.1
    random_state : int, RandomState instance or None, default=None
        Draws the validation users and their hold-out items of ``lam="auto"``.

    Attributes
    ----------
    coef_ : ndarray of shape (n_items, n_items) or scipy.sparse.csr_array, float32
        The item-item weights B, zero on the diagonal: dense without ``max_neighbors``; with
        it a CSR array whose column i holds the weights of item i's neighbours
        (``coef_[j, i]``: the weight of item j in the score of item i).
    lam_ : float
        The λ of ``coef_``: ``lam``, or the one chosen by ``lam="auto"``.
    lam_scores_ : dict of float to float
        With ``lam="auto"``: validation NDCG@100 of each candidate λ.
    n_items_in_ : int
    n_features_in_ : int

    See Also
    --------
    SLIM : sparse non-negative item-item weights learned by ElasticNet regressions.

    Notes
    -----
    Memory of exact EASE is O(n_items²): about 3.2 GB of float64 for 20,000 items, and the
    fit holds a few such matrices; ``fit`` refuses, with a ``MemoryError`` naming
    ``max_neighbors``, a catalogue that cannot fit in the machine's memory.

    **The neighbourhood variant.** EASE's objective splits by column: column i of B is the
    ridge regression of column i of X on the other columns,
    ``B_{-i,i} = (G_{-i,-i} + λI)⁻¹ G_{-i,i}`` (Steck 2019, §2; Eq. 8 is its closed form for
    all columns at once). With ``max_neighbors=k`` the regression of item i uses only its
    neighbourhood N(i), ``B_{N,i} = (G_{N,N} + λI)⁻¹ G_{N,i}`` and 0 elsewhere, so
    ``diag(B) = 0`` holds by construction (i ∉ N(i)). This is the neighbourhood restriction
    of fsSLIM (Ning & Karypis, ICDM 2011, §IV-C) applied to EASE. Choices, by measurement
    (``benchmarks/results/ease_large.md``):

    - N(i) ranks the items by cosine, not by raw co-occurrence, which favours popular items:
      at k=200 on ml-1m (split 0) NDCG@100 is 0.484 by cosine and 0.471 by raw counts (exact EASE
      0.492). Items that never co-occur with i are left out: the exact B gives them tiny
      weights (adding them at k=100 moved NDCG@100 by at most 0.0001 on ml-1m and
      lastfm-2k), and leaving them out lets a long-tail item, which co-occurs with few
      items, solve a small system. So k ≥ n_items - 1 gives exact EASE whenever every two
      items co-occur, and EASE restricted to the pattern of XᵀX otherwise. That pattern is
      the limit of the variant: exact B with the weights of never co-occurring pairs zeroed
      scores -0.4% on lastfm-2k (where XᵀX is 1% dense) and 0.0% on ml-1m (82% dense).
    - The systems are solved in float64 by batched LAPACK (items of similar neighbourhood
      size together): time ``Σ_i |N(i)|³``, at most ``n_items · k³``. Up to 11,585 items
      (1 GiB of float64) XᵀX is held dense and each ``G_{N,N}`` is gathered from it; above,
      XᵀX is never formed: the neighbourhoods come from blocks of its rows, computed sparse
      and dropped, and each ``G_{N,N} = X_Nᵀ X_N`` is computed from the item columns of X,
      at a cost of ``Σ_u |x_u ∩ N(i)|²`` per item. On a synthetic catalogue of 69,000
      items and 28,000 users (1.9 million interactions), where exact EASE would need
      124 GiB, k=100 fits in 111 s on one core with a peak resident set of 0.6 GiB.
    - Of the candidate methods, SANSA (Spišák, Bartyzal and Vančura, *Scalable Approximate
      NonSymmetric Autoencoder for Collaborative Filtering*, RecSys 2023: a sparse
      approximate LDLᵀ factorisation of XᵀX + λI and a sparse approximate inverse) needs
      an incomplete sparse factorisation (CHOLMOD) that scipy does not provide; the
      neighbourhood restriction meets the accuracy target with numpy and scipy alone.

    References
    ----------
    H. Steck. Embarrassingly Shallow Autoencoders for Sparse Data. WWW 2019.
    arXiv:1905.03375.

    X. Ning and G. Karypis. SLIM: Sparse Linear Methods for Top-N Recommender Systems.
    ICDM 2011.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae import EASE
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(200, 100, random_state=0)
    >>> model = EASE(random_state=0).fit(X)
    >>> model.recommend(X[:2], n=3).shape
    (2, 3)
    >>> float(model.lam_) in model.lams
    True
    >>> sparse = EASE(lam=100.0, max_neighbors=20).fit(X)
    >>> sparse.coef_.format, int(np.diff(sparse.coef_.tocsc().indptr).max())
    ('csr', 20)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "lam": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "lams": ["array-like"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "max_neighbors": [Interval(Integral, 1, None, closed="left"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        lam: float | str = "auto",
        *,
        lams: tuple[float, ...] = (50.0, 100.0, 200.0, 400.0, 800.0),
        validation_fraction: float = 0.1,
        max_neighbors: int | None = None,
        random_state: Any = None,
    ) -> None:
        self.lam = lam
        self.lams = lams
        self.validation_fraction = validation_fraction
        self.max_neighbors = max_neighbors
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: InteractionMatrix, y: Any = None) -> EASE:
        """Compute B in closed form (choosing λ first with ``lam="auto"``).

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
        if self.max_neighbors is not None:
            k = int(self.max_neighbors)
            if self.lam == "auto":
                self.lam_scores_ = self._validation_scores(
                    X, lambda rest, lams: _neighbourhood_weights(X[rest], k, lams)
                )
            self.lam_ = self._chosen_lam()
            self.coef_ = _neighbourhood_weights(X, k, [self.lam_])[0]
        else:
            _check_memory(X.shape[1], validating=self.lam == "auto")
            with np.errstate(over="ignore", invalid="ignore"):  # checked just below
                G = gram_matrix(X)
            _check_finite_gram(G, X)
            if self.lam == "auto":

                def dense(rest: np.ndarray, lams: list[float]) -> Iterator[np.ndarray]:
                    G_train = G - gram_matrix(X[np.setdiff1d(np.arange(X.shape[0]), rest)])
                    return (_ease_weights(G_train, lam) for lam in lams)

                self.lam_scores_ = self._validation_scores(X, dense)
            self.lam_ = self._chosen_lam()
            self.coef_ = _ease_weights(G, self.lam_)
        logger.debug("EASE fit on %s in %.2fs", X.shape, time.perf_counter() - tic)
        return self

    def _chosen_lam(self) -> float:
        if self.lam != "auto":
            return float(self.lam)
        scores = self.lam_scores_
        return max(scores, key=lambda lam: scores[lam])

    def _validation_scores(
        self,
        X: sp.csr_array,
        solve: Callable[[np.ndarray, list[float]], Iterable[np.ndarray | sp.csr_array]],
    ) -> dict[float, float]:
        """Validation NDCG@100 of every λ in ``lams`` (see ``lam``): ``solve(rest, lams)``
        gives B for each λ from the rows ``rest`` of X (the non-validation users)."""
        from ..model_selection import MIN_SPLIT_INTERACTIONS, draw_validation_users, fold_in_split

        lams = np.asarray(self.lams, dtype=np.float64).ravel()
        if lams.size == 0 or not np.all(np.isfinite(lams) & (lams > 0)):
            raise ValueError(f"EASE: lams must be positive finite numbers; got {self.lams!r}.")
        rng = check_random_state(self.random_state)
        valid, n_eligible = draw_validation_users(X, self.validation_fraction, rng)
        if valid.size < 1 or valid.size >= X.shape[0]:
            raise ValueError(
                f"EASE(lam='auto'): {X.shape[0]} users, {n_eligible} of them with at least "
                f"{MIN_SPLIT_INTERACTIONS} interactions, leave no validation user at "
                f"validation_fraction={self.validation_fraction}; pass a float lam."
            )
        fold_in, holdout = fold_in_split(X[valid], random_state=rng)
        rest = np.setdiff1d(np.arange(X.shape[0]), valid)
        k = min(VALID_K, X.shape[1])
        candidates = sorted(set(lams.tolist()))
        scores = {}
        for lam, B in zip(candidates, solve(rest, candidates), strict=True):
            parts = [
                ndcg_from_topk(topk_masked(_scores(Xb, B), Xb, k, True), holdout[rows], k)
                for rows, Xb in iter_row_batches(fold_in, _SCORE_BATCH)
            ]
            scores[lam] = float(np.nanmean(np.concatenate(parts)))
            logger.debug("EASE λ=%g: validation NDCG@%d %.4f", lam, k, scores[lam])
        return scores

    def _decision_function_batch(self, X: sp.csr_array, rows: slice) -> np.ndarray:
        return _scores(X, self.coef_)
