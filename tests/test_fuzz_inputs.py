"""Property-based fuzz of the one input door (``skcfae._validation.check_interactions``) and
of every estimator behind it: any input is either a clear ``ValueError``/``TypeError`` or a
correct result, never another exception (IndexError, a torch RuntimeError, a warning turned
error), never malformed sparse structure silently accepted.

The examples are few by default so that the file runs in well under a minute on one core;
``SKCFAE_FUZZ=long pytest tests/test_fuzz_inputs.py`` selects the ``skcfae-fuzz-long``
hypothesis profile (many more examples) for a deeper search.
"""

import functools
import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from skcfae._validation import check_interactions
from skcfae.datasets import make_interactions
from skcfae.utils import all_estimators

from .estimators import TINY

try:
    import pandas as pd
except ImportError:  # pragma: no cover - pandas is a dev dependency
    pd = None

settings.register_profile(
    "skcfae-fuzz", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "skcfae-fuzz-long",
    deadline=None,
    max_examples=2000,
    suppress_health_check=[HealthCheck.too_slow],
)
FUZZ = settings.get_profile(
    "skcfae-fuzz-long" if os.environ.get("SKCFAE_FUZZ") == "long" else "skcfae-fuzz"
)


def fuzz(max_examples):
    """The file's settings: ``max_examples`` by default, the long profile's when selected."""
    if os.environ.get("SKCFAE_FUZZ") == "long":
        return settings(FUZZ)
    return settings(FUZZ, max_examples=max_examples)


ESTIMATORS = dict(all_estimators())
RATING = {name for name, _ in all_estimators("rating")}
RECOMMENDERS = sorted(name for name, cls in ESTIMATORS.items() if hasattr(cls, "recommend"))
N_ITEMS = 12
CLEAR = (ValueError, TypeError)  # sklearn's InvalidParameterError is a ValueError

# -- strategies ---------------------------------------------------------------------------------

SPARSE_DTYPES = [np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, bool, np.complex64]
SPECIAL = [0.0, -0.0, 1.0, 5.0, -1.0, -3.5, np.nan, np.inf, -np.inf, 1e-40, 1e39]
HUGE = [1e30, -1e30]  # finite in float32; see test_huge_finite_values for the estimators
MALFORMED = [
    "index_high",
    "index_negative",
    "indptr_decreasing",
    "indptr_short",
    "indptr_long",
    "indptr_start",
    "data_short",
    "indices_long",
    "float_indices",
    "object_data",
    "float16_data",
]


def _values(dtype, huge):
    """Values storable in ``dtype``: specials (NaN, inf, 1e39, stored zeros) for floats;
    ``huge``: also finite extremes (1e30, the integer limits)."""
    kind = np.dtype(dtype).kind
    if kind == "b":
        return st.booleans()
    if kind in "iu":
        info = np.iinfo(dtype)
        small = st.integers(max(info.min, -3), min(info.max, 5))
        extremes = [int(info.min), int(info.max)] if huge else [0]
        return st.one_of(small, st.sampled_from(extremes))
    specials = SPECIAL + HUGE if huge else SPECIAL
    reals = st.one_of(st.sampled_from(specials), st.floats(-10, 10, width=32))
    if kind == "c":
        return st.builds(complex, reals, st.sampled_from([0.0, 1.0]))
    return reals


def _shape(n_cols):
    rows = st.one_of(st.integers(0, 8), st.just(60))  # 60: the training users of the fit below
    cols = st.just(n_cols) if n_cols else st.one_of(st.integers(0, 8), st.integers(9, 40))
    return st.tuples(rows, cols)


