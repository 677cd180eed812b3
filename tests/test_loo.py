"""Leave-one-out protocol of NCAE (Li, Zheng & Wu, arXiv:1712.09043, §5.1, §5.4): Last.fm tag
dates, leave-one-out with missing times and ties, the validation item, the data-ratio split
and the held-out-items scorer."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError

from skcfae import EASE, Popularity
from skcfae.datasets import load_lastfm
from skcfae.metrics import holdout_scorer
from skcfae.model_selection import (
    data_ratio_split,
    leave_one_out_split,
    leave_one_out_validation_split,
)

DAY = 86400.0


@st.composite
def count_matrices(draw, max_users=12, max_items=15, max_value=3):
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    dense = draw(hnp.arrays(np.int16, (n_users, n_items), elements=st.integers(0, max_value)))
    return sp.csr_array(dense.astype(np.float32))


@st.composite
def timed_matrices(draw):
    """(X, dense times with NaN where untimed); times in a small range, so ties are common."""
    X = draw(count_matrices())
    times = draw(hnp.arrays(np.float64, X.shape, elements=st.integers(0, 3).map(float)))
    untimed = draw(hnp.arrays(np.bool_, X.shape))
    times[untimed] = np.nan
    return X, times


def _entries(M):
    M = sp.csr_array(M)
    rows = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
    return set(zip(rows.tolist(), M.indices.tolist(), strict=True))


def _assert_partition(X, *parts):
    X = sp.csr_array(X, dtype=np.float32)
    for part in parts:
        assert isinstance(part, sp.csr_array) and part.format == "csr"
        assert part.dtype == np.float32 and part.shape == X.shape
        assert part.has_sorted_indices
    total = parts[0].copy()
    for part in parts[1:]:
        total = total + part
    assert (total != X).nnz == 0  # the values kept, every entry somewhere
    assert sum(part.nnz for part in parts) == X.nnz  # and nowhere twice


def _sparse_times(X, times):
    """The times at X's entries as a sparse matrix of X's pattern (NaN stored as is)."""
    T = sp.csr_array(X, dtype=np.float64, copy=True)
    T.data = times[np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)), X.indices]
    return T


# -- Last.fm tag dates ---------------------------------------------------------------------------
PLAYS = (
    b"userID\tartistID\tweight\r\n2\t51\t10\r\n2\t52\t20\r\n2\t53\t30\r\n7\t52\t3\r\n7\t60\t4\r\n"
)
TAGS = (
    b"userID\tartistID\ttagID\tday\tmonth\tyear\r\n"
    b"2\t51\t13\t1\t4\t2009\r\n"  # (2, 51): tagged twice, the later date counts
    b"2\t51\t15\t1\t6\t2010\r\n"
    b"2\t52\t15\t9\t3\t2008\r\n"
    b"2\t99\t1\t1\t1\t2011\r\n"  # not a played pair: ignored
    b"7\t60\t3\t1\t1\t1956\r\n"  # the only tag of (7, 60) is an outlier year: dropped
    b"9\t52\t1\t1\t1\t2009\r\n"  # user 9 played nothing: ignored
)


def _seconds(date):
    return float(np.datetime64(date, "s").astype(np.int64))


def test_lastfm_tag_dates_toy(tmp_path):
    (tmp_path / "user_artists.dat").write_bytes(PLAYS)
    (tmp_path / "user_taggedartists.dat").write_bytes(TAGS)
    plain = load_lastfm(path=tmp_path)
    assert "tag_dates" not in plain and plain.timestamps is None
    fm = load_lastfm(path=tmp_path, return_tag_dates=True)
    T = fm.tag_dates
    assert isinstance(T, sp.csr_array) and T.dtype == np.float64 and T.has_canonical_format
    np.testing.assert_array_equal(T.indptr, fm.data.indptr)
    np.testing.assert_array_equal(T.indices, fm.data.indices)
    np.testing.assert_array_equal(fm.item_ids, [51, 52, 53, 60])
    expected = [_seconds("2010-06-01"), _seconds("2008-03-09"), np.nan, np.nan, np.nan]
    np.testing.assert_array_equal(T.data, expected)  # NaN == NaN for assert_array_equal
    assert _seconds("2009-04-01") == 1238536800 + 2 * 3600  # the readme's CEST midnight + 2 h
    assert "1 assignments dated before 2005 dropped" in fm.DESCR
    np.testing.assert_array_equal(fm.data.toarray(), plain.data.toarray())
    # user 0 (id 2) holds out (2, 51), the latest date; user 1 (id 7) has no date: random
    _, test = leave_one_out_split(fm.data, fm.tag_dates, random_state=0)
    assert test.indices[test.indptr[0] : test.indptr[1]].tolist() == [0]
    assert np.diff(test.indptr).tolist() == [1, 1]


def test_lastfm_tag_dates_missing_file(tmp_path):
    (tmp_path / "user_artists.dat").write_bytes(PLAYS)
    with pytest.raises(FileNotFoundError, match="needs user_taggedartists.dat"):
        load_lastfm(path=tmp_path, return_tag_dates=True)
    with pytest.raises(InvalidParameterError, match="return_tag_dates"):
        load_lastfm(path=tmp_path, return_tag_dates="yes")


def test_lastfm_tag_dates_real(shared_data):
    folder = shared_data / "lastfm-2k"
    if not (folder / "user_taggedartists.dat").is_file():
        pytest.skip(f"{folder}/user_taggedartists.dat not found")
    fm = load_lastfm(path=folder, return_tag_dates=True)
    X, T = fm.data, fm.tag_dates
    np.testing.assert_array_equal(T.indices, X.indices)
    timed = ~np.isnan(T.data)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    assert X.nnz == 92_834 and timed.sum() == 20_664  # of the 20,665 tagged play pairs
    assert np.unique(rows[timed]).size == 1_824  # 68 users fall back to a random item
    assert T.data[timed].min() >= _seconds("2005-01-01")
    assert T.data[timed].max() == _seconds("2011-05-09")
    latest = np.full(X.shape[0], -np.inf)
    np.maximum.at(latest, rows[timed], T.data[timed])
    at_latest = np.bincount(rows[timed & (T.data == latest[rows])], minlength=X.shape[0])
    assert (at_latest > 1).sum() == 618  # ties on the latest date among the played artists
    train, test = leave_one_out_split(X, T, ties="random", random_state=0)
    _assert_partition(X, train, test)
    held = _positions(X, test)
    user = rows[held]
    dated = latest[user] > -np.inf
    assert np.all(T.data[held][dated] == latest[user][dated])  # the latest date, ties random
    eligible = np.diff(X.indptr) >= 2
    assert held.size == eligible.sum() and dated.sum() == np.sum(eligible & (latest > -np.inf))


def _positions(X, part):
    """Positions in X.data of the entries of ``part`` (a subset of X's entries)."""
    keys = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)) * X.shape[1] + X.indices
    part_rows = np.repeat(np.arange(part.shape[0]), np.diff(part.indptr))
    return np.searchsorted(keys, part_rows * X.shape[1] + part.indices)


