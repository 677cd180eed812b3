"""EASE's built-in choice of λ (``lam="auto"``) and its neighbourhood variant for big
catalogues (``max_neighbors``)."""

import pickle
import time
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

import skcfae
import skcfae.models._ease as ease_module
from skcfae import EASE
from skcfae._ranking import ndcg_from_topk, topk_masked
from skcfae.datasets import make_interactions
from skcfae.model_selection import UserSplit, fold_in_split

from .test_common import _expected

# The ranking contract of tests/test_recommenders.py, run again on the neighbourhood variant:
# these tests take the ``fitted`` fixture defined below.
from .test_recommenders import (  # noqa: F401
    test_batch_equals_one_by_one,
    test_known_answer_on_planted_groups,
    test_module_level_recommend_on_pipeline,
    test_n_validated,
    test_pickle_round_trip,
    test_same_random_state_same_model,
    test_score_is_ndcg_at_100,
    test_seen_items_never_returned,
    test_short_rows_padded_with_minus_one,
    test_wrong_item_count,
)


@pytest.fixture(scope="module")
def X():
    return make_interactions(300, 120, random_state=0)


def test_single_candidate_is_the_fixed_fit(X):
    auto = EASE(lams=(70.0,), random_state=0).fit(X)
    fixed = EASE(lam=70.0).fit(X)
    assert auto.lam_ == fixed.lam_ == 70.0
    np.testing.assert_array_equal(auto.coef_, fixed.coef_)
    assert list(auto.lam_scores_) == [70.0]


def test_chosen_lambda_is_the_best_validation_score(X):
    model = EASE(lams=(1e-3, 30.0, 300.0, 1e6), random_state=0).fit(X)
    assert set(model.lam_scores_) == {1e-3, 30.0, 300.0, 1e6}
    assert model.lam_ == max(model.lam_scores_, key=model.lam_scores_.get)
    np.testing.assert_array_equal(model.coef_, EASE(lam=model.lam_).fit(X).coef_)


def test_validation_scores_by_hand(X):
    """Each score is the NDCG@100 of an EASE fitted without the validation users, on their
    hold-out items, from their fold-in items: replay the draw of ``random_state``."""
    rng = np.random.RandomState(0)
    eligible = np.flatnonzero(np.diff(X.indptr) >= 5)
    valid = np.sort(rng.choice(eligible, 30, replace=False))
    fold_in, holdout = fold_in_split(X[valid], random_state=rng)
    rest = np.setdiff1d(np.arange(X.shape[0]), valid)
    model = EASE(lams=(40.0, 400.0), random_state=0).fit(X)
    for lam, score in model.lam_scores_.items():
        B = EASE(lam=lam).fit(X[rest]).coef_
        top = topk_masked(fold_in @ B, fold_in, 100, True)
        assert score == pytest.approx(np.nanmean(ndcg_from_topk(top, holdout, 100)), abs=1e-6)


def test_same_random_state_same_choice(X):
    a, b = EASE(random_state=3).fit(X), EASE(random_state=3).fit(X)
    assert a.lam_scores_ == b.lam_scores_


def test_no_validation_user_is_a_clear_error():
    X = sp.csr_array(np.eye(40, 10, dtype=np.float32))  # every user has one interaction
    with pytest.raises(ValueError, match="pass a float lam"):
        EASE().fit(X)
    EASE(lam=10.0).fit(X)


@pytest.mark.parametrize("lams", [(), (0.0, 1.0), (np.inf,), (-1.0,)])
def test_bad_candidates_rejected(X, lams):
    with pytest.raises(ValueError, match="lams"):
        EASE(lams=lams).fit(X)


# -- the neighbourhood variant: EASE(max_neighbors=k) ------------------------------------------
@pytest.fixture(scope="module")
def fitted(planted):
    return EASE(lam=20.0, max_neighbors=30).fit(planted[0])


@parametrize_with_checks([EASE(lam=10.0, max_neighbors=2)], expected_failed_checks=_expected)
def test_sparse_variant_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture
def sparse_path(monkeypatch):
    """Force the path of big catalogues: XᵀX never formed, systems gathered from X."""
    monkeypatch.setattr(ease_module, "_DENSE_GRAM_BYTES", 0)


