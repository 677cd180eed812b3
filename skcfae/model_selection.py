"""Splitters for recommender evaluation: users, fold-in/hold-out, leave-one-out, ratings.

- :class:`UserSplit` cross-validates over users (rows), for ``GridSearchCV``/``cross_validate``.
- :func:`fold_in_split` splits each user's interactions into a fold-in part (input to the model)
  and a hold-out part (to evaluate), as in the strong-generalization protocol of Liang et al.
  2018 and Khawar et al. (WWW 2020, §4.1).
- :func:`strong_generalization_split` is Liang et al. 2018's whole preprocessing and split.
- :func:`leave_one_out_split` holds out one (the latest) interaction per user (Li et al., NCAE).
- :func:`leave_one_out_validation_split` (plus a validation item), :func:`data_ratio_split`: NCAE.
- :func:`cold_start_users` selects evaluation users by fold-in activity (Khawar et al., WWW
  2020, §5.8).
- :class:`RatingEntries` makes the stored ratings the samples of a cross-validation (KFold
  over entries: every fold keeps all users and items), for searches over rating models.
- :func:`rating_holdout_split` holds out random stored ratings (the 90/10 protocol of Strub &
  Mary 2015, CFN).

Every split returns CSR float32 matrices with X's shape whose entries partition X's entries,
values kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Integral, Real
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.utils import Bunch, check_random_state

from ._compat import (
    BaseCrossValidator,
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_params,
)
from ._typing import InteractionMatrix, RandomState
from ._validation import RatingEntries as RatingEntries
from ._validation import check_interactions, check_same_pattern

__all__ = sorted(
    [
        "RatingEntries",
        "UserSplit",
        "cold_start_users",
        "data_ratio_split",
        "fold_in_split",
        "leave_one_out_split",
        "leave_one_out_validation_split",
        "rating_holdout_split",
        "strong_generalization_split",
        "temporal_split",
    ]
)


def _row_ids(X: sp.csr_array) -> np.ndarray:
    return np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))


def _partition(X: sp.csr_array, test_mask: np.ndarray) -> tuple[sp.csr_array, sp.csr_array]:
    """Split the stored entries of canonical CSR ``X`` into (entries not in mask, in mask)."""
    out = []
    for mask in (~test_mask, test_mask):
        kept_before = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        indptr = kept_before[X.indptr].astype(X.indptr.dtype)
        part = sp.csr_array(
            (X.data[mask].astype(np.float32), X.indices[mask], indptr), shape=X.shape
        )
        part.has_canonical_format = True  # a sub-sequence of canonical CSR stays canonical
        out.append(part)
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# fold-in / hold-out
# ---------------------------------------------------------------------------------------------


#: Users with fewer interactions cannot be split 80/20 by :func:`fold_in_split`.
MIN_SPLIT_INTERACTIONS = 5


def draw_validation_users(
    X: sp.csr_array, fraction: float, rng: np.random.RandomState
) -> tuple[np.ndarray, int]:
    """The held-out users of a fit's own validation (early stopping, ``EASE(lam="auto")``).

    ``round(fraction * n_users)`` rows of canonical CSR ``X`` drawn without replacement among
    those with at least :data:`MIN_SPLIT_INTERACTIONS` interactions (all of them when there
    are fewer). Returns ``(sorted row indices, number of eligible rows)``; the caller decides
    what too few means.
    """
    eligible = np.flatnonzero(np.diff(X.indptr) >= MIN_SPLIT_INTERACTIONS)
    n_valid = min(int(round(fraction * X.shape[0])), eligible.size)
    return np.sort(rng.choice(eligible, n_valid, replace=False)), int(eligible.size)


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "min_interactions": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def fold_in_split(
    X: InteractionMatrix,
    *,
    test_size: float = 0.2,
    min_interactions: int = 5,
    random_state: RandomState = None,
) -> tuple[sp.csr_array, sp.csr_array]:
    """Split each user's interactions into fold-in and hold-out parts.

    A row with at least ``min_interactions`` stored entries holds out ``int(test_size * n_u)``
    of its ``n_u`` entries, drawn uniformly without replacement; shorter rows stay whole in
    the fold-in part. This is ``split_train_test_proportion`` of Liang et al. 2018, used for
    the validation and test users of the strong-generalization protocol
    (Khawar et al., WWW 2020, §4.1: 80% fold-in, 20% evaluated). Vectorised: one
    random key per entry, ranked within its row.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions; stored positive entries are interactions.
    test_size : float, default=0.2
        Fraction of each eligible row held out (rounded down).
    min_interactions : int, default=5
        Rows with fewer stored entries are not split.
    random_state : int, RandomState instance or None, default=None
        Controls the draw.

    Returns
    -------
    X_fold_in : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
    X_holdout : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
        Together a partition of X's entries (``X_fold_in + X_holdout == X``), values kept.

    See Also
    --------
    strong_generalization_split, skcfae.metrics.ndcg_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import fold_in_split
    >>> X = np.array([[1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]])
    >>> fold_in, holdout = fold_in_split(X, random_state=0)
    >>> fold_in.sum(axis=1), holdout.sum(axis=1)
    (array([8., 2.], dtype=float32), array([2., 0.], dtype=float32))
    """
    X = check_interactions(X, caller="fold_in_split")
    return _fold_in_split(
        X, test_size=test_size, min_interactions=min_interactions, random_state=random_state
    )


def _fold_in_split(
    X: sp.csr_array, *, test_size: float, min_interactions: int, random_state: RandomState
) -> tuple[sp.csr_array, sp.csr_array]:
    """:func:`fold_in_split` of an already validated canonical CSR ``X`` (not copied again)."""
    rng = check_random_state(random_state)
    counts = np.diff(X.indptr)
    n_hold = np.where(counts >= min_interactions, np.floor(test_size * counts), 0).astype(np.int64)
    rows = _row_ids(X)
    keys = rng.random_sample(X.nnz)
    order = np.argsort(rows + keys)  # entries grouped by row, random order within a row
    rank = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)  # rank within the row
    test_mask = np.zeros(X.nnz, dtype=bool)
    test_mask[order[rank < np.repeat(n_hold, counts)]] = True
    return _partition(X, test_mask)


def _liang_fold_in_split(
    X: sp.csr_array, draw_order: np.ndarray, test_size: float, min_interactions: int, seed: int
) -> tuple[sp.csr_array, sp.csr_array]:
    """Liang et al.'s ``split_train_test_proportion``, draw for draw.

    Their notebook seeds ``np.random.seed(98765)`` and, for users in ascending original id
    (``draw_order`` gives the rows of X in that order), holds out
    ``np.random.choice(n_u, size=int(test_prop * n_u), replace=False)`` of the user's items in
    ascending item order. A per-user loop (a few thousand users: fast) reproduces their exact
    split; :func:`fold_in_split` is the vectorised equivalent in distribution.
    """
    rng = np.random.RandomState(seed)
    test_mask = np.zeros(X.nnz, dtype=bool)
    for row in draw_order:
        start, stop = X.indptr[row], X.indptr[row + 1]
        n_u = int(stop - start)
        if n_u >= min_interactions:
            picked = rng.choice(n_u, size=int(test_size * n_u), replace=False)
            test_mask[start + picked.astype(np.int64)] = True
    return _partition(X, test_mask)


# ---------------------------------------------------------------------------------------------
# Cross-validation over users
# ---------------------------------------------------------------------------------------------


class UserSplit(BaseCrossValidator):
    """Cross-validation over users (rows of the interaction matrix).

    Recommenders are evaluated on users they were not trained on (strong generalization,
    Khawar et al., WWW 2020, §4.1): each split trains on some users and scores the
    others, whose rows the scorer splits into fold-in and hold-out items.

    Parameters
    ----------
    n_splits : int, default=5
        Number of splits (folds when ``test_size`` is None, at least 2).
    test_size : float, int or None, default=None
        None: K-fold over a random permutation of the users, each user tested exactly once.
        A float in (0, 1) or an int: ``n_splits`` independent random draws of that fraction
        or number of test users (like :class:`sklearn.model_selection.ShuffleSplit`).
    random_state : int, RandomState instance or None, default=None
        Controls the permutation or the draws; pass an int for the same splits on each call.

    See Also
    --------
    fold_in_split, skcfae.metrics.ndcg_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import UserSplit
    >>> X = np.eye(6)
    >>> cv = UserSplit(n_splits=3, random_state=0)
    >>> cv
    UserSplit(n_splits=3, random_state=0, test_size=None)
    >>> [test.tolist() for _, test in cv.split(X)]
    [[2, 5], [1, 3], [0, 4]]
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        test_size: float | int | None = None,
        random_state: RandomState = None,
    ) -> None:
        self.n_splits = n_splits
        self.test_size = test_size
        self.random_state = random_state

    def _check_params(self) -> None:
        n_splits, test_size = self.n_splits, self.test_size
        lowest = 2 if test_size is None else 1
        if isinstance(n_splits, bool) or not isinstance(n_splits, Integral) or n_splits < lowest:
            raise InvalidParameterError(
                f"The 'n_splits' parameter of UserSplit must be an int in the range "
                f"[{lowest}, inf){' (K-fold with test_size=None)' if lowest == 2 else ''}. "
                f"Got {n_splits!r} instead."
            )
        ok = test_size is None or (
            not isinstance(test_size, bool)
            and (
                (isinstance(test_size, Integral) and test_size >= 1)
                or (isinstance(test_size, Real) and 0 < test_size < 1)
            )
        )
        if not ok:
            raise InvalidParameterError(
                "The 'test_size' parameter of UserSplit must be None, a float in the range "
                f"(0, 1) or an int in the range [1, inf). Got {test_size!r} instead."
            )

    def _iter_test_indices(
        self, X: Any = None, y: Any = None, groups: Any = None
    ) -> Iterator[np.ndarray]:
        self._check_params()
        splitter: KFold | ShuffleSplit
        if self.test_size is None:
            splitter = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
        else:
            splitter = ShuffleSplit(
                self.n_splits, test_size=self.test_size, random_state=self.random_state
            )
        for _, test in splitter.split(X):
            yield test

    def split(
        self, X: InteractionMatrix, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Generate (train_users, test_users) row indices.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_users, n_items)
        y : None
            Ignored.
        groups : None
            Ignored.

        Yields
        ------
        train : ndarray of int
            Rows of the training users, ascending.
        test : ndarray of int
            Rows of the test users, ascending.
        """
        yield from super().split(X, y, groups)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of splits: ``n_splits``.

        Parameters
        ----------
        X, y, groups : object
            Ignored.

        Returns
        -------
        n_splits : int
        """
        return int(self.n_splits)