# -- leave_one_out_split with missing times and ties ---------------------------------------------
@settings(max_examples=60, deadline=None)
@given(timed_matrices(), st.sampled_from(["highest_item", "random"]), st.integers(0, 2**31 - 1))
def test_leave_one_out_latest_timed_entry_or_fallback(data, ties, seed):
    X, times = data
    counts = np.diff(X.indptr)
    for timestamps in (times, _sparse_times(X, times)):
        train, test = leave_one_out_split(X, timestamps, ties=ties, random_state=seed)
        _assert_partition(X, train, test)
        np.testing.assert_array_equal(np.diff(test.indptr), (counts >= 2).astype(int))
        for u in np.flatnonzero(counts >= 2):
            items = X.indices[X.indptr[u] : X.indptr[u + 1]]
            (held,) = test.indices[test.indptr[u] : test.indptr[u + 1]]
            assert held in items
            row_times = times[u, items]
            if np.isnan(row_times).all():
                continue  # fallback: any of the row's items
            latest = np.nanmax(row_times)
            assert times[u, held] == latest  # a timed entry, at the latest time
            if ties == "highest_item":
                assert held == items[row_times == latest].max()
        again = leave_one_out_split(X, timestamps, ties=ties, random_state=seed)[1]
        assert (again != test).nnz == 0  # the same random_state, the same split


def test_leave_one_out_random_ties_and_fallback_are_uniform():
    X = sp.csr_array(np.ones((2, 4)))
    times = np.array([[5.0, 7.0, 7.0, 7.0], [np.nan] * 4])  # row 0: a 3-way tie; row 1: none
    picks = np.array(
        [
            leave_one_out_split(X, times, ties="random", random_state=seed)[1].indices
            for seed in range(300)
        ]
    )
    counts0 = np.bincount(picks[:, 0], minlength=4)
    counts1 = np.bincount(picks[:, 1], minlength=4)
    assert counts0[0] == 0 and counts0[1:].min() >= 70  # 100 expected for each tied item
    assert counts1.min() >= 50  # 75 expected for each item
    deterministic = {
        tuple(leave_one_out_split(X, times, random_state=seed)[1].indices) for seed in range(20)
    }
    assert {row0 for row0, _ in deterministic} == {3}  # highest_item: the tie is not random


