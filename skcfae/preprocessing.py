"""From a table of (user, item) interactions with their own ids to the users x items matrix,
and from recommended columns back to item ids.

Every skcfae model takes a users x items matrix whose rows and columns are positions; user
data usually comes as a *long* table, one row per interaction: ``(userId, movieId, rating,
timestamp)``. :class:`InteractionEncoder` learns the two vocabularies (the original user and
item ids, in sorted order, as LensKit's ``Vocabulary`` numbers them), builds the sparse matrix
of any such table over the learned item columns, and maps column positions back to item ids;
:func:`recommend_ids` runs a fitted model end to end, ids in and ids out.

The table may be a pandas DataFrame (pandas is optional: this module never imports it unless
asked for a DataFrame result), any mapping of column names to 1-D arrays (a ``dict``, a
polars DataFrame), or a 2-D array-like of rows. Nothing here imports torch.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping
from numbers import Integral, Real
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._compat import Interval, StrOptions, _fit_context
from .base import recommend as _recommend
from .exceptions import SkcfaeWarning

__all__ = ["InteractionEncoder", "UnknownItemWarning", "recommend_ids"]

#: Unknown ids listed in a message at most.
_SHOWN = 5


class UnknownItemWarning(SkcfaeWarning):
    """Interactions with items the encoder did not learn at ``fit`` were dropped.

    Subclass of :class:`skcfae.exceptions.SkcfaeWarning`.
    """


class InteractionEncoder(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Map a long table of (user, item[, value, timestamp]) interactions to a CSR matrix.

    ``fit`` learns the user and item vocabularies of the training interactions: the distinct
    user ids (``users_``) and item ids (``items_``) in sorted order, so that user ``users_[u]``
    is row ``u`` and item ``items_[j]`` is column ``j``, whatever the order of the table's
    rows (the numbering rule of LensKit's ``Dataset``, and of the MovieLens loaders of
    :mod:`skcfae.datasets`). ``transform`` builds the users x items matrix of any table over
    those item columns (training users or new, fold-in users), and
    :meth:`inverse_transform_items` maps the column positions a model returns back to item
    ids. The training matrix is kept (``interactions_``), so that :meth:`user_rows` gives the
    history of known users by id.

    Building the matrix, in order:

    1. after ``fit``: interactions with an item outside ``items_`` are dropped
       (``handle_unknown``);
    2. the rows of one (user, item) pair make one entry (``duplicates``);
    3. with ``threshold``, entries greater than it become 1.0, the others are dropped;
    4. in ``fit`` only: items with fewer than ``min_item_count`` users are dropped, then users
       with fewer than ``min_user_count`` items (one pass each, in that order: Liang et al.'s
       ``filter_triplets``, as :func:`skcfae.model_selection.strong_generalization_split`).

    .. versionadded:: 0.1

    Parameters
    ----------
    user_col : hashable, default="user"
        Column of the user ids (any sortable scalar type: int, str, ...).
    item_col : hashable, default="item"
        Column of the item ids.
    value_col : hashable or None, default=None
        Column of the values (ratings, play counts); None: each row counts 1.0.
    timestamp_col : hashable or None, default=None
        Column of the interaction times (numbers, or datetimes, read as nanoseconds since the
        epoch as :func:`skcfae.model_selection.leave_one_out_split` reads them); gives
        ``timestamps_`` and ``transform(..., return_timestamps=True)``.
    duplicates : {"sum", "last", "error"}, default="sum"
        The value of a pair given by several rows. "sum": the sum of its values (counts add up,
        as the models sum duplicate entries of a sparse matrix); "last": the
        value of its latest row (by ``timestamp_col``, ties and no timestamps by row order):
        the rule for ratings, which rating models require once per pair; "error": raise a
        ``ValueError``. The time of a pair is always its latest one.
    threshold : float or None, default=None
        Binarize: keep the entries whose value is strictly greater (e.g. 3.5 keeps ratings of
        4 and 5, as Liang et al. 2018 do on MovieLens) and store 1.0. None keeps the values,
        stored as given (a 0 value is a stored 0: implicit models ignore it, rating models read
        it as a rating).
    min_user_count : int, default=1
        ``fit`` keeps the users with at least this many items (after the item filter).
    min_item_count : int, default=1
        ``fit`` keeps the items with at least this many users.
    handle_unknown : {"warn", "ignore", "error"}, default="warn"
        What ``transform`` and :meth:`transform_histories` do with interactions whose item is
        not in ``items_`` (never seen at ``fit``, or filtered out there): drop them with an
        :class:`UnknownItemWarning`, drop them silently, or raise a ``ValueError``
        (scikit-learn's ``OneHotEncoder`` names these choices so).

    Attributes
    ----------
    users_ : ndarray of shape ``(n_users_,)``
        The training users' ids, ascending: row ``u`` of ``interactions_`` is ``users_[u]``.
    items_ : ndarray of shape ``(n_items_,)``
        The item ids, ascending: column ``j`` of every matrix built here is ``items_[j]``.
    n_users_ : int
        Number of training users kept by ``fit``.
    n_items_ : int
        Number of items kept by ``fit``: the ``n_items_in_`` of a model fitted on the result.
    interactions_ : scipy.sparse.csr_array of shape ``(n_users_, n_items_)``, dtype float32
        The training matrix (what :meth:`fit_transform` returns). It is kept for
        :meth:`user_rows`, and so pickles with the encoder.
    timestamps_ : scipy.sparse.csr_array of shape ``(n_users_, n_items_)``, dtype float64, or None
        The latest time of each entry of ``interactions_``, with its sparsity pattern; None
        without ``timestamp_col``.

    See Also
    --------
    recommend_ids : Recommendations as a table of ids, from a model and this encoder.
    skcfae.model_selection.strong_generalization_split : the same filters on a matrix.

    Notes
    -----
    The table may be a pandas DataFrame, any mapping of column names to 1-D arrays (a
    ``dict``), or a 2-D array-like of rows whose columns are, by position, the user, the item,
    then the value (when ``value_col`` is not None) and the timestamp (when ``timestamp_col``
    is not None); the column names are then unused.

    Rows of :meth:`transform`'s result are the distinct users of the table, in sorted order,
    each with a row even when none of their items is known (an empty row); the users are
    returned with ``return_users=True``. So ``fit_transform(df)`` equals
    ``fit(df).transform(df)`` whenever ``fit`` filters no user out, which is the case with the
    defaults.

    References
    ----------
    Liang, Krishnan, Hoffman and Jebara. Variational Autoencoders for Collaborative
    Filtering. WWW 2018, §4.1 (binarization at 3.5, minimum counts).

    Examples
    --------
    >>> from skcfae.preprocessing import InteractionEncoder
    >>> log = {"user": ["ann", "bob", "ann", "cy"], "item": [30, 10, 20, 30]}
    >>> enc = InteractionEncoder()
    >>> X = enc.fit_transform(log)
    >>> enc.users_, enc.items_
    (array(['ann', 'bob', 'cy'], dtype='<U3'), array([10, 20, 30]))
    >>> X.toarray()
    array([[0., 1., 1.],
           [1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
    >>> enc.inverse_transform_items([[2, 0, -1]])
    array([[30, 10, None]], dtype=object)
    """

    _parameter_constraints: dict[str, list[Any]] = {
        "user_col": [Hashable],
        "item_col": [Hashable],
        "value_col": [Hashable, None],
        "timestamp_col": [Hashable, None],
        "duplicates": [StrOptions({"sum", "last", "error"})],
        "threshold": [Real, None],
        "min_user_count": [Interval(Integral, 1, None, closed="left")],
        "min_item_count": [Interval(Integral, 1, None, closed="left")],
        "handle_unknown": [StrOptions({"warn", "ignore", "error"})],
    }

    def __init__(
        self,
        user_col: Hashable = "user",
        *,
        item_col: Hashable = "item",
        value_col: Hashable | None = None,
        timestamp_col: Hashable | None = None,
        duplicates: str = "sum",
        threshold: float | None = None,
        min_user_count: int = 1,
        min_item_count: int = 1,
        handle_unknown: str = "warn",
    ) -> None:
        self.user_col = user_col
        self.item_col = item_col
        self.value_col = value_col
        self.timestamp_col = timestamp_col
        self.duplicates = duplicates
        self.threshold = threshold
        self.min_user_count = min_user_count
        self.min_item_count = min_item_count
        self.handle_unknown = handle_unknown

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # a table of ids, not a feature matrix
        return tags

    # -- fit --------------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> InteractionEncoder:
        """Learn the user and item ids of the interactions in X, and their matrix.

        Parameters
        ----------
        X : DataFrame, mapping of columns or array-like of shape (n_interactions, n_columns)
            The training interactions, one per row (see Notes of the class).
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        caller = "InteractionEncoder.fit"
        if self.user_col == self.item_col:
            raise ValueError(
                f"{caller}: user_col and item_col are both {self.user_col!r}; name the user "
                "and the item columns."
            )
        cols = self._read(X, caller)
        users, u = _unique(cols["user"], "user", caller)
        items, i = _unique(cols["item"], "item", caller)
        entries = _aggregate(
            u,
            i,
            cols.get("value"),
            cols.get("timestamp"),
            n_items=items.size,
            duplicates=self.duplicates,
            threshold=self.threshold,
            caller=caller,
        )
        rows, columns, data, times = entries
        keep_item = np.bincount(columns, minlength=items.size) >= self.min_item_count
        keep = keep_item[columns]
        rows, columns, data = rows[keep], columns[keep], data[keep]
        times = None if times is None else times[keep]
        keep_user = np.bincount(rows, minlength=users.size) >= self.min_user_count
        keep = keep_user[rows]
        rows, columns, data = rows[keep], columns[keep], data[keep]
        times = None if times is None else times[keep]
        if not keep_user.any() or not keep_item.any() or rows.size == 0:
            raise ValueError(
                f"{caller}: no interaction is left out of {u.size} rows after "
                f"threshold={self.threshold}, min_item_count={self.min_item_count} and "
                f"min_user_count={self.min_user_count} ({int(keep_item.sum())} of {items.size} "
                f"items, {int(keep_user.sum())} of {users.size} users kept); lower them."
            )
        # renumber: positions among the kept ids (monotone, so entries stay sorted)
        rows = (np.cumsum(keep_user) - 1)[rows]
        columns = (np.cumsum(keep_item) - 1)[columns]
        self.users_ = users[keep_user]
        self.items_ = items[keep_item]
        self.n_users_ = int(self.users_.size)
        self.n_items_ = int(self.items_.size)
        shape = (self.n_users_, self.n_items_)
        self.interactions_ = _csr(rows, columns, data.astype(np.float32), shape)
        self.timestamps_ = None if times is None else _csr(rows, columns, times, shape)
        return self

    def fit_transform(
        self,
        X: Any,
        y: Any = None,
        *,
        return_users: bool = False,
        return_timestamps: bool = False,
    ) -> Any:
        """Fit, and return the training matrix ``interactions_`` (a copy).

        Parameters
        ----------
        X : DataFrame, mapping of columns or array-like of shape (n_interactions, n_columns)
            The training interactions.
        y : None
            Ignored.
        return_users : bool, default=False
            Also return the user id of each row (``users_``).
        return_timestamps : bool, default=False
            Also return the timestamps matrix (``timestamps_``); needs ``timestamp_col``.

        Returns
        -------
        X : scipy.sparse.csr_array of shape ``(n_users_, n_items_)``, dtype float32
        users : ndarray of shape ``(n_users_,)``
            Only with ``return_users=True``.
        timestamps : scipy.sparse.csr_array of shape ``(n_users_, n_items_)``, dtype float64
            Only with ``return_timestamps=True``.
        """
        self._check_return_timestamps(return_timestamps, "InteractionEncoder.fit_transform")
        self.fit(X)
        out: list[Any] = [self.interactions_.copy()]
        if return_users:
            out.append(self.users_.copy())
        if return_timestamps:
            assert self.timestamps_ is not None  # set with timestamp_col
            out.append(self.timestamps_.copy())
        return out[0] if len(out) == 1 else tuple(out)

    # -- ids to matrices --------------------------------------------------------------------
    def transform(
        self, X: Any, *, return_users: bool = False, return_timestamps: bool = False
    ) -> Any:
        """The users x items matrix of the interactions in X, over the learned items.

        Rows are the distinct users of X in sorted order, new users included (each gets a row,
        empty when none of their items is known); columns are ``items_``. Interactions with an
        unknown item are handled per ``handle_unknown``.

        Parameters
        ----------
        X : DataFrame, mapping of columns or array-like of shape (n_interactions, n_columns)
            Interactions, in the layout given to ``fit``.
        return_users : bool, default=False
            Also return the user id of each row.
        return_timestamps : bool, default=False
            Also return the timestamps matrix; needs ``timestamp_col``.

        Returns
        -------
        X : scipy.sparse.csr_array of shape ``(n_users, n_items_)``, dtype float32
        users : ndarray of shape (n_users,)
            Only with ``return_users=True``: the user id of each row, ascending.
        timestamps : scipy.sparse.csr_array of shape ``(n_users, n_items_)``, dtype float64
            Only with ``return_timestamps=True``: the latest time of each entry, with X's
            sparsity pattern.
        """
        check_is_fitted(self)
        caller = "InteractionEncoder.transform"
        self._check_return_timestamps(return_timestamps, caller)
        cols = self._read(X, caller)
        users, u = _unique(cols["user"], "user", caller)
        X_out, T = self._encode(
            u, cols["item"], cols.get("value"), cols.get("timestamp"), users.size, caller
        )
        out: list[Any] = [X_out]
        if return_users:
            out.append(users)
        if return_timestamps:
            out.append(T)
        return out[0] if len(out) == 1 else tuple(out)

    def transform_histories(self, histories: Any) -> sp.csr_array:
        """The matrix of users given as lists of item ids, one row per list, in their order.

        Each listed item counts 1.0 (a repeated item follows ``duplicates``, then
        ``threshold``); unknown items are handled per ``handle_unknown``.

        Parameters
        ----------
        histories : sequence of sequences of item ids, or mapping of user id to item ids
            E.g. ``[[1, 50], [260]]`` or ``{"new_user": [1, 50]}`` (rows in the mapping's
            order).

        Returns
        -------
        X : scipy.sparse.csr_array of shape ``(len(histories), n_items_)``, dtype float32
        """
        check_is_fitted(self)
        caller = "InteractionEncoder.transform_histories"
        lists = _histories(histories, caller)
        lengths = np.array([len(h) for h in lists], dtype=np.int64)
        u = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
        flat = [item for h in lists for item in h]
        items = _as_ids(flat) if flat else np.empty(0, dtype=self.items_.dtype)
        X, _ = self._encode(u, items, None, None, len(lists), caller)
        return X

    def user_rows(self, user_ids: Any, *, return_timestamps: bool = False) -> Any:
        """The training history of known users, by id: their rows of ``interactions_``.

        Parameters
        ----------
        user_ids : array-like of shape (n_queried,) or scalar
            Ids in ``users_``, in any order (repeats allowed); the rows follow it.
        return_timestamps : bool, default=False
            Also return their rows of ``timestamps_``; needs ``timestamp_col``.

        Returns
        -------
        X : scipy.sparse.csr_array of shape ``(n_queried, n_items_)``, dtype float32
        timestamps : scipy.sparse.csr_array of shape ``(n_queried, n_items_)``, dtype float64
            Only with ``return_timestamps=True``.

        Raises
        ------
        ValueError
            An id that is not a training user: new users have no stored history; build their
            rows with :meth:`transform` or :meth:`transform_histories`.
        """
        check_is_fitted(self)
        caller = "InteractionEncoder.user_rows"
        self._check_return_timestamps(return_timestamps, caller)
        pos = self.user_index(user_ids)
        X = _take_rows(self.interactions_, pos)
        if not return_timestamps:
            return X
        assert self.timestamps_ is not None
        return X, _take_rows(self.timestamps_, pos)

    def user_index(self, user_ids: Any) -> np.ndarray:
        """Row positions of training users in ``interactions_``, by id.

        Parameters
        ----------
        user_ids : array-like of shape (n_queried,) or scalar
            Ids in ``users_``.

        Returns
        -------
        rows : ndarray of shape (n_queried,), dtype int64
        """
        check_is_fitted(self)
        return _index(self.users_, user_ids, "user", "InteractionEncoder.user_index")

    def item_index(self, item_ids: Any) -> np.ndarray:
        """Column positions of items, by id (e.g. candidates for ``recommend(..., items=)``).

        Parameters
        ----------
        item_ids : array-like of shape (n_queried,) or scalar
            Ids in ``items_``.

        Returns
        -------
        columns : ndarray of shape (n_queried,), dtype int64
        """
        check_is_fitted(self)
        return _index(self.items_, item_ids, "item", "InteractionEncoder.item_index")

    # -- matrices to ids --------------------------------------------------------------------
    def inverse_transform_items(self, indices: npt.ArrayLike, *, fill_value: Any = None) -> Any:
        """Item ids at column positions, e.g. of ``model.recommend(X, n)``.

        Parameters
        ----------
        indices : array-like of int, any shape
            Column positions in ``[0, n_items_)``, or -1: the padding of ``recommend`` for
            users with fewer than ``n`` candidate items left.
        fill_value : object, default=None
            The id given for -1. With the default None the result has dtype object (it holds
            None); pass e.g. ``-1`` for integer ids or ``""`` for string ids to keep the dtype
            of ``items_``.

        Returns
        -------
        item_ids : ndarray of the shape of indices
        """
        check_is_fitted(self)
        caller = "InteractionEncoder.inverse_transform_items"
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(
                f"{caller} needs integer column positions, got dtype {idx.dtype}; pass the "
                "output of recommend."
            )
        if idx.size and (idx.min() < -1 or idx.max() >= self.n_items_):
            bad = int(idx.min()) if idx.min() < -1 else int(idx.max())
            raise ValueError(
                f"{caller}: positions must lie in [0, {self.n_items_ - 1}] (the encoder knows "
                f"{self.n_items_} items), or be -1 for padding. Got {bad} instead."
            )
        if fill_value is None:
            dtype = np.dtype(object)
        else:
            dtype = np.result_type(self.items_.dtype, np.asarray(fill_value).dtype)
        out = np.empty(idx.shape, dtype=dtype)
        out[...] = fill_value
        real = idx >= 0
        out[real] = self.items_[idx[real]]
        return out

    # -- internals --------------------------------------------------------------------------
    def _check_return_timestamps(self, return_timestamps: bool, caller: str) -> None:
        if return_timestamps and self.timestamp_col is None:
            raise ValueError(
                f"{caller}: return_timestamps=True needs the timestamp column: set "
                "timestamp_col when building the encoder."
            )

    def _roles(self) -> dict[str, Hashable]:
        roles = {"user": self.user_col, "item": self.item_col}
        if self.value_col is not None:
            roles["value"] = self.value_col
        if self.timestamp_col is not None:
            roles["timestamp"] = self.timestamp_col
        return roles

    def _read(self, X: Any, caller: str) -> dict[str, np.ndarray]:
        """The columns of X by role (user, item, value, timestamp), validated."""
        roles = self._roles()
        if sp.issparse(X):
            raise TypeError(
                f"{caller} takes a long table of interactions (one row per user and item), "
                "got a sparse matrix: a users x items matrix already, to pass to the model "
                "itself."
            )
        if X is None or isinstance(X, str):
            raise TypeError(
                f"{caller} takes a table of interactions (a DataFrame, a dict of columns or a "
                f"2-D array of rows), got {type(X).__name__}."
            )
        if hasattr(X, "columns") or isinstance(X, Mapping):
            names = list(X.columns) if hasattr(X, "columns") else list(X.keys())
            missing = [(role, c) for role, c in roles.items() if c not in names]
            if missing:
                role, name = missing[0]
                col = {"user": "user_col", "item": "item_col"}.get(role, f"{role}_col")
                raise ValueError(
                    f"{caller}: no column {name!r} for the {role}s; the columns are "
                    f"{names[:10]}. Set {col} to the right one, e.g. "
                    f"InteractionEncoder({col}={names[0]!r})."
                )
            raw = {role: _column(X[c]) for role, c in roles.items()}
        else:
            arr = X if isinstance(X, np.ndarray) else np.asarray(X, dtype=object)
            if arr.ndim != 2 or arr.shape[1] != len(roles):
                raise ValueError(
                    f"{caller}: a 2-D array of rows must have {len(roles)} columns "
                    f"({', '.join(roles)}, by position); got shape {arr.shape}. Pass a "
                    "DataFrame or a dict of columns to use column names."
                )
            raw = {role: _as_ids(arr[:, j]) for j, role in enumerate(roles)}
        lengths = {v.shape[0] if v.ndim else -1 for v in raw.values()}
        if len(lengths) != 1 or any(v.ndim != 1 for v in raw.values()):
            raise ValueError(f"{caller}: the columns must be 1-D and of the same length.")
        if raw["user"].size == 0:
            raise ValueError(f"{caller} got no interaction (0 rows).")
        cols = {
            "user": _check_ids(raw["user"], roles["user"], caller),
            "item": _check_ids(raw["item"], roles["item"], caller),
        }
        if "value" in raw:
            cols["value"] = _values(raw["value"], roles["value"], caller)
        if "timestamp" in raw:
            cols["timestamp"] = _times(raw["timestamp"], roles["timestamp"], caller)
        return cols

    def _encode(
        self,
        u: np.ndarray,
        item_ids: np.ndarray,
        values: np.ndarray | None,
        times: np.ndarray | None,
        n_rows: int,
        caller: str,
    ) -> tuple[sp.csr_array, sp.csr_array | None]:
        """Rows ``u`` x the known items among ``item_ids``: the matrix and its timestamps."""
        columns, known = _lookup(self.items_, item_ids, "item", caller)
        if not known.all():
            unknown = np.unique(item_ids[~known])
            what = (
                f"{int((~known).sum())} interactions with {unknown.size} items not in items_ "
                f"(unseen at fit, or filtered out there), e.g. {unknown[:_SHOWN].tolist()}"
            )
            if self.handle_unknown == "error":
                raise ValueError(
                    f"{caller} got {what}. Drop them first, or set handle_unknown='warn' or "
                    "'ignore' to drop them here."
                )
            if self.handle_unknown == "warn":
                warnings.warn(
                    f"{caller} dropped {what}. Set handle_unknown='ignore' to drop them "
                    "silently, or 'error' to raise.",
                    UnknownItemWarning,
                    stacklevel=3,
                )
            u, columns = u[known], columns[known]
            values = None if values is None else values[known]
            times = None if times is None else times[known]
        rows, columns, data, t = _aggregate(
            u,
            columns,
            values,
            times,
            n_items=self.n_items_,
            duplicates=self.duplicates,
            threshold=self.threshold,
            caller=caller,
        )
        shape = (n_rows, self.n_items_)
        X = _csr(rows, columns, data.astype(np.float32), shape)
        return X, (None if t is None else _csr(rows, columns, t, shape))


def recommend_ids(
    model: Any,
    encoder: InteractionEncoder | None = None,
    *,
    users: Any = None,
    histories: Any = None,
    interactions: Any = None,
    n: int = 10,
    exclude_seen: bool = True,
    items: Any = None,
    as_frame: bool = True,
) -> Any:
    """Top-``n`` recommendations by id, as a long table ``(user, rank, item, score)``.

    A function of the model and the encoder rather than a method of either, as
    :func:`skcfae.recommend` is: the model stays a recommender of matrix rows and the encoder
    a transformer, each usable alone and in a Pipeline; this function only translates ids in
    (through the encoder), calls ``recommend`` and translates positions out. A Pipeline whose
    first step is an :class:`InteractionEncoder` may be passed alone.

    Give the users in exactly one of three ways:

    - ``users``: ids of training users, recommended for from their training history
      (:meth:`InteractionEncoder.user_rows`);
    - ``histories``: new users as lists of item ids
      (:meth:`~InteractionEncoder.transform_histories`);
    - ``interactions``: a long table of (new or known) users' interactions in the encoder's
      layout (:meth:`~InteractionEncoder.transform`); only those interactions are used.

    .. versionadded:: 0.1

    Parameters
    ----------
    model : recommender or sklearn.pipeline.Pipeline
        Fitted on the encoder's matrix (or a Pipeline ending in such a model, possibly
        starting with the encoder itself).
    encoder : InteractionEncoder, default=None
        The fitted encoder; None takes the first step of ``model``.
    users : array-like of shape (n_users,), default=None
        Training user ids.
    histories : sequence of sequences of item ids, or mapping of user id to item ids, default=None
        New users' items. The users of a sequence are numbered 0, 1, ... in its order.
    interactions : DataFrame, mapping of columns or array-like of rows, default=None
        Users' interactions, one per row.
    n : int, default=10
        Number of items per user.
    exclude_seen : bool, default=True
        Never recommend an item the user already has.
    items : array-like of item ids, default=None
        Candidate items (ids in the encoder's ``items_``); None: every item.
    as_frame : bool, default=True
        Return a pandas DataFrame (pandas needed); False: a dict of 1-D arrays with the same
        columns.

    Returns
    -------
    recommendations : pandas.DataFrame or dict of ndarray
        Columns ``user_col`` (the user id), ``"rank"`` (1 = best), ``item_col`` (the item id)
        and ``"score"`` (the model's ``decision_function`` at that item): ``n`` rows per user
        in the order the users were given (``interactions``: sorted by id), fewer when a user
        has fewer than ``n`` candidate items left (``recommend``'s -1 padding makes no row).

    Examples
    --------
    >>> from skcfae import Popularity
    >>> from skcfae.preprocessing import InteractionEncoder, recommend_ids
    >>> log = {"user": [1, 1, 2, 2, 3], "item": ["a", "b", "b", "c", "b"]}
    >>> enc = InteractionEncoder()
    >>> model = Popularity().fit(enc.fit_transform(log))
    >>> recs = recommend_ids(model, enc, users=[3], n=2, as_frame=False)
    >>> recs["user"].tolist(), recs["item"].tolist(), recs["rank"].tolist()
    ([3, 3], ['a', 'c'], [1, 2])
    """
    caller = "recommend_ids"
    if isinstance(model, Pipeline) and isinstance(model.steps[0][1], InteractionEncoder):
        first = model.steps[0][1]
        if encoder is not None and encoder is not first:
            raise ValueError(
                f"{caller}: model is a Pipeline starting with an InteractionEncoder, and "
                "another encoder was passed; pass only the Pipeline."
            )
        if len(model.steps) < 2:
            raise ValueError(f"{caller}: the Pipeline holds an encoder but no recommender.")
        encoder, model = first, model[1:]
    if not isinstance(encoder, InteractionEncoder):
        raise TypeError(
            f"{caller} needs the fitted InteractionEncoder whose matrix the model was fitted "
            f"on (or a Pipeline starting with it); got {type(encoder).__name__}."
        )
    check_is_fitted(encoder)
    given = [
        name
        for name, v in [("users", users), ("histories", histories), ("interactions", interactions)]
        if v is not None
    ]
    if len(given) != 1:
        raise ValueError(
            f"{caller} needs exactly one of users (training user ids), histories (lists of "
            f"item ids) or interactions (a long table); got {given or 'none'}."
        )
    if users is not None:
        labels = np.atleast_1d(_as_ids(users))
        X = encoder.user_rows(labels)
    elif histories is not None:
        X = encoder.transform_histories(histories)
        if isinstance(histories, Mapping):
            labels = _as_ids(list(histories.keys()))
        else:
            labels = np.arange(X.shape[0])
    else:
        X, labels = encoder.transform(interactions, return_users=True)
    candidates = None if items is None else encoder.item_index(items)
    top, scores = _recommend(
        model, X, n, exclude_seen=exclude_seen, items=candidates, return_scores=True
    )
    real = top >= 0
    per_user = real.sum(axis=1)
    out = {
        encoder.user_col: np.repeat(labels, per_user),
        "rank": np.broadcast_to(np.arange(1, top.shape[1] + 1), top.shape)[real],
        encoder.item_col: encoder.items_[top[real]],
        "score": scores[real],
    }
    if not as_frame:
        return out
    try:
        import pandas as pd
    except ImportError as err:
        raise ImportError(
            f"{caller}(as_frame=True) returns a pandas DataFrame and needs pandas: "
            "pip install 'skcfae[pandas]', or pass as_frame=False for a dict of arrays."
        ) from err
    return pd.DataFrame(out)


# -- helpers --------------------------------------------------------------------------------
def _column(col: Any) -> np.ndarray:
    """A table column as a 1-D numpy array (time-zone aware datetimes as UTC)."""
    if getattr(getattr(col, "dtype", None), "tz", None) is not None and hasattr(col, "dt"):
        col = col.dt.tz_convert(None)
    values = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
    return _as_ids(values)


def _as_ids(values: Any) -> np.ndarray:
    """An array of ids; an object array holding one scalar type gets that type's dtype."""
    arr = np.asarray(values)
    if arr.dtype == object and arr.ndim == 1 and arr.size:
        kinds = {type(v) for v in arr.tolist()}
        if len(kinds) == 1 and issubclass(next(iter(kinds)), (int, float, np.number)):
            arr = np.asarray(arr.tolist())
    return arr


def _is_missing(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return np.isnan(arr)
    if arr.dtype.kind in "mM":
        return np.isnat(arr)
    if arr.dtype.kind == "O":
        return np.array(
            [
                v is None or (isinstance(v, float) and v != v) or type(v).__name__ == "NAType"
                for v in arr.tolist()
            ],
            dtype=bool,
        )
    return np.zeros(arr.shape, dtype=bool)


def _check_ids(ids: np.ndarray, name: Hashable, caller: str) -> np.ndarray:
    missing = _is_missing(ids)
    if missing.any():
        raise ValueError(
            f"{caller}: {int(missing.sum())} rows have no id in column {name!r} (NaN or None); "
            f"drop them first, e.g. df.dropna(subset=[{name!r}])."
        )
    return ids


def _values(values: np.ndarray, name: Hashable, caller: str) -> np.ndarray:
    try:
        out = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{caller}: column {name!r} must hold numbers (ratings, counts), got dtype "
            f"{values.dtype}."
        ) from None
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"{caller}: column {name!r} holds NaN or infinite values; drop or impute them first."
        )
    return out


def _times(values: np.ndarray, name: Hashable, caller: str) -> np.ndarray:
    if values.dtype.kind == "M":
        if np.isnat(values).any():
            raise ValueError(f"{caller}: column {name!r} holds missing times (NaT).")
        return values.astype("datetime64[ns]").astype(np.int64).astype(np.float64)
    if values.dtype.kind not in "biuf":
        raise TypeError(
            f"{caller}: column {name!r} must hold numbers or datetimes, got dtype "
            f"{values.dtype}; parse strings first (pandas.to_datetime)."
        )
    out = values.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{caller}: column {name!r} holds NaN or infinite times.")
    return out


def _unique(ids: np.ndarray, what: str, caller: str) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ids and the position of each row's id among them."""
    try:
        uniq, inverse = np.unique(ids, return_inverse=True)
    except TypeError:
        raise TypeError(
            f"{caller}: the {what} ids mix types that cannot be sorted together (e.g. int "
            "and str); convert them to one type first, e.g. df[col].astype(str)."
        ) from None
    return uniq, inverse.reshape(-1).astype(np.int64)


def _lookup(
    vocab: np.ndarray, ids: np.ndarray, what: str, caller: str
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in the sorted ``vocab``, and which ids are in it."""
    if ids.size == 0:
        return np.empty(0, dtype=np.int64), np.ones(0, dtype=bool)
    if _id_type(ids) != _id_type(vocab):
        raise TypeError(
            f"{caller}: {what} ids of dtype {ids.dtype} ({_id_type(ids)}) cannot be compared "
            f"with the fitted ones (dtype {vocab.dtype}, {_id_type(vocab)}); pass ids of the "
            "type the encoder was fitted on."
        )
    try:
        uniq, inverse = np.unique(ids, return_inverse=True)
        pos = np.searchsorted(vocab, uniq)
        found = vocab[np.minimum(pos, vocab.size - 1)] == uniq
    except TypeError:
        raise TypeError(
            f"{caller}: {what} ids of dtype {ids.dtype} cannot be compared with the fitted "
            f"ones (dtype {vocab.dtype}); pass ids of the type the encoder was fitted on."
        ) from None
    found = np.asarray(found, dtype=bool)
    inverse = inverse.reshape(-1)
    return np.where(found, pos, -1)[inverse].astype(np.int64), found[inverse]


def _id_type(ids: np.ndarray) -> str:
    """The type of ids: numbers, strings, times or objects; ids of two types never match."""
    kind = ids.dtype.kind
    if kind == "O" and ids.size:
        kind = np.asarray(ids.flat[0]).dtype.kind
    if kind in "biuf":
        return "numbers"
    if kind in "US":
        return "strings"
    return "times" if kind in "mM" else "objects"


def _index(vocab: np.ndarray, ids: Any, what: str, caller: str) -> np.ndarray:
    query = np.atleast_1d(_as_ids(ids))
    if query.ndim != 1:
        raise ValueError(f"{caller} needs a 1-D array of {what} ids, got shape {query.shape}.")
    pos, known = _lookup(vocab, query, what, caller)
    if not known.all():
        unknown = np.unique(query[~known])
        hint = (
            " New users have no training history: build their rows with transform (a table "
            "of their interactions) or transform_histories (lists of item ids)."
            if what == "user"
            else ""
        )
        raise ValueError(
            f"{caller}: {unknown.size} {what} ids are not in the encoder's {what}s_, e.g. "
            f"{unknown[:_SHOWN].tolist()}.{hint}"
        )
    return pos


def _histories(histories: Any, caller: str) -> list[Any]:
    if sp.issparse(histories) or isinstance(histories, str) or histories is None:
        raise TypeError(
            f"{caller} takes lists of item ids (or a mapping of user id to them), got "
            f"{type(histories).__name__}."
        )
    lists = list(histories.values()) if isinstance(histories, Mapping) else list(histories)
    for h in lists:
        if isinstance(h, (str, bytes)) or np.ndim(h) != 1:
            raise TypeError(
                f"{caller}: each history must be a 1-D sequence of item ids, got {h!r}; a "
                "single user is [[item, item, ...]]."
            )
    return lists


def _aggregate(
    u: np.ndarray,
    i: np.ndarray,
    values: np.ndarray | None,
    times: np.ndarray | None,
    *,
    n_items: int,
    duplicates: str,
    threshold: float | None,
    caller: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """One entry per (row, column) pair, sorted by row then column: rows, columns, values
    (float64) and latest times, after ``duplicates`` and ``threshold``."""
    keys = u.astype(np.int64) * n_items + i.astype(np.int64)
    if duplicates == "last" and times is not None:
        order = np.lexsort((np.arange(keys.size), times, keys))  # by pair, time, row order
    else:
        order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    first = np.ones(keys.size, dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    starts = np.flatnonzero(first)
    n_dup = keys.size - starts.size
    if duplicates == "error" and n_dup:
        raise ValueError(
            f"{caller} got {n_dup} repeated (user, item) rows; keep one per pair first (e.g. "
            "df.drop_duplicates([user_col, item_col], keep='last')), or set duplicates='sum' "
            "or 'last'."
        )
    v = np.ones(keys.size) if values is None else values[order]
    if starts.size == 0:
        data = np.empty(0)
    elif duplicates == "sum":
        data = np.add.reduceat(v, starts)
    else:
        data = v[np.r_[starts[1:], keys.size] - 1]
    t = None
    if times is not None:
        t = np.maximum.reduceat(times[order], starts) if starts.size else np.empty(0)
    pair_keys = sorted_keys[starts]
    if threshold is not None:
        keep = data > threshold
        pair_keys, data = pair_keys[keep], np.ones(int(keep.sum()))
        t = None if t is None else t[keep]
    return pair_keys // n_items, pair_keys % n_items, data, t


def _csr(
    rows: np.ndarray, columns: np.ndarray, data: np.ndarray, shape: tuple[int, int]
) -> sp.csr_array:
    """CSR from entries sorted by row then column, one per pair (stored zeros kept)."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    index_dtype = np.int32 if max(shape[1], rows.size) < np.iinfo(np.int32).max else np.int64
    A = sp.csr_array((data, columns.astype(index_dtype), indptr.astype(index_dtype)), shape=shape)
    A.has_canonical_format = True
    return A


def _take_rows(A: sp.csr_array, rows: np.ndarray) -> sp.csr_array:
    """Rows of a CSR array in the given order (stored zeros kept)."""
    counts = np.diff(A.indptr)[rows]
    indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    gather = np.repeat(A.indptr[rows] - indptr[:-1], counts) + np.arange(indptr[-1])
    out = sp.csr_array(
        (A.data[gather], A.indices[gather], indptr.astype(A.indptr.dtype)),
        shape=(rows.size, A.shape[1]),
    )
    out.has_canonical_format = True
    return out
