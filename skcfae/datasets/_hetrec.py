"""HetRec 2011 loaders (GroupLens): Last.fm 2k and Delicious 2k."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
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


@validate_params(_PARAMS, prefer_skip_nested_validation=True)
def load_lastfm(
    *,
    path: str | os.PathLike[str] | None = None,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Bunch:
    """Load HetRec 2011 Last.fm 2k as a users x artists play-count matrix.

    Reads ``user_artists.dat`` (``userID<TAB>artistID<TAB>weight``, header, CRLF) from
    ``path`` when given, else from the data home, downloading
    ``hetrec2011-lastfm-2k.zip`` (md5-checked) when missing and ``download`` is True.

    Parameters
    ----------
    path : str or path-like, default=None
        A folder holding the extracted ``user_artists.dat`` (and ``artists.dat``).
    data_home : str or path-like, default=None
        See :func:`get_data_home`.
    download : bool, default=True
        Download the archive when the data home lacks it; else raise ``OSError``.

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
        DESCR : str
            What was read, and the licence terms.
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
    return Bunch(
        data=data,
        timestamps=None,
        user_ids=user_ids,
        item_ids=item_ids,
        item_names=[names.get(i, "") for i in item_ids.tolist()],
        item_genres=None,
        genre_names=None,
        DESCR=_descr("HetRec 2011 Last.fm 2k", body, _LASTFM.url, licence),
    )


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
