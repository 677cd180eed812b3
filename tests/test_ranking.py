"""The one ranking path (skcfae._ranking): batching, top-k, masking, candidates, kernels."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import BaseEstimator

import skcfae._validation
import skcfae.base
import skcfae.metrics
import skcfae.model_selection
from skcfae import recommend
from skcfae._ranking import (
    KERNELS,
    hit_rate_from_topk,
    iter_row_batches,
    ndcg_from_topk,
    precision_from_topk,
    rank_batch,
    recall_from_topk,
    recommend_validated,
    topk_from_scores,
    topk_masked,
)
from skcfae.base import RecommenderMixin
from skcfae.metrics import ndcg_scorer, recall_scorer

IDCG_2 = 1.0 + 1.0 / math.log2(3)
KERNEL_LIST = (ndcg_from_topk, recall_from_topk, precision_from_topk, hit_rate_from_topk)


# -- batching ---------------------------------------------------------------------------------
@given(st.integers(1, 40), st.integers(1, 50))
def test_iter_row_batches_covers_rows_in_order(n_rows, batch_size):
    X = sp.csr_array(np.arange(n_rows * 3, dtype=np.float32).reshape(n_rows, 3))
    batches = list(iter_row_batches(X, batch_size))
    assert len(batches) == -(-n_rows // batch_size)
    starts = [rows.start for rows, _ in batches]
    assert starts == list(range(0, n_rows, batch_size))
    for rows, Xb in batches:
        assert 0 < Xb.shape[0] <= batch_size and rows.stop - rows.start == Xb.shape[0]
        assert (Xb != X[rows]).nnz == 0
    assert batches[-1][0].stop == n_rows
    stacked = sp.vstack([Xb for _, Xb in batches])
    assert (stacked != X).nnz == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_iter_row_batches_rejects_bad_batch_size(bad):
    with pytest.raises(ValueError, match="'batch_size' parameter of iter_row_batches"):
        list(iter_row_batches(np.eye(3), bad))


# -- top-k --------------------------------------------------------------------------------------
def test_minus_inf_scores_rank_last_and_ties_by_lower_index():
    scores = np.array([[-np.inf, 1.0, 1.0, 0.5, -np.inf], [2.0, 2.0, 2.0, 2.0, 2.0]])
    np.testing.assert_array_equal(topk_from_scores(scores, 5), [[1, 2, 3, 0, 4], [0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(topk_from_scores(scores, 2), [[1, 2], [0, 1]])
    assert topk_from_scores(scores, 2).dtype == np.int64
    with pytest.raises(ValueError, match="k=6"):
        topk_from_scores(scores, 6)
    with pytest.raises(ValueError, match="'k' parameter"):
        topk_from_scores(scores, 0)
    with pytest.raises(ValueError, match="NaN"):
        topk_from_scores(np.array([[np.nan, 1.0]]), 1)


@st.composite
def ranking_batches(draw, max_users=6, max_items=10):
    """Scores with many ties and -inf, interactions with stored values, a k, candidates."""
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    scores = draw(
        hnp.arrays(
            np.float64,
            (n_users, n_items),
            elements=st.sampled_from([-np.inf, 0.0, 0.25, 0.5, 1.0, 2.0]),
        )
    )
    seen = draw(hnp.arrays(np.int8, (n_users, n_items), elements=st.integers(0, 2)))
    items = np.array(
        draw(st.lists(st.integers(0, n_items - 1), min_size=1, max_size=n_items, unique=True)),
        dtype=np.int64,
    )
    k = draw(st.integers(1, items.size))
    return scores, sp.csr_array(seen.astype(np.float32)), k, items


def test_topk_without_ties_and_with_one_tie_row():
    """Distinct scores take the partition alone; one row tied at the k-th value does not."""
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((40, 500)).astype(np.float32)
    scores[7, :] = np.round(scores[7, :])  # many ties across every boundary
    for k in (1, 3, 100, 499, 500):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(topk_from_scores(scores, k), expected)


@settings(max_examples=60, deadline=None)
@given(ranking_batches())
def test_topk_matches_stable_argsort(batch):
    scores, _, _, _ = batch
    for k in range(1, scores.shape[1] + 1):
        expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        np.testing.assert_array_equal(topk_from_scores(scores, k), expected)
        # column-major blocks (the sparse decoders' transposed logits) rank the same
        np.testing.assert_array_equal(topk_from_scores(np.asfortranarray(scores), k), expected)


def _reference_rank(scores, X, n, exclude_seen, items):
    """Straight from the definition: -inf outside the candidates and at seen items, a stable
    sort, -1 where the score is -inf."""
    block = np.array(scores, dtype=np.float32)
    if items is not None:
        outside = np.ones(block.shape[1], dtype=bool)
        outside[items] = False
        block[:, outside] = -np.inf
    if exclude_seen:
        block[X.toarray() != 0] = -np.inf
    top = np.argsort(-block, axis=1, kind="stable")[:, :n]
    vals = np.take_along_axis(block, top, axis=1)
    return np.where(vals == -np.inf, -1, top), vals


@settings(max_examples=100, deadline=None)
@given(ranking_batches(), st.booleans(), st.booleans())
def test_rank_batch_matches_reference(batch, exclude_seen, use_items):
    scores, X, k, items = batch
    items = np.sort(items) if use_items else None
    if items is None:
        k = min(k, scores.shape[1])
    top, vals = rank_batch(scores, X, k, exclude_seen=exclude_seen, items=items)
    expected_top, expected_vals = _reference_rank(scores, X, k, exclude_seen, items)
    np.testing.assert_array_equal(top, expected_top)
    np.testing.assert_array_equal(vals, expected_vals)
    assert top.dtype == np.int64 and vals.dtype == np.float32
    assert np.all(vals[:, :-1] >= vals[:, 1:])  # sorted descending, -inf last
    assert np.array_equal(top == -1, vals == -np.inf)  # padding <=> -inf
    if items is not None:
        assert np.isin(top[top >= 0], items).all()
    if exclude_seen:
        seen = X.toarray() != 0
        placed = top >= 0
        assert not seen[np.nonzero(placed)[0], top[placed]].any()
    np.testing.assert_array_equal(
        topk_masked(scores, X, min(k, scores.shape[1]), exclude_seen),
        rank_batch(scores, X, min(k, scores.shape[1]), exclude_seen=exclude_seen)[0],
    )


# -- kernels ----------------------------------------------------------------------------------
def test_kernels_on_topk_with_padding():
    y_true = sp.csr_array(np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 0, 0]]))
    top = np.array([[2, -1, 0], [0, 1, 2], [-1, -1, -1]])
    ndcg = ndcg_from_topk(top, y_true, 3)
    assert ndcg[0] == pytest.approx((1 + 1 / 2) / IDCG_2)
    assert np.isnan(ndcg[1]) and ndcg[2] == 0.0
    np.testing.assert_allclose(recall_from_topk(top, y_true, 3), [1.0, np.nan, 0.0])
    np.testing.assert_allclose(precision_from_topk(top, y_true, 3), [2 / 3, np.nan, 0.0])
    np.testing.assert_allclose(hit_rate_from_topk(top, y_true, 3), [1.0, np.nan, 0.0])
    for kernel in KERNEL_LIST:
        out = kernel(top, y_true, 2)  # only the first k columns count
        assert out.dtype == np.float64 and out.shape == (3,)
    assert KERNELS == dict(
        zip(["ndcg", "recall", "precision", "hit_rate"], KERNEL_LIST, strict=True)
    )


def test_kernel_uses_first_k_columns_only():
    y_true = sp.csr_array(np.array([[0, 0, 1]]))
    top = np.array([[0, 1, 2]])
    assert recall_from_topk(top, y_true, 2)[0] == 0.0
    assert recall_from_topk(top, y_true, 3)[0] == 1.0
    with pytest.raises(ValueError, match="fewer than k=4"):
        recall_from_topk(top, y_true, 4)


def test_explicit_zero_in_y_true_is_not_relevant():
    y_true = sp.csr_array((np.array([0.0, 1.0]), (np.array([0, 0]), np.array([0, 1]))), (1, 3))
    top = np.array([[0, 2, 1]])
    assert recall_from_topk(top, y_true, 2)[0] == 0.0  # item 0 stored as 0: not relevant
    assert hit_rate_from_topk(top, y_true, 3)[0] == 1.0


def _reference_metrics(top_row, relevant, k):
    """Per-user metrics written straight from the definitions, one user at a time."""
    ranked = list(top_row[:k])
    if not relevant:
        return (math.nan,) * 4
    hit = [i >= 0 and i in relevant for i in ranked]
    dcg = sum(1.0 / math.log2(r + 2) for r, h in enumerate(hit) if h)
    idcg = sum(1.0 / math.log2(r + 2) for r in range(min(k, len(relevant))))
    n_hits = sum(hit)
    return dcg / idcg, n_hits / min(k, len(relevant)), n_hits / k, float(n_hits > 0)


@settings(max_examples=60, deadline=None)
@given(ranking_batches(), st.data())
def test_kernels_match_reference(batch, data):
    scores, y, _, _ = batch
    k = data.draw(st.integers(1, scores.shape[1]))
    top = topk_from_scores(scores, k)
    # pad / corrupt some places with -1, which must never count as a hit
    pad = data.draw(hnp.arrays(bool, top.shape))
    top = np.where(pad, -1, top)
    for u in range(y.shape[0]):
        row = y.indices[y.indptr[u] : y.indptr[u + 1]]
        relevant = set(row[y.data[y.indptr[u] : y.indptr[u + 1]] > 0].tolist())
        expected = _reference_metrics(top[u], relevant, k)
        got = [kernel(top, y, k)[u] for kernel in KERNEL_LIST]
        np.testing.assert_allclose(got, expected, equal_nan=True)


# -- recommend(items=..., return_scores=...) on a recommender ----------------------------------
class Linear(RecommenderMixin, BaseEstimator):
    """Scores X @ W with a fixed random W: user-dependent scores, torch-free."""

    def __init__(self, batch_size=None):
        self.batch_size = batch_size

    def fit(self, X, y=None):
        X = self._validate_interactions(X, reset=True)
        rng = np.random.RandomState(0)
        self.coef_ = rng.rand(X.shape[1], X.shape[1]).astype(np.float32)
        return self

    def _decision_function_batch(self, X, rows):
        return np.asarray(X @ self.coef_)


def _data(n_users=30, n_items=12, seed=0):
    return sp.csr_array((np.random.RandomState(seed).rand(n_users, n_items) < 0.3) * 1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(0, 11), min_size=1, max_size=12, unique=True),
    st.integers(1, 12),
    st.booleans(),
    st.sampled_from([None, 1, 4]),
)
def test_recommend_items_and_scores(items, n, exclude_seen, batch_size):
    X = _data()
    model = Linear(batch_size=batch_size).fit(X)
    n = min(n, len(items))
    top, scores = model.recommend(X, n, exclude_seen=exclude_seen, items=items, return_scores=True)
    assert top.shape == scores.shape == (X.shape[0], n)
    assert top.dtype == np.int64 and scores.dtype == np.float32
    placed = top >= 0
    assert np.isin(top[placed], items).all()  # items restricts
    assert np.array_equal(~placed, scores == -np.inf)  # -1 pads with -inf
    assert np.all(scores[:, :-1] >= scores[:, 1:])  # best first
    full = model.decision_function(X)
    rows = np.nonzero(placed)[0]
    np.testing.assert_array_equal(scores[placed], full[rows, top[placed]])
    seen = X.toarray() > 0
    if exclude_seen:
        assert not seen[rows, top[placed]].any()
        # a row is padded exactly when it has fewer than n unseen candidates
        left = (~seen[:, items]).sum(axis=1)
        np.testing.assert_array_equal(placed.sum(axis=1), np.minimum(left, n))
    else:
        assert placed.all()
    # same list as ranking the candidates of the full score matrix
    masked = np.full_like(full, -np.inf)
    masked[:, items] = full[:, items]
    if exclude_seen:
        masked[seen] = -np.inf
    expected = np.argsort(-masked, axis=1, kind="stable")[:, :n]
    np.testing.assert_array_equal(np.where(placed, top, -1), np.where(placed, expected, -1))
    assert np.array_equal(model.recommend(X, n, exclude_seen=exclude_seen, items=items), top)


def test_recommend_without_items_unchanged_and_scores():
    X = _data()
    model = Linear().fit(X)
    top, scores = model.recommend(X, n=5, return_scores=True)
    np.testing.assert_array_equal(top, model.recommend(X, n=5))
    all_items = model.recommend(X, n=5, items=np.arange(X.shape[1])[::-1])
    np.testing.assert_array_equal(all_items, top)  # candidate order does not matter
    full = model.decision_function(X)
    np.testing.assert_array_equal(scores, np.take_along_axis(full, top, axis=1))


def test_recommend_padding_with_items():
    X = sp.csr_array(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=np.float32))
    model = Linear().fit(_data(n_items=5))
    top, scores = model.recommend(X, n=3, items=[0, 1, 2], return_scores=True)
    assert top[0, 0] == 2 and np.all(top[0, 1:] == -1) and np.all(scores[0, 1:] == -np.inf)
    assert sorted(top[1].tolist()) == [0, 1, 2] and np.all(np.isfinite(scores[1]))


@pytest.mark.parametrize(
    "items, error, match",
    [
        ([], ValueError, "at least one item"),
        ([0, 0, 1], ValueError, "1 duplicate"),
        ([0, 12], ValueError, r"range \[0, 11\].*Got 12"),
        ([-1, 2], ValueError, "Got -1"),
        ([[0, 1]], ValueError, "1-D"),
        ([0.0, 1.0], TypeError, "integer item indices"),
        (np.ones(12, dtype=bool), TypeError, "flatnonzero"),
        (sp.csr_array([[0, 1]]), TypeError, "sparse"),
    ],
)
def test_recommend_items_errors(items, error, match):
    model = Linear().fit(_data())
    with pytest.raises(error, match=match):
        model.recommend(_data(n_users=2), n=1, items=items)


def test_recommend_n_larger_than_candidates():
    model = Linear().fit(_data())
    with pytest.raises(ValueError, match=r"'n' parameter of Linear.recommend.*\[1, 2\]"):
        model.recommend(_data(n_users=2), n=3, items=[4, 5])
    msg = (
        "The 'n' parameter of Linear.recommend must be an int in the range [1, 12] "
        "(the model knows 12 items). Got 13 instead."
    )
    with pytest.raises(ValueError) as exc:
        model.recommend(_data(n_users=2), n=13)
    assert str(exc.value) == msg


def test_module_level_recommend_items_on_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X = _data()
    pipe = make_pipeline(FunctionTransformer(accept_sparse=True), Linear()).fit(X)
    got = recommend(pipe, X, n=3, items=[1, 4, 7, 9], return_scores=True)
    expected = pipe[-1].recommend(X, n=3, items=[1, 4, 7, 9], return_scores=True)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(recommend(pipe, X, n=3), pipe[-1].recommend(X, n=3))
    assert skcfae.base.recommend is recommend


class _OldStyle:
    """Any object with the older ``recommend(X, n, exclude_seen=...)`` signature."""

    def recommend(self, X, n, exclude_seen=True):
        return np.zeros((np.shape(X)[0], n), dtype=np.int64)


def test_module_level_recommend_keeps_old_signatures_working():
    assert recommend(_OldStyle(), np.ones((2, 3)), n=2).shape == (2, 2)


# -- internal paths validate once -------------------------------------------------------------
@pytest.fixture
def count_validations(monkeypatch):
    calls = []
    real = skcfae._validation.check_interactions

    def counting(*args, **kwargs):
        calls.append(kwargs.get("caller"))
        return real(*args, **kwargs)

    for module in (skcfae.base, skcfae.metrics, skcfae.model_selection):
        monkeypatch.setattr(module, "check_interactions", counting)
    return calls


def test_score_and_scorers_validate_once(count_validations):
    X = _data(n_users=40, n_items=12)
    model = Linear().fit(X)
    count_validations.clear()
    value = model.score(X)
    assert count_validations == ["Linear.score"]
    count_validations.clear()
    assert ndcg_scorer(k=100)(model, X) == value  # score is ndcg_scorer(k=100)
    assert count_validations == ["ndcg_scorer"]
    count_validations.clear()
    recall_scorer(k=5)(model, X)
    assert count_validations == ["recall_scorer"]


def test_recommend_validated_matches_recommend():
    X = _data()
    model = Linear(batch_size=7).fit(X)
    Xv = skcfae._validation.check_interactions(X, caller="test")
    np.testing.assert_array_equal(recommend_validated(model, Xv, 4), model.recommend(X, n=4))
    with pytest.raises(ValueError, match="items but Linear was fitted on 12"):
        recommend_validated(model, sp.csr_array((2, 13), dtype=np.float32), 4)


def test_topk_of_a_large_block_is_ranked_in_threads_with_the_same_result(monkeypatch):
    """Above the size where slices of rows go to threads, the result is unchanged."""
    from skcfae import _ranking

    rng = np.random.default_rng(1)
    scores = np.round(rng.standard_normal((37, 3000)), 1).astype(np.float32)  # ties too
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :50]
    monkeypatch.setattr(_ranking, "_PARALLEL_ABOVE", 1)
    monkeypatch.setattr(_ranking, "_threads", lambda: 3)
    np.testing.assert_array_equal(topk_from_scores(scores, 50), expected)


def test_ranking_threads_follow_omp_num_threads(monkeypatch):
    from skcfae import _ranking

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _ranking._threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert _ranking._threads() >= 1


def test_rank_batch_may_mask_the_callers_block_in_place():
    scores = np.array([[0.5, 0.9, 0.1], [0.2, 0.3, 0.8]], dtype=np.float32)
    X = sp.csr_array(np.array([[0, 1, 0], [0, 0, 1]], dtype=np.float32))
    expected = rank_batch(scores, X, 2)
    assert scores[0, 1] == np.float32(0.9)  # a copy was masked
    got = rank_batch(scores, X, 2, overwrite_scores=True)
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert scores[0, 1] == -np.inf and scores[1, 2] == -np.inf
