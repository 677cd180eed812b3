"""The rating contract every rating-prediction model keeps, on small planted ratings."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from skcfae.metrics import rmse, rmse_scorer
from skcfae.model_selection import RatingEntries, rating_holdout_split

from .estimators import CONTRACT, ids, instances

RATING = instances(CONTRACT, "rating")
RATING_IDS = ids(RATING)
# every rating model in both orientations it offers
VARIANTS = [
    clone(est).set_params(kind=kind) if "kind" in est.get_params() else est
    for est in RATING
    for kind in (("item", "user") if "kind" in est.get_params() else (None,))
]
VARIANT_IDS = [f"{type(e).__name__}-{e.get_params().get('kind', '')}".rstrip("-") for e in VARIANTS]


def _planted_ratings(n_users=120, n_items=60, rank=3, density=0.3, seed=0):
    """Ratings 1-5 from a low-rank model: users' and items' tastes, observed at random."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(n_users, rank)) @ rng.normal(size=(rank, n_items)) / np.sqrt(rank)
    ratings = np.clip(np.round(3 + 1.2 * scores), 1, 5).astype(np.float32)
    mask = rng.random((n_users, n_items)) < density
    R = sp.csr_array(np.where(mask, ratings, 0.0))
    R.eliminate_zeros()
    return R


@pytest.fixture(scope="module")
def ratings():
    R = _planted_ratings()
    train, test = rating_holdout_split(R, test_size=0.1, random_state=0)
    return train, test


@pytest.fixture(scope="module", params=VARIANTS, ids=VARIANT_IDS)
def fitted(request, ratings):
    train, _ = ratings
    return clone(request.param).fit(train)


def _mean_rmse(train, test):
    return rmse(test, np.full(test.shape, train.data.mean()))


def test_beats_the_global_mean(fitted, ratings):
    train, test = ratings
    assert -fitted.score(test) < _mean_rmse(train, test) - 0.05


def test_predict_keeps_the_query_pattern_and_clips(fitted, ratings):
    _, test = ratings
    pred = fitted.predict(test)
    assert sp.issparse(pred) and pred.shape == test.shape
    np.testing.assert_array_equal(pred.indptr, test.indptr)
    np.testing.assert_array_equal(pred.indices, test.indices)
    low, high = fitted.rating_range_
    assert (low, high) == (1.0, 5.0)
    assert pred.data.min() >= low and pred.data.max() <= high


def test_score_is_negative_rmse(fitted, ratings):
    _, test = ratings
    assert fitted.score(test) == pytest.approx(-rmse(test, fitted.predict(test)), rel=1e-5)
    assert rmse_scorer()(fitted, test) == pytest.approx(fitted.score(test), rel=1e-5)


def test_predict_reads_the_training_ratings_not_the_query_values(fitted, ratings):
    _, test = ratings
    shuffled = test.copy()
    shuffled.data = np.random.default_rng(1).uniform(1, 5, test.nnz).astype(np.float32)
    np.testing.assert_array_equal(fitted.predict(shuffled).data, fitted.predict(test).data)


def test_recommend_ranks_unrated_items_by_predicted_rating(fitted, ratings):
    train, _ = ratings
    top, scores = fitted.recommend(train, n=5, return_scores=True)
    seen = train.toarray() != 0
    assert not np.any(np.take_along_axis(seen, top, axis=1))
    assert np.all(np.diff(scores, axis=1) <= 1e-6)
    # the scores are the predictions of those entries
    users = np.repeat(np.arange(train.shape[0]), 5)
    query = sp.csr_array((np.ones(users.size), (users, top.ravel())), shape=train.shape)
    pred = fitted.predict(query)
    np.testing.assert_allclose(
        np.sort(pred.toarray()[users, top.ravel()]), np.sort(scores.ravel()), rtol=1e-5
    )