# ---------------------------------------------------------------------------------------------
# Leave-one-out and rating hold-out
# ---------------------------------------------------------------------------------------------


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "timestamps": ["array-like", "sparse matrix", None],
        "ties": [StrOptions({"highest_item", "random"})],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def leave_one_out_split(
    X: InteractionMatrix,
    timestamps: InteractionMatrix | None = None,
    *,
    ties: str = "highest_item",
    random_state: RandomState = None,
) -> tuple[sp.csr_array, sp.csr_array]:
    """Hold out one interaction per user: the latest one, or a random one.

    The leave-one-out protocol of Li et al. (NCAE, arXiv:1712.09043, §5.1; after NCF): every
    user with at least two interactions moves one to the test part; users with a single
    interaction keep it in the training part.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions.
    timestamps : {array-like, sparse matrix} of shape (n_users, n_items), default=None
        Time of each interaction: a sparse matrix with X's sparsity pattern (each entry stored
        once; a stored 0 is time 0), or a dense array read at X's stored entries (numbers or
        ``datetime64``). NaN (or NaT) marks an interaction without a time. When given, each
        user with at least one timed interaction holds out their latest timed one (ties on
        the latest time: see ``ties``); a user none of whose interactions has a time holds
        out a uniformly random one. None: every user holds out a uniformly random one.

        .. versionchanged:: 0.1
           NaN marks an interaction without a time (it was an error).
    ties : {"highest_item", "random"}, default="highest_item"
        Which of a user's interactions at the latest time is held out: the one with the
        highest item index (deterministic), or one drawn uniformly at random. Dates of month
        granularity, such as Last.fm's tag dates, tie often: pass ``"random"`` there, so
        that the test item does not depend on the order of the item ids.

        .. versionadded:: 0.1
    random_state : int, RandomState instance or None, default=None
        Controls the random choices: the test item when ``timestamps`` is None, of users
        without a timed interaction, and of ties with ``ties="random"``.

    Returns
    -------
    X_train : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
    X_test : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
        At most one entry per row; together with X_train a partition of X's entries.

    See Also
    --------
    leave_one_out_validation_split : the same test item plus a random validation item.
    skcfae.datasets.load_lastfm : ``return_tag_dates=True`` gives Last.fm times.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from skcfae.model_selection import leave_one_out_split
    >>> X = sp.csr_array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    >>> times = sp.csr_array([[30.0, 10.0, 20.0], [0.0, 5.0, 0.0]])
    >>> train, test = leave_one_out_split(X, times)
    >>> test.toarray()
    array([[1., 0., 0.],
           [0., 0., 0.]], dtype=float32)
    >>> times = np.array([[np.nan, 10.0, 10.0], [0.0, np.nan, 0.0]])  # user 0: a tie
    >>> leave_one_out_split(X, times)[1].indices.tolist()
    [2]
    """
    X = check_interactions(X, caller="leave_one_out_split")
    rng = check_random_state(random_state)
    ts = None if timestamps is None else _timestamps_at_entries(timestamps, X)
    return _partition(X, _leave_one_out_mask(X, ts, ties, rng))