def test_leave_one_out_fully_timed_default_draws_nothing():
    X = sp.csr_array(np.ones((3, 5)))
    times = np.arange(15, dtype=float).reshape(3, 5) % 3
    rng = np.random.RandomState(0)
    state = rng.get_state()[1].copy()
    _, test = leave_one_out_split(X, times, random_state=rng)
    np.testing.assert_array_equal(rng.get_state()[1], state)  # existing behaviour kept
    assert test.indices.tolist() == [2, 3, 4]  # time 2 at items (2,), (0, 3), (1, 4): highest


def test_leave_one_out_timestamp_errors():
    X = sp.csr_array([[1.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="infinite"):
        leave_one_out_split(X, np.array([[1.0, np.inf, 0.0]]))
    with pytest.raises(InvalidParameterError, match="ties"):
        leave_one_out_split(X, ties="lowest_item")
    twice = sp.coo_array(
        (np.array([1.0, np.nan, 2.0]), (np.array([0, 0, 0]), np.array([0, 1, 1]))), shape=(1, 3)
    )
    with pytest.raises(ValueError, match="1 duplicate"):
        leave_one_out_split(X, twice)
    with pytest.raises(ValueError, match="sparsity pattern"):
        leave_one_out_split(X, sp.csr_array([[1.0, 0.0, np.nan]]))


def test_leave_one_out_datetime_nat_is_untimed():
    X = sp.csr_array(np.ones((1, 3)))
    times = np.array([["2020-01-02", "NaT", "2020-01-01"]], dtype="datetime64[D]")
    assert leave_one_out_split(X, times)[1].indices.tolist() == [0]


# -- leave_one_out_validation_split -------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(
    timed_matrices(),
    st.booleans(),
    st.sampled_from(["highest_item", "random"]),
    st.integers(0, 999),
)
def test_validation_split_partitions_and_one_item_each(data, use_times, ties, seed):
    X, times = data
    timestamps = times if use_times else None
    train, valid, test = leave_one_out_validation_split(X, timestamps, ties=ties, random_state=seed)
    _assert_partition(X, train, valid, test)
    counts = np.diff(X.indptr)
    np.testing.assert_array_equal(np.diff(test.indptr), (counts >= 2).astype(int))
    np.testing.assert_array_equal(np.diff(valid.indptr), (counts >= 3).astype(int))
    assert np.all(np.diff(train.indptr) == np.minimum(counts, np.maximum(counts - 2, 1)))
    if use_times:  # the test item obeys leave_one_out_split's rule
        for u in np.flatnonzero(counts >= 2):
            items = X.indices[X.indptr[u] : X.indptr[u + 1]]
            if not np.isnan(times[u, items]).all():
                held = test.indices[test.indptr[u]]
                assert times[u, held] == np.nanmax(times[u, items])
    if use_times and ties == "highest_item" and not np.isnan(times[X.nonzero()]).any():
        _, alone = leave_one_out_split(X, times)
        assert (alone != test).nnz == 0
    again = leave_one_out_validation_split(X, timestamps, ties=ties, random_state=seed)
    assert all((a != b).nnz == 0 for a, b in zip(again, (train, valid, test), strict=True))


def test_validation_item_is_uniform_among_the_rest():
    X = sp.csr_array(np.ones((1, 4)))
    times = np.array([[1.0, 2.0, 3.0, 9.0]])
    picks = [
        leave_one_out_validation_split(X, times, random_state=s)[1].indices[0] for s in range(300)
    ]
    counts = np.bincount(picks, minlength=4)
    assert counts[3] == 0 and counts[:3].min() >= 70  # item 3 is the test item


# -- data_ratio_split ----------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(count_matrices(), st.sampled_from([0.05, 0.4, 0.5, 0.6, 0.8, 1.0]), st.integers(0, 999))
def test_data_ratio_split_keeps_the_share_of_each_row(X, ratio, seed):
    kept, dropped = data_ratio_split(X, ratio, random_state=seed)
    _assert_partition(X, kept, dropped)
    counts = np.diff(X.indptr)
    expected = np.where(counts > 0, np.maximum(1, np.floor(ratio * counts + 0.5)), 0)
    np.testing.assert_array_equal(np.diff(kept.indptr), expected)
    if ratio == 1.0:
        assert dropped.nnz == 0
    again, _ = data_ratio_split(X, ratio, random_state=seed)
    assert (again != kept).nnz == 0


def test_data_ratio_split_hand_case_and_uniform_draw():
    X = sp.csr_array(np.array([[1, 2, 3, 4, 5], [1, 1, 0, 0, 0], [0, 0, 0, 0, 7]], dtype=float))
    kept, dropped = data_ratio_split(X, 0.6, random_state=0)  # keeps 3, 1 (1.7), 1 (min 1)
    assert np.diff(kept.indptr).tolist() == [3, 1, 1]
    assert kept[[2]].toarray().tolist() == [[0, 0, 0, 0, 7]]  # values kept
    draws = np.zeros(5)
    for seed in range(200):
        draws += data_ratio_split(X, 0.6, random_state=seed)[0][[0]].toarray()[0] > 0
    assert draws.min() >= 90  # each item kept 120 times in expectation
    with pytest.raises(InvalidParameterError, match="ratio"):
        data_ratio_split(X, 0.0)


# -- holdout_scorer ------------------------------------------------------------------------------
def test_holdout_scorer_hand_computed():
    X = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 0, 0, 0]])
    y = np.array([[0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]])
    model = Popularity().fit(X)  # counts 3, 3, 1, 0, 0: ranking 0, 1, 2, 3, 4 (ties: lower)
    # user 0 ranks 1, 2, 3, 4: item 2 at rank 2; user 1 ranks 2, 3, 4: item 3 at rank 2;
    # user 2 has no held-out item; user 3 ranks 0, 2, 3, 4: item 4 at rank 4
    hr = holdout_scorer("hit_rate", k=2)
    assert hr(model, X, y) == pytest.approx(2 / 3)
    ndcg = holdout_scorer("ndcg", k=4)
    assert ndcg(model, X, y) == pytest.approx((1 / np.log2(3) * 2 + 1 / np.log2(5)) / 3)
    # k beyond the catalogue: the missing places are misses, the rest as with k = n_items
    assert holdout_scorer("hit_rate", k=50)(model, X, y) == 1.0
    assert holdout_scorer("recall", k=1)(model, X, y) == 0.0
    assert pickle.loads(pickle.dumps(hr))(model, X, y) == hr(model, X, y)
    pipe = Pipeline([("id", FunctionTransformer(accept_sparse=True)), ("pop", Popularity())])
    assert hr(pipe.fit(X), X, y) == hr(model, X, y)


