import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import InvalidParameterError

from skcfae._ranking import (
    hit_rate_from_topk,
    ndcg_from_topk,
    precision_from_topk,
    recall_from_topk,
)
from skcfae.base import RecommenderMixin
from skcfae.metrics import (
    hit_rate_at_k,
    hit_rate_scorer,
    ndcg_at_k,
    ndcg_scorer,
    precision_at_k,
    precision_scorer,
    recall_at_k,
    recall_scorer,
    rmse,
    rmse_scorer,
)
from skcfae.model_selection import fold_in_split

IDCG_2 = 1.0 + 1.0 / math.log2(3)


# -- hand-computed cases ------------------------------------------------------------------------
def test_hand_computed_single_user():
    # held-out {0, 2}; scores rank [2, 1, 0, 3]
    y_true = np.array([[1, 0, 1, 0]])
    y_score = np.array([[0.1, 0.5, 0.9, 0.0]])
    assert ndcg_at_k(y_true, y_score, k=3) == pytest.approx(1.5 / IDCG_2)
    assert ndcg_at_k(y_true, y_score, k=1) == pytest.approx(1.0)
    assert ndcg_at_k(y_true, y_score, k=2) == pytest.approx(1.0 / IDCG_2)
    assert recall_at_k(y_true, y_score, k=2) == pytest.approx(0.5)
    assert recall_at_k(y_true, y_score, k=3) == pytest.approx(1.0)
    assert recall_at_k(y_true, y_score, k=1) == pytest.approx(1.0)  # min(k, |held-out|) = 1
    assert precision_at_k(y_true, y_score, k=2) == pytest.approx(0.5)
    assert precision_at_k(y_true, y_score, k=4) == pytest.approx(0.5)
    assert hit_rate_at_k(y_true, y_score, k=1) == 1.0
    assert hit_rate_at_k([[1, 0, 0, 0]], y_score, k=2) == 0.0


def test_average_false_and_users_without_holdout():
    y_true = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 0]])
    y_score = np.array([[3.0, 2.0, 1.0]] * 3)
    per_user = recall_at_k(y_true, y_score, k=1, average=False)
    np.testing.assert_array_equal(per_user, [1.0, np.nan, 0.0])
    assert recall_at_k(y_true, y_score, k=1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no user has a held-out item"):
        ndcg_at_k(np.zeros((2, 3)), np.ones((2, 3)), k=2)


# -- errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", [ndcg_at_k, recall_at_k, precision_at_k, hit_rate_at_k])
def test_errors(metric):
    y_true, y_score = np.eye(3), np.ones((3, 3))
    name = metric.__name__
    msg = f"The 'k' parameter of {name} must be an int in the range [1, inf). Got 0 instead."
    with pytest.raises(InvalidParameterError) as exc:
        metric(y_true, y_score, k=0)
    assert str(exc.value) == msg
    with pytest.raises(ValueError, match=r"\(3, 3\).*\(3, 4\)"):
        metric(y_true, np.ones((3, 4)), k=1)
    with pytest.raises(ValueError, match="at most n_items=3"):
        metric(y_true, y_score, k=4)
    with pytest.raises(ValueError, match="NaN"):
        metric(y_true, np.full((3, 3), np.nan), k=1)
    with pytest.raises(TypeError, match="toarray"):
        metric(y_true, sp.csr_array(y_score), k=1)
    with pytest.raises(ValueError, match="Negative"):
        metric(-y_true, y_score, k=1)


def test_sparse_and_dense_y_true_agree():
    rng = np.random.RandomState(0)
    y = (rng.rand(10, 15) < 0.3).astype(float)
    s = rng.rand(10, 15)
    for metric in (ndcg_at_k, recall_at_k, precision_at_k, hit_rate_at_k):
        assert metric(y, s, k=5) == metric(sp.csr_matrix(y), s, k=5)


# -- hypothesis properties --------------------------------------------------------------------
@st.composite
def ranking_problems(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 10))
    y = draw(hnp.arrays(np.int8, (n_users, n_items), elements=st.integers(0, 2)))
    # few distinct values: many ties; -inf: excluded items
    scores = draw(
        hnp.arrays(
            np.float64,
            (n_users, n_items),
            elements=st.sampled_from([-np.inf, 0.0, 0.25, 0.5, 1.0, 2.0]),
        )
    )
    k = draw(st.integers(1, n_items))
    return sp.csr_array(y), scores, k


