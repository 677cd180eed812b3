"""Input validation shared by every estimator, metric and splitter: the one place it happens.

All user data enters through :func:`check_interactions`: any scipy sparse format or dense
array-like becomes a canonical CSR matrix (sorted indices, no duplicates), or a clear
``ValueError``/``TypeError`` says what is wrong and how to fix it. Two readings of the data:

- implicit feedback (``implicit=True``, interactions such as clicks or play counts): values
  must be non-negative, duplicate entries are summed (counts add up), stored zeros are dropped
  and a dense 0 is "no interaction";
- explicit feedback (``implicit=False``, ratings): every stored entry is an observed rating,
  whatever its value (a stored 0 included, negative values allowed); a (user, item) entry stored
  twice is an error; a dense input marks unobserved entries with NaN, every other entry
  (0 included) being an observed rating.

Estimators then keep their column count with :func:`check_n_items`; :func:`check_n` and
:func:`check_items` check the length and the candidate set of ranked lists. Internal code
passes the validated CSR on and never validates it again.
"""

from __future__ import annotations

import copy
from numbers import Integral
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ._typing import InteractionMatrix

__all__ = ["RatingEntries", "check_interactions", "check_items", "check_n", "check_n_items"]


class RatingEntries:
    """The stored ratings of a matrix R seen as a sequence of entries, for cross-validation.

    scikit-learn's searches split the *samples* of X; for rating models (the 90/10 protocol
    of Strub & Mary 2015 and AutoRec) the samples are the observed ratings, and every split
    keeps all users and items. ``RatingEntries(R)`` has one sample per stored entry
    (``len`` and ``shape[0]`` are ``R.nnz``), and indexing it with entry positions gives a
    sparse matrix of R's shape holding only those ratings. So ``GridSearchCV(model, grid,
    cv=KFold(5, shuffle=True), scoring=rmse_scorer()).fit(RatingEntries(R))`` fits each
    candidate on the ratings of 4 folds and scores it on the held-out fold's ratings of the
    same users and items; every rating model accepts ``RatingEntries`` wherever it accepts
    R (the refit of the best candidate runs on all of R).

    Parameters
    ----------
    R : {array-like, sparse matrix} of shape (n_users, n_items)
        Ratings, validated as a rating model's ``fit`` does (stored entries are ratings, a
        dense R marks unobserved entries with NaN, duplicates are an error).

    Attributes
    ----------
    ratings : scipy.sparse.csr_array of shape (n_users, n_items)
        The canonical ratings; entry ``j`` is the ``j``-th stored entry in CSR order.
    shape : tuple of int
        ``(R.nnz,)``: the number of samples scikit-learn sees.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import RatingEntries
    >>> entries = RatingEntries(np.array([[5.0, np.nan, 3.0], [np.nan, 4.0, 1.0]]))
    >>> len(entries)
    4
    >>> entries[[0, 3]].toarray()
    array([[5., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    """

    def __init__(self, R: InteractionMatrix) -> None:
        self.ratings = check_interactions(R, caller="RatingEntries", implicit=False)
        self.shape = (int(self.ratings.nnz),)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> sp.csr_array:
        if isinstance(key, tuple):  # scikit-learn indexes samples as X[indices, ...]
            key = key[0]
        take = np.zeros(self.shape[0], dtype=bool)
        take[np.arange(self.shape[0])[key]] = True
        R = self.ratings
        rows = np.repeat(np.arange(R.shape[0]), np.diff(R.indptr))
        counts = np.bincount(rows[take], minlength=R.shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        out = sp.csr_array((R.data[take], R.indices[take], indptr), shape=R.shape)
        out.has_canonical_format = True
        return out

    def __repr__(self) -> str:
        return f"RatingEntries({self.shape[0]} ratings of {self.ratings.shape})"


def check_interactions(
    X: InteractionMatrix,
    *,
    caller: str,
    implicit: bool = True,
    allow_empty_rows: bool = True,
    dtype: type = np.float32,
    input_name: str = "X",
) -> sp.csr_array:
    """Return ``X`` as a canonical CSR array of ``dtype``, or raise a helpful error.

    The result is always a new array (the input is never modified nor shared), with sorted
    indices and no duplicate entries, so ``has_canonical_format`` is True.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions (implicit) or ratings (explicit); rows are users.
    caller : str
        Name used in error messages, e.g. ``"MultVAE.fit"``.
    implicit : bool, default=True
        True: implicit feedback. Values must be non-negative; duplicate sparse entries are
        summed; zeros (stored or dense) are not interactions and are dropped; NaN is an error.
        False: explicit ratings. Every stored entry is an observed rating, whatever its
        (finite) value, and is kept, stored zeros included; a (user, item) entry stored twice
        is a ``ValueError``; in a dense ``X``, NaN marks an unobserved entry and every other
        entry, 0 included, is an observed rating. Infinite values are an error either way.
    allow_empty_rows : bool, default=True
        Whether users with no interaction are allowed.
    dtype : numpy dtype, default=np.float32
        dtype of the result.
    input_name : str, default="X"
        Name of the argument in error messages, e.g. ``"y_true"``.

    Returns
    -------
    X : scipy.sparse.csr_array of shape (n_users, n_items)
        Canonical: sorted indices, no duplicates.

    Raises
    ------
    TypeError
        None, a string or another non-array, non-numeric or datetime dtype.
    ValueError
        Not 2-D, no user or no item, complex values, NaN (except in a dense explicit ``X``)
        or infinite values, negative values (implicit), duplicate entries (explicit), empty
        rows when ``allow_empty_rows=False``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae._validation import check_interactions
    >>> R = check_interactions(np.array([[5.0, np.nan], [0.0, 3.0]]), caller="demo",
    ...                        implicit=False)
    >>> R.nnz, R.toarray().tolist()  # the dense 0 is an observed rating, NaN is not
    (3, [[5.0, 0.0], [0.0, 3.0]])
    """
    name = input_name
    if X is None:
        raise TypeError(f"{caller} expected a users x items matrix, got None.")
    _check_not_long_format(X, caller)
    if isinstance(X, RatingEntries):
        if implicit:
            raise TypeError(
                f"{caller} got RatingEntries, the entries of a rating matrix for rating models; "
                "pass the interaction matrix itself to an implicit-feedback model."
            )
        X = X.ratings
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"{caller} expected a 2-D users x items matrix, got {X.ndim}-D.")
        _check_dtype_kind(X.dtype.kind, X.dtype, caller)
        _check_structure(X, caller, name)
        with np.errstate(over="ignore"):  # beyond float32's range is inf: refused below
            if implicit and X.format in ("csr", "csc") and X.has_canonical_format:
                X = sp.csr_array(X.astype(dtype))  # no duplicates to sum
            elif implicit:  # each value read in dtype first (int8, bool would wrap), the
                # duplicates summed in float64, then rounded once: summed in float32,
                # 2**31 - 1 + 1 - 2**31 was 0 or 1 by the order of the entries
                C = sp.coo_array(X)
                values = C.data.astype(dtype).astype(np.float64)
                X = sp.csr_array(sp.coo_array((values, C.coords), shape=C.shape))
                X.sum_duplicates()
                X = X.astype(dtype)
            else:
                X = _explicit_csr(X, dtype, caller, name)
    else:
        if isinstance(X, str) or not hasattr(X, "__len__") and not hasattr(X, "__array__"):
            raise TypeError(
                f"{caller} expected a scipy.sparse matrix or a 2-D array of shape "
                f"(n_users, n_items), got {type(X).__name__}."
            )
        arr = np.asarray(X)
        _check_dtype_kind(arr.dtype.kind, arr.dtype, caller)
        if arr.ndim != 2:
            raise ValueError(
                f"{caller} expected a 2-D users x items matrix, got an array of shape "
                f"{arr.shape}. Reshape your data: a single user is X.reshape(1, -1)."
            )
        with np.errstate(over="ignore"):  # beyond float32's range is inf: refused below
            if implicit:
                X = sp.csr_array(arr.astype(dtype, copy=False))
            else:
                X = _dense_ratings_csr(arr, dtype, caller, name)
    n_users, n_items = X.shape
    if n_users == 0 or n_items == 0:
        what = "sample" if n_users == 0 else "feature"
        raise ValueError(
            f"{caller} got an empty matrix: 0 {what}(s) (shape={X.shape}) while a minimum of 1 "
            "is required; it needs at least one user and one item."
        )
    if not np.all(np.isfinite(X.data)):
        raise ValueError(
            f"{caller} got NaN or infinite values in {name} (or values beyond float32's range, "
            "about 3.4e38); drop or impute them before fitting."
        )
    if implicit:
        if X.data.size and X.data.min() < 0:
            raise ValueError(
                f"Negative values in data passed to {caller}: implicit-feedback models need "
                "non-negative interaction counts. Binarize or clip X first."
            )
        X.eliminate_zeros()
    if not allow_empty_rows and np.any(np.diff(X.indptr) == 0):
        n_empty = int(np.sum(np.diff(X.indptr) == 0))
        raise ValueError(
            f"{caller}: {n_empty} users have no interactions; remove empty rows first."
        )
    return X


