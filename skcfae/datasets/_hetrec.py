"""HetRec 2011 loaders (GroupLens): Last.fm 2k and Delicious 2k."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from sklearn.utils import Bunch

from .._compat import validate_params
from ._base import _descr, _interactions, _parse_table, _read_numbers, _Remote, _resolve

__all__ = ["load_delicious", "load_lastfm"]

_HETREC = "https://files.grouplens.org/datasets/hetrec2011/"
# md5 of hetrec2011-lastfm-2k.zip: sisinflab/DataRec, datarec/datasets/lastfm/lastfm_2011.py
# (CHECKSUM, checked with md5). No published sha256 was found for it, and no digest at all for
# hetrec2011-delicious-2k.zip: that download needs allow_unverified=True.
_LASTFM = _Remote(_HETREC + "hetrec2011-lastfm-2k.zip", md5="296d61afe4e8632b173fc2dd3be20ce2")
_DELICIOUS = _Remote(_HETREC + "hetrec2011-delicious-2k.zip")

_CITE = (
    "Cite Cantador, Brusilovsky & Kuflik, 2nd Workshop on Information Heterogeneity and "
    "Fusion in Recommender Systems (HetRec 2011), RecSys 2011."
)

_PARAMS = {
    "path": [str, os.PathLike, None],
    "data_home": [str, os.PathLike, None],
    "download": ["boolean"],
}


def _read_names(path: Path, n_fields: int, field: int) -> dict[int, str]:
    """id -> the ``field``-th column of a tab-separated HetRec file with a header."""
    names: dict[int, str] = {}
    if not path.is_file():
        return names
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) >= n_fields and fields[0].strip().isdigit():
            names[int(fields[0])] = fields[field]
    return names


@validate_params({**_PARAMS, "return_tag_dates": ["boolean"]}, prefer_skip_nested_validation=True)
def load_lastfm(
    *,
    path: str | os.PathLike[str] | None = None,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
    return_tag_dates: bool = False,
) -> Bunch:
    """Load HetRec 2011 Last.fm 2k as a users x artists play-count matrix.

    Reads ``user_artists.dat`` (``userID<TAB>artistID<TAB>weight``, header, CRLF) from
    ``path`` when given, else from the data home, downloading
    ``hetrec2011-lastfm-2k.zip`` (md5-checked) when missing and ``download`` is True.

    The plays carry no time. With ``return_tag_dates=True`` the bunch also holds
    ``tag_dates``, read from ``user_taggedartists.dat``
    (``userID<TAB>artistID<TAB>tagID<TAB>day<TAB>month<TAB>year``, one row per tag
    assignment): for each (user, artist) play pair, the latest date on which that user
    tagged that artist, the only time the data set gives about a pair. It feeds
    :func:`skcfae.model_selection.leave_one_out_split`, whose NaN entries (pairs never
    tagged) fall back to a random choice, as a "latest interaction" for the leave-one-out
    protocol of Li, Zheng and Wu (NCAE, arXiv:1712.09043, §5.1), who do not say how they
    dated Lastfm's plays.

    Parameters
    ----------
    path : str or path-like, default=None
        A folder holding the extracted ``user_artists.dat`` (and ``artists.dat``, and
        ``user_taggedartists.dat`` for ``return_tag_dates``).
    data_home : str or path-like, default=None
        See :func:`get_data_home`.
    download : bool, default=True
        Download the archive when the data home lacks it; else raise ``OSError``.
    return_tag_dates : bool, default=False
        Also read the tag dates into ``tag_dates``.

        .. versionadded:: 0.1

    Returns
    -------
    bunch : sklearn.utils.Bunch
        data : csr_array of shape (n_users, n_items), float32
            Listening counts (implicit feedback).
        timestamps : None
            ``user_artists.dat`` has no timestamps.
        user_ids, item_ids : ndarray
            Original userID / artistID of each row / column, ascending.
        item_names : list of str
            Artist names from ``artists.dat`` ("" where missing).
        item_genres, genre_names : None
            The data set has no genres.
        tag_dates : csr_array of shape (n_users, n_items), float64
            Only with ``return_tag_dates=True``. Exactly the sparsity pattern of ``data``;
            each entry is the latest date the user tagged that artist, as Unix seconds of
            00:00 UTC of that day, or NaN where the user never tagged the artist (in the
            official release 20,664 of the 92,834 pairs are dated, and 1,824 of the 1,892
            users have at least one dated pair). The file's dates have month granularity
            (day 1 in 98% of the rows). The 5 assignments dated before 2005 (years 1956,
            1957 and 1979, outliers in the published file, whose other dates run from
            2005 to 2011) are dropped. The readme's example pairs the date 2009-04-01 with
            the timestamp 1238536800000 ms (00:00 CEST), 2 hours before the 00:00 UTC used
            here; only the order of the dates matters for a split.
        DESCR : str
            What was read, and the licence terms.

    Raises
    ------
    FileNotFoundError
        ``return_tag_dates=True`` and the folder has no ``user_taggedartists.dat``.

    Examples
    --------
    >>> from skcfae.datasets import load_lastfm
    >>> from skcfae.model_selection import leave_one_out_split
    >>> fm = load_lastfm(return_tag_dates=True)  # doctest: +SKIP
    >>> train, test = leave_one_out_split(  # doctest: +SKIP
    ...     fm.data, fm.tag_dates, ties="random", random_state=0)
    """
    folder = _resolve(
        "hetrec2011-lastfm-2k",
        _LASTFM,
        ("user_artists.dat",),
        path=path,
        data_home=data_home,
        download=download,
    )
    table = _parse_table(_read_numbers(folder / "user_artists.dat"), 3, "user_artists.dat")
    data, _, user_ids, item_ids = _interactions(table[:, 0], table[:, 1], table[:, 2])
    names = _read_names(folder / "artists.dat", 2, 1)
    body = (
        f"HetRec 2011 Last.fm 2k: {data.nnz:,} (user, artist) play counts of {data.shape[0]:,} "
        f"users and {data.shape[1]:,} artists, read from user_artists.dat; names from "
        "artists.dat. Implicit feedback, no timestamps."
    )
    licence = (
        "Made available for non-commercial use (readme.txt); commercial use needs Last.fm's "
        "permission. Cite the Last.fm website and " + _CITE
    )
    extra = {}
    if return_tag_dates:
        extra["tag_dates"], n_dropped = _lastfm_tag_dates(folder, data, user_ids, item_ids)
        n_dated = int(np.count_nonzero(~np.isnan(extra["tag_dates"].data)))
        body += (
            f" tag_dates: the latest tag date of {n_dated:,} of the pairs, from "
            f"user_taggedartists.dat ({n_dropped} assignments dated before "
            f"{_FIRST_TAG_YEAR} dropped); NaN elsewhere."
        )
    return Bunch(
        data=data,
        timestamps=None,
        user_ids=user_ids,
        item_ids=item_ids,
        item_names=[names.get(i, "") for i in item_ids.tolist()],
        item_genres=None,
        genre_names=None,
        **extra,
        DESCR=_descr("HetRec 2011 Last.fm 2k", body, _LASTFM.url, licence),
    )


#: Tag assignments of Last.fm 2k dated before this year are outliers (1956, 1957, 1979: 5 of
#: 186,479; every other date lies in 2005-2011) and are dropped.
_FIRST_TAG_YEAR = 2005


def _day_seconds(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Unix seconds of 00:00 UTC of each calendar date (int arrays)."""
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    return days.astype(np.int64) * 86400