# Users x 4 items: G = XᵀX has diagonal (3, 6, 2, 2) and G01 = 2, G03 = 1, G12 = 2, G13 = 1,
# G02 = G23 = 0. Item 1's candidates 0 and 2 tie on co-occurrence (2 each) but item 2 has the
# larger cosine (2/√2 > 2/√3): the neighbourhood is chosen by cosine.
HAND_X = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 1, 1, 0],
        [0, 1, 1, 0],
        [0, 1, 0, 1],
        [1, 0, 0, 1],
        [0, 1, 0, 0],
    ],
    dtype=np.float32,
)
# k=1, λ=1: B_ji = G_ij / (G_jj + λ) for the one neighbour j of i: N(0)={1}, N(1)={2},
# N(2)={1}, N(3)={0} (cosine 1/√3 > 1/√6).
HAND_K1 = np.array(
    [[0, 0, 0, 1 / 4], [2 / 7, 0, 2 / 7, 0], [0, 2 / 3, 0, 0], [0, 0, 0, 0]], dtype=np.float64
)
# k=2, λ=1: column 0 on {1, 3}: [[7, 1], [1, 3]] b = [2, 1] -> b = (1/4, 1/4); column 1 on
# {0, 2}: [[4, 0], [0, 3]] b = [2, 2] -> (1/2, 2/3); column 2 co-occurs with item 1 only:
# 2/7; column 3 on {0, 1}: [[4, 2], [2, 7]] b = [1, 1] -> (5/24, 1/12).
HAND_K2 = np.array(
    [[0, 1 / 2, 0, 5 / 24], [1 / 4, 0, 2 / 7, 1 / 12], [0, 2 / 3, 0, 0], [1 / 4, 0, 0, 0]]
)


@pytest.mark.parametrize("path", ["dense", "sparse"])
@pytest.mark.parametrize("k, expected", [(1, HAND_K1), (2, HAND_K2)])
def test_neighbourhood_weights_by_hand(k, expected, path, monkeypatch):
    if path == "sparse":
        monkeypatch.setattr(ease_module, "_DENSE_GRAM_BYTES", 0)
    model = EASE(lam=1.0, max_neighbors=k).fit(HAND_X)
    assert sp.issparse(model.coef_) and model.coef_.format == "csr"
    assert model.coef_.dtype == np.float32
    np.testing.assert_allclose(model.coef_.toarray(), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.decision_function(HAND_X), HAND_X @ expected, rtol=1e-5)


@pytest.fixture(scope="module")
def co_occurring(X):
    """X plus one user with every item, so that every two items co-occur."""
    return sp.csr_array(sp.vstack([X, sp.csr_array(np.ones((1, X.shape[1]), np.float32))]))


@pytest.mark.parametrize("path", ["dense", "sparse"])
@pytest.mark.parametrize("k", [119, 500])
def test_exact_ease_when_every_item_is_a_neighbour(co_occurring, k, path, monkeypatch):
    """k >= n_items - 1 on data where every two items co-occur: the regressions use every
    other item, which is EASE's closed form column by column."""
    if path == "sparse":
        monkeypatch.setattr(ease_module, "_DENSE_GRAM_BYTES", 0)
    dense = EASE(lam=30.0).fit(co_occurring).coef_
    sparse = EASE(lam=30.0, max_neighbors=k).fit(co_occurring).coef_
    assert sparse.nnz == dense.shape[0] * (dense.shape[0] - 1)
    np.testing.assert_allclose(sparse.toarray(), dense, rtol=1e-5, atol=1e-7)


def test_neighbourhoods_are_cosine_top_k_of_co_occurring_items(X):
    k = 7
    B = EASE(lam=10.0, max_neighbors=k).fit(X).coef_.tocsc()
    G = (X.T @ X).toarray().astype(np.float64)
    norms = np.sqrt(np.maximum(np.diag(G), 1.0))  # an item without users has no candidate
    cosine = G / np.outer(norms, norms)
    for i in range(X.shape[1]):
        support = B.indices[B.indptr[i] : B.indptr[i + 1]]
        candidates = np.flatnonzero(G[:, i] > 0)
        candidates = candidates[candidates != i]
        assert i not in support
        assert support.size == min(k, candidates.size)
        # the chosen ones have the largest cosine (ties to the lower index)
        ranked = candidates[np.lexsort((candidates, -cosine[candidates, i]))]
        np.testing.assert_array_equal(np.sort(support), np.sort(ranked[:k]))


def test_dense_and_sparse_paths_agree_on_counts(monkeypatch):
    X = make_interactions(200, 90, density=0.08, random_state=1)
    X.data = np.random.RandomState(0).randint(1, 5, X.nnz).astype(np.float32)  # play counts
    a = EASE(lam=15.0, max_neighbors=12).fit(X).coef_
    monkeypatch.setattr(ease_module, "_DENSE_GRAM_BYTES", 0)
    b = EASE(lam=15.0, max_neighbors=12).fit(X).coef_
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-7)


