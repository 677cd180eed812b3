"""ItemGrouper: overlapping item groups (Khawar et al., WWW 2020, §3.1, Algorithms 1-2)."""

import functools
import hashlib
import os
import pickle
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joblib import Memory
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import InvalidParameterError

from skcfae.datasets import make_interactions
from skcfae.grouping import (
    GroupedInteractions,
    ItemGrouper,
    _item_scaling,
    _normalize_rows,
    _spectral_embedding,
    _top_eigenpairs,
    _unit_eigenvectors,
)

# scikit-learn's estimator checks run on ItemGrouper in tests/test_common.py (the registry).


# -- planted groups ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted1():
    """One planted group per item: a partition of the 300 items into 10 groups."""
    return make_interactions(
        3000, 300, n_groups=10, groups_per_item=1, noise=0.05, random_state=0, return_groups=True
    )[:2]


@pytest.fixture(scope="module")
def planted2():
    """Two planted groups per item: 10 overlapping groups."""
    return make_interactions(
        3000, 300, n_groups=10, groups_per_item=2, noise=0.05, random_state=0, return_groups=True
    )[:2]


def best_jaccard(membership, truth):
    """Mean over planted groups of the Jaccard index of their best-matching learned group."""
    inter = (truth.T @ membership).toarray()
    size_t = np.asarray(truth.sum(axis=0)).ravel()
    size_m = np.asarray(membership.sum(axis=0)).ravel()
    return float(np.mean(np.max(inter / (size_t[:, None] + size_m[None, :] - inter), axis=1)))


def pair_precision(membership, truth):
    """Share of the item pairs in a common learned group that also share a planted group."""
    learned = (membership @ membership.T).toarray() > 0
    true = (truth @ truth.T).toarray() > 0
    np.fill_diagonal(learned, False)
    return float(np.sum(learned & true) / learned.sum())


def random_membership(n_items, K, R, seed=0):
    rng = np.random.RandomState(seed)
    nearest = np.sort(np.argsort(rng.random_sample((n_items, K)), axis=1)[:, :R], axis=1)
    return sp.csr_array(
        (np.ones(n_items * R), nearest.ravel(), np.arange(0, n_items * R + 1, R)),
        shape=(n_items, K),
    )


@pytest.mark.parametrize("method", ["laplacian", "svd"])
@pytest.mark.parametrize("kmeans", ["full", "minibatch"])
def test_recovers_a_planted_partition(planted1, method, kmeans):
    X, truth = planted1
    g = ItemGrouper(10, R=1, F=10, method=method, kmeans=kmeans, random_state=0).fit(X)
    primary = truth.toarray().argmax(axis=1)
    assert adjusted_mutual_info_score(primary, g.labels_) > 0.95
    assert best_jaccard(g.membership_, truth) > 0.95
    # The criterion fails for a random grouping.
    assert best_jaccard(random_membership(300, 10, 1), truth) < 0.2


@pytest.mark.parametrize("method", ["laplacian", "svd"])
def test_recovers_overlapping_planted_groups(planted2, method):
    X, truth = planted2
    g = ItemGrouper(10, R=2, F=10, method=method, random_state=0).fit(X)
    random = random_membership(300, 10, 2)
    # Pairs of items put together mostly share a planted group (38% of all pairs do) ...
    assert pair_precision(g.membership_, truth) > 0.7
    assert pair_precision(random, truth) < 0.45
    # ... and each planted group has a learned group close to it.
    assert best_jaccard(g.membership_, truth) > 0.6
    assert best_jaccard(random, truth) < 0.25