def _check_not_long_format(X: Any, caller: str) -> None:
    """Raise a ``ValueError`` naming ``InteractionEncoder`` when X is a pandas DataFrame that
    looks like a long table of interactions (one row per user and item) rather than a users x
    items matrix: 2 to 4 columns named like ids, ratings or times, or, unnamed, many more rows
    than columns with the first two holding ids (strings, or integers with 10 or more distinct
    values and mostly nonzero, which a column of a users x items matrix rarely is)."""
    if not type(X).__module__.startswith("pandas") or not hasattr(X, "columns"):
        return
    n_rows, n_cols = X.shape
    if not 2 <= n_cols <= 4:
        return
    norm = ["".join(ch for ch in str(c).lower() if ch.isalnum()) for c in X.columns]
    stems = ("user", "item", "movie", "product", "song", "track", "artist", "book", "customer")
    ids = [
        j
        for j, c in enumerate(norm)
        if any(c in {s, s + "s", s + "id", s + "ids", s + "ix", s + "idx"} for s in stems)
        or c in {"uid", "iid", "sessionid", "visitorid", "articleid"}
    ]
    values = {"rating", "ratings", "score", "value", "count", "weight", "plays", "playcount"}
    times = {"timestamp", "timestamps", "time", "date", "datetime", "ts", "unixtime"}
    n_named = sum(c in values | times for c in norm)

    def id_like(j: int) -> bool:
        col = X.iloc[:, j].to_numpy()
        if col.dtype.kind == "O":
            return col.size > 0 and isinstance(col[0], str)
        return (
            col.dtype.kind in "iu"
            and np.count_nonzero(col) > 0.5 * col.size
            and np.unique(col).size >= 10
        )

    if len(ids) >= 2 or (len(ids) == 1 and n_named >= 1):
        others = [j for j in range(n_cols) if j not in ids and norm[j] not in values | times]
        user, item = (ids + others + [j for j in range(n_cols) if j not in ids + others])[:2]
    elif n_rows >= 10 * n_cols and id_like(0) and id_like(1):
        user, item = 0, 1
    else:
        return
    cols = list(X.columns)
    raise ValueError(
        f"{caller} got a pandas DataFrame of shape {X.shape} with columns {cols}: a long table "
        "of interactions (one row per user and item), not a users x items matrix, whose "
        f"{n_cols} columns would be read as {n_cols} items. Build the matrix and its id maps "
        "with skcfae.preprocessing.InteractionEncoder:\n"
        f"    X = InteractionEncoder({cols[user]!r}, item_col={cols[item]!r}).fit_transform(df)\n"
        "(value_col= for ratings or counts; see the docs page 'From a data frame to "
        "recommendations'). A users x items DataFrame, one column per item, works as before; "
        "if this one is such a matrix, pass df.to_numpy()."
    )


