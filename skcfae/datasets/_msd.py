"""Million Song Dataset taste profile and Netflix Prize loaders."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

from .._compat import validate_params
from ._base import _descr, _interactions, _parse_numbers, _Remote, _resolve, _to_csr

__all__ = ["load_msd", "load_netflix"]

# The same file on the same host over https, as public code fetches other files of this
# /sites/default/files/ tree (not checked from here: no network); plain http is refused. If the
# host stops serving https, download by hand and pass path=. No published sha256 or md5 of
# train_triplets.txt.zip was found: the download needs allow_unverified=True.
_MSD = _Remote(
    "https://millionsongdataset.com/sites/default/files/challenge/train_triplets.txt.zip"
)


def _merge_codes(
    uniques: list[np.ndarray], codes: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Combine per-chunk (unique ids, codes) into global sorted ids and codes."""
    ids = np.unique(np.concatenate(uniques))
    return ids, np.concatenate(
        [np.searchsorted(ids, u)[c] for u, c in zip(uniques, codes, strict=True)]
    )


def _read_triplets(path: Path, chunk_bytes: int = 1 << 26) -> tuple[np.ndarray, ...]:
    """``user<TAB>song<TAB>count`` lines, read in chunks to bound memory."""
    users_u: list[np.ndarray] = []
    users_c: list[np.ndarray] = []
    songs_u: list[np.ndarray] = []
    songs_c: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    with open(path, "rb") as f:
        rest = b""
        while True:
            block = f.read(chunk_bytes)
            text = rest + block
            if block:
                cut = text.rfind(b"\n") + 1
                text, rest = text[:cut], text[cut:]
            tokens = text.split()
            if len(tokens) % 3:
                raise ValueError(f"{path.name} should hold 3 fields per line.")
            if tokens:
                for field, (uniq, code) in ((0, (users_u, users_c)), (1, (songs_u, songs_c))):
                    u, c = np.unique(np.array(tokens[field::3]), return_inverse=True)
                    uniq.append(u)
                    code.append(c.reshape(-1))
                counts.append(_parse_numbers(b" ".join(tokens[2::3])))
            if not block:
                break
    if not counts:
        raise ValueError(f"{path} holds no triplets.")
    user_ids, rows = _merge_codes(users_u, users_c)
    item_ids, cols = _merge_codes(songs_u, songs_c)
    return user_ids, rows, item_ids, cols, np.concatenate(counts)