def _leave_one_out_mask(
    X: sp.csr_array, ts: np.ndarray | None, ties: str, rng: np.random.RandomState
) -> np.ndarray:
    """Mask of the held-out entry of every row of canonical CSR ``X`` with >= 2 entries.

    ``ts``: the time of each stored entry (NaN: none), or None for a random entry per row.
    Fully timed ``ts`` with ``ties="highest_item"`` draws nothing from ``rng``.
    """
    counts = np.diff(X.indptr)
    eligible = np.flatnonzero(counts >= 2)
    if ts is None:
        offsets = np.floor(rng.random_sample(eligible.size) * counts[eligible]).astype(np.int64)
        picked = X.indptr[eligible] + np.minimum(offsets, counts[eligible] - 1)
    else:
        rows = _row_ids(X)
        timed = ~np.isnan(ts)
        tie_key = X.indices.astype(np.float64)
        if ties == "random" or not timed.all():
            keys = rng.random_sample(X.nnz)
            # untimed entries are drawn at random (they compete only in rows without a time)
            tie_key = np.where(timed, keys if ties == "random" else tie_key, keys)
        # by row, timed after untimed, then time, then the tie key: the last of a row wins
        order = np.lexsort((tie_key, np.where(timed, ts, 0.0), timed, rows))
        picked = order[X.indptr[eligible + 1] - 1]
    test_mask = np.zeros(X.nnz, dtype=bool)
    test_mask[picked] = True
    return test_mask