def _check_structure(X: Any, caller: str, name: str) -> None:
    """Raise a clear ``ValueError`` for a malformed sparse matrix (an index out of range or
    negative, a decreasing ``indptr``, arrays of the wrong length), which scipy would
    otherwise convert into silently wrong data or a crash."""
    fix = (
        " Build it with scipy.sparse.csr_array((values, (user_index, item_index)), "
        "shape=(n_users, n_items)) from valid indices."
    )
    if X.dtype.kind == "f" and X.dtype.itemsize < 4:
        raise ValueError(
            f"{caller}: {name} is not a valid sparse matrix: scipy.sparse does not support "
            f"dtype {X.dtype}. Store the values as float32."
        )
    if X.format in ("coo", "csr", "csc", "bsr"):
        for index in X.coords if X.format == "coo" else (X.indices, X.indptr):
            if np.asarray(index).dtype.kind != "i":  # scipy would warn, then truncate 1.5 to 1
                raise ValueError(
                    f"{caller}: {name} is not a valid sparse matrix: its index arrays must hold "
                    f"integers, got dtype {np.asarray(index).dtype}.{fix}"
                )
    if X.format in ("csr", "csc", "bsr"):
        try:  # on a shallow copy: check_format may prune or cast the arrays it checks
            copy.copy(X).check_format(full_check=True)
        except ValueError as err:
            raise ValueError(
                f"{caller}: {name} is not a valid sparse matrix: {err}.{fix}"
            ) from None
        if np.any(np.diff(X.indptr) < 0):  # check_format skips this when indptr[-1] == 0
            raise ValueError(
                f"{caller}: {name} is not a valid sparse matrix: index pointer values must "
                f"form a non-decreasing sequence.{fix}"
            )
    elif X.format == "coo":
        if any(index.shape != X.data.shape for index in X.coords):
            raise ValueError(
                f"{caller}: {name} is not a valid sparse matrix: its row, column and data "
                f"arrays have different lengths.{fix}"
            )
        for axis, index in enumerate(X.coords):
            if index.size and (index.min() < 0 or index.max() >= X.shape[axis]):
                what = "row" if axis == 0 else "column"
                raise ValueError(
                    f"{caller}: {name} is not a valid sparse matrix: a {what} index is outside "
                    f"[0, {X.shape[axis]}).{fix}"
                )