@st.composite
def entries(draw, n_cols=None, dtype=None, huge=True):
    """(shape, rows, cols, values): stored entries in any order, duplicates allowed."""
    n_rows, n_items = draw(_shape(n_cols))
    dtype = dtype or draw(st.sampled_from(SPARSE_DTYPES))
    nnz = 0 if n_rows * n_items == 0 else draw(st.integers(0, min(20, 3 * n_rows * n_items)))
    rows = np.array(draw(st.lists(st.integers(0, max(n_rows - 1, 0)), min_size=nnz, max_size=nnz)))
    cols = np.array(draw(st.lists(st.integers(0, max(n_items - 1, 0)), min_size=nnz, max_size=nnz)))
    values = draw(st.lists(_values(dtype, huge), min_size=nnz, max_size=nnz))
    with warnings.catch_warnings():  # 1e39 overflows float32, NaN has no integer: on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        data = np.array(values, dtype=np.complex128 if np.dtype(dtype).kind == "c" else None)
        data = data.astype(dtype) if nnz else np.zeros(0, dtype)
    return (n_rows, n_items), rows.astype(np.int64), cols.astype(np.int64), data


def _compressed(fmt, container, shape, rows, cols, data):
    """A csr/csc built from its three arrays by hand: the given entry order within a row
    (column) is kept, so indices may be unsorted or repeated."""
    major, minor = (rows, cols) if fmt == "csr" else (cols, rows)
    order = np.argsort(major, kind="stable")
    n_major = shape[0] if fmt == "csr" else shape[1]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(major, minlength=n_major))])
    return container((data[order], minor[order].astype(np.int32), indptr.astype(np.int32)), shape)


def _malform(X, how, rng):
    """Break X's structure after construction (scipy's constructor would refuse most)."""
    if X.format == "coo":
        row, col = X.coords
        extra = X.data[:1] if X.data.size else np.ones(1, X.dtype)
        if how in ("indptr_decreasing", "indptr_short", "indptr_long", "indptr_start"):
            X.coords = (row[:-1], col) if row.size else (np.array([0]), col)
        elif how == "index_high":
            X.coords = (np.append(row, X.shape[0] + rng), np.append(col, 0))
            X.data = np.append(X.data, extra)
        elif how == "index_negative":
            X.coords = (np.append(row, 0), np.append(col, -1 - rng))
            X.data = np.append(X.data, extra)
        elif how == "data_short":
            X.data = X.data[:-1] if X.data.size else np.ones(1, X.dtype)
        elif how == "indices_long":
            X.coords = (np.append(row, 0), col)
        elif how == "float_indices":
            X.coords = (row.astype(np.float64) + 0.5, col)
        elif how == "object_data":
            X.data = X.data.astype(object)
        else:
            X.data = X.data.astype(np.float16)
        return X
    n_minor = X.shape[1] if X.format == "csr" else X.shape[0]
    nnz = X.indptr[-1]
    if how == "index_high":
        X.indices = np.append(X.indices, n_minor + rng)
        X.data = np.append(X.data, np.ones(1, X.dtype))
        X.indptr = X.indptr.copy()
        X.indptr[-1] += 1
    elif how == "index_negative":
        X.indices = np.append(X.indices, -1 - rng)
        X.data = np.append(X.data, np.ones(1, X.dtype))
        X.indptr = X.indptr.copy()
        X.indptr[-1] += 1
    elif how == "indptr_decreasing":
        indptr = X.indptr.copy()
        if indptr.size > 2:
            indptr[1] = nnz + 1
        else:
            indptr[0] = 1
        X.indptr = indptr
    elif how == "indptr_short":
        X.indptr = X.indptr[:-1]
    elif how == "indptr_long":
        X.indptr = np.append(X.indptr, nnz)
    elif how == "indptr_start":
        X.indptr = X.indptr + 1
    elif how == "data_short":
        X.data = X.data[:-1] if nnz else np.ones(1, X.dtype)
    elif how == "indices_long":
        X.indices = np.append(X.indices, 0)  # one index more than data
    elif how == "float_indices":
        X.indices = X.indices.astype(np.float64) + 0.5
    elif how == "object_data":
        X.data = X.data.astype(object)
    else:
        X.data = X.data.astype(np.float16)
    return X