def test_l2_normalisation_beats_the_literal_row_sum(planted2):
    """Algorithm 1 step 4 as written (rows sum to one) vs unit-length rows (NJW, ref. [20]).

    Eigenvector rows mix signs, so their sums can be near zero; dividing by them scatters
    items. Unit Euclidean rows recover the planted groups, row sums barely beat chance.
    """
    X, truth = planted2
    scores = {
        normalize: best_jaccard(
            ItemGrouper(10, R=2, F=10, normalize=normalize, random_state=0).fit(X).membership_,
            truth,
        )
        for normalize in ("l2", "sum", None)
    }
    assert scores["l2"] > 0.7
    assert scores["l2"] > scores[None] + 0.1
    assert scores["l2"] > scores["sum"] + 0.4


# -- the embedding ----------------------------------------------------------------------------
def dense_laplacian(X):
    """Δ of Eq. 1-2, formed densely: D^-1/2 XᵀX D^-1/2 with D_ii = Σ_j (XᵀX)_ij, 0 rows for 0."""
    Y = (X.T @ X).toarray().astype(np.float64)
    degree = Y.sum(axis=1)
    inv = np.zeros_like(degree)
    inv[degree > 0] = 1 / np.sqrt(degree[degree > 0])
    return inv[:, None] * Y * inv[None, :]


def same_up_to_sign(A, B, atol):
    signs = np.sign(np.sum(A * B, axis=0))
    np.testing.assert_allclose(A, B * signs, atol=atol)


@pytest.mark.parametrize("solver", ["arpack", "dense"])
def test_laplacian_embedding_matches_dense_eigenvectors(solver):
    X = make_interactions(400, 80, n_groups=4, density=0.1, random_state=1)
    F = 6
    values, vectors = scipy.linalg.eigh(dense_laplacian(X))
    ref_values, ref_vectors = values[::-1][:F], vectors[:, ::-1][:, :F]
    emb, got = _spectral_embedding(X, F, method="laplacian", normalize=None, solver=solver)
    np.testing.assert_allclose(got, ref_values, rtol=1e-5)
    assert got[0] == pytest.approx(1.0, abs=1e-5)  # D^1/2 1 has eigenvalue 1
    same_up_to_sign(emb, ref_vectors, atol=1e-4)


@pytest.mark.parametrize("solver", ["arpack", "dense"])
def test_svd_embedding_is_scaled_singular_vectors(solver):
    X = make_interactions(400, 80, n_groups=4, density=0.1, random_state=1)
    F = 5
    _, s, vt = np.linalg.svd(X.toarray().astype(np.float64), full_matrices=False)
    emb, values = _spectral_embedding(X, F, method="svd", normalize=None, solver=solver)
    np.testing.assert_allclose(values, s[:F] ** 2, rtol=1e-5)
    same_up_to_sign(emb, vt[:F].T * s[:F], atol=1e-3)


def test_signs_are_fixed_and_rows_unit_length():
    X = make_interactions(400, 80, n_groups=4, density=0.1, random_state=1)
    for solver in ("arpack", "dense"):
        raw, _ = _spectral_embedding(X, 6, normalize=None, solver=solver)
        pivot = np.argmax(np.abs(raw), axis=0)
        assert np.all(raw[pivot, np.arange(6)] > 0)
    a, _ = _spectral_embedding(X, 6, solver="arpack", seed=1)
    b, _ = _spectral_embedding(X, 6, solver="dense")
    np.testing.assert_allclose(a, b, atol=1e-4)  # solver and start vector do not matter
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0)


def test_row_normalisations():
    P = np.array([[3.0, 4.0], [1.0, -1.0], [0.0, 0.0], [2.0, -1.0], [1e-9, -1e-9 + 1e-17]])
    l2 = _normalize_rows(P, "l2")
    np.testing.assert_allclose(np.linalg.norm(l2[[0, 1, 3, 4]], axis=1), 1.0)
    np.testing.assert_array_equal(l2[2], 0.0)  # empty items stay at the origin
    total = _normalize_rows(P, "sum")
    assert np.all(np.isfinite(total))
    np.testing.assert_allclose(total[[0, 3]].sum(axis=1), 1.0)
    # Rows summing to (nearly) zero cannot sum to one: left as they are, not divided by ~0.
    np.testing.assert_array_equal(total[[1, 2, 4]], P[[1, 2, 4]])
    assert _normalize_rows(P, None) is P