def _explicit_csr(X: Any, dtype: type, caller: str, name: str) -> sp.csr_array:
    """Sparse ratings as canonical CSR, stored zeros kept; duplicate entries are an error."""
    if X.format in ("csr", "csc"):
        A = sp.csr_array(X, dtype=dtype, copy=True)  # keeps duplicates and stored zeros
        A.sort_indices()
        n_dup = 0
        if A.nnz > 1:
            same = A.indices[1:] == A.indices[:-1]
            starts = A.indptr[1:-1]
            same[starts[(starts > 0) & (starts < A.nnz)] - 1] = False  # across a row start
            n_dup = int(same.sum())
    else:
        C = sp.coo_array(X)
        A = sp.csr_array(C, dtype=dtype, copy=True)  # sums duplicates, keeps stored zeros
        A.sort_indices()
        n_dup = int(C.nnz - A.nnz)
    if n_dup:
        raise ValueError(
            f"{caller} got {n_dup} duplicate (user, item) entries in {name}: a rating matrix "
            "stores each observed rating once, and duplicates would be summed into a rating "
            "nobody gave. Aggregate them first (e.g. keep the latest rating per pair with "
            "df.drop_duplicates(['user', 'item'], keep='last'), or average them) and build "
            "the matrix again."
        )
    A.has_canonical_format = True
    return A


