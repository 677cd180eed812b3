"""The ``skcfae`` command line: fit a model on a CSV of interactions, recommend by id, and
reproduce a small analogue of Table 3 of Khawar et al. (WWW 2020).

    python -m skcfae fit train.csv --model EASE --out ease.skcfae
    python -m skcfae recommend ease.skcfae --user ann --user bob -n 10 --out recs.csv
    python -m skcfae reproduce table3 --synthetic --fast

Built on the public API only: :class:`skcfae.preprocessing.InteractionEncoder` reads the
table, :func:`skcfae.utils.all_estimators` names the models, :func:`skcfae.save` and
:func:`skcfae.load` store them. A model file holds the estimator only, so ``fit`` writes two
files next to ``MODEL``: ``MODEL.ids.json`` (the user and item ids, as JSON lists of the CSV's
strings, and the column names) and ``MODEL.train.npz`` (the training matrix, a scipy sparse
``.npz`` read with ``allow_pickle=False``), from which ``recommend`` rebuilds the encoder by
fitting it again on the same entries. No pickle is written or read.

CSV ids are kept as the strings of the file (``"007"`` stays ``"007"``); they are sorted as
strings to number the rows and columns, which changes nothing for the user.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["main"]

#: Metrics of ``reproduce table3``: (column title, metric name in skcfae.metrics, k).
_METRICS = (("NDCG@100", "ndcg_at_k", 100), ("Recall@20", "recall_at_k", 20))
_TABLE3_MODELS = ("Popularity", "EASE", "MultDAE", "SwDAE")
_DATASETS = ("ml-1m", "ml-100k", "ml-latest-small", "lastfm-2k")
_SPLIT_SEED = 98765  # benchmarks/defaults.py: split i uses random_state=98765 + i


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


# -- parser ---------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="skcfae",
        description="Autoencoder recommenders for collaborative filtering, from the shell.",
        epilog="Run 'skcfae COMMAND --help' for the options of a command.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def columns(q: argparse.ArgumentParser, value: bool) -> None:
        if value:  # fit
            q.add_argument("--user-col", default="user", help="user id column (default: user)")
            q.add_argument("--item-col", default="item", help="item id column (default: item)")
        else:  # recommend: the names given to fit, stored in MODEL.ids.json
            q.add_argument("--user-col", default=None, help="user id column (default: fit's)")
            q.add_argument("--item-col", default=None, help="item id column (default: fit's)")
        if value:
            q.add_argument(
                "--value-col",
                default=None,
                help="value column (ratings, counts); default: each row counts 1",
            )
        q.add_argument("--sep", default=",", help="field separator of the CSV (default: ,)")

    f = sub.add_parser(
        "fit",
        help="fit a ranking model on a CSV of interactions",
        description="Fit a ranking model on a CSV of (user, item[, value]) interactions with "
        "a header row; other columns (a timestamp) are ignored. Writes MODEL (skcfae.save), "
        "MODEL.ids.json (the ids) and MODEL.train.npz (the training matrix).",
    )
    f.add_argument("train", metavar="TRAIN.csv")
    f.add_argument("--model", required=True, metavar="NAME", help="e.g. EASE, MultDAE, Popularity")
    f.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model parameter, repeatable; VALUE is read as a Python literal "
        "(epochs=5, lam=200.0) and kept as a string otherwise (device=cpu)",
    )
    f.add_argument("--out", required=True, metavar="MODEL", help="the model file to write")
    f.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="keep the values strictly above it, as 1 (e.g. 3.5 for ratings)",
    )
    columns(f, value=True)

    r = sub.add_parser(
        "recommend",
        help="top-n items by id for known or new users",
        description="Write a CSV (user, rank, item, score) of recommendations with the "
        "original ids. Give the users with --user/--users (training users, from their "
        "training history) or --history (new users, from a CSV of (user, item) rows).",
    )
    r.add_argument("model", metavar="MODEL")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--users", metavar="USERS.csv", help="a CSV with a user column")
    who.add_argument("--user", action="append", metavar="ID", help="a user id, repeatable")
    who.add_argument("--history", metavar="HISTORY.csv", help="a CSV of (user, item) rows")
    r.add_argument("-n", type=int, default=10, help="items per user (default: 10)")
    r.add_argument("--out", default="-", metavar="RECS.csv", help="output CSV (default: stdout)")
    r.add_argument(
        "--include-seen", action="store_true", help="also recommend the items a user has"
    )
    columns(r, value=False)
    r.set_defaults(value_col=None)

    rep = sub.add_parser("reproduce", help="reproduce a result of the papers, in small")
    which = rep.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    t3 = which.add_parser(
        "table3",
        help="Sw-dae Table 3 analogue (Khawar et al., WWW 2020)",
        description="Strong generalization (10%% validation and 10%% test users, split seed "
        "98765 + i), the default Popularity(), EASE(), MultDAE() and "
        "Pipeline([ItemGrouper(), SparseWideDAE()]) fitted on the training users, model "
        "seed i; prints a "
        "Markdown table of test NDCG@100, Recall@20 and fit seconds (means over splits).",
    )
    src = t3.add_mutually_exclusive_group(required=True)
    src.add_argument("--path", metavar="DIR", help="directory of the extracted data set")
    src.add_argument(
        "--synthetic",
        action="store_true",
        help="use make_interactions(2000, 300, random_state=0) instead of --path",
    )
    t3.add_argument("--data", choices=_DATASETS, default="ml-1m", help="data set in --path")
    t3.add_argument("--splits", type=int, default=1, help="number of splits (default: 1)")
    t3.add_argument("--models", nargs="+", choices=_TABLE3_MODELS, default=list(_TABLE3_MODELS))
    t3.add_argument(
        "--fast",
        action="store_true",
        help="for smoke tests only: cap the neural models at 5 epochs (not the paper's numbers)",
    )
    return p


# -- helpers --------------------------------------------------------------------------------
def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _read_csv(path: str, sep: str, wanted: Sequence[str]) -> dict[str, list[str]]:
    """The named columns of a CSV with a header row, as lists of strings."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if header is None:
            raise CLIError(f"{path} is empty")
        missing = [c for c in wanted if c not in header]
        if missing:
            raise CLIError(
                f"{path} has no column {missing[0]!r}; its columns are {header[:10]} "
                "(set --user-col/--item-col/--value-col, or --sep)"
            )
        pos = [header.index(c) for c in wanted]
        out: dict[str, list[str]] = {c: [] for c in wanted}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(header):
                raise CLIError(f"{path}, line {line}: {len(row)} fields, {len(header)} expected")
            for c, j in zip(wanted, pos, strict=True):
                out[c].append(row[j])
    if not out[wanted[0]]:
        raise CLIError(f"{path} has no data row")
    return out