def test_small_batches_give_the_same_weights(X, sparse_path, monkeypatch):
    """Batching (systems per batch, gathered columns, blocks of XᵀX rows) changes nothing."""
    reference = EASE(lam=10.0, max_neighbors=15).fit(X).coef_
    for name, value in [
        ("_SYSTEM_BLOCK", 300),
        ("_GATHER_NNZ", 50),
        ("_GATHER_CELLS", 1),
        ("_SELECT_BLOCK", 1),
    ]:
        monkeypatch.setattr(ease_module, name, value)
    small = EASE(lam=10.0, max_neighbors=15).fit(X).coef_
    np.testing.assert_array_equal(small.indices, reference.indices)
    np.testing.assert_allclose(small.toarray(), reference.toarray(), rtol=1e-6, atol=1e-8)


def test_huge_catalogue_never_densifies():
    """300,000 items: dense EASE refuses (its matrices need terabytes) and names the
    variant; the variant fits in seconds with memory of the interactions' order."""
    X = make_interactions(300, 300_000, n_groups=30, density=3e-5, random_state=0)
    with pytest.raises(MemoryError, match="max_neighbors"):
        EASE(lam=10.0).fit(X)
    tic = time.perf_counter()
    tracemalloc.start()
    try:
        model = EASE(lam=10.0, max_neighbors=50).fit(X)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - tic < 30
    # the batches' working memory is bounded by constants (about 50 MB here); one dense
    # float32 row per user would be 360 MB, and n_items x n_items floats 360 GB
    assert peak < 128 * 2**20, peak
    assert model.coef_.nnz <= 50 * X.shape[1]
    top = model.recommend(X[:3], n=5)
    assert top.shape == (3, 5) and not np.any(np.take_along_axis(X[:3].toarray(), top, 1))


def test_memory_error_names_the_variant(monkeypatch):
    monkeypatch.setattr(ease_module.os, "sysconf", lambda name: 1024)  # a 1 MiB machine
    with pytest.raises(MemoryError, match=r"EASE\(max_neighbors=200\)"):
        EASE(lam=1.0).fit(make_interactions(50, 300, random_state=0))


def test_auto_lambda_with_neighbourhoods(X):
    model = EASE(lams=(5.0, 50.0, 500.0), max_neighbors=10, random_state=0).fit(X)
    assert set(model.lam_scores_) == {5.0, 50.0, 500.0}
    assert model.lam_ == max(model.lam_scores_, key=model.lam_scores_.get)
    refit = EASE(lam=model.lam_, max_neighbors=10).fit(X).coef_
    np.testing.assert_array_equal(model.coef_.toarray(), refit.toarray())


def test_auto_lambda_with_neighbourhoods_by_hand(X):
    """Each candidate's score: the neighbourhood model of the other users (neighbours chosen
    on them too), scored on the validation users (replaying the draw of random_state)."""
    rng = np.random.RandomState(0)
    eligible = np.flatnonzero(np.diff(X.indptr) >= 5)
    valid = np.sort(rng.choice(eligible, 30, replace=False))
    fold_in, holdout = fold_in_split(X[valid], random_state=rng)
    rest = np.setdiff1d(np.arange(X.shape[0]), valid)
    model = EASE(lams=(40.0, 400.0), max_neighbors=8, random_state=0).fit(X)
    for lam, score in model.lam_scores_.items():
        B = EASE(lam=lam, max_neighbors=8).fit(X[rest]).coef_
        top = topk_masked((fold_in @ B).toarray(), fold_in, 100, True)
        assert score == pytest.approx(np.nanmean(ndcg_from_topk(top, holdout, 100)), abs=1e-6)


def test_search_pickle_and_model_file(X, tmp_path):
    search = GridSearchCV(
        EASE(lam=20.0), {"max_neighbors": [3, 30]}, cv=UserSplit(n_splits=2, random_state=0)
    ).fit(X)
    assert search.best_params_["max_neighbors"] in (3, 30)
    model = search.best_estimator_
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.recommend(X[:20], n=5), model.recommend(X[:20], n=5))
    skcfae.save(model, tmp_path / "ease.skcfae")
    loaded = skcfae.load(tmp_path / "ease.skcfae")
    assert sp.issparse(loaded.coef_)
    np.testing.assert_array_equal(loaded.recommend(X[:20], n=5), model.recommend(X[:20], n=5))
    assert clone(model).get_params()["max_neighbors"] == model.max_neighbors


def test_single_item_has_no_neighbour():
    X = sp.csr_array(np.ones((6, 1), dtype=np.float32))
    model = EASE(lam=1.0, max_neighbors=5).fit(X)
    assert model.coef_.shape == (1, 1) and model.coef_.nnz == 0


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10"])
def test_bad_max_neighbors(X, bad):
    with pytest.raises(ValueError, match="max_neighbors"):
        EASE(lam=1.0, max_neighbors=bad).fit(X)