def _dense_ratings_csr(arr: np.ndarray, dtype: type, caller: str, name: str) -> sp.csr_array:
    """Dense ratings as canonical CSR: NaN is unobserved, every other entry is a rating."""
    arr = arr.astype(dtype, copy=False)
    observed = ~np.isnan(arr) if arr.dtype.kind == "f" else np.ones(arr.shape, dtype=bool)
    data = arr[observed]
    if not np.all(np.isfinite(data)):
        raise ValueError(
            f"{caller} got infinite values in {name}; ratings must be finite (NaN or "
            f"infinite values: a dense {name} marks unobserved entries with NaN only)."
        )
    indptr = np.concatenate([[0], np.cumsum(observed.sum(axis=1))])
    indices = np.nonzero(observed)[1]
    A = sp.csr_array((data, indices, indptr), shape=arr.shape)
    A.has_canonical_format = True  # row-major order: sorted, one entry per position
    return A


def _check_dtype_kind(kind: str, dtype: object, caller: str) -> None:
    if kind in "OUSV":
        raise TypeError(
            f"{caller} needs numeric interactions, got dtype {dtype}. Convert X with "
            "X.astype(np.float32) after mapping any labels to numbers."
        )
    if kind == "c":
        raise ValueError(
            f"{caller}: Complex data not supported (dtype {dtype}); pass real numbers."
        )
    if kind == "M" or kind == "m":
        raise TypeError(f"{caller} cannot use datetime values (dtype {dtype}).")


def check_has_interactions(X: sp.csr_array, caller: str) -> None:
    """Fitting needs at least one interaction: an all-zero X (or one storing only zeros) is
    an error rather than a model of nothing."""
    if X.nnz == 0:
        raise ValueError(
            f"{caller} got no interaction: X stores no positive entry (shape {X.shape}), so "
            "there is nothing to learn. Check how the matrix was built (e.g. a threshold that "
            "removed every entry)."
        )


def check_n_items(estimator: Any, X: Any, *, reset: bool) -> None:
    """Record (``reset=True``) or check the number of item columns of ``estimator``.

    On reset, sets ``n_items_in_`` and its scikit-learn name ``n_features_in_`` to
    ``X.shape[1]``; otherwise raises when X's column count differs from ``n_items_in_``.

    Parameters
    ----------
    estimator : object
        The estimator (its class name goes into the error message).
    X : sparse matrix or ndarray of shape (n_users, n_items)
        Validated data; only its shape is read (nothing is copied).
    reset : bool
        True in ``fit``; False in every method of a fitted estimator.

    Raises
    ------
    ValueError
        ``X has 1200 features, but MultVAE is expecting 1000 features as input: X has 1200
        items but MultVAE was fitted on 1000; pass rows over the same item columns.``
    """
    n_items = int(X.shape[1])
    if reset:
        estimator.n_items_in_ = n_items
        estimator.n_features_in_ = n_items
        return
    expected = estimator.n_items_in_
    if n_items != expected:
        name = type(estimator).__name__
        raise ValueError(
            f"X has {n_items} features, but {name} is expecting {expected} features as input: "
            f"X has {n_items} items but {name} was fitted on {expected}; pass rows over the "
            "same item columns."
        )