@settings(max_examples=60, deadline=None)
@given(ranking_problems())
def test_metrics_bounded_and_perfect_ranking(problem):
    y, scores, k = problem
    has = np.diff(y.indptr) > 0
    for metric in (ndcg_at_k, recall_at_k, precision_at_k, hit_rate_at_k):
        per_user = metric(y, scores, k=k, average=False)
        assert np.array_equal(np.isnan(per_user), ~has)
        assert np.all((per_user[has] >= 0) & (per_user[has] <= 1 + 1e-12))
    if has.any():
        # held-out items first: perfect NDCG and recall
        perfect = np.where(y.toarray() > 0, 10.0, scores)  # scores are at most 2
        ndcg = ndcg_at_k(y, perfect, k=k, average=False)
        recall = recall_at_k(y, perfect, k=k, average=False)
        np.testing.assert_allclose(ndcg[has], 1.0)
        np.testing.assert_allclose(recall[has], 1.0)
        assert hit_rate_at_k(y, perfect, k=k) == 1.0


@settings(max_examples=40, deadline=None)
@given(ranking_problems(), st.randoms(use_true_random=False))
def test_user_order_permutes_results(problem, random):
    y, scores, k = problem
    perm = np.array(random.sample(range(y.shape[0]), y.shape[0]))
    for metric in (ndcg_at_k, recall_at_k, precision_at_k, hit_rate_at_k):
        a = metric(y, scores, k=k, average=False)
        b = metric(y[perm], scores[perm], k=k, average=False)
        np.testing.assert_array_equal(a[perm], b)


# -- rmse ---------------------------------------------------------------------------------------
def test_rmse_sparse_dense_and_explicit_zeros():
    y_true = sp.csr_array([[5.0, 0.0, 3.0], [0.0, 4.0, 0.0]])
    y_pred = sp.csr_array([[4.0, 0.0, 3.0], [0.0, 3.0, 0.0]])
    assert rmse(y_true, y_pred) == pytest.approx(math.sqrt(2 / 3))
    dense_pred = np.array([[4.0, 9.0, 3.0], [9.0, 3.0, 9.0]])  # read at y_true's entries only
    assert rmse(y_true, dense_pred) == pytest.approx(math.sqrt(2 / 3))
    assert rmse(np.array([[1.0, 0.0]]), np.array([[1.0, 2.0]])) == pytest.approx(math.sqrt(2))
    # a stored 0 is an observed rating
    z = sp.csr_array((np.array([0.0, 2.0]), (np.array([0, 0]), np.array([0, 1]))), (1, 2))
    assert rmse(z, np.array([[1.0, 2.0]])) == pytest.approx(math.sqrt(0.5))


