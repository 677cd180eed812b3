import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.model_selection import GridSearchCV, check_cv
from sklearn.utils._param_validation import InvalidParameterError

from skcfae.model_selection import (
    UserSplit,
    fold_in_split,
    leave_one_out_split,
    rating_holdout_split,
    strong_generalization_split,
)


@st.composite
def count_matrices(draw, max_users=12, max_items=15, max_value=3):
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    dense = draw(hnp.arrays(np.int16, (n_users, n_items), elements=st.integers(0, max_value)))
    return sp.csr_array(dense.astype(np.float32))


def _assert_partition(X, A, B):
    X = sp.csr_array(X, dtype=np.float32)
    for part in (A, B):
        assert isinstance(part, sp.csr_array) and part.format == "csr"
        assert part.dtype == np.float32 and part.shape == X.shape
        assert part.has_sorted_indices
    assert (A + B != X).nnz == 0  # same values, every entry somewhere
    assert A.multiply(B).nnz == 0 and (A != 0).sum() + (B != 0).sum() == (X != 0).sum()


# -- fold_in_split --------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(
    count_matrices(),
    st.sampled_from([0.1, 0.2, 0.5, 0.9]),
    st.integers(1, 6),
    st.integers(0, 2**31 - 1),
)
def test_fold_in_split_partitions_rows(X, test_size, min_interactions, seed):
    fold_in, holdout = fold_in_split(
        X, test_size=test_size, min_interactions=min_interactions, random_state=seed
    )
    _assert_partition(X, fold_in, holdout)
    n = np.diff(X.indptr)
    expected = np.where(n >= min_interactions, [int(test_size * v) for v in n], 0)
    np.testing.assert_array_equal(np.diff(holdout.indptr), expected)
    again = fold_in_split(
        X, test_size=test_size, min_interactions=min_interactions, random_state=seed
    )
    assert (again[1] != holdout).nnz == 0  # same seed, same split


def test_fold_in_split_default_and_uniform():
    X = np.ones((2000, 10))
    _, holdout = fold_in_split(X, random_state=0)
    assert np.all(np.diff(holdout.indptr) == 2)  # int(0.2 * 10)
    freq = holdout.sum(axis=0) / 2000  # each item held out with probability 0.2
    np.testing.assert_allclose(freq, 0.2, atol=0.04)
    short = fold_in_split(np.ones((3, 4)), random_state=0)[1]
    assert short.nnz == 0  # rows with < 5 interactions are not split


def test_fold_in_split_errors():
    with pytest.raises(InvalidParameterError, match="test_size"):
        fold_in_split(np.ones((2, 2)), test_size=1.5)
    with pytest.raises(ValueError, match="Negative"):
        fold_in_split(-np.ones((2, 2)))


# -- UserSplit -----------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.integers(2, 40), st.integers(2, 6), st.integers(0, 1000))
def test_user_split_kfold_partitions_users(n_users, n_splits, seed):
    if n_splits > n_users:
        return
    X = sp.random(n_users, 7, density=0.3, format="csr", random_state=seed)
    cv = UserSplit(n_splits=n_splits, random_state=seed)
    splits = list(cv.split(X))
    assert len(splits) == cv.get_n_splits(X) == n_splits
    tests = np.concatenate([test for _, test in splits])
    np.testing.assert_array_equal(np.sort(tests), np.arange(n_users))
    for train, test in splits:
        assert np.intersect1d(train, test).size == 0
        assert train.size + test.size == n_users
        assert train.dtype.kind == "i" and test.dtype.kind == "i"
    again = [test for _, test in UserSplit(n_splits=n_splits, random_state=seed).split(X)]
    for (_, a), b in zip(splits, again, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("test_size, n_test", [(0.25, 10), (7, 7)])
def test_user_split_shuffle(test_size, n_test):
    X = sp.csr_array(np.ones((40, 3)))
    cv = UserSplit(n_splits=4, test_size=test_size, random_state=0)
    splits = list(cv.split(X))
    assert len(splits) == 4
    for train, test in splits:
        assert test.size == n_test and train.size == 40 - n_test
        assert np.intersect1d(train, test).size == 0


def test_user_split_repr_and_sklearn_machinery():
    cv = UserSplit(n_splits=3, random_state=0)
    assert repr(cv) == "UserSplit(n_splits=3, random_state=0, test_size=None)"
    assert check_cv(cv) is cv
    X = sp.csr_array(np.ones((12, 4)))
    # GridSearchCV accepts it and asks it for the number of splits
    from sklearn.dummy import DummyRegressor

    search = GridSearchCV(DummyRegressor(), {"strategy": ["mean"]}, cv=cv)
    search.fit(X, np.arange(12.0))
    assert search.n_splits_ == 3


def test_user_split_errors():
    X = np.ones((5, 2))
    with pytest.raises(InvalidParameterError, match="n_splits"):
        list(UserSplit(n_splits=1).split(X))
    with pytest.raises(InvalidParameterError, match="test_size"):
        list(UserSplit(test_size=1.5).split(X))
    with pytest.raises(ValueError, match="n_splits=6"):
        list(UserSplit(n_splits=6).split(X))
    assert len(list(UserSplit(n_splits=1, test_size=0.2).split(X))) == 1


# -- leave_one_out_split -------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(count_matrices(), st.data())
def test_leave_one_out_picks_latest(X, data):
    times = data.draw(
        hnp.arrays(np.int64, X.shape, elements=st.integers(0, 5))  # small range: ties
    )
    T = sp.csr_array(X, copy=True)
    T.data = times[np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)), X.indices] * 1.0
    for timestamps in (T, times):
        train, test = leave_one_out_split(X, timestamps)
        _assert_partition(X, train, test)
        counts = np.diff(X.indptr)
        np.testing.assert_array_equal(np.diff(test.indptr), (counts >= 2).astype(int))
        for u in np.flatnonzero(counts >= 2):
            items = X.indices[X.indptr[u] : X.indptr[u + 1]]
            latest = max(items, key=lambda i, u=u: (times[u, i], i))
            assert test.indices[test.indptr[u]] == latest


