"""MovieLens loaders (GroupLens): 100K, 1M, 20M and Latest Small."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._compat import StrOptions, validate_params
from ._base import _descr, _interactions, _parse_table, _read_numbers, _Remote, _resolve

__all__ = ["load_movielens"]

# Digests of the official archives. sha256 and size: tensorflow/datasets,
# tensorflow_datasets/url_checksums/movielens.txt (commit 1c076ac3). md5: the GroupLens
# ``<archive>.md5`` files, as recorded in eli-osherovich/papers_with_code,
# datasets/movielens/dl_config.py (and, for ml-20m, sisinflab/DataRec
# datarec/datasets/movielens/movielens20m.py). No md5 was found for ml-latest-small.
_ML = "https://files.grouplens.org/datasets/movielens/"
_REMOTES = {
    "100k": _Remote(
        _ML + "ml-100k.zip",
        sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        md5="0e33842e24a9c977be4e0107933c0723",
    ),
    "1m": _Remote(
        _ML + "ml-1m.zip",
        sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        md5="c4d9eecfca2ab87c1945afe126590906",
    ),
    "20m": _Remote(
        _ML + "ml-20m.zip",
        sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
        md5="cd245b17a1ae2cc31bb14903e1204af3",
    ),
    "latest-small": _Remote(
        _ML + "ml-latest-small.zip",
        sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
    ),
}

_LICENCE = (
    "GroupLens Research, University of Minnesota. Research use only; acknowledge the data set "
    "in publications; no redistribution without permission (ml-latest-small: only under the "
    "same licence); commercial use needs GroupLens' permission. Cite F. M. Harper and J. A. "
    "Konstan, The MovieLens Datasets: History and Context, ACM TiiS 5(4):19, 2015."
)


def _metadata(
    item_ids: np.ndarray, table: dict[int, tuple[str, list[str]]]
) -> tuple[list[str], list[list[str]]]:
    names, genres = [], []
    for item in item_ids.tolist():
        name, item_genres = table.get(item, ("", []))
        names.append(name)
        genres.append(item_genres)
    return names, genres


def _genre_names(genres: list[list[str]]) -> list[str]:
    return sorted({g for item_genres in genres for g in item_genres})


def _load_100k(folder: Path) -> Bunch:
    table = _parse_table(_read_numbers(folder / "u.data"), 4, "u.data")
    data, times, user_ids, item_ids = _interactions(
        table[:, 0], table[:, 1], table[:, 2], table[:, 3]
    )
    genre_names = None
    if (folder / "u.genre").is_file():
        lines = (folder / "u.genre").read_text(encoding="latin-1").splitlines()
        genre_names = [line.rsplit("|", 1)[0] for line in lines if line.strip()]
    meta: dict[int, tuple[str, list[str]]] = {}
    if (folder / "u.item").is_file() and genre_names is not None:
        for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
            fields = line.split("|")
            if len(fields) < 5 + len(genre_names):
                continue
            flags = fields[-len(genre_names) :]
            meta[int(fields[0])] = (
                fields[1],
                [g for g, flag in zip(genre_names, flags, strict=True) if flag.strip() == "1"],
            )
    names, genres = _metadata(item_ids, meta)
    body = (
        f"MovieLens 100K: {data.nnz:,} ratings (1-5, with timestamps) by {data.shape[0]:,} users "
        f"of {data.shape[1]:,} movies, read from u.data; titles and genres from u.item."
    )
    return Bunch(
        data=data,
        timestamps=times,
        user_ids=user_ids,
        item_ids=item_ids,
        item_names=names,
        item_genres=genres,
        genre_names=genre_names,
        DESCR=_descr("MovieLens 100K", body, _REMOTES["100k"].url, _LICENCE),
    )


def _read_movies_dat(path: Path) -> dict[int, tuple[str, list[str]]]:
    meta: dict[int, tuple[str, list[str]]] = {}
    if path.is_file():
        for line in path.read_text(encoding="latin-1").splitlines():
            fields = line.split("::")
            if len(fields) == 3:
                meta[int(fields[0])] = (fields[1], [g for g in fields[2].split("|") if g])
    return meta


def _read_implicit_lists(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``user item item ...`` lines (0-based ids) as (user, item) arrays."""
    users, items = [], []
    for line in path.read_bytes().splitlines():
        ids = np.fromstring(line, dtype=np.int64, sep=" ") if line.strip() else None
        if ids is None or ids.size < 2:
            continue
        users.append(np.full(ids.size - 1, ids[0]))
        items.append(ids[1:])
    if not users:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(users), np.concatenate(items)