def test_rmse_errors():
    y_true = sp.csr_array([[5.0, 0.0, 3.0]])
    with pytest.raises(ValueError, match="sparsity pattern"):
        rmse(y_true, sp.csr_array([[5.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\(1, 3\).*\(1, 2\)"):
        rmse(y_true, np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"\(1, 3\).*\(1, 2\)"):
        rmse(y_true, sp.csr_array(np.ones((1, 2))))
    with pytest.raises(TypeError, match="dense"):
        rmse(np.ones((1, 3)), y_true)
    with pytest.raises(ValueError, match="no rating"):
        rmse(sp.csr_array((1, 3)), np.ones((1, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        rmse(y_true, np.array([[np.nan, 1.0, 1.0]]))


def test_rmse_dense_y_true_nan_marks_unobserved():
    # a dense y_true reads as a rating model reads its data: NaN unobserved, 0 a rating
    dense = np.array([[5.0, np.nan, 3.0], [np.nan, 4.0, 0.0]])
    pred = np.array([[4.0, 9.0, 3.0], [9.0, 3.0, 1.0]])
    assert rmse(dense, pred) == pytest.approx(math.sqrt(3 / 4))
    sparse = sp.csr_array(
        (np.array([5.0, 3.0, 4.0, 0.0]), (np.array([0, 0, 1, 1]), np.array([0, 2, 1, 2]))),
        shape=(2, 3),
    )
    assert rmse(dense, pred) == rmse(sparse, pred)
    with pytest.raises(ValueError, match="no rating"):
        rmse(np.full((2, 2), np.nan), np.ones((2, 2)))
    with pytest.raises(ValueError, match="infinite"):
        rmse(np.array([[np.inf, 1.0]]), np.ones((1, 2)))


def test_rmse_duplicate_ratings_are_an_error():
    twice = sp.coo_array((np.array([4.0, 5.0]), (np.array([0, 0]), np.array([1, 1]))), (1, 3))
    with pytest.raises(ValueError, match=r"1 duplicate \(user, item\) entries in y_true"):
        rmse(twice, np.ones((1, 3)))
    with pytest.raises(ValueError, match="entries in y_pred"):
        rmse(sp.csr_array([[0.0, 4.0, 0.0]]), twice)


class _ConstantRater:
    def predict(self, X):
        X = sp.csr_array(X, copy=True)
        X.data[:] = 4.0
        return X


def test_rmse_scorer():
    X = sp.csr_array([[5.0, 0.0, 3.0], [0.0, 4.0, 0.0]])
    scorer = rmse_scorer()
    assert repr(scorer) == "rmse_scorer()"
    assert scorer(_ConstantRater(), X) == pytest.approx(-math.sqrt(2 / 3))
    assert pickle.loads(pickle.dumps(scorer))(_ConstantRater(), X) == scorer(_ConstantRater(), X)


class _ValidatedRater(_ConstantRater):
    """A rating model exposing ``_predict_validated``: the scorer must not call ``predict``."""

    n_items_in_ = 3

    def predict(self, X):
        raise AssertionError("predict called: X would be validated twice")

    def _predict_validated(self, X):
        assert isinstance(X, sp.csr_array) and X.has_canonical_format
        return _ConstantRater.predict(self, X)


def test_rmse_scorer_uses_validated_predict_path():
    X = sp.csr_array([[5.0, 0.0, 3.0], [0.0, 4.0, 0.0]])
    assert rmse_scorer()(_ValidatedRater(), X) == rmse_scorer()(_ConstantRater(), X)
    with pytest.raises(ValueError, match="items but _ValidatedRater was fitted on 3"):
        rmse_scorer()(_ValidatedRater(), sp.csr_array(np.ones((1, 4))))


# -- ranking scorers ----------------------------------------------------------------------------
class Popularity(RecommenderMixin, BaseEstimator):
    """Most popular items first; a torch-free stand-in recommender for the scorer tests."""

    def fit(self, X, y=None):
        X = self._validate_interactions(X, reset=True)
        self.counts_ = np.bincount(X.indices, minlength=X.shape[1]).astype(np.float32)
        return self

    def _decision_function_batch(self, X, rows):
        return np.broadcast_to(self.counts_, X.shape)


def _data(n_users=40, n_items=30, seed=0):
    return sp.csr_array((np.random.RandomState(seed).rand(n_users, n_items) < 0.35) * 1.0)


@pytest.mark.parametrize(
    "factory, kernel",
    [
        (ndcg_scorer, ndcg_from_topk),
        (recall_scorer, recall_from_topk),
        (precision_scorer, precision_from_topk),
        (hit_rate_scorer, hit_rate_from_topk),
    ],
)
def test_ranking_scorer_matches_manual(factory, kernel):
    X = _data()
    est = Popularity().fit(_data(seed=1))
    scorer = factory(k=5, random_state=3)
    fold_in, holdout = fold_in_split(X, test_size=0.2, random_state=3)
    users = np.diff(holdout.indptr) > 0
    top = est.recommend(fold_in[users], n=5)
    expected = np.mean(kernel(top, holdout[users], 5))
    assert scorer(est, X) == pytest.approx(expected)
    assert scorer(est, X) == scorer(est, X)  # fixed seed: same split each call
    restored = pickle.loads(pickle.dumps(scorer))
    assert restored(est, X) == scorer(est, X)
    assert repr(scorer).endswith("_scorer(k=5, holdout_fraction=0.2, random_state=3)")


def test_scorer_on_pipeline_and_k_larger_than_catalog():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X = _data()
    pipe = make_pipeline(FunctionTransformer(accept_sparse=True), Popularity()).fit(X)
    est = Popularity().fit(X)
    assert ndcg_scorer(k=10)(pipe, X) == ndcg_scorer(k=10)(est, X)
    # k > n_items: the top list is all items, places beyond the catalog are misses
    assert recall_scorer(k=100)(est, X) == pytest.approx(1.0)
    assert 0 < ndcg_scorer(k=100)(est, X) <= 1


def test_scorer_errors():
    with pytest.raises(InvalidParameterError, match="'k' parameter of ndcg_scorer"):
        ndcg_scorer(k=0)
    with pytest.raises(InvalidParameterError, match="holdout_fraction"):
        recall_scorer(holdout_fraction=1.5)
    X = sp.csr_array(np.eye(4))  # one interaction per user: nothing held out
    with pytest.raises(ValueError, match="no user of X has a held-out item"):
        ndcg_scorer(k=2)(Popularity().fit(X), X)


def test_scorer_in_grid_search_with_user_split():
    from sklearn.model_selection import GridSearchCV, cross_validate

    from skcfae.model_selection import UserSplit

    X = _data(n_users=60)
    cv = UserSplit(n_splits=3, random_state=0)
    res = cross_validate(Popularity(), X, cv=cv, scoring=ndcg_scorer(k=10))
    assert res["test_score"].shape == (3,) and np.all(res["test_score"] > 0)
    search = GridSearchCV(
        Popularity(),
        {},
        cv=cv,
        scoring={"ndcg": ndcg_scorer(k=10), "recall": recall_scorer(k=5)},
        refit="ndcg",
    ).fit(X)
    assert 0 < search.best_score_ <= 1