@st.composite
def sparse_inputs(draw, n_cols=None, malformed=None, huge=True):
    """(X, how): a scipy sparse matrix or array, csr/csc/coo, broken per ``how`` (None:
    valid, possibly with unsorted or duplicate entries, stored zeros, NaN, inf, 1e30)."""
    shape, rows, cols, data = draw(entries(n_cols, huge=huge))
    fmt = draw(st.sampled_from(["csr", "csc", "coo"]))
    kind = draw(st.sampled_from(["array", "matrix"]))
    container = getattr(sp, f"{fmt}_{kind}")
    if fmt == "coo":
        X = container((data, (rows, cols)), shape=shape)
    else:
        X = _compressed(fmt, container, shape, rows, cols, data)
    if malformed is None:  # half valid, half broken
        how = draw(st.one_of(st.just(None), st.sampled_from(MALFORMED)))
    else:
        how = malformed
    if how is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # float16 of 1e30 is inf
            X = _malform(X, how, draw(st.integers(0, 3)))
    return X, how


DENSE_DTYPES = [np.float16, np.float32, np.float64, np.int64, np.uint8, bool, object, np.complex128]


@st.composite
def dense_inputs(draw, n_cols=None, huge=True):
    """numpy arrays (any dtype, 1-D, 2-D, 3-D, empty), nested lists (ragged too) and pandas
    DataFrames."""
    shape, rows, cols, _ = draw(entries(n_cols, dtype=np.float64))
    dtype = draw(st.sampled_from(DENSE_DTYPES))
    n = shape[0] * shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        flat = np.array(draw(st.lists(_values(dtype, huge), min_size=n, max_size=n)), dtype=object)
        arr = flat.astype(dtype).reshape(shape) if n else np.zeros(shape, dtype)
    form = draw(st.sampled_from(["array", "list", "ragged", "1d", "3d", "frame"]))
    if form == "list":
        return arr.tolist()
    if form == "ragged":
        rows = arr.tolist() or [[1.0]]
        return [*rows, [1.0] * (len(rows[0]) + 1)]
    if form == "1d":
        return arr.ravel()
    if form == "3d":
        return arr.reshape((1, *shape))
    if form == "frame" and pd is not None:
        return pd.DataFrame(arr)
    return arr


def any_input(n_cols=None, huge=False):
    """Any input, for the estimators: without finite extremes by default (see
    test_huge_finite_values)."""
    sparse = sparse_inputs(n_cols, huge=huge).map(lambda pair: pair[0])
    return st.one_of(sparse, dense_inputs(n_cols, huge=huge))


# -- the door itself: errors or the right canonical matrix --------------------------------------


def _reference(X, implicit):
    """The expected dense result of a valid sparse X, computed from its stored entries, or
    None where check_interactions must refuse it."""
    if X.dtype.kind == "c" or 0 in X.shape:
        return None
    C = sp.coo_array(X)
    row, col = C.coords
    with np.errstate(over="ignore"):  # 1e39 is inf in float32, and refused
        data = C.data.astype(np.float32)
    keys = row.astype(np.int64) * X.shape[1] + col
    if implicit:
        dense = np.zeros(X.shape, np.float64)
        with np.errstate(invalid="ignore"):  # inf - inf: NaN, refused
            np.add.at(dense, (row, col), data.astype(np.float64))
        summed = dense[row, col]
        if not np.all(np.isfinite(summed)) or np.any(summed < 0):
            return None
        return dense
    if np.unique(keys).size < keys.size or not np.all(np.isfinite(data)):
        return None
    dense = np.full(X.shape, np.nan)
    dense[row, col] = data
    return dense


def _snapshot(X):
    arrays = X.coords + (X.data,) if X.format == "coo" else (X.data, X.indices, X.indptr)
    return [a.copy() for a in arrays]


@pytest.mark.parametrize(
    ("values", "dtype"),
    [([1e10, 1.0, -1e10], np.float64), ([2**31 - 1, 1, -(2**31)], np.int32)],
)
def test_duplicates_are_summed_exactly(values, dtype):
    """Found by the fuzz test below: summed in float32, cancelling duplicates lost the 1 or
    kept it by the order of the entries; the sum is exact, then rounded to float32 once."""
    X = sp.coo_array((np.array(values, dtype), ([0, 0, 0], [0, 0, 0])), shape=(1, 2))
    A = check_interactions(X, caller="test", implicit=True)
    assert A.nnz == 1 and A.dtype == np.float32
    assert A[0, 0] == np.float64(np.float32(values[0])) + values[1] + np.float32(values[2])