def _lastfm_tag_dates(
    folder: Path, data: sp.csr_array, user_ids: np.ndarray, item_ids: np.ndarray
) -> tuple[sp.csr_array, int]:
    """``tag_dates`` of :func:`load_lastfm` (data's pattern, NaN where never tagged) and the
    number of assignments dropped as outliers."""
    file = folder / "user_taggedartists.dat"
    if not file.is_file():
        raise FileNotFoundError(
            f"load_lastfm(return_tag_dates=True) needs user_taggedartists.dat, which {folder} "
            "lacks; extract it from hetrec2011-lastfm-2k.zip next to user_artists.dat."
        )
    table = _parse_table(_read_numbers(file), 6, file.name).astype(np.int64)
    kept = table[:, 5] >= _FIRST_TAG_YEAR
    table = table[kept]
    if data.nnz == 0 or table.shape[0] == 0:
        empty = sp.csr_array(
            (np.full(data.nnz, np.nan), data.indices.copy(), data.indptr.copy()), shape=data.shape
        )
        return empty, int(np.count_nonzero(~kept))
    seconds = _day_seconds(table[:, 5], table[:, 4], table[:, 3]).astype(np.float64)
    # each assignment's (user, artist) among the play pairs (ascending keys: canonical CSR)
    n_items = item_ids.size
    pair_keys = np.repeat(np.arange(data.shape[0], dtype=np.int64), np.diff(data.indptr))
    pair_keys = pair_keys * n_items + data.indices
    u = np.minimum(np.searchsorted(user_ids, table[:, 0]), user_ids.size - 1)
    a = np.minimum(np.searchsorted(item_ids, table[:, 1]), n_items - 1)
    keys = u * n_items + a
    pos = np.minimum(np.searchsorted(pair_keys, keys), data.nnz - 1)
    hit = (user_ids[u] == table[:, 0]) & (item_ids[a] == table[:, 1]) & (pair_keys[pos] == keys)
    latest = np.full(data.nnz, -np.inf)
    np.maximum.at(latest, pos[hit], seconds[hit])
    dates = np.where(latest > -np.inf, latest, np.nan)
    T = sp.csr_array((dates, data.indices.copy(), data.indptr.copy()), shape=data.shape)
    T.has_canonical_format = True
    return T, int(np.count_nonzero(~kept))