@validate_params(
    {
        "path": [str, os.PathLike, None],
        "data_home": [str, os.PathLike, None],
        "download": ["boolean"],
        "allow_unverified": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_msd(
    *,
    path: str | os.PathLike[str] | None = None,
    data_home: str | os.PathLike[str] | None = None,
    download: bool = True,
    allow_unverified: bool = False,
) -> Bunch:
    """Load the Million Song Dataset Echo Nest taste profile as a users x songs matrix.

    Reads ``train_triplets.txt`` (``user<TAB>song<TAB>play count``; about 48 million lines)
    from ``path`` when given, else from the data home, downloading
    ``train_triplets.txt.zip`` (over https) when missing and ``download`` is True. No
    published checksum is known for that archive, so it is downloaded and extracted only
    with ``allow_unverified=True``. Loading needs several GiB of memory.

    Parameters
    ----------
    path : str or path-like, default=None
        A folder holding ``train_triplets.txt``.
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
            Play counts.
        timestamps : None
            The play counts carry no time.
        user_ids, item_ids : ndarray of str
            The hashed user ids and Echo Nest song ids, ascending.
        item_names, item_genres, genre_names : None
            No song metadata is read.
        DESCR : str
            What was read, and the licence terms.
    """
    folder = _resolve(
        "msd-taste-profile",
        _MSD,
        ("train_triplets.txt",),
        path=path,
        data_home=data_home,
        download=download,
        allow_unverified=allow_unverified,
    )
    user_ids, rows, item_ids, cols, counts = _read_triplets(folder / "train_triplets.txt")
    data, _ = _to_csr(rows, cols, counts, (user_ids.size, item_ids.size))
    body = (
        f"Echo Nest taste profile subset of the Million Song Dataset: {data.nnz:,} (user, "
        f"song) play counts of {data.shape[0]:,} users and {data.shape[1]:,} songs, read from "
        "train_triplets.txt. Implicit feedback, no timestamps."
    )
    licence = (
        "The Echo Nest / LabROSA Million Song Dataset challenge data, for research use; see "
        "https://millionsongdataset.com. Cite T. Bertin-Mahieux et al., The Million Song "
        "Dataset, ISMIR 2011, and B. McFee et al., The Million Song Dataset Challenge, WWW 2012."
    )
    return Bunch(
        data=data,
        timestamps=None,
        user_ids=user_ids.astype(str),
        item_ids=item_ids.astype(str),
        item_names=None,
        item_genres=None,
        genre_names=None,
        DESCR=_descr("Million Song Dataset taste profile", body, _MSD.url, licence),
    )


_MOVIE_HEADER = re.compile(rb"^\s*(\d+):\s*$", re.MULTILINE)


def _parse_netflix_blob(raw: bytes, out: list[tuple[np.ndarray, ...]]) -> None:
    """Append (movie, customer, rating, day) arrays for every ``movie:`` section of ``raw``."""
    headers = list(_MOVIE_HEADER.finditer(raw))
    for k, header in enumerate(headers):
        stop = headers[k + 1].start() if k + 1 < len(headers) else len(raw)
        body = raw[header.end() : stop].replace(b"-", b" ")
        table = _parse_numbers(body)
        if table.size % 5:
            raise ValueError(
                f"Movie {int(header.group(1))}: lines should read 'CustomerID,Rating,YYYY-MM-DD'."
            )
        table = table.reshape(-1, 5)
        year, month, day = (table[:, k].astype(np.int64) for k in (2, 3, 4))
        days = (
            ((year - 1970) * 12 + month - 1).astype("datetime64[M]").astype("datetime64[D]")
            + (day - 1)
        ).astype(np.int64)
        movie = np.full(table.shape[0], int(header.group(1)), dtype=np.int64)
        out.append((movie, table[:, 0], table[:, 1], days))


@validate_params({"path": [str, os.PathLike]}, prefer_skip_nested_validation=True)
def load_netflix(path: str | os.PathLike[str]) -> Bunch:
    """Load a local copy of the Netflix Prize training data as a users x movies matrix.

    The data can no longer be downloaded from Netflix, so only local files are read: the
    ``training_set/mv_*.txt`` files of the original release, or combined files in the same
    format (``combined_data_*.txt``), or one such file. Each file holds ``MovieID:`` lines,
    each followed by ``CustomerID,Rating,YYYY-MM-DD`` lines.

    Parameters
    ----------
    path : str or path-like
        The ``training_set`` folder, a folder holding it (or ``combined_data_*.txt``), or one
        file.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        data : csr_array of shape (n_users, n_items), float32
            Ratings 1-5.
        timestamps : csr_array of shape (n_users, n_items), float64
            Unix seconds of midnight (UTC) of the rating date.
        user_ids, item_ids : ndarray
            CustomerID / MovieID of each row / column, ascending.
        item_names : list of str or None
            Titles from ``movie_titles.txt`` next to the data, when present.
        item_genres, genre_names : None
            The data set has no genres.
        DESCR : str
            What was read, and the licence terms.
    """
    root = Path(path).expanduser()
    if root.is_file():
        files = [root]
        folder = root.parent
    else:
        folder = root
        files = sorted(root.glob("mv_*.txt"))
        if not files and (root / "training_set").is_dir():
            folder = root / "training_set"
            files = sorted(folder.glob("mv_*.txt"))
        if not files:
            files = sorted(root.glob("combined_data_*.txt"))
            folder = root
    if not files:
        raise FileNotFoundError(
            f"No Netflix Prize files (training_set/mv_*.txt or combined_data_*.txt) in {root}."
        )
    parts: list[tuple[np.ndarray, ...]] = []
    for file in files:
        _parse_netflix_blob(file.read_bytes(), parts)
    movies, customers, ratings, days = (
        np.concatenate(column) for column in zip(*parts, strict=True)
    )
    data, times, user_ids, item_ids = _interactions(
        customers, movies, ratings, days.astype(np.float64) * 86400.0
    )
    names = None
    for titles in (folder / "movie_titles.txt", folder.parent / "movie_titles.txt"):
        if titles.is_file():
            table = {}
            for line in titles.read_bytes().decode("latin-1").splitlines():
                fields = line.split(",", 2)
                if len(fields) == 3 and fields[0].isdigit():
                    table[int(fields[0])] = fields[2]
            names = [table.get(i, "") for i in item_ids.tolist()]
            break
    body = (
        f"Netflix Prize training data: {data.nnz:,} ratings (1-5, dated) by {data.shape[0]:,} "
        f"customers of {data.shape[1]:,} movies, read from {len(files):,} local file(s)."
    )
    licence = (
        "Netflix Prize data, released under the Netflix Prize rules for non-commercial "
        "research; it is no longer distributed by Netflix and may not be redistributed."
    )
    return Bunch(
        data=data,
        timestamps=times,
        user_ids=user_ids,
        item_ids=item_ids,
        item_names=names,
        item_genres=None,
        genre_names=None,
        DESCR=_descr("Netflix Prize", body, "local files only", licence),
    )
