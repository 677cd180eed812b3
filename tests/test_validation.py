"""Input validation (skcfae._validation): implicit and explicit readings, bookkeeping, errors."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skcfae._validation import check_interactions, check_items, check_n, check_n_items

SPARSE_FORMATS = ["csr", "csc", "coo", "lil", "dok"]


@st.composite
def triplets(draw, max_users=8, max_items=8, allow_negative=False):
    """(rows, cols, values, shape): stored entries, possibly duplicated, zeros included."""
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(1, max_items))
    nnz = draw(st.integers(0, 20))
    rows = draw(hnp.arrays(np.int64, nnz, elements=st.integers(0, n_users - 1)))
    cols = draw(hnp.arrays(np.int64, nnz, elements=st.integers(0, n_items - 1)))
    low = -5 if allow_negative else 0
    values = draw(hnp.arrays(np.float64, nnz, elements=st.integers(low, 5).map(float)))
    return rows, cols, values, (n_users, n_items)


def _unique(rows, cols, values, shape):
    """Keep the first entry of each (row, col): no duplicates."""
    _, first = np.unique(rows * shape[1] + cols, return_index=True)
    return rows[first], cols[first], values[first]


def _assert_canonical(A, dtype=np.float32):
    assert isinstance(A, sp.csr_array) and A.format == "csr" and A.dtype == dtype
    assert A.has_canonical_format and A.has_sorted_indices
    for u in range(A.shape[0]):
        row = A.indices[A.indptr[u] : A.indptr[u + 1]]
        assert np.all(np.diff(row) > 0)  # sorted, no duplicate


# -- explicit (ratings) -------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(triplets(allow_negative=True), st.sampled_from(["coo", "csr", "csc"]))
def test_explicit_duplicates_rejected_with_count(t, fmt):
    rows, cols, values, shape = t
    n_dup = rows.size - np.unique(rows * shape[1] + cols).size
    if fmt == "coo":
        X = sp.coo_array((values, (rows, cols)), shape=shape)
    else:  # a CSR/CSC built from raw arrays keeps duplicates (non-canonical)
        order = np.lexsort((cols, rows))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
        X = sp.csr_array((values[order], cols[order], indptr), shape=shape)
        X = X.asformat(fmt)
    if n_dup:
        with pytest.raises(ValueError, match=rf"got {n_dup} duplicate \(user, item\) entries"):
            check_interactions(X, caller="fit", implicit=False)
    else:
        A = check_interactions(X, caller="fit", implicit=False)
        _assert_canonical(A)
        assert A.nnz == rows.size  # every stored entry kept, zeros included


@settings(max_examples=80, deadline=None)
@given(triplets(allow_negative=True), st.sampled_from(SPARSE_FORMATS))
def test_explicit_keeps_every_stored_rating(t, fmt):
    rows, cols, values, shape = _unique(*t[:3], t[3]) + (t[3],)
    X = sp.coo_array((values, (rows, cols)), shape=shape).asformat(fmt)
    if fmt in ("lil", "dok"):  # what these formats store (they may not keep stored zeros)
        stored = X.tocoo()
        rows, cols, values = stored.row, stored.col, stored.data
    A = check_interactions(X, caller="fit", implicit=False)
    _assert_canonical(A)
    assert A.nnz == rows.size
    coo = A.tocoo()
    got = dict(
        zip(zip(coo.row.tolist(), coo.col.tolist(), strict=True), coo.data.tolist(), strict=True)
    )
    assert got == dict(
        zip(zip(rows.tolist(), cols.tolist(), strict=True), values.tolist(), strict=True)
    )


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda n: hnp.arrays(
            np.float64,
            (n, 5),
            elements=st.sampled_from([np.nan, 0.0, -1.0, 1.0, 2.5, 5.0]),
        )
    )
)
def test_dense_nan_marks_unobserved(dense):
    A = check_interactions(dense, caller="fit", implicit=False)
    _assert_canonical(A)
    observed = ~np.isnan(dense)
    assert A.nnz == observed.sum()  # zeros are ratings, NaN are not
    coo = A.tocoo()
    mask = np.zeros(dense.shape, dtype=bool)
    mask[coo.row, coo.col] = True
    np.testing.assert_array_equal(mask, observed)
    np.testing.assert_array_equal(coo.data, dense[coo.row, coo.col].astype(np.float32))
    # the implicit reading of the same data is an error (NaN, or negative values)
    if np.isnan(dense).any() or (dense < 0).any():
        with pytest.raises(ValueError, match="NaN|Negative"):
            check_interactions(dense, caller="fit")


def test_dense_explicit_integer_and_float64():
    A = check_interactions(np.array([[0, 3], [1, 0]]), caller="fit", implicit=False)
    assert A.nnz == 4
    B = check_interactions(
        np.array([[np.nan, 3.25]]), caller="fit", implicit=False, dtype=np.float64
    )
    assert B.dtype == np.float64 and B.nnz == 1 and B.data[0] == 3.25


# -- implicit -----------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(triplets(), st.sampled_from(["coo", "csr", "csc"]))
def test_implicit_sums_duplicates_and_drops_zeros(t, fmt):
    rows, cols, values, shape = t
    X = sp.coo_array((values, (rows, cols)), shape=shape)
    if fmt != "coo":
        order = np.lexsort((cols, rows))
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=shape[0]))])
        X = sp.csr_array((values[order], cols[order], indptr), shape=shape).asformat(fmt)
    A = check_interactions(X, caller="fit")
    _assert_canonical(A)
    assert np.all(A.data > 0)  # stored zeros dropped
    dense = np.zeros(shape)
    np.add.at(dense, (rows, cols), values)  # duplicates summed
    np.testing.assert_array_equal(A.toarray(), dense.astype(np.float32))


@settings(max_examples=50, deadline=None)
@given(triplets())
def test_stored_zeros_kept_explicit_dropped_implicit(t):
    rows, cols, values, shape = _unique(*t[:3], t[3]) + (t[3],)
    X = sp.csr_array((values, (rows, cols)), shape=shape)
    explicit = check_interactions(X, caller="fit", implicit=False)
    implicit = check_interactions(X, caller="fit")
    assert explicit.nnz == rows.size
    assert implicit.nnz == np.count_nonzero(values)
    # on positive data without duplicates the two readings agree
    if np.all(values > 0):
        assert (explicit != implicit).nnz == 0
        np.testing.assert_array_equal(explicit.indices, implicit.indices)


@pytest.mark.parametrize("implicit", [True, False])
def test_output_is_a_new_array(implicit):
    X = sp.csr_array(np.array([[1.0, 0.0, 2.0]], dtype=np.float32))
    A = check_interactions(X, caller="fit", implicit=implicit)
    A.data[:] = 9.0
    assert X.data.tolist() == [1.0, 2.0]
    dense = np.array([[1.0, 2.0]], dtype=np.float32)
    check_interactions(dense, caller="fit", implicit=implicit).data[:] = 9.0
    assert dense.tolist() == [[1.0, 2.0]]


# -- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("implicit", [True, False])
@pytest.mark.parametrize(
    "X, error, match",
    [
        (None, TypeError, "got None"),
        ("abc", TypeError, "scipy.sparse matrix or a 2-D array"),
        (3.0, TypeError, "scipy.sparse matrix or a 2-D array"),
        (np.array([["a", "b"]], dtype=object), TypeError, "numeric"),
        (np.array([[1 + 1j, 0]]), ValueError, "Complex data"),
        (np.array([["2020-01-01"]], dtype="datetime64[D]"), TypeError, "datetime"),
        (np.array([1.0, 2.0]), ValueError, "2-D"),
        (np.ones((2, 2, 2)), ValueError, "2-D"),
        (np.zeros((0, 3)), ValueError, "empty matrix: 0 sample"),
        (np.zeros((3, 0)), ValueError, "empty matrix: 0 feature"),
        (np.array([[1.0, np.inf]]), ValueError, "infinite"),
        (sp.csr_array(np.array([[1.0, np.nan]])), ValueError, "NaN or infinite"),
    ],
)
def test_error_types(X, error, match, implicit):
    with pytest.raises(error, match=match):
        check_interactions(X, caller="Model.fit", implicit=implicit)


def test_implicit_only_errors():
    with pytest.raises(ValueError, match="Negative values in data passed to Model.fit"):
        check_interactions(np.array([[1.0, -1.0]]), caller="Model.fit")
    with pytest.raises(ValueError, match="NaN or infinite values in X"):
        check_interactions(np.array([[1.0, np.nan]]), caller="Model.fit")
    R = check_interactions(np.array([[1.0, -1.0]]), caller="Model.fit", implicit=False)
    assert R.data.tolist() == [1.0, -1.0]  # ratings may be negative


def test_allow_empty_rows_and_input_name():
    X = np.array([[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="1 users have no interactions"):
        check_interactions(X, caller="fit", allow_empty_rows=False)
    twice = sp.coo_array((np.ones(2), (np.zeros(2, int), np.zeros(2, int))), shape=(1, 1))
    with pytest.raises(ValueError, match="entries in timestamps"):
        check_interactions(twice, caller="split", implicit=False, input_name="timestamps")


# -- n_items bookkeeping, n and items -----------------------------------------------------------
class MultVAE:  # a stand-in: only the class name and attributes matter
    pass


def test_check_n_items():
    est = MultVAE()
    check_n_items(est, np.zeros((2, 1000)), reset=True)
    assert est.n_items_in_ == est.n_features_in_ == 1000
    check_n_items(est, sp.csr_array((5, 1000)), reset=False)
    msg = (
        "X has 1200 features, but MultVAE is expecting 1000 features as input: X has 1200 "
        "items but MultVAE was fitted on 1000; pass rows over the same item columns."
    )
    with pytest.raises(ValueError) as exc:
        check_n_items(est, np.zeros((1, 1200)), reset=False)
    assert str(exc.value) == msg


def test_check_n():
    assert check_n(np.int64(3), 5, "M.recommend") == 3
    for bad in (0, -1, True, 2.0, "3", None):
        with pytest.raises(ValueError, match=r"range \[1, 5\]\. Got"):
            check_n(bad, 5, "M.recommend")
    with pytest.raises(ValueError) as exc:
        check_n(6, 5, "M.recommend")
    assert str(exc.value) == (
        "The 'n' parameter of M.recommend must be an int in the range [1, 5] "
        "(the model knows 5 items). Got 6 instead."
    )
    with pytest.raises(ValueError, match="'k' parameter of f .*at most n_items=5"):
        check_n(6, 5, "f", name="k", limit="at most n_items=5")


@given(st.lists(st.integers(0, 19), min_size=1, max_size=20, unique=True))
def test_check_items_sorted_int64(items):
    out = check_items(np.array(items, dtype=np.int32), 20, "M.recommend")
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, np.sort(items))


def _malformed():
    one = np.ones(2, np.float32)
    coo = sp.coo_array((np.ones(1), (np.array([0]), np.array([1]))), shape=(2, 3))
    coo.col[0] = 9  # mutated after construction
    return {
        "column index >= n_items": sp.csr_array(
            (one, np.array([0, 7]), np.array([0, 1, 2])), shape=(2, 3)
        ),
        "negative index": sp.csr_array((one, np.array([0, -1]), np.array([0, 1, 2])), shape=(2, 3)),
        "decreasing indptr": sp.csr_array(
            (one, np.array([0, 1]), np.array([0, 2, 1])), shape=(2, 3)
        ),
        "csc row index out of range": sp.csc_array(
            (one, np.array([0, 5]), np.array([0, 1, 2, 2])), shape=(2, 3)
        ),
        "coo column out of range": coo,
    }


@pytest.mark.parametrize("case", sorted(_malformed()))
@pytest.mark.parametrize("implicit", [True, False])
def test_malformed_sparse_input_is_a_clear_error(case, implicit):
    with pytest.raises(ValueError, match="not a valid sparse matrix"):
        check_interactions(_malformed()[case], caller="t", implicit=implicit)
