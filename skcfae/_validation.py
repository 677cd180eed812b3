"""Input validation shared by every estimator, metric and splitter.

All user data enters through :func:`check_interactions`: any scipy sparse format or dense
array-like becomes a canonical CSR float32 matrix (sorted indices, no duplicates, no explicit
zeros), or a clear ``ValueError``/``TypeError`` says what is wrong and how to fix it.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._typing import InteractionMatrix

__all__ = ["check_interactions"]


def check_interactions(
    X: InteractionMatrix,
    *,
    caller: str,
    implicit: bool = True,
    allow_empty_rows: bool = True,
    dtype: type = np.float32,
) -> sp.csr_array:
    """Return ``X`` as a canonical CSR array of ``dtype``, or raise a helpful error.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions (implicit) or ratings (explicit); rows are users.
    caller : str
        Name used in error messages, e.g. ``"MultVAE.fit"``.
    implicit : bool, default=True
        Implicit data must be non-negative; explicit ratings may be any finite value and
        keep their explicitly stored zeros (a stored 0 is an observed rating).
    allow_empty_rows : bool, default=True
        Whether users with no interaction are allowed.
    dtype : numpy dtype, default=np.float32

    Returns
    -------
    X : scipy.sparse.csr_array of shape (n_users, n_items)
    """
    if X is None:
        raise TypeError(f"{caller} expected a users x items matrix, got None.")
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"{caller} expected a 2-D users x items matrix, got {X.ndim}-D.")
        kind = X.dtype.kind
        _check_dtype_kind(kind, X.dtype, caller)
        X = sp.csr_array(X, dtype=dtype, copy=True)
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
        X = sp.csr_array(arr.astype(dtype, copy=False))
    n_users, n_items = X.shape
    if n_users == 0 or n_items == 0:
        what = "sample" if n_users == 0 else "feature"
        raise ValueError(
            f"{caller} got an empty matrix: 0 {what}(s) (shape={X.shape}) while a minimum of 1 "
            "is required; it needs at least one user and one item."
        )
    X.sum_duplicates()
    X.sort_indices()
    if not np.all(np.isfinite(X.data)):
        raise ValueError(
            f"{caller} got NaN or infinite values in X; drop or impute them before fitting."
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