# -- the grouper ------------------------------------------------------------------------------
def test_membership_shape_and_exactly_R_per_row(planted2):
    X, _ = planted2
    g = ItemGrouper(30, R=4, F=8, n_init=2, random_state=0).fit(X)
    M = g.membership_
    assert isinstance(M, sp.csr_array) and M.dtype == np.float32
    assert M.shape == (300, 30)
    np.testing.assert_array_equal(np.diff(M.indptr), 4)
    np.testing.assert_array_equal(M.data, 1.0)
    assert all(np.all(np.diff(M.indices[M.indptr[i] : M.indptr[i + 1]]) > 0) for i in range(300))
    # Each item's own k-means cluster is among its R groups.
    assert M[np.arange(300), g.labels_].min() == 1.0
    assert g.embedding_.shape == (300, 8) and g.centroids_.shape == (30, 8)
    assert (g.R_, g.F_, g.n_items_in_, g.n_features_in_) == (4, 8, 300, 300)
    assert set(g.timings_) == {"spectrum", "kmeans", "assign"}


@pytest.mark.parametrize(("K", "R"), [(1, 1), (9, 1), (10, 1), (15, 2), (25, 3), (1000, 100)])
def test_default_R_is_ten_percent(K, R):
    """R = K / 10 rounded half up, at least 1 (the paper's 10% sparsity, §4.3)."""
    assert ItemGrouper(K, F=50)._check_params_vs_input(n_items=1000) == (K, R, 50)


@pytest.mark.parametrize(
    ("K", "n_items", "F"), [(1, 10, 1), (8, 200, 8), (49, 60, 49), (50, 60, 50), (1000, 3706, 50)]
)
def test_default_F_is_K_up_to_50(K, n_items, F):
    """F="auto" = min(50, K): K eigenvectors for K groups (NJW), the paper's 50 from K = 50."""
    assert ItemGrouper(K)._check_params_vs_input(n_items)[2] == F
    assert ItemGrouper(K, F="auto")._check_params_vs_input(n_items)[2] == F
    assert ItemGrouper(K, F=7)._check_params_vs_input(n_items)[2] == min(7, n_items)


