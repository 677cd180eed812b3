"""The ranking contract every top-n recommender keeps, on small planted-groups data."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

from skcfae import EASE, Popularity, recommend
from skcfae.metrics import ndcg_at_k

from .estimators import CONTRACT, ids, instances

RECOMMENDERS = instances(CONTRACT, "ranking")
IDS = ids(RECOMMENDERS)


@pytest.fixture(scope="module", params=RECOMMENDERS, ids=IDS)
def fitted(request, planted):
    X_train, _, _ = planted
    return clone(request.param).fit(X_train)


def holdout_ndcg(est, fold_in, holdout):
    return ndcg_at_k(holdout, est.decision_function(fold_in) - 1e9 * fold_in.toarray(), k=20)


def test_known_answer_on_planted_groups(fitted, planted):
    """Personalised models beat popularity clearly on data with planted item groups."""
    X_train, fold_in, holdout = planted
    pop = holdout_ndcg(Popularity().fit(X_train), fold_in, holdout)
    score = holdout_ndcg(fitted, fold_in, holdout)
    if isinstance(fitted, Popularity):
        assert 0.0 < score < 0.5
    else:
        assert score > pop + 0.1, (score, pop)


def test_batch_equals_one_by_one(fitted, planted):
    _, fold_in, _ = planted
    fitted = clone(fitted).set_params(
        **({"batch_size": 7} if "batch_size" in fitted.get_params() else {})
    )
    fitted.fit(planted[0])
    together = fitted.decision_function(fold_in[:20])
    alone = np.vstack([fitted.decision_function(fold_in[i : i + 1]) for i in range(20)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    top = fitted.recommend(fold_in[:20], n=10)
    # items may only swap where their scores tie to float precision
    ranked = np.take_along_axis(alone, top, axis=1)
    assert np.all(np.diff(ranked, axis=1) <= 1e-5)


def test_seen_items_never_returned(fitted, planted):
    _, fold_in, _ = planted
    top = fitted.recommend(fold_in, n=30)
    seen = fold_in.toarray() > 0
    assert not np.any(np.take_along_axis(seen, top, axis=1))
    assert top.dtype == np.int64 and top.shape == (fold_in.shape[0], 30)
    with_seen = fitted.recommend(fold_in, n=30, exclude_seen=False)
    assert np.any(np.take_along_axis(seen, with_seen, axis=1))


def test_short_rows_padded_with_minus_one(fitted):
    n_items = fitted.n_items_in_
    X = np.ones((2, n_items), dtype=np.float32)
    X[0, :3] = 0  # three unseen items left
    top = fitted.recommend(sp.csr_array(X), n=5)
    assert sorted(top[0, :3]) == [0, 1, 2]
    assert np.all(top[0, 3:] == -1) and np.all(top[1] == -1)


def test_n_validated(fitted, planted):
    _, fold_in, _ = planted
    with pytest.raises(ValueError, match="'n' parameter"):
        fitted.recommend(fold_in, n=fitted.n_items_in_ + 1)
    with pytest.raises(ValueError, match="'n' parameter"):
        fitted.recommend(fold_in, n=0)
    assert fitted.recommend(fold_in[:1], n=fitted.n_items_in_).shape == (1, fitted.n_items_in_)


def test_wrong_item_count(fitted):
    with pytest.raises(ValueError, match="items but .* was fitted on"):
        fitted.recommend(sp.csr_array((2, fitted.n_items_in_ + 3)), n=2)


def test_pickle_round_trip(fitted, planted):
    _, fold_in, _ = planted
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(
        again.decision_function(fold_in), fitted.decision_function(fold_in)
    )


def test_same_random_state_same_model(fitted, planted):
    X_train, fold_in, _ = planted
    a = clone(fitted).fit(X_train).decision_function(fold_in)
    b = clone(fitted).fit(X_train).decision_function(fold_in)
    np.testing.assert_array_equal(a, b)


def test_module_level_recommend_on_pipeline(fitted, planted):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X_train, fold_in, _ = planted
    pipe = make_pipeline(FunctionTransformer(accept_sparse=True), clone(fitted)).fit(X_train)
    np.testing.assert_array_equal(recommend(pipe, fold_in, n=5), pipe[-1].recommend(fold_in, n=5))
    with pytest.raises(TypeError, match="no recommend method"):
        recommend(FunctionTransformer(), fold_in)


def test_score_is_ndcg_at_100(fitted, planted):
    X_train, fold_in, holdout = planted
    value = fitted.score(fold_in + holdout)
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(
    "X, error, match",
    [
        (np.array([[1.0, np.nan]]), ValueError, "NaN"),
        (np.array([[1.0, np.inf]]), ValueError, "NaN or infinite"),
        (np.array([[1.0, -1.0]]), ValueError, "Negative values"),
        (np.zeros((0, 3)), ValueError, "empty"),
        (np.array([1.0, 2.0]), ValueError, "2-D"),
        (np.array([["a", "b"]], dtype=object), TypeError, "numeric"),
        (np.array([[1 + 1j, 0]]), ValueError, "Complex data"),
        ("abc", TypeError, "scipy.sparse"),
        (None, TypeError, "None"),
    ],
)
def test_bad_input_errors(X, error, match):
    for est in RECOMMENDERS:
        with pytest.raises(error, match=match):
            clone(est).fit(X)


def test_ease_matches_closed_form():
    """B = I - P diagMat(1/diag P), P = (XᵀX + λI)⁻¹ on a hand-sized case (Steck 2019, Eq. 8)."""
    X = np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1], [1, 0, 0]], dtype=float)
    lam = 2.0
    P = np.linalg.inv(X.T @ X + lam * np.eye(3))
    B = np.eye(3) - P / np.diag(P)
    model = EASE(lam=lam).fit(X)
    np.testing.assert_allclose(model.coef_, B, atol=1e-6)
    assert np.all(np.diag(model.coef_) == 0)
    np.testing.assert_allclose(model.decision_function(X), X @ B, atol=1e-5)


def test_popularity_hand_computed():
    X = sp.csr_array(np.array([[1, 0, 1, 0], [0, 0, 1, 1], [1, 0, 5, 0]], dtype=float))
    model = Popularity().fit(X)
    np.testing.assert_array_equal(model.item_counts_, [2, 0, 3, 1])
    np.testing.assert_array_equal(model.recommend(sp.csr_array((1, 4)), n=4), [[2, 0, 3, 1]])