def test_holdout_scorer_errors():
    X = np.array([[1, 0, 0], [0, 1, 0]])
    model = Popularity().fit(X)
    with pytest.raises(ValueError, match="got y=None"):
        holdout_scorer()(model, X)
    with pytest.raises(ValueError, match="shape"):
        holdout_scorer()(model, X, np.ones((2, 4)))
    with pytest.raises(ValueError, match="no user has a held-out item"):
        holdout_scorer()(model, X, np.zeros((2, 3)))
    with pytest.raises(InvalidParameterError, match="metric"):
        holdout_scorer("auc")
    with pytest.raises(InvalidParameterError, match="'k'"):
        holdout_scorer(k=0)


def test_holdout_scorer_in_grid_search_on_validation_items(planted):
    X = sp.vstack([planted[0], planted[1] + planted[2]]).tocsr()
    train, valid, test = leave_one_out_validation_split(X, random_state=0)
    rows = np.arange(X.shape[0])
    scoring = {"hr": holdout_scorer("hit_rate", k=10), "ndcg": holdout_scorer("ndcg", k=10)}
    grid = {"lam": [1.0, 100.0]}
    search = GridSearchCV(EASE(), grid, cv=[(rows, rows)], scoring=scoring, refit=False)
    search.fit(train, valid)
    for i, lam in enumerate(grid["lam"]):
        model = EASE(lam=lam).fit(train)
        for name, scorer in scoring.items():
            assert search.cv_results_[f"mean_test_{name}"][i] == scorer(model, train, valid)
    best = EASE(lam=100.0).fit(train + valid)
    popularity = Popularity().fit(train + valid)
    ndcg = scoring["ndcg"]
    assert ndcg(best, train + valid, test) > ndcg(popularity, train + valid, test)