@validate_params(
    {
        "X_fold_in": ["array-like", "sparse matrix"],
        "max_interactions": [Interval(Integral, 0, None, closed="left")],
        "min_interactions": [Interval(Integral, 0, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def cold_start_users(
    X_fold_in: InteractionMatrix, *, max_interactions: int, min_interactions: int = 1
) -> np.ndarray:
    """Rows of the fold-in matrix whose users are cold: few fold-in interactions.

    The cold-start protocol of Khawar et al. (WWW 2020, §5.8, Table 7): test users
    are sampled and split 80/20 as usual, then only the users whose activity (number of
    fold-in interactions) lies in ``[min_interactions, max_interactions]`` are evaluated.

    Parameters
    ----------
    X_fold_in : {array-like, sparse matrix} of shape (n_users, n_items)
        The fold-in part of the test users.
    max_interactions : int
        Largest fold-in activity of a cold user.
    min_interactions : int, default=1
        Smallest fold-in activity kept (users with nothing to fold in cannot be scored by an
        autoencoder beyond popularity).

    Returns
    -------
    rows : ndarray of int64
        Ascending row indices; evaluate with ``X_fold_in[rows]`` and ``X_holdout[rows]``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import cold_start_users
    >>> X = np.array([[1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 0, 0]])
    >>> cold_start_users(X, max_interactions=2)
    array([0, 2])
    """
    X = check_interactions(X_fold_in, caller="cold_start_users")
    activity = np.diff(X.indptr)
    return np.flatnonzero((activity >= min_interactions) & (activity <= max_interactions)).astype(
        np.int64
    )


def _timestamps_at_entries(
    timestamps: Any, X: sp.csr_array, caller: str = "leave_one_out_split"
) -> np.ndarray:
    """Time of each stored entry of canonical CSR ``X`` (float64, NaN where none)."""
    if sp.issparse(timestamps):
        # NaN marks "no time"; the validation refuses NaN, so it sees a copy with NaN as 0
        # and a second matrix of the same structure says where the NaN were
        if timestamps.format not in ("csr", "csc", "coo"):
            timestamps = timestamps.tocoo()
        values = np.asarray(timestamps.data, dtype=np.float64)
        missing = np.isnan(values)
        filled, flags = timestamps.copy(), timestamps.copy()
        filled.data = np.where(missing, 0.0, values)
        flags.data = missing.astype(np.float64)
        T, M = (
            check_interactions(
                A, caller=caller, implicit=False, dtype=np.float64, input_name="timestamps"
            )
            for A in (filled, flags)
        )
        check_same_pattern(X, T, caller=caller, names=("X", "timestamps"), stores="a time")
        out = np.asarray(T.data)
        out[M.data > 0] = np.nan
        return out
    ts = np.asarray(timestamps)
    if ts.dtype.kind == "M":
        nat = np.isnat(ts)
        ts = ts.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
        ts[nat] = np.nan
    if ts.dtype.kind not in "biuf":
        raise TypeError(f"{caller} needs numeric timestamps, got dtype {ts.dtype}.")
    if ts.shape != X.shape:
        raise ValueError(f"{caller}: timestamps has shape {ts.shape} but X has shape {X.shape}.")
    values = ts[_row_ids(X), X.indices].astype(np.float64)
    if np.isinf(values).any():
        raise ValueError(
            f"{caller}: timestamps has infinite values at some stored entries of X; use NaN "
            "for an interaction without a time."
        )
    return values


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "test_size": [
            Interval(Real, 0, 1, closed="neither"),
            Interval(Integral, 1, None, closed="left"),
        ],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def rating_holdout_split(
    X: InteractionMatrix, *, test_size: float | int = 0.1, random_state: RandomState = None
) -> tuple[sp.csr_array, sp.csr_array]:
    """Hold out a random subset of the stored ratings.

    The 90/10 random-entries protocol of Strub & Mary 2015 (CFN) and AutoRec: every stored entry
    of X is an observed rating (a stored 0 included), and ``ceil(test_size * n_ratings)`` of
    them, drawn uniformly without replacement, go to the test part.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Ratings. Sparse: the stored entries are the observed ratings (a stored 0 included; a
        (user, item) entry stored twice is an error). Dense: NaN marks an unobserved entry and
        every other entry, 0 included, is a rating (as the rating models read their data).
    test_size : float or int, default=0.1
        Fraction (in (0, 1)) or number of ratings held out.
    random_state : int, RandomState instance or None, default=None
        Controls the draw.

    Returns
    -------
    X_train : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
    X_test : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
        A partition of X's stored entries, values kept.

    See Also
    --------
    skcfae.metrics.rmse

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import rating_holdout_split
    >>> X = np.arange(1, 21, dtype=float).reshape(4, 5)
    >>> train, test = rating_holdout_split(X, random_state=0)
    >>> train.nnz, test.nnz
    (18, 2)
    """
    X = check_interactions(X, caller="rating_holdout_split", implicit=False)
    if X.nnz == 0:
        raise ValueError("rating_holdout_split: X stores no rating.")
    if isinstance(test_size, Integral):
        n_test = int(test_size)
        if n_test > X.nnz:
            raise ValueError(
                f"rating_holdout_split: test_size={n_test} exceeds the {X.nnz} stored ratings."
            )
    else:
        n_test = int(np.ceil(test_size * X.nnz))
    rng = check_random_state(random_state)
    test_mask = np.zeros(X.nnz, dtype=bool)
    test_mask[rng.permutation(X.nnz)[:n_test]] = True
    return _partition(X, test_mask)


# ---------------------------------------------------------------------------------------------
# Temporal fold-in / hold-out (sequence models: Sachdeva et al., WSDM 2019)
# ---------------------------------------------------------------------------------------------


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "timestamps": ["array-like", "sparse matrix"],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "min_interactions": [Interval(Integral, 1, None, closed="left")],
        "return_timestamps": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def temporal_split(
    X: InteractionMatrix,
    timestamps: InteractionMatrix,
    *,
    test_size: float = 0.2,
    min_interactions: int = 5,
    return_timestamps: bool = False,
) -> tuple[sp.csr_array, ...]:
    """Split each user's interactions by time: the earliest in fold-in, the latest held out.

    The evaluation protocol of sequence recommenders (Sachdeva, Manco, Ritacco and Pudi,
    *Sequential Variational Autoencoders for Collaborative Filtering*, WSDM 2019, and their
    notebook; Le's survey of autoencoder recommenders, §5): each held-out user's history is
    sorted by time; the first 80% is the fold-in part (the model's input) and the last 20%
    the hold-out part (what it must predict). It is :func:`fold_in_split` with the future,
    rather than a random draw, held out: a row with at least ``min_interactions`` stored
    entries holds out its ``int(test_size * n_u)`` latest entries (as many as
    :func:`fold_in_split` draws); shorter rows stay whole in the fold-in part. Equal times
    are ordered by item index (the higher index counts as later, as in
    :func:`leave_one_out_split`), so the split is deterministic.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions; stored positive entries are interactions.
    timestamps : {array-like, sparse matrix} of shape (n_users, n_items)
        Time of each interaction: a sparse matrix with X's sparsity pattern (the
        ``timestamps`` of the loaders in :mod:`skcfae.datasets`; a stored 0 is time 0), or a
        dense array read at X's stored entries. Any numeric scale; only the order matters.
    test_size : float, default=0.2
        Fraction of each eligible row held out (rounded down).
    min_interactions : int, default=5
        Rows with fewer stored entries are not split.
    return_timestamps : bool, default=False
        Also return the times of the two parts (to pass to a sequence model's
        ``recommend(X_fold_in, n, timestamps=T_fold_in)``).

    Returns
    -------
    X_fold_in : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
    X_holdout : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
        Together a partition of X's entries, values kept.
    T_fold_in, T_holdout : scipy.sparse.csr_array of shape (n_users, n_items), dtype float64
        Only with ``return_timestamps=True``: the times, with the patterns of ``X_fold_in``
        and ``X_holdout``.

    See Also
    --------
    fold_in_split : the same split with a random hold-out.
    skcfae.metrics.temporal_scorer : a scorer on this split.

    Notes
    -----
    The authors' notebook (``split_train_test_proportion`` of their SVAE code) holds out the
    entries from position ``int(0.8 * n_u)`` on, i.e. ``n_u - int(0.8 * n_u)`` of them: one
    more than here when ``0.2 * n_u`` is not an integer (7 items: 2 held out there, 1 here).
    Rounding as :func:`fold_in_split` does keeps random and temporal evaluations of the same
    users comparable.

    .. versionadded:: 0.1

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import temporal_split
    >>> X = np.ones((1, 5))
    >>> times = np.array([[50.0, 10.0, 40.0, 20.0, 30.0]])
    >>> fold_in, holdout = temporal_split(X, times)
    >>> holdout.indices  # the latest interaction
    array([0], dtype=int32)
    """
    caller = "temporal_split"
    X = check_interactions(X, caller=caller)
    times = _sequence_times(timestamps, X, caller)
    parts = _temporal_split(X, times, test_size, min_interactions)
    return parts if return_timestamps else parts[:2]


def _temporal_split(
    X: sp.csr_array, times: np.ndarray, test_size: float, min_interactions: int
) -> tuple[sp.csr_array, sp.csr_array, sp.csr_array, sp.csr_array]:
    """:func:`temporal_split` of canonical CSR ``X`` with the time of each stored entry (CSR
    order, no NaN): ``(X_fold_in, X_holdout, T_fold_in, T_holdout)``."""
    test_mask = _temporal_mask(X, times, test_size, min_interactions)
    fold_in, holdout = _partition(X, test_mask)
    T_fold_in, T_holdout = (
        _times_of(p, times[m]) for p, m in ((fold_in, ~test_mask), (holdout, test_mask))
    )
    return fold_in, holdout, T_fold_in, T_holdout


def _sequence_times(timestamps: Any, X: sp.csr_array, caller: str) -> np.ndarray:
    """The time of every stored entry of canonical CSR ``X`` (float64, CSR order); an entry
    without one (NaN) is an error: ordering a user's interactions needs all their times."""
    times = _timestamps_at_entries(timestamps, X, caller)
    missing = int(np.isnan(times).sum())
    if missing:
        raise ValueError(
            f"{caller}: timestamps has no time (NaN) at {missing} stored entries of X; "
            "ordering each user's interactions needs the time of every one. Give them a time "
            "or drop them from X."
        )
    return times


def _temporal_mask(
    X: sp.csr_array, times: np.ndarray, test_size: float, min_interactions: int
) -> np.ndarray:
    """The hold-out entries of :func:`temporal_split` on canonical CSR ``X`` with the time of
    each stored entry (CSR order): each eligible row's ``int(test_size * n_u)`` latest."""
    counts = np.diff(X.indptr)
    n_hold = np.where(counts >= min_interactions, np.floor(test_size * counts), 0).astype(np.int64)
    rows = _row_ids(X)
    order = np.lexsort((X.indices, times, rows))  # by row, then time, then item
    rank = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)  # position in the row's order
    test_mask = np.zeros(X.nnz, dtype=bool)
    test_mask[order[rank >= np.repeat(counts - n_hold, counts)]] = True
    return test_mask


def _times_of(part: sp.csr_array, times: np.ndarray) -> sp.csr_array:
    """A float64 CSR matrix with the pattern of ``part`` holding ``times`` (CSR order)."""
    out = sp.csr_array(
        (np.asarray(times, dtype=np.float64), part.indices.copy(), part.indptr.copy()),
        shape=part.shape,
    )
    out.has_canonical_format = True
    return out


# ---------------------------------------------------------------------------------------------
# Liang et al. 2018
# ---------------------------------------------------------------------------------------------


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "n_heldout_users": [
            Interval(Integral, 1, None, closed="left"),
            Interval(Real, 0, 0.5, closed="neither"),
        ],
        "threshold": [Real, None],
        "min_user_count": [Interval(Integral, 0, None, closed="left")],
        "min_item_count": [Interval(Integral, 0, None, closed="left")],
        "test_size": [Interval(Real, 0, 1, closed="neither")],
        "random_state": [Interval(Integral, 0, 2**32 - 1, closed="both")],
    },
    prefer_skip_nested_validation=True,
)
def strong_generalization_split(
    X: InteractionMatrix,
    *,
    n_heldout_users: int | float,
    threshold: float | None = None,
    min_user_count: int = 5,
    min_item_count: int = 0,
    test_size: float = 0.2,
    random_state: int = 98765,
) -> Bunch:
    """Liang et al. 2018's preprocessing and strong-generalization split, in one call.

    The protocol of Khawar et al. (WWW 2020, §4.1) and of Mult-VAE's public
    notebook, step by step:

    1. Binarize: keep the entries greater than ``threshold`` (e.g. 3.5 keeps ratings >= 4) or,
       without a threshold, every stored positive entry; set them to 1.
    2. Filter (``filter_triplets``): drop items with fewer than ``min_item_count`` users, then
       users with fewer than ``min_user_count`` items (one pass each, in that order).
    3. Shuffle the kept users (ascending original row order) with
       ``np.random.RandomState(random_state).permutation``; the first ``n - 2 h`` are training
       users, the next ``h`` validation users and the last ``h`` test users
       (``h = n_heldout_users``).
    4. The catalog is the items with at least one interaction among the training users, in
       ascending original column order; validation and test users keep only catalog items.
    5. Split each of the validation and test sets into fold-in/hold-out with Liang et al.'s
       ``split_train_test_proportion``: users with at least 5 items hold out
       ``int(test_size * n_u)`` of them, the generator re-seeded with ``random_state`` before
       each of the two sets and users drawn in ascending original row order. With rows and
       columns of X in ascending user and item id order (as ``ratings.csv`` is sorted), this
       reproduces their users' permutation and their hold-out draw for draw; the hold-out has
       the distribution of :func:`fold_in_split`.

    ML-20M: ``threshold=3.5, n_heldout_users=10_000``; Netflix: ``threshold=3.5,
    n_heldout_users=40_000``; MSD: ``min_user_count=20, min_item_count=200,
    n_heldout_users=50_000``.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Raw interactions or ratings (stored entries). Without ``threshold``: implicit
        feedback (non-negative; duplicate entries are summed). With ``threshold``: ratings, read
        as the rating models read them (a duplicate (user, item) entry is an error; in a dense
        X, NaN marks an unobserved entry).
    n_heldout_users : int or float
        Number of validation users and of test users, or a fraction in (0, 0.5) of the kept
        users (rounded down).
    threshold : float or None, default=None
        Binarization threshold (strict ``>``); None keeps every stored positive entry.
    min_user_count : int, default=5
        Minimum number of items of a kept user.
    min_item_count : int, default=0
        Minimum number of users of a kept item.
    test_size : float, default=0.2
        Fraction of each validation/test user's items held out.
    random_state : int, default=98765
        Seed of the user permutation and of both fold-in splits (Liang et al.'s 98765).

    Returns
    -------
    split : sklearn.utils.Bunch
        ``train``, ``valid_fold_in``, ``valid_holdout``, ``test_fold_in``, ``test_holdout``:
        CSR float32 binary matrices over the catalog, rows in permutation order;
        ``item_index``: original column of each catalog column; ``train_users``,
        ``valid_users``, ``test_users``: original row of each row of those matrices.

    References
    ----------
    Liang, Krishnan, Hoffman and Jebara. Variational Autoencoders for Collaborative
    Filtering. WWW 2018 (https://github.com/dawenl/vae_cf, ``preprocessing``).

    F. Khawar, L. K. M. Poon and N. L. Zhang. Learning the Structure of Auto-Encoding
    Recommenders. WWW 2020, doi:10.1145/3366423.3380135 (§4.1).

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import strong_generalization_split
    >>> X = (np.random.RandomState(0).rand(100, 40) < 0.3).astype(float)
    >>> s = strong_generalization_split(X, n_heldout_users=10)
    >>> s.train.shape, s.valid_fold_in.shape, s.test_holdout.shape
    ((80, 40), (10, 40), (10, 40))
    """
    caller = "strong_generalization_split"
    if threshold is None:
        B = check_interactions(X, caller=caller)
    else:
        B = check_interactions(X, caller=caller, implicit=False)
        B.data = (B.data > threshold).astype(np.float32)
        B.eliminate_zeros()
    B.data[:] = 1.0

    # filter_triplets: items first, then users (users with no interaction never exist there)
    kept_items = np.arange(B.shape[1])
    if min_item_count > 0:
        kept_items = np.flatnonzero(np.bincount(B.indices, minlength=B.shape[1]) >= min_item_count)
        B = sp.csr_array(B[:, kept_items])
    user_count = np.diff(B.indptr)
    kept_users = np.flatnonzero(user_count >= max(min_user_count, 1))
    n_users = kept_users.size
    if isinstance(n_heldout_users, Integral):
        n_heldout = int(n_heldout_users)
    else:
        n_heldout = int(np.floor(n_heldout_users * n_users))
    if n_heldout < 1 or n_users - 2 * n_heldout < 1:
        raise ValueError(
            f"{caller}: {n_users} users remain after filtering, too few for "
            f"n_heldout_users={n_heldout_users} ({n_heldout}) validation and test users and at "
            "least one training user; lower n_heldout_users or the minimum counts."
        )

    perm = np.random.RandomState(random_state).permutation(n_users)
    shuffled = kept_users[perm]
    train_users = shuffled[: n_users - 2 * n_heldout]
    valid_users = shuffled[n_users - 2 * n_heldout : n_users - n_heldout]
    test_users = shuffled[n_users - n_heldout :]

    train_full = sp.csr_array(B[train_users])
    catalog = np.flatnonzero(np.bincount(train_full.indices, minlength=B.shape[1]) > 0)

    def restrict(rows: np.ndarray) -> sp.csr_array:
        M = sp.csr_array(B[rows][:, catalog], dtype=np.float32)
        M.sort_indices()
        return M

    out = Bunch(train=restrict(train_users))
    for name, users in (("valid", valid_users), ("test", test_users)):
        M = restrict(users)
        draw_order = np.argsort(users, kind="stable")  # Liang groups users by original id
        fold_in, holdout = _liang_fold_in_split(M, draw_order, test_size, 5, random_state)
        out[f"{name}_fold_in"], out[f"{name}_holdout"] = fold_in, holdout
    out.item_index = kept_items[catalog]
    out.train_users, out.valid_users, out.test_users = train_users, valid_users, test_users
    return out


# ---------------------------------------------------------------------------------------------
# Leave-one-out with a validation item, and the data-ratio split (Li et al., NCAE)
# ---------------------------------------------------------------------------------------------


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "timestamps": ["array-like", "sparse matrix", None],
        "ties": [StrOptions({"highest_item", "random"})],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def leave_one_out_validation_split(
    X: InteractionMatrix,
    timestamps: InteractionMatrix | None = None,
    *,
    ties: str = "highest_item",
    random_state: RandomState = None,
) -> tuple[sp.csr_array, sp.csr_array, sp.csr_array]:
    """Leave-one-out with a validation item: (train, validation, test), one entry per row.

    The implicit protocol of Li, Zheng and Wu (NCAE, arXiv:1712.09043, §5.1): "the latest
    interaction of each user is held out for testing. To determine the hyperparameters, we
    randomly sample one interaction from the remaining data of each user as the validation
    set." Tune on the validation items (fit on ``X_train``, rank from ``X_train``), then
    refit on ``X_train + X_valid`` and rank from it for the test items.

    The test item is :func:`leave_one_out_split`'s (same ``timestamps`` and ``ties``
    rules), the validation item a uniformly random one of the remaining entries. A user
    keeps at least one training interaction: one with 2 interactions has a test item and
    no validation item, one with a single interaction neither.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions.
    timestamps : {array-like, sparse matrix} of shape (n_users, n_items), default=None
        As in :func:`leave_one_out_split` (NaN: no time); None draws the test item at
        random too.
    ties : {"highest_item", "random"}, default="highest_item"
        As in :func:`leave_one_out_split`.
    random_state : int, RandomState instance or None, default=None
        Controls every random choice: the validation items, and the test items where they
        are random (as in :func:`leave_one_out_split`, drawn first from the same generator).

    Returns
    -------
    X_train : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
    X_valid : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
    X_test : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
        ``X_valid`` and ``X_test`` hold at most one entry per row; the three partition X's
        entries, values kept.

    See Also
    --------
    leave_one_out_split, data_ratio_split, skcfae.metrics.holdout_scorer

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import leave_one_out_validation_split
    >>> X = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    >>> times = np.array([[1.0, 2.0, 4.0, 3.0], [5.0, 6.0, 0.0, 0.0]])
    >>> train, valid, test = leave_one_out_validation_split(X, times, random_state=0)
    >>> test.toarray().astype(int).tolist(), valid.sum(axis=1).tolist()
    ([[0, 0, 1, 0], [0, 1, 0, 0]], [1.0, 0.0])
    """
    caller = "leave_one_out_validation_split"
    X = check_interactions(X, caller=caller)
    rng = check_random_state(random_state)
    ts = None if timestamps is None else _timestamps_at_entries(timestamps, X)
    rest, X_test = _partition(X, _leave_one_out_mask(X, ts, ties, rng))
    X_train, X_valid = _partition(rest, _leave_one_out_mask(rest, None, ties, rng))
    return X_train, X_valid, X_test


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "ratio": [Interval(Real, 0, 1, closed="right")],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def data_ratio_split(
    X: InteractionMatrix, ratio: float, *, random_state: RandomState = None
) -> tuple[sp.csr_array, sp.csr_array]:
    """Keep a share ``ratio`` of each user's interactions, drawn at random; drop the rest.

    The robustness experiment of Li, Zheng and Wu (NCAE, arXiv:1712.09043, §5.4, Table 5):
    "We randomly sample a D proportion of interaction data from each user. The test set and
    the hyperparameters remain unchanged." Split the training data (after the
    leave-one-out split, e.g. ``X_train + X_valid`` of
    :func:`leave_one_out_validation_split`), refit with the hyper-parameters chosen on the
    full data, and evaluate on the same test items; the dropped part is not evaluated.

    A user with ``n_u >= 1`` interactions keeps ``max(1, floor(ratio * n_u + 1/2))`` of them
    (``ratio * n_u`` rounded half up, at least one, so that nobody becomes a user without
    history), drawn uniformly without replacement.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_users, n_items)
        Interactions (the training data).
    ratio : float in (0, 1]
        D of Table 5: the share of each user's interactions kept (1 keeps all).
    random_state : int, RandomState instance or None, default=None
        Controls the draw.

    Returns
    -------
    X_kept : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
        The interactions to train on.
    X_dropped : scipy.sparse.csr_array of shape (n_users, n_items), dtype float32
        The others; with X_kept a partition of X's entries, values kept.

    See Also
    --------
    leave_one_out_validation_split

    Examples
    --------
    >>> import numpy as np
    >>> from skcfae.model_selection import data_ratio_split
    >>> X = np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    >>> kept, dropped = data_ratio_split(X, 0.4, random_state=0)
    >>> kept.sum(axis=1).tolist(), dropped.sum(axis=1).tolist()
    ([2.0, 1.0, 1.0], [3.0, 1.0, 0.0])
    """
    X = check_interactions(X, caller="data_ratio_split")
    rng = check_random_state(random_state)
    counts = np.diff(X.indptr)
    n_keep = np.where(counts > 0, np.maximum(1, np.floor(ratio * counts + 0.5)), 0)
    keys = rng.random_sample(X.nnz)
    order = np.lexsort((keys, _row_ids(X)))  # entries grouped by row, random order within
    rank = np.arange(X.nnz) - np.repeat(X.indptr[:-1], counts)
    dropped = np.zeros(X.nnz, dtype=bool)
    dropped[order[rank >= np.repeat(n_keep, counts)]] = True
    return _partition(X, dropped)