@fuzz(300)
@given(sparse_inputs(), st.booleans())
def test_check_interactions_on_sparse(pair, implicit):
    X, how = pair
    before = _snapshot(X)
    expected = None if how is not None else _reference(X, implicit)
    try:
        A = check_interactions(X, caller="fuzz", implicit=implicit)
    except CLEAR:
        assert expected is None, f"a valid {X.format} {X.dtype} matrix was refused"
        return
    finally:
        for old, new in zip(before, _snapshot(X), strict=True):
            assert old.dtype == new.dtype and old.tobytes() == new.tobytes()  # not modified
    assert how is None, f"malformed structure ({how}) accepted"
    assert expected is not None, "an input that must be refused was accepted"
    assert isinstance(A, sp.csr_array) and A.dtype == np.float32 and A.shape == X.shape
    assert A.has_canonical_format
    assert np.all(np.diff(A.indptr) >= 0)
    for u in range(A.shape[0]):
        assert np.all(np.diff(A.indices[A.indptr[u] : A.indptr[u + 1]]) > 0)
    assert np.all(np.isfinite(A.data))
    if implicit:
        assert np.all(A.data > 0)  # zeros dropped, no negative count
        np.testing.assert_allclose(A.toarray(), expected, rtol=1e-5)
    else:
        observed = ~np.isnan(expected)
        assert A.nnz == observed.sum()  # stored zeros are ratings
        np.testing.assert_array_equal(A.toarray()[observed], expected[observed])


@fuzz(200)
@given(dense_inputs(), st.booleans())
def test_check_interactions_on_dense(X, implicit):
    try:
        A = check_interactions(X, caller="fuzz", implicit=implicit)
    except CLEAR:
        return
    arr = np.asarray(X)
    assert arr.ndim == 2 and arr.dtype.kind in "fiub" and 0 not in arr.shape
    assert A.shape == arr.shape and A.has_canonical_format and np.all(np.isfinite(A.data))
    values = arr.astype(np.float32)
    if implicit:
        np.testing.assert_array_equal(A.toarray(), values)
    else:
        observed = ~np.isnan(values)
        assert A.nnz == observed.sum()
        np.testing.assert_array_equal(A.toarray()[observed], values[observed])


# -- every estimator: fit and the query methods -------------------------------------------------


def _model(name):
    return clone(ESTIMATORS[name](**TINY[name]))


def _training_data(name):
    X = make_interactions(60, N_ITEMS, n_groups=3, random_state=0)
    if name in RATING:  # ratings 1-5 for the rating models
        X.data = np.random.default_rng(0).integers(1, 6, X.nnz).astype(np.float32)
    return X


@functools.cache
def _fitted(name):
    return _model(name).fit(_training_data(name))


@fuzz(150)
@given(st.sampled_from(sorted(ESTIMATORS)), any_input())
def test_fit_is_a_clear_error_or_a_model(name, X):
    try:
        _model(name).fit(X)
    except CLEAR:
        pass


def _check_query(name, X, method):
    model = _fitted(name)
    try:
        if method == "recommend":
            out = model.recommend(X, n=2, return_scores=True)
        else:
            out = getattr(model, method)(X)
    except CLEAR:
        return
    Q = check_interactions(X, caller="fuzz", implicit=name not in RATING)  # it was accepted
    n_rows = Q.shape[0]
    if method == "recommend":
        items, scores = out
        assert items.shape == scores.shape == (n_rows, 2) and items.dtype == np.int64
        assert np.all((items >= -1) & (items < N_ITEMS))
        real = items >= 0
        assert np.all(np.isfinite(scores[real])), f"{name}.recommend: non-finite scores"
        for u in range(n_rows):  # exclude_seen: no seen item, no item twice
            seen = Q.indices[Q.indptr[u] : Q.indptr[u + 1]]
            assert not np.isin(items[u][real[u]], seen).any()
            assert np.unique(items[u][real[u]]).size == real[u].sum()
    elif method == "decision_function":
        assert out.shape == (n_rows, N_ITEMS)
        assert np.all(np.isfinite(out)), f"{name}.decision_function: non-finite scores"
    else:
        assert sp.issparse(out) and out.shape == Q.shape and out.nnz == Q.nnz
        low, high = model.rating_range_
        assert np.all((out.data >= low) & (out.data <= high))