@settings(max_examples=30, deadline=None)
@given(count_matrices(), st.integers(0, 1000))
def test_leave_one_out_random(X, seed):
    train, test = leave_one_out_split(X, random_state=seed)
    _assert_partition(X, train, test)
    np.testing.assert_array_equal(np.diff(test.indptr), (np.diff(X.indptr) >= 2).astype(int))


def test_leave_one_out_errors():
    X = sp.csr_array([[1.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match="sparsity pattern"):
        leave_one_out_split(X, sp.csr_array([[1.0, 0.0, 2.0]]))
    with pytest.raises(ValueError, match="shape"):
        leave_one_out_split(X, np.ones((2, 3)))


# -- rating_holdout_split ------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(count_matrices(max_value=5), st.integers(0, 1000))
def test_rating_holdout_partitions(X, seed):
    if X.nnz == 0:
        return
    train, test = rating_holdout_split(X, random_state=seed)
    _assert_partition(X, train, test)
    assert test.nnz == int(np.ceil(0.1 * X.nnz))


def test_rating_holdout_keeps_explicit_zero_ratings_and_values():
    X = sp.csr_array((np.array([0.0, 5.0, 3.0]), (np.array([0, 0, 1]), np.array([0, 1, 1]))))
    train, test = rating_holdout_split(X, test_size=1, random_state=0)
    assert train.nnz + test.nnz == 3  # the stored 0 is a rating
    assert sorted(np.concatenate([train.data, test.data]).tolist()) == [0.0, 3.0, 5.0]
    X = np.random.RandomState(0).randint(1, 6, size=(50, 40)).astype(float)
    train, test = rating_holdout_split(X, random_state=0)
    assert test.nnz == 200 and train.nnz == 1800
    np.testing.assert_array_equal((train + test).toarray(), X)
    with pytest.raises(ValueError, match="exceeds"):
        rating_holdout_split(np.ones((2, 2)), test_size=5)


# -- strong_generalization_split -----------------------------------------------------------------
def _ratings(n_users=120, n_items=50, seed=0):
    rng = np.random.RandomState(seed)
    R = rng.randint(1, 6, size=(n_users, n_items)) * (rng.rand(n_users, n_items) < 0.3)
    return sp.csr_array(R.astype(np.float32))


def test_strong_generalization_split_structure():
    R = _ratings()
    s = strong_generalization_split(R, n_heldout_users=15, threshold=3.5)
    B = (R > 3.5).astype(np.float32)
    kept = np.flatnonzero(np.diff(sp.csr_array(B).indptr) >= 5)
    users = np.concatenate([s.train_users, s.valid_users, s.test_users])
    np.testing.assert_array_equal(np.sort(users), kept)  # disjoint, all kept users
    assert s.valid_users.size == s.test_users.size == 15
    assert s.train_users.size == kept.size - 30
    # the permutation of Liang et al.: RandomState(98765) over kept users in row order
    np.testing.assert_array_equal(users, kept[np.random.RandomState(98765).permutation(kept.size)])
    # catalog: items of the training users, ascending
    expected_items = np.flatnonzero(np.asarray(B[s.train_users].sum(axis=0)).ravel() > 0)
    np.testing.assert_array_equal(s.item_index, expected_items)
    n_cat = s.item_index.size
    for key in ("train", "valid_fold_in", "valid_holdout", "test_fold_in", "test_holdout"):
        assert s[key].shape[1] == n_cat and s[key].dtype == np.float32
        assert np.all(s[key].data == 1.0)
    np.testing.assert_array_equal(s.train.toarray(), B[s.train_users][:, s.item_index].toarray())
    for name, users in (("valid", s.valid_users), ("test", s.test_users)):
        full = B[users][:, s.item_index]
        _assert_partition(full, s[f"{name}_fold_in"], s[f"{name}_holdout"])
        n = np.diff(sp.csr_array(full).indptr)
        held = np.diff(s[f"{name}_holdout"].indptr)
        np.testing.assert_array_equal(held, np.where(n >= 5, (0.2 * n).astype(int), 0))


def test_strong_generalization_split_deterministic_and_seeded():
    R = _ratings()
    a = strong_generalization_split(R, n_heldout_users=0.1)
    b = strong_generalization_split(R, n_heldout_users=0.1)
    c = strong_generalization_split(R, n_heldout_users=0.1, random_state=1)
    for key in ("train", "valid_fold_in", "valid_holdout", "test_fold_in", "test_holdout"):
        assert (a[key] != b[key]).nnz == 0
    np.testing.assert_array_equal(a.test_users, b.test_users)
    assert not np.array_equal(a.test_users, c.test_users)
    assert a.valid_users.size == int(0.1 * 120)


def test_strong_generalization_split_matches_liang_holdout_draws():
    # Liang et al. re-seed 98765, then draw users in ascending original id order
    R = _ratings(seed=3)
    s = strong_generalization_split(R, n_heldout_users=10)
    rng = np.random.RandomState(98765)
    full = sp.csr_array(s.valid_fold_in + s.valid_holdout)
    for row in np.argsort(s.valid_users):
        items = full.indices[full.indptr[row] : full.indptr[row + 1]]
        if items.size >= 5:
            picked = rng.choice(items.size, size=int(0.2 * items.size), replace=False)
            held = s.valid_holdout.indices[
                s.valid_holdout.indptr[row] : s.valid_holdout.indptr[row + 1]
            ]
            np.testing.assert_array_equal(np.sort(items[picked]), held)


def test_strong_generalization_split_filters():
    R = _ratings(n_users=200, n_items=60)
    s = strong_generalization_split(R, n_heldout_users=20, min_user_count=8, min_item_count=30)
    B = (R > 0).astype(np.float32)
    items = np.flatnonzero(np.asarray(B.sum(axis=0)).ravel() >= 30)
    counts = np.diff(sp.csr_array(B[:, items]).indptr)
    users = np.concatenate([s.train_users, s.valid_users, s.test_users])
    np.testing.assert_array_equal(np.sort(users), np.flatnonzero(counts >= 8))
    assert np.isin(s.item_index, items).all()


def test_strong_generalization_split_errors():
    with pytest.raises(ValueError, match="too few"):
        strong_generalization_split(_ratings(n_users=20), n_heldout_users=10)
    with pytest.raises(InvalidParameterError, match="n_heldout_users"):
        strong_generalization_split(_ratings(), n_heldout_users=0.7)


@given(
    st.integers(1, 30).flatmap(lambda n: st.lists(st.integers(0, 8), min_size=n, max_size=n)),
    st.integers(0, 8),
)
def test_cold_start_users_select_by_fold_in_activity(counts, max_interactions):
    from skcfae.model_selection import cold_start_users

    X = np.zeros((len(counts), 8), dtype=np.float32)
    for row, c in enumerate(counts):
        X[row, :c] = 1.0
    rows = cold_start_users(X, max_interactions=max_interactions)
    expected = [r for r, c in enumerate(counts) if 1 <= c <= max_interactions]
    assert rows.tolist() == expected


# -- the explicit (ratings) reading of rating_holdout_split and friends --------------------------
def test_rating_holdout_dense_nan_is_unobserved_and_zero_a_rating():
    X = np.array([[5.0, np.nan, 0.0, 3.0], [np.nan, 4.0, 1.0, np.nan]])
    train, test = rating_holdout_split(X, test_size=2, random_state=0)
    assert train.nnz == 3 and test.nnz == 2  # the dense 0 is a rating, NaN entries are not
    stored = np.zeros(X.shape, dtype=bool)
    for part in (train, test):
        coo = part.tocoo()
        stored[coo.row, coo.col] = True
        np.testing.assert_array_equal(coo.data, X[coo.row, coo.col])
    np.testing.assert_array_equal(stored, ~np.isnan(X))


def test_duplicate_ratings_are_an_error():
    twice = sp.coo_array(
        (np.array([4.0, 5.0, 3.0]), (np.array([0, 0, 1]), np.array([2, 2, 0]))), shape=(2, 3)
    )
    with pytest.raises(ValueError, match=r"rating_holdout_split got 1 duplicate \(user, item\)"):
        rating_holdout_split(twice, test_size=1)
    with pytest.raises(ValueError, match="strong_generalization_split got 1 duplicate"):
        strong_generalization_split(twice, n_heldout_users=1, threshold=3.5)
    X = sp.csr_array(np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]))
    times = sp.coo_array(
        (
            np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
            (np.array([0, 0, 0, 0, 1]), np.array([0, 1, 2, 2, 0])),
        ),
        shape=(2, 3),
    )
    with pytest.raises(ValueError, match="1 duplicate .* entries in timestamps"):
        leave_one_out_split(X, times)


def test_leave_one_out_keeps_time_zero():
    X = sp.csr_array(np.array([[1.0, 1.0]]))
    times = sp.csr_array((np.array([0.0, -1.0]), np.array([0, 1]), np.array([0, 2])), shape=(1, 2))
    _, test = leave_one_out_split(X, times)
    assert test.indices.tolist() == [0]  # time 0 (stored) is later than time -1