def _tag_assignments(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, bookmark, unix seconds) of every tag assignment."""
    stamped = folder / "user_taggedbookmarks-timestamps.dat"
    if stamped.is_file():
        table = _parse_table(_read_numbers(stamped), 4, stamped.name)
        return table[:, 0], table[:, 1], table[:, 3] / 1000.0
    plain = folder / "user_taggedbookmarks.dat"
    table = _parse_table(_read_numbers(plain), 9, plain.name)
    year, month, day = (table[:, k].astype(np.int64) for k in (5, 4, 3))
    days = (
        ((year - 1970) * 12 + month - 1).astype("datetime64[M]").astype("datetime64[D]") + (day - 1)
    ).astype(np.int64)
    seconds = days * 86400 + table[:, 6] * 3600 + table[:, 7] * 60 + table[:, 8]
    return table[:, 0], table[:, 1], seconds.astype(np.float64)


@validate_params({**_PARAMS, "allow_unverified": ["boolean"]}, prefer_skip_nested_validation=True)
def load_delicious(
    *,
    path: str | os.PathLike[str] | None = None,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
    allow_unverified: bool = False,
) -> Bunch:
    """Load HetRec 2011 Delicious 2k as an implicit users x bookmarks matrix.

    A user bookmarked a URL when they assigned it at least one tag
    (``user_taggedbookmarks-timestamps.dat``, else ``user_taggedbookmarks.dat``). Reads
    ``path`` when given, else the data home, downloading ``hetrec2011-delicious-2k.zip``
    when missing and ``download`` is True. No published checksum is known for that archive,
    so it is downloaded and extracted only with ``allow_unverified=True``.

    Parameters
    ----------
    path : str or path-like, default=None
        A folder holding the extracted files.
    data_home : str or path-like, default=None
        See :func:`get_data_home`.
    download : bool, default=True
        Download the archive when the data home lacks it; else raise ``OSError``.
    allow_unverified : bool, default=False
        Download and extract the archive although no digest can check it, with an
        ``UnverifiedDownloadWarning`` that gives its sha256; else raise ``OSError``
        (which gives the sha256 of a copy already in the data home). Not needed with
        ``path=``.

        .. versionadded:: 0.1

    Returns
    -------
    bunch : sklearn.utils.Bunch
        data : csr_array of shape (n_users, n_items), float32
            1.0 for every (user, bookmark) pair (104,799 in the official release).
        timestamps : csr_array of shape (n_users, n_items), float64
            Unix seconds of the user's first tag assignment on that bookmark.
        user_ids, item_ids : ndarray
            Original userID / bookmarkID, ascending.
        item_names : list of str
            Bookmark titles from ``bookmarks.dat`` ("" where missing).
        item_urls : list of str
            Bookmark URLs from ``bookmarks.dat`` ("" where missing).
        item_genres, genre_names : None
            The data set has no genres.
        DESCR : str
            What was read, and the licence terms.
    """
    folder = _resolve(
        "hetrec2011-delicious-2k",
        _DELICIOUS,
        ("user_taggedbookmarks-timestamps.dat", "user_taggedbookmarks.dat"),
        path=path,
        data_home=data_home,
        download=download,
        allow_unverified=allow_unverified,
    )
    users, bookmarks, seconds = _tag_assignments(folder)
    data, times, user_ids, item_ids = _interactions(
        users, bookmarks, np.ones(users.size, dtype=np.float32), seconds
    )
    titles = _read_names(folder / "bookmarks.dat", 3, 2)
    urls = _read_names(folder / "bookmarks.dat", 4, 3)
    body = (
        f"HetRec 2011 Delicious 2k: {data.nnz:,} (user, bookmark) pairs of {data.shape[0]:,} "
        f"users and {data.shape[1]:,} bookmarks, from {users.size:,} tag assignments. Value "
        "1.0; timestamps are each pair's first tag assignment."
    )
    licence = (
        "Made available for non-commercial use (readme.txt); commercial use needs the "
        "permission of Delicious. Cite the Delicious website and " + _CITE
    )
    ids = item_ids.tolist()
    return Bunch(
        data=data,
        timestamps=times,
        user_ids=user_ids,
        item_ids=item_ids,
        item_names=[titles.get(i, "") for i in ids],
        item_urls=[urls.get(i, "") for i in ids],
        item_genres=None,
        genre_names=None,
        DESCR=_descr("HetRec 2011 Delicious 2k", body, _DELICIOUS.url, licence),
    )