@st.composite
def queries(draw):
    name = draw(st.sampled_from(RECOMMENDERS))
    methods = ["recommend", "decision_function"] + (["predict"] if name in RATING else [])
    return name, draw(st.sampled_from(methods))


@fuzz(150)
@given(queries(), any_input(n_cols=N_ITEMS))
def test_queries_are_a_clear_error_or_a_right_result(query, X):
    _check_query(*query, X)


# -- deterministic: the nastiest inputs, against every estimator, every run ---------------------


def _nasty():
    """Hand-made inputs every estimator must refuse with a ValueError or TypeError."""
    shape = (3, N_ITEMS)
    rows, cols = np.array([0, 1, 2, 2]), np.array([0, 3, 5, 11])
    data = np.array([1.0, 2.0, 1.0, 4.0])
    out = {}
    for fmt in ("csr", "csc", "coo"):
        for how in MALFORMED:
            container = getattr(sp, f"{fmt}_array")
            if fmt == "coo":
                X = container((data, (rows, cols)), shape=shape)
            else:
                X = _compressed(fmt, container, shape, rows, cols, data)
            out[f"{fmt}-{how}"] = _malform(X, how, 1)
    csr = sp.csr_matrix((data, (rows, cols)), shape=shape)
    bad = csr.copy()
    bad.data[0] = np.nan
    out["csr_matrix-nan"] = bad
    bad = csr.copy()
    bad.data[0] = np.inf
    out["csr_matrix-inf"] = bad
    out["csr-complex"] = csr.astype(np.complex64)
    out["dense-1e39"] = np.full(shape, 1e39)
    out["dense-object"] = np.ones(shape, dtype=object)
    out["dense-strings"] = np.full(shape, "1")
    out["dense-1d"] = np.ones(N_ITEMS)
    out["dense-3d"] = np.ones((1, *shape))
    out["dense-empty"] = np.zeros((0, N_ITEMS))
    out["list-empty"] = []
    out["list-ragged"] = [[1.0] * N_ITEMS, [1.0] * (N_ITEMS - 1)]
    out["none"] = None
    out["string"] = "X"
    out["coo-0x0"] = sp.coo_array((0, 0))
    if pd is not None:
        out["frame-strings"] = pd.DataFrame(np.full(shape, "a"))
    return out


@pytest.mark.parametrize("case", sorted(_nasty()))
@pytest.mark.parametrize("implicit", [True, False])
def test_the_door_refuses_the_nastiest_inputs(case, implicit):
    X = _nasty()[case]  # fresh: nothing is shared between cases
    malformed = case.split("-")[0] in ("csr", "csc", "coo") and case.split("-")[1] in MALFORMED
    malformed = malformed and not case.endswith("object_data")  # a TypeError about the dtype
    with pytest.raises(CLEAR, match="not a valid sparse matrix" if malformed else None):
        check_interactions(X, caller="fuzz", implicit=implicit)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_estimator_refuses_the_nastiest_inputs(name):
    methods = ["fit"]
    if name in RECOMMENDERS:
        methods += ["recommend", "decision_function"] + (["predict"] if name in RATING else [])
    for method in methods:
        model = _model(name) if method == "fit" else _fitted(name)
        for case, X in _nasty().items():
            try:
                getattr(model, method)(X)
            except CLEAR:
                continue
            pytest.fail(f"{name}.{method} accepted the malformed input {case!r}")


# Models known to overflow into non-finite scores on one huge finite value (strict xfail, so
# the mark goes once fixed).
OVERFLOWS: dict[str, str] = {}  # none left: BiasedMF and WMF now stop with a clear error


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=OVERFLOWS[n]))
        if n in OVERFLOWS
        else n
        for n in sorted(ESTIMATORS)
    ],
)
def test_huge_finite_values_are_a_clear_error_or_finite_scores(name):
    X = _training_data(name)
    X.data[0] = 1e30  # finite in float32
    try:
        model = _model(name).fit(X)
    except CLEAR:
        return
    if name in RECOMMENDERS:
        assert np.all(np.isfinite(model.decision_function(X)))