@pytest.mark.parametrize(
    ("n_items", "K"), [(1, 1), (2, 1), (3, 2), (10, 6), (1682, 1121), (3000, 2000), (20108, 2000)]
)
def test_auto_K_is_two_thirds_of_the_items_at_most_2000(n_items, K):
    """K="auto" (the default) = min(2000, 2 n_items // 3), at least 1; R and F follow it."""
    from skcfae.grouping import auto_K

    assert auto_K(n_items) == K
    assert ItemGrouper()._check_params_vs_input(n_items) == (K, max(1, (K + 5) // 10), min(50, K))


def test_auto_K_is_fitted_as_K_():
    X = make_interactions(200, 40, random_state=0)
    g = ItemGrouper(random_state=0).fit(X)
    assert g.K == "auto" and g.K_ == 26 and g.membership_.shape == (40, 26) and g.R_ == 3


def test_default_F_after_fit():
    X = make_interactions(200, 30, n_groups=3, random_state=0)
    g = ItemGrouper(5, R=1, random_state=0).fit(X)
    assert g.F == "auto" and g.F_ == 5 and g.embedding_.shape == (30, 5)
    assert ItemGrouper(30, R=1, random_state=0).fit(X).F_ == 30
    with pytest.raises(InvalidParameterError, match="'F' parameter"):
        ItemGrouper(5, F="all").fit(X)
    with pytest.raises(InvalidParameterError, match="'F' parameter"):
        ItemGrouper(5, F=0).fit(X)


def test_R_equal_K_is_fully_connected(planted1):
    X, _ = planted1
    M = ItemGrouper(5, R=5, F=4, random_state=0).fit(X).membership_
    assert M.nnz == 300 * 5 and M.toarray().min() == 1.0


def test_F_is_clamped_to_the_number_of_items():
    X = make_interactions(100, 8, n_groups=2, random_state=0)
    g = ItemGrouper(3, R=1, F=50, random_state=0).fit(X)
    assert g.F_ == 8 and g.embedding_.shape == (8, 8)


@pytest.mark.parametrize("method", ["laplacian", "svd"])
@pytest.mark.parametrize("kmeans", ["full", "minibatch"])
def test_deterministic_with_random_state(planted2, method, kmeans):
    X, _ = planted2
    params = dict(K=20, R=3, F=8, method=method, kmeans=kmeans, random_state=7)
    a = ItemGrouper(**params).fit(X)
    b = ItemGrouper(**params).fit(X)
    assert not a.embedding_cached_ and not b.embedding_cached_
    np.testing.assert_array_equal(a.embedding_, b.embedding_)
    np.testing.assert_array_equal(a.centroids_, b.centroids_)
    assert (a.membership_ != b.membership_).nnz == 0


def test_errors():
    X = make_interactions(100, 20, n_groups=2, random_state=0)
    with pytest.raises(ValueError, match="k-means cannot place more centroids than items"):
        ItemGrouper(21, R=1).fit(X)
    with pytest.raises(ValueError, match=r"20 feature\(s\)"):
        ItemGrouper(21, R=1).fit(X)
    with pytest.raises(ValueError, match="an item cannot join more groups than exist"):
        ItemGrouper(5, R=6).fit(X)
    with pytest.raises(InvalidParameterError, match="'method' parameter"):
        ItemGrouper(5, method="pca").fit(X)
    with pytest.raises(InvalidParameterError, match="'kmeans' parameter"):
        ItemGrouper(5, kmeans="elkan").fit(X)
    with pytest.raises(InvalidParameterError, match="'K' parameter"):
        ItemGrouper(0).fit(X)
    with pytest.raises(ValueError, match="Negative values"):
        ItemGrouper(5).fit(-X)
    g = ItemGrouper(5, R=1, F=4, random_state=0).fit(X)
    with pytest.raises(ValueError, match="fitted on 20"):
        g.transform(X[:, :10])


def test_items_without_interactions(planted1):
    X, _ = planted1
    X = X.tolil()
    empty = [3, 50, 299]
    X[:, empty] = 0
    X = sp.csr_array(X)
    for method in ("laplacian", "svd"):
        g = ItemGrouper(10, R=2, F=10, method=method, random_state=0).fit(X)
        assert np.all(np.isfinite(g.embedding_))
        np.testing.assert_array_equal(g.embedding_[empty], 0.0)
        np.testing.assert_array_equal(np.diff(g.membership_.indptr), 2)  # still R groups each
        # Their groups are the centroids nearest the origin.
        nearest_origin = np.sort(np.argsort(np.sum(g.centroids_**2, axis=1))[:2])
        np.testing.assert_array_equal(g.membership_[[3]].indices, nearest_origin)


def test_all_empty_items_through_the_large_solver():
    """The ARPACK path with empty columns: no division by zero, zero embedding rows."""
    X = make_interactions(2000, 600, n_groups=6, random_state=0).tolil()
    X[:, :5] = 0
    X = sp.csr_array(X)
    empty = np.diff(X.tocsc().indptr) == 0
    assert empty[:5].all() and not empty.all()
    emb, _ = _spectral_embedding(X, 6, solver="arpack")
    np.testing.assert_array_equal(emb[empty], 0.0)
    np.testing.assert_allclose(np.linalg.norm(emb[~empty], axis=1), 1.0)


# -- planted blocks with the default F ------------------------------------------------------------
def planted_blocks(K, seed=0, size=25, users_per_block=50):
    """K disjoint blocks of ``size`` items; each user takes each item of one block w.p. 0.3."""
    rng = np.random.RandomState(seed)
    n_users = K * users_per_block
    picked = rng.random_sample((n_users, size)) < 0.3
    picked[~picked.any(axis=1), 0] = True
    rows, offsets = np.nonzero(picked)
    cols = np.repeat(np.arange(K), users_per_block)[rows] * size + offsets
    X = sp.csr_array(
        (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n_users, K * size)
    )
    return X, np.repeat(np.arange(K), size)


@pytest.mark.parametrize("method", ["laplacian", "svd"])
@pytest.mark.parametrize("K", [4, 8, 16, 32])
def test_default_F_recovers_planted_blocks(K, method):
    """F = min(50, K) finds K disjoint blocks; F = 50 does not with Algorithm 1 (ARI 0.51).

    K = 32 (800 items) runs ARPACK, on a graph with 32 components: eigenvalue 1 repeated 32
    times, which plain Lanczos only partly finds (benchmarks/results/grouping_F.md).
    """
    X, truth = planted_blocks(K)
    g = ItemGrouper(K, R=1, method=method, random_state=0).fit(X)
    assert g.F_ == K
    assert adjusted_rand_score(truth, g.labels_) >= 0.99
    if K == 8 and method == "laplacian":
        paper = ItemGrouper(K, R=1, F=50, method=method, random_state=0).fit(X)
        assert adjusted_rand_score(truth, paper.labels_) < 0.6


def test_repeated_top_eigenvalue_of_a_disconnected_graph():
    """One eigenvector of eigenvalue 1 per component, also from ARPACK; more components than
    F: every component keeps a direction of its own."""
    X, truth = planted_blocks(24)  # 600 items: ARPACK
    scale = _item_scaling(X, "laplacian")
    known = _unit_eigenvectors(X, scale)
    assert known.shape == (600, 24)
    np.testing.assert_allclose((known.T @ known).toarray(), np.eye(24), atol=1e-12)
    for F in (30, 24, 10):
        values, vectors = _top_eigenpairs(X, scale, F, 0, "arpack", known)
        dense, _ = _top_eigenpairs(X, scale, F, 0, "dense")
        np.testing.assert_allclose(values, dense, atol=1e-5)
        assert np.sum(values > 1 - 1e-6) == min(F, 24)
        emb, _ = _spectral_embedding(X, F, solver="arpack")
        centres = np.array([emb[truth == b].mean(axis=0) for b in range(24)])
        gaps = np.linalg.norm(centres[:, None] - centres[None], axis=2) + np.eye(24)
        assert gaps.min() > 0.1  # 24 distinct points, one per component
    # A connected graph has none.
    Xc = make_interactions(2000, 600, n_groups=6, random_state=0)
    assert _unit_eigenvectors(Xc, _item_scaling(Xc, "laplacian")) is None


# -- memory --------------------------------------------------------------------------------------
def test_memory_reuses_the_embedding_across_K_and_R(planted2, tmp_path):
    X, _ = planted2
    reference = ItemGrouper(10, R=1, F=8, random_state=0).fit(X)
    memory = str(tmp_path)
    first = ItemGrouper(10, R=1, F=8, memory=memory, random_state=0).fit(X)
    second = ItemGrouper(20, R=3, F=8, memory=memory, random_state=0).fit(X)
    assert not first.embedding_cached_ and second.embedding_cached_
    np.testing.assert_array_equal(first.embedding_, second.embedding_)
    np.testing.assert_array_equal(first.eigenvalues_, second.eigenvalues_)
    second.embedding_[:] = 0  # the fitted copy, not the cache
    third = ItemGrouper(10, R=1, F=8, memory=Memory(memory, verbose=0), random_state=0).fit(X)
    assert third.embedding_cached_
    # Loaded or computed, the result is that of a fit without memory.
    np.testing.assert_array_equal(third.embedding_, reference.embedding_)
    assert (third.membership_ != reference.membership_).nnz == 0
    # The seed only drives k-means: any random_state, None included, shares the embedding.
    assert ItemGrouper(10, F=8, memory=memory, random_state=1).fit(X).embedding_cached_
    assert ItemGrouper(10, F=8, memory=memory, random_state=None).fit(X).embedding_cached_
    # The same training set reached another way (COO input, a row slice) hits too.
    assert ItemGrouper(10, F=8, memory=memory).fit(X.tocoo()).embedding_cached_
    assert ItemGrouper(10, F=8, memory=memory).fit(X[np.arange(3000)]).embedding_cached_
    # Anything that changes the embedding misses: F, method, normalisation, data.
    for other in (
        ItemGrouper(10, F=7, memory=memory, random_state=0),
        ItemGrouper(10, F=8, method="svd", memory=memory, random_state=0),
        ItemGrouper(10, F=8, normalize=None, memory=memory, random_state=0),
    ):
        assert not other.fit(X).embedding_cached_
    X2 = X.copy()
    X2.data[0] = 2.0
    assert not ItemGrouper(10, F=8, memory=memory, random_state=0).fit(X2).embedding_cached_
    assert not ItemGrouper(10, F=8, memory=memory, random_state=0).fit(X[:2999]).embedding_cached_


def test_no_caching_without_memory(planted2, tmp_path):
    X, _ = planted2
    for _ in range(2):
        assert not ItemGrouper(10, F=8, random_state=0).fit(X).embedding_cached_
        assert (
            not ItemGrouper(10, F=8, memory=Memory(None), random_state=0).fit(X).embedding_cached_
        )
    assert ItemGrouper().memory is None


def test_memory_is_a_plain_parameter(tmp_path):
    memory = Memory(str(tmp_path), verbose=0)
    g = ItemGrouper(5, memory=memory)
    assert g.get_params()["memory"] is memory
    assert clone(g).memory.location == memory.location
    assert clone(ItemGrouper(5, memory=str(tmp_path))).memory == str(tmp_path)
    X = make_interactions(200, 30, n_groups=3, random_state=0)
    fitted = pickle.loads(pickle.dumps(ItemGrouper(5, R=1, memory=str(tmp_path)).fit(X)))
    assert fitted.memory == str(tmp_path) and fitted.membership_.shape == (30, 5)
    for bad in (3, tmp_path):  # like Pipeline(memory=...): None, a str or a joblib.Memory
        with pytest.raises(InvalidParameterError, match="'memory' parameter"):
            ItemGrouper(5, memory=bad).fit(X)


class CountingMemory(Memory):
    """A joblib.Memory that leaves a file in ``log`` for every call it really computes.

    The estimator carries it to GridSearchCV's worker processes (where monkeypatching cannot
    reach), so the files count the eigen-solver calls of all processes. File name: process id;
    content: a digest of the training set. The computations are serialised by a file lock, so
    that two workers starting the same fold at once (joblib.Memory does not lock) cannot both
    compute it and make the count depend on timing.
    """

    def __init__(self, location, log):
        super().__init__(location, verbose=0)
        self.log = log

    def cache(self, func=None, **kwargs):
        log = self.log

        @functools.wraps(func)
        def logged(indptr, indices, *args):
            digest = hashlib.blake2b(indptr.tobytes() + indices.tobytes()).hexdigest()
            Path(log, f"{os.getpid()}-{uuid.uuid4().hex}").write_text(digest)
            return func(indptr, indices, *args)

        return _Serialised(super().cache(logged, **kwargs), Path(log).with_suffix(".lock"))


class _Serialised:
    def __init__(self, memorized, lock):
        self.memorized, self.lock = memorized, lock

    def check_call_in_cache(self, *args):
        return self.memorized.check_call_in_cache(*args)

    def __call__(self, *args):
        import fcntl

        with open(self.lock, "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            return self.memorized(*args)


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl file lock")
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_over_K_and_R_computes_one_embedding_per_fold(planted2, tmp_path, n_jobs):
    X, _ = planted2
    log = tmp_path / "computed"
    log.mkdir()
    search = GridSearchCV(
        ItemGrouper(F=8, memory=CountingMemory(str(tmp_path / "cache"), str(log)), random_state=0),
        {"K": [10, 20], "R": [1, 2]},
        cv=5,
        n_jobs=n_jobs,
        scoring=lambda est, X_, y=None: -est.inertia_,
    ).fit(X)
    assert search.best_estimator_.membership_.shape == (300, search.best_params_["K"])
    computed = [(f.name.split("-")[0], f.read_text()) for f in log.iterdir()]
    # 4 candidates x 5 folds + the refit = 21 fits, but one embedding per training set.
    assert len(computed) == 6
    assert len({digest for _, digest in computed}) == 6
    in_workers = [pid for pid, _ in computed if pid != str(os.getpid())]
    assert len(in_workers) == (5 if n_jobs > 1 else 0)  # the refit runs here
    # The joblib cache holds one entry per training set.
    entries = [d for d in (tmp_path / "cache").rglob("output.pkl")]
    assert len(entries) == 6


# -- transform ---------------------------------------------------------------------------------
def test_transform_carries_membership(planted1):
    X, _ = planted1
    g = ItemGrouper(10, R=2, F=8, random_state=0)
    Xt = g.fit_transform(X.tocoo())
    assert isinstance(Xt, GroupedInteractions) and isinstance(Xt, sp.csr_array)
    assert Xt.membership is g.membership_ and Xt.dtype == np.float32
    assert (Xt != X).nnz == 0
    Xt2 = g.transform(X[:7].toarray())
    assert isinstance(Xt2, sp.csr_array) and Xt2.membership is g.membership_
    assert Xt2.shape == (7, 300)
    assert Xt.copy().membership is g.membership_
    back = pickle.loads(pickle.dumps(Xt))
    assert (back.membership != g.membership_).nnz == 0
    # In a Pipeline the next step receives the groups.
    seen = {}

    class Spy:
        def fit(self, X, y=None):
            seen["membership"] = getattr(X, "membership", None)
            return self

    Pipeline([("group", clone(g)), ("model", Spy())]).fit(X)
    assert seen["membership"].shape == (300, 10)


def test_transform_before_fit_raises():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        ItemGrouper(2).transform(np.ones((3, 4)))


# -- properties ----------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_users=st.integers(1, 12),
    n_items=st.integers(1, 15),
    density=st.floats(0.0, 1.0),
    data=st.data(),
)
def test_membership_has_R_per_row_for_any_input(n_users, n_items, density, data):
    K = data.draw(st.integers(1, n_items), label="K")
    R = data.draw(st.integers(1, K), label="R")
    F = data.draw(st.integers(1, 6), label="F")
    method = data.draw(st.sampled_from(["laplacian", "svd"]), label="method")
    normalize = data.draw(st.sampled_from(["l2", "sum", None]), label="normalize")
    seed = data.draw(st.integers(0, 3), label="seed")
    X = sp.random_array((n_users, n_items), density=density, rng=seed, format="csr")
    g = ItemGrouper(K, R=R, F=F, method=method, normalize=normalize, random_state=seed)
    if X.nnz == 0:  # nothing to group
        with pytest.raises(ValueError, match="no interaction"):
            g.fit(X)
        return
    with warnings.catch_warnings():
        # k-means warns when the items have fewer distinct embeddings than K (e.g. empty X).
        warnings.simplefilter("ignore", ConvergenceWarning)
        g.fit(X)
    M = g.membership_
    assert M.shape == (n_items, K)
    np.testing.assert_array_equal(np.asarray(M.sum(axis=1)).ravel(), R)
    assert np.all(np.isfinite(g.embedding_))


# -- no torch ------------------------------------------------------------------------------------
def test_grouping_does_not_import_torch():
    code = "import skcfae.grouping, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