def _estimators() -> dict[str, type]:
    from .utils import all_estimators

    return dict(all_estimators("ranking"))


def _params(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise CLIError(f"--param takes KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def _sidecars(model: str) -> tuple[Path, Path]:
    return Path(model + ".ids.json"), Path(model + ".train.npz")


def _encoder(user_col: str, item_col: str, value_col: str | None, threshold: float | None) -> Any:
    from .preprocessing import InteractionEncoder

    return InteractionEncoder(user_col, item_col=item_col, value_col=value_col, threshold=threshold)


# -- fit ------------------------------------------------------------------------------------
def _fit(args: argparse.Namespace) -> None:
    import skcfae

    estimators = _estimators()
    if args.model not in estimators:
        raise CLIError(f"unknown model {args.model!r}; the ranking models are {sorted(estimators)}")
    params = _params(args.param)
    try:
        model = estimators[args.model](**params)
    except TypeError as err:
        raise CLIError(f"{args.model}: {_one_line(err)}") from err
    wanted = [args.user_col, args.item_col] + ([args.value_col] if args.value_col else [])
    cols = _read_csv(args.train, args.sep, wanted)
    table: dict[str, Any] = {args.user_col: cols[args.user_col], args.item_col: cols[args.item_col]}
    if args.value_col:
        try:
            table[args.value_col] = np.asarray(cols[args.value_col], dtype=np.float64)
        except ValueError as err:
            raise CLIError(f"column {args.value_col!r} is not numeric: {_one_line(err)}") from err
    encoder = _encoder(args.user_col, args.item_col, args.value_col, args.threshold)
    X = encoder.fit_transform(table)
    tic = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - tic
    skcfae.save(model, args.out)
    ids_path, train_path = _sidecars(args.out)
    ids = {
        "user_col": args.user_col,
        "item_col": args.item_col,
        "users": encoder.users_.tolist(),
        "items": encoder.items_.tolist(),
    }
    ids_path.write_text(json.dumps(ids) + "\n", encoding="utf-8")
    sp.save_npz(train_path, sp.csr_matrix(encoder.interactions_), compressed=True)
    print(
        f"fitted {args.model} on {X.shape[0]} users, {X.shape[1]} items, {X.nnz} interactions "
        f"in {seconds:.2f} s; wrote {args.out}, {ids_path.name}, {train_path.name}"
    )


# -- recommend ------------------------------------------------------------------------------
def _load(model_path: str) -> tuple[Any, Any]:
    """The model and its encoder, rebuilt from the files ``fit`` wrote."""
    import skcfae

    ids_path, train_path = _sidecars(model_path)
    for p in (Path(model_path), ids_path, train_path):
        if not p.is_file():
            raise CLIError(f"no such file: {p} (written by 'skcfae fit')")
    model = skcfae.load(model_path)
    ids = json.loads(ids_path.read_text(encoding="utf-8"))
    users, items = np.asarray(ids["users"]), np.asarray(ids["items"])
    X = sp.load_npz(train_path).tocsr()
    if X.shape != (users.size, items.size):
        raise CLIError(f"{train_path} and {ids_path} do not match (refit the model)")
    # Refit the encoder on the stored entries: every kept user and item has one, so the
    # vocabularies come back identical (checked below) and user_rows gives the same rows.
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    table = {
        ids["user_col"]: users[rows],
        ids["item_col"]: items[X.indices],
        "__value__": X.data.astype(np.float64),
    }
    encoder = _encoder(ids["user_col"], ids["item_col"], "__value__", None).fit(table)
    if not (np.array_equal(encoder.users_, users) and np.array_equal(encoder.items_, items)):
        raise CLIError(f"the ids in {ids_path} could not be rebuilt (refit the model)")
    return model, encoder


def _recommend(args: argparse.Namespace) -> None:
    from .preprocessing import recommend_ids

    if args.n < 1:
        raise CLIError(f"-n must be at least 1, got {args.n}")
    model, encoder = _load(args.model)
    user_col, item_col = encoder.user_col, encoder.item_col
    ucol, icol = args.user_col or user_col, args.item_col or item_col
    kwargs: dict[str, Any] = {}
    if args.user:
        kwargs["users"] = np.asarray(args.user)
    elif args.users:
        kwargs["users"] = np.asarray(_read_csv(args.users, args.sep, [ucol])[ucol])
    else:
        cols = _read_csv(args.history, args.sep, [ucol, icol])
        histories: dict[str, list[str]] = {}
        for u, i in zip(cols[ucol], cols[icol], strict=True):
            histories.setdefault(u, []).append(i)
        kwargs["histories"] = histories
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recs = recommend_ids(
            model, encoder, n=args.n, exclude_seen=not args.include_seen, as_frame=False, **kwargs
        )
    for w in caught:
        print(f"skcfae: warning: {_one_line(w.message)}", file=sys.stderr)  # type: ignore[arg-type]
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="", encoding="utf-8")
    try:
        writer = csv.writer(out, delimiter=args.sep, lineterminator="\n")
        writer.writerow([user_col, "rank", item_col, "score"])
        for row in zip(recs[user_col], recs["rank"], recs[item_col], recs["score"], strict=True):
            writer.writerow([row[0], int(row[1]), row[2], f"{float(row[3]):.6g}"])
    finally:
        if out is not sys.stdout:
            out.close()


# -- reproduce table3 -----------------------------------------------------------------------
def _table3_data(args: argparse.Namespace) -> tuple[Any, float | None, str]:
    """The matrix and its threshold, by the rule of benchmarks/accuracy.py ``load``."""
    from .datasets import load_lastfm, load_movielens, make_interactions

    if args.synthetic:
        return make_interactions(2000, 300, random_state=0), None, "synthetic (2000 x 300)"
    if not Path(args.path).is_dir():
        raise CLIError(f"no such directory: {args.path}")
    try:
        if args.data == "lastfm-2k":
            return load_lastfm(path=args.path, download=False).data, None, args.data
        X = load_movielens(args.data.removeprefix("ml-"), path=args.path, download=False).data
    except (OSError, ValueError) as err:
        raise CLIError(f"cannot read {args.data} in {args.path}: {_one_line(err)}") from err
    return X, (3.5 if X.data.max() > 1 else None), args.data


def _table3_model(name: str, fast: bool, seed: int) -> Any:
    from sklearn.pipeline import Pipeline

    from . import EASE, ItemGrouper, MultDAE, Popularity, SparseWideDAE

    cap = {"epochs": 5} if fast else {}
    if name == "Popularity":
        return Popularity()
    if name == "EASE":
        return EASE()
    if name == "MultDAE":
        return MultDAE(random_state=seed, **cap)
    return Pipeline(
        [
            ("group", ItemGrouper(random_state=seed)),
            ("dae", SparseWideDAE(random_state=seed, **cap)),
        ]
    )


def _evaluate(model: Any, fold_in: Any, holdout: Any, batch: int = 1000) -> dict[str, np.ndarray]:
    """Per-user test metrics of the top-100 lists, one batch of users at a time."""
    from . import metrics
    from . import recommend as top_n

    n = min(100, fold_in.shape[1])
    per: dict[str, list[np.ndarray]] = {title: [] for title, _, _ in _METRICS}
    for start in range(0, fold_in.shape[0], batch):
        top = top_n(model, fold_in[start : start + batch], n=n)
        score = np.full((top.shape[0], fold_in.shape[1]), -np.inf)  # one batch of rows
        r, c = np.nonzero(top >= 0)
        score[r, top[r, c]] = n - c  # rank 1 scores highest
        for title, metric, k in _METRICS:
            per[title].append(
                getattr(metrics, metric)(
                    holdout[start : start + batch], score, k=min(k, n), average=False
                )
            )
    return {title: np.concatenate(v) for title, v in per.items()}


def _table3(args: argparse.Namespace) -> None:
    from .model_selection import strong_generalization_split

    if args.splits < 1:
        raise CLIError(f"--splits must be at least 1, got {args.splits}")
    X, threshold, label = _table3_data(args)
    results: dict[str, dict[str, list[float]]] = {
        m: {**{t: [] for t, _, _ in _METRICS}, "fit s": []} for m in args.models
    }
    for i in range(args.splits):
        split = strong_generalization_split(
            X, n_heldout_users=0.1, threshold=threshold, random_state=_SPLIT_SEED + i
        )
        for name in args.models:
            model = _table3_model(name, args.fast, seed=i)
            tic = time.perf_counter()
            with warnings.catch_warnings():
                if args.fast:  # 5 epochs do not converge, by design
                    warnings.simplefilter("ignore")
                model.fit(split.train)
            results[name]["fit s"].append(time.perf_counter() - tic)
            per = _evaluate(model, split.test_fold_in, split.test_holdout)
            for title, v in per.items():
                results[name][title].append(float(np.nanmean(v)))
    titles = [t for t, _, _ in _METRICS] + ["fit s"]
    note = " (--fast: 5 epochs, smoke test)" if args.fast else ""
    print(f"Table 3 analogue, {label}: test users, mean over {args.splits} split(s){note}\n")
    print("| model | " + " | ".join(titles) + " |")
    print("|---|" + "---|" * len(titles))
    for name in args.models:
        cells = []
        for t in titles:
            v = np.asarray(results[name][t])
            cell = f"{v.mean():.1f}" if t == "fit s" else f"{v.mean():.3f}"
            if v.size > 1 and t != "fit s":
                cell += f" ± {v.std(ddof=1) / math.sqrt(v.size):.3f}"
            cells.append(cell)
        print(f"| {'Sw-dae' if name == 'SwDAE' else name} | " + " | ".join(cells) + " |")


# -- entry point ----------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 on a user error).

    Parameters
    ----------
    argv : sequence of str, default=None
        The arguments after the program name; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) and usage errors (2), argparse's own message
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    run = {"fit": _fit, "recommend": _recommend, "reproduce": _table3}[args.command]
    try:
        run(args)
    except CLIError as err:
        print(f"skcfae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as err:  # bad ids, parameters, unreadable files
        print(f"skcfae {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    return 0