def _load_1m(folder: Path) -> Bunch:
    ratings = folder / "ratings.dat"
    if ratings.is_file():
        table = _parse_table(_read_numbers(ratings), 4, "ratings.dat")
        data, times, user_ids, item_ids = _interactions(
            table[:, 0], table[:, 1], table[:, 2], table[:, 3]
        )
        body = (
            f"MovieLens 1M: {data.nnz:,} ratings (1-5, with timestamps) by {data.shape[0]:,} "
            f"users of {data.shape[1]:,} movies, read from the official ratings.dat; titles and "
            "genres from movies.dat."
        )
    else:
        pairs = [_read_implicit_lists(folder / name) for name in ("train.txt", "test.txt")]
        users = np.concatenate([u for u, _ in pairs]) + 1
        items = np.concatenate([i for _, i in pairs]) + 1
        data, times, user_ids, item_ids = _interactions(
            users, items, np.ones(users.size, dtype=np.float32)
        )
        body = (
            f"MovieLens 1M, implicit copy: {data.nnz:,} (user, movie) pairs of {data.shape[0]:,} "
            f"users and {data.shape[1]:,} movies, read from train.txt and test.txt (the union, "
            "value 1.0). No ratings.dat was found: rating values and timestamps are absent "
            "(timestamps is None). Ids were shifted back to the official 1-based "
            "UserID/MovieID; titles and genres from movies.dat."
        )
    names, genres = _metadata(item_ids, _read_movies_dat(folder / "movies.dat"))
    return Bunch(
        data=data,
        timestamps=times,
        user_ids=user_ids,
        item_ids=item_ids,
        item_names=names,
        item_genres=genres,
        genre_names=_genre_names(genres),
        DESCR=_descr("MovieLens 1M", body, _REMOTES["1m"].url, _LICENCE),
    )


def _read_movies_csv(path: Path) -> dict[int, tuple[str, list[str]]]:
    meta: dict[int, tuple[str, list[str]]] = {}
    if path.is_file():
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            next(reader, None)
            for row in reader:
                if len(row) == 3:
                    genres = [g for g in row[2].split("|") if g and g != "(no genres listed)"]
                    meta[int(row[0])] = (row[1], genres)
    return meta


def _load_csv(folder: Path, variant: str) -> Bunch:
    table = _parse_table(_read_numbers(folder / "ratings.csv", skip_header=True), 4, "ratings.csv")
    data, times, user_ids, item_ids = _interactions(
        table[:, 0], table[:, 1], table[:, 2], table[:, 3]
    )
    names, genres = _metadata(item_ids, _read_movies_csv(folder / "movies.csv"))
    title = {"20m": "MovieLens 20M", "latest-small": "MovieLens Latest Small"}[variant]
    body = (
        f"{title}: {data.nnz:,} ratings (0.5-5 in half stars, with timestamps) by "
        f"{data.shape[0]:,} users of {data.shape[1]:,} movies, read from ratings.csv. Columns "
        "are the rated movies only; titles and genres from movies.csv ('(no genres listed)' "
        "gives an empty genre list)."
    )
    return Bunch(
        data=data,
        timestamps=times,
        user_ids=user_ids,
        item_ids=item_ids,
        item_names=names,
        item_genres=genres,
        genre_names=_genre_names(genres),
        DESCR=_descr(title, body, _REMOTES[variant].url, _LICENCE),
    )


_MARKERS = {
    "100k": ("u.data",),
    "1m": ("ratings.dat", "train.txt"),
    "20m": ("ratings.csv",),
    "latest-small": ("ratings.csv",),
}


@validate_params(
    {
        "variant": [StrOptions(set(_REMOTES))],
        "path": [str, os.PathLike, None],
        "data_home": [str, os.PathLike, None],
        "download": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_movielens(
    variant: str = "1m",
    *,
    path: str | os.PathLike[str] | None = None,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Bunch:
    """Load a MovieLens data set as a users x movies rating matrix.

    Reads the extracted files in ``path`` when given; otherwise the copy in the data home,
    downloading the official GroupLens archive (checked against its published sha256 and md5)
    when it is missing and ``download`` is True.

    Parameters
    ----------
    variant : {"100k", "1m", "20m", "latest-small"}, default="1m"
        Which release.
    path : str or path-like, default=None
        A folder holding the extracted files (``u.data``; ``ratings.dat`` or the implicit
        ``train.txt`` + ``test.txt``; ``ratings.csv``). Nothing is downloaded when given.
    data_home : str or path-like, default=None
        See :func:`get_data_home`.
    download : bool, default=True
        Download the archive when the data home lacks it; else raise ``OSError``.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        data : csr_array of shape (n_users, n_items), float32
            The ratings; 1.0 for the implicit ml-1m copy.
        timestamps : csr_array of shape (n_users, n_items), float64, or None
            Unix seconds, with the sparsity pattern of ``data``; None when absent.
        user_ids, item_ids : ndarray
            Official UserID / MovieID of each row / column, ascending.
        item_names : list of str
            Movie titles ("" where the metadata lacks the movie).
        item_genres : list of list of str
            The genres of each movie.
        genre_names : list of str
            All genres (for 100K in the order of ``u.genre``).
        DESCR : str
            What was read, and the licence terms.

    Notes
    -----
    A local ml-1m folder without ``ratings.dat`` but with ``train.txt`` and ``test.txt``
    (lines ``user item item ...`` with 0-based ids) is read as an implicit copy: the union
    of both files, value 1.0, ``timestamps=None``, ids shifted to the official 1-based ones.
    ``DESCR`` says which layout was read.

    Examples
    --------
    >>> from skcfae.datasets import load_movielens
    >>> ml = load_movielens("100k")  # doctest: +SKIP
    >>> ml.data.shape  # doctest: +SKIP
    (943, 1682)
    """
    folder = _resolve(
        f"ml-{variant}",
        _REMOTES[variant],
        _MARKERS[variant],
        path=path,
        data_home=data_home,
        download=download,
    )
    if variant == "100k":
        return _load_100k(folder)
    if variant == "1m":
        return _load_1m(folder)
    return _load_csv(folder, variant)