def test_duplicates_are_an_error_and_dense_nan_is_unobserved(fitted, ratings):
    train, _ = ratings
    est = clone(fitted)
    coo = sp.coo_array(train)
    doubled = sp.coo_array(
        (np.r_[coo.data, coo.data[:1]], (np.r_[coo.row, coo.row[:1]], np.r_[coo.col, coo.col[:1]])),
        shape=train.shape,
    )
    with pytest.raises(ValueError, match="duplicate"):
        est.fit(doubled)
    dense = np.where(train.toarray() != 0, train.toarray(), np.nan)
    a = clone(fitted).fit(dense).predict(train)
    b = clone(fitted).fit(train).predict(train)
    np.testing.assert_array_equal(a.data, b.data)


def test_stored_zero_is_a_rating(fitted):
    R = _planted_ratings(40, 20, density=0.5)
    R.data[:5] = 0.0  # a 0-5 scale: stored zeros are observed ratings
    est = clone(fitted).set_params(epochs=1).fit(R)
    assert est.rating_range_[0] == 0.0


def test_pickle_round_trip_and_same_seed(fitted, ratings):
    train, test = ratings
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(test).data, fitted.predict(test).data)
    twin = clone(fitted).fit(train)
    np.testing.assert_array_equal(twin.predict(test).data, fitted.predict(test).data)


def test_validation_is_rmse_and_keeps_the_best_epoch(fitted, ratings):
    train, test = ratings
    est = clone(fitted).fit(train, X_valid=test)
    # the last validated phase decides (staged models validate some phases only)
    last = est.history_[-1].get("phase")
    records = [h for h in est.history_ if h.get("phase") == last]
    values = [h["valid_rmse"] for h in records]
    assert est.best_epoch_ == records[int(np.argmin(values))]["epoch"]
    assert -est.score(test) == pytest.approx(min(values), rel=1e-5)
    stopped = clone(fitted).set_params(early_stopping=True).fit(train)
    assert "valid_rmse" in stopped.history_[-1]


def test_rating_entries_partition_the_ratings():
    R = _planted_ratings(30, 20)
    entries = RatingEntries(R)
    assert len(entries) == R.nnz and entries.shape == (R.nnz,)
    folds = list(KFold(3, shuffle=True, random_state=0).split(np.zeros(len(entries))))
    parts = [entries[test] for _, test in folds]
    assert all(p.shape == R.shape for p in parts)
    total = parts[0] + parts[1] + parts[2]
    np.testing.assert_array_equal(total.toarray(), R.toarray())
    train, test = folds[0]
    assert (entries[train].multiply(entries[test])).nnz == 0  # disjoint entries
    with pytest.raises(TypeError, match="RatingEntries"):
        from skcfae import Popularity

        Popularity().fit(entries)


def test_grid_search_over_rating_entries(ratings):
    """CV over entries: each candidate fits on the ratings of the other folds and is scored
    (-RMSE) on the held-out fold's ratings of the same users and items."""
    train, _ = ratings
    est = clone(RATING[0]).set_params(epochs=5)
    param, values = (
        ("n_components", [4, 16])
        if "n_components" in est.get_params()
        else (
            "random_state",
            [0, 1],
        )
    )
    search = GridSearchCV(
        est,
        {param: values},
        cv=KFold(3, shuffle=True, random_state=0),
        scoring=rmse_scorer(),
    ).fit(RatingEntries(train))
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,) and np.all(scores < 0)
    assert search.best_estimator_.ratings_.nnz == train.nnz  # refit on every rating
    # the same numbers by hand on the first fold and candidate
    tr, te = next(KFold(3, shuffle=True, random_state=0).split(np.zeros(train.nnz)))
    entries = RatingEntries(train)
    by_hand = clone(est).set_params(**{param: values[0]}).fit(entries[tr]).score(entries[te])
    assert search.cv_results_["split0_test_score"][0] == pytest.approx(by_hand, rel=1e-6)