def check_flag(value: Any, name: str, caller: str) -> bool:
    """A boolean argument (``bool`` or ``numpy.bool_``), as a bool; anything else, e.g. the
    string "no" (which is truthy), is a ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{caller}: {name} must be True or False; got {value!r}.")
    return bool(value)


def check_layer_sizes(sizes: Any, name: str, caller: str) -> tuple[int, ...]:
    """A tuple of layer widths: each a positive int (bools, floats and strings refused)."""
    if not isinstance(sizes, (tuple, list)):
        raise TypeError(f"{caller}: {name} must be a tuple of ints; got {sizes!r}.")
    for size in sizes:
        if isinstance(size, (bool, np.bool_)) or not isinstance(size, Integral) or size < 1:
            raise ValueError(
                f"{caller}: every width in {name} must be a positive int; got {sizes!r}."
            )
    return tuple(int(size) for size in sizes)


def check_n(n: Any, n_max: int, caller: str, *, name: str = "n", limit: str | None = None) -> int:
    """Check a list length ``n`` (or ``k``): an int in ``[1, n_max]``; return it as an int.

    Parameters
    ----------
    n : object
        The value to check; bools are rejected.
    n_max : int
        Largest allowed value (the number of rankable items).
    caller : str
        Name used in error messages, e.g. ``"MultVAE.recommend"``.
    name : str, default="n"
        Parameter name in error messages.
    limit : str, optional
        Why ``n_max`` is the limit, shown when ``n > n_max``; default "the model knows
        ``n_max`` items".

    Returns
    -------
    n : int

    Raises
    ------
    ValueError
        ``The 'n' parameter of MultVAE.recommend must be an int in the range [1, 1000]
        (the model knows 1000 items). Got 1001 instead.``
    """
    if isinstance(n, bool) or not isinstance(n, Integral) or int(n) < 1:
        raise ValueError(
            f"The '{name}' parameter of {caller} must be an int in the range [1, {n_max}]. "
            f"Got {n!r} instead."
        )
    if int(n) > n_max:
        why = f"the model knows {n_max} items" if limit is None else limit
        raise ValueError(
            f"The '{name}' parameter of {caller} must be an int in the range [1, {n_max}] "
            f"({why}). Got {n} instead."
        )
    return int(n)


def check_items(items: npt.ArrayLike, n_items: int, caller: str) -> np.ndarray:
    """Check a candidate set of item indices; return it sorted, as int64.

    Parameters
    ----------
    items : array-like of int
        Item (column) indices: non-empty, 1-D, integers in ``[0, n_items)``, no duplicates.
    n_items : int
        Number of item columns.
    caller : str
        Name used in error messages, e.g. ``"MultVAE.recommend"``.

    Returns
    -------
    items : ndarray of shape (n_candidates,), dtype int64
        Ascending (ties in a ranking then go to the lower item index, as without ``items``).

    Raises
    ------
    TypeError
        Not an array of integers (e.g. floats, or a boolean mask).
    ValueError
        Not 1-D, empty, out of range or with duplicates.
    """
    what = f"The 'items' parameter of {caller}"
    if sp.issparse(items):
        raise TypeError(f"{what} must be a 1-D array-like of item indices, got a sparse matrix.")
    arr = np.asarray(items)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array-like of item indices, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{what} must hold at least one item index; got an empty array.")
    if arr.dtype.kind == "b":
        raise TypeError(
            f"{what} must hold item indices, got a boolean mask; pass np.flatnonzero(mask)."
        )
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{what} must hold integer item indices, got dtype {arr.dtype}.")
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= n_items:
        bad = low if low < 0 else high
        raise ValueError(
            f"{what} must hold item indices in the range [0, {n_items - 1}] (the model knows "
            f"{n_items} items). Got {bad} instead."
        )
    out = np.sort(arr.astype(np.int64))
    n_dup = int(np.count_nonzero(out[1:] == out[:-1]))
    if n_dup:
        raise ValueError(
            f"{what} must not repeat an item; got {n_dup} duplicate index(es). "
            "Pass np.unique(items)."
        )
    return out


def check_same_pattern(
    reference: sp.csr_array,
    other: sp.csr_array,
    *,
    caller: str,
    names: tuple[str, str],
    stores: str,
    hint: str = "",
) -> None:
    """Raise unless the canonical CSR ``other`` has the shape and stored entries of
    ``reference`` (predictions or timestamps must sit exactly at its entries)."""
    ref_name, other_name = names
    if other.shape != reference.shape:
        raise ValueError(
            f"{caller}: {ref_name} has shape {reference.shape} but {other_name} has shape "
            f"{other.shape}."
        )
    if not (
        np.array_equal(reference.indptr, other.indptr)
        and np.array_equal(reference.indices, other.indices)
    ):
        raise ValueError(
            f"{caller}: {other_name} must store {stores} at exactly the entries of {ref_name} "
            f"(same sparsity pattern); {ref_name} stores {reference.nnz} entries and "
            f"{other_name} {other.nnz}, not at the same positions.{hint}"
        )
