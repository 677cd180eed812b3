"""EASE for big catalogues: exact (dense) EASE against ``EASE(max_neighbors=k)``.

(a) Accuracy where both fit: ml-1m and lastfm-2k (../shared/data), the strong-generalization
splits of defaults.py (``split_of(data, i)``: 10% + 10% held-out users, each split 80/20).
λ is fixed at the value that dense ``EASE()`` (``lam="auto"``) chose on split 0
(benchmarks/results/defaults_<data>.json, ``proof EASE s0``; the same on every split
recorded there), the same for every model, so that only the neighbourhood changes.
Reported: test and validation NDCG@100 (means over splits), the paired difference to dense
EASE on the test users of all splits (± s.e.), fit seconds and peak memory. Beside dense
EASE, its B with the weights of items that never co-occur zeroed (no re-solve): the limit
that the neighbourhoods approach as k grows.

(b) Scale: a synthetic 69,000-item catalogue (``make_interactions``), where dense EASE needs
about 124 GiB (160 GiB with ``lam="auto"``) and refuses; fit seconds and peak memory of
``EASE(lam=200, max_neighbors=k)``, and the time to recommend 100 items to 2,000 users.

Every fit runs in a subprocess of its own; its peak memory is that process's peak resident
set (``ru_maxrss``), reported with the resident set before the fit (data loaded) beside it.
Run with one thread (the numbers below were measured so):

    OMP_NUM_THREADS=1 python benchmarks/ease_large.py accuracy --data ml-1m lastfm-2k \
        --k 100 200 500 1000 --splits 0 1 2 3 4
    OMP_NUM_THREADS=1 python benchmarks/ease_large.py scale --k 100 200
    python benchmarks/ease_large.py tables

Writes benchmarks/results/ease_large.{json,md} (rows of earlier runs are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
OUT = RESULTS / "ease_large.json"
#: λ of dense EASE() on split 0, used when defaults_<data>.json lacks it.
FALLBACK_LAM = {"ml-1m": 800.0, "lastfm-2k": 100.0}
SCALE = dict(n_users=30000, n_items=69000, density=0.001, random_state=0)
SCALE_LAM = 200.0


def _rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def chosen_lam(data: str) -> float:
    path = RESULTS / f"defaults_{data}.json"
    if path.exists():
        row = json.loads(path.read_text()).get("proof EASE s0")
        if row and "lam_" in row:
            return float(row["lam_"])
    return FALLBACK_LAM[data]


def per_user_ndcg(model, fold_in, holdout) -> np.ndarray:
    from skcfae._ranking import ndcg_from_topk

    return ndcg_from_topk(model.recommend(fold_in, n=100), holdout, 100)


# -- one fit per subprocess -------------------------------------------------------------------
def child_accuracy(data: str, split_id: int, k: int | None, lam: float) -> dict:
    from defaults import split_of

    from skcfae import EASE

    split = split_of(data, split_id)
    before = _rss_gib()
    tic = time.perf_counter()
    model = EASE(lam=lam, max_neighbors=k).fit(split.train)
    seconds = time.perf_counter() - tic
    peak = _rss_gib()

    def evaluate(model) -> dict:
        test = per_user_ndcg(model, split.test_fold_in, split.test_holdout)
        valid = per_user_ndcg(model, split.valid_fold_in, split.valid_holdout)
        return {
            "test_per_user": [None if np.isnan(v) else float(v) for v in test],
            "test_ndcg@100": float(np.nanmean(test)),
            "valid_ndcg@100": float(np.nanmean(valid)),
        }

    coef = model.coef_
    row = {
        "fit_seconds": seconds,
        "rss_before_fit_gib": before,
        "peak_rss_gib": peak,
        "coef_nnz": int(coef.nnz if k is not None else np.count_nonzero(coef)),
        **evaluate(model),
        "shape": list(split.train.shape),
    }
    if k is None:  # B on the co-occurrence pattern only
        X = split.train
        model.coef_ = coef * ((X.T @ X).toarray() > 0)
        model.coef_[np.diag_indices_from(model.coef_)] = 0.0
        row["pattern"] = {"coef_nnz": int(np.count_nonzero(model.coef_)), **evaluate(model)}
    return row


def child_scale(k: int) -> dict:
    from skcfae import EASE
    from skcfae.datasets import make_interactions
    from skcfae.models._ease import _check_memory

    X = make_interactions(**SCALE)
    train, users = X[2000:], X[:2000]
    try:
        _check_memory(X.shape[1], validating=False)
        dense = "fits"
    except MemoryError as error:
        dense = str(error)
    before = _rss_gib()
    tic = time.perf_counter()
    model = EASE(lam=SCALE_LAM, max_neighbors=k).fit(train)
    seconds = time.perf_counter() - tic
    peak = _rss_gib()
    tic = time.perf_counter()
    model.recommend(users, n=100)
    return {
        "fit_seconds": seconds,
        "recommend_2000_seconds": time.perf_counter() - tic,
        "rss_before_fit_gib": before,
        "peak_rss_gib": peak,
        "peak_after_recommend_gib": _rss_gib(),
        "coef_nnz": int(model.coef_.nnz),
        "coef_mib": (model.coef_.data.nbytes + model.coef_.indices.nbytes) / 2**20,
        "shape": list(train.shape),
        "nnz": int(train.nnz),
        "dense_ease": dense,
    }


def run_child(*args: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.run(
        [sys.executable, __file__, "child", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- drivers ----------------------------------------------------------------------------------
def load_rows() -> dict:
    return json.loads(OUT.read_text()) if OUT.exists() else {}


def record(key: str, row: dict) -> None:
    rows = load_rows()
    rows[key] = {
        **row,
        "threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
    }
    OUT.write_text(json.dumps(rows, indent=1) + "\n")
    print(key, {k: v for k, v in row.items() if k != "test_per_user"}, flush=True)


def accuracy(args) -> None:
    for data in args.data:
        lam = chosen_lam(data)
        for split_id in args.splits:
            for k in [None, *args.k]:
                name = "dense" if k is None else f"k={k}"
                key = f"accuracy {data} {name} s{split_id}"
                if key in load_rows() and not args.force:
                    continue
                row = run_child("accuracy", data, str(split_id), str(k), str(lam))
                record(
                    key, {"data": data, "split": split_id, "lam": lam, "max_neighbors": k, **row}
                )


def scale(args) -> None:
    for k in args.k:
        key = f"scale k={k}"
        if key in load_rows() and not args.force:
            continue
        record(key, {"max_neighbors": k, "lam": SCALE_LAM, **SCALE, **run_child("scale", str(k))})


def tables(args) -> None:
    rows = load_rows()
    lines = [
        "# EASE for big catalogues: dense EASE against EASE(max_neighbors=k)",
        "",
        "Written by `benchmarks/ease_large.py` (see its docstring for the protocol). One thread",
        "(`OMP_NUM_THREADS=1`) on a 2-core machine shared with other benchmarks (load average",
        "3-8), so times are upper bounds. Peak memory: the fit process's peak resident set",
        "(`ru_maxrss`), data included; the resident set before the fit is given beside it.",
        "",
    ]
    for data in ("ml-1m", "lastfm-2k"):
        dense = {
            row["split"]: row
            for row in rows.values()
            if row.get("data") == data and "split" in row and row["max_neighbors"] is None
        }
        if not dense:
            continue
        n_users, n_items = dense[min(dense)]["shape"]
        lam = dense[min(dense)]["lam"]
        lines += [
            f"## {data}: about {n_users:,} training users, {n_items:,} items, λ = {lam:g}",
            "",
            "Means over the splits; the paired difference pools the test users of the splits "
            "that model ran on.",
            "",
            "| model | splits | test NDCG@100 | minus dense, paired ± s.e. (%) | "
            "valid NDCG@100 | nnz(B) | fit s | peak RSS GiB (before fit) |",
            "|---|---|---|---|---|---|---|---|",
        ]

        def per_user(row: dict) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in row["test_per_user"]])

        models: dict = {}
        for row in rows.values():
            if row.get("data") == data and "split" in row:
                models.setdefault(row["max_neighbors"], []).append(row)
        order = sorted(k for k in models if k is not None) + [None, "pattern"]
        models["pattern"] = [{**r, **r["pattern"]} for r in models[None] if "pattern" in r]
        for k in order:
            runs = sorted(models.get(k, []), key=lambda r: r["split"])
            if not runs:
                continue
            test = np.mean([r["test_ndcg@100"] for r in runs])
            base = np.mean([dense[r["split"]]["test_ndcg@100"] for r in runs])
            diff = np.concatenate([per_user(r) - per_user(dense[r["split"]]) for r in runs])
            diff = diff[~np.isnan(diff)]
            paired = (
                ""
                if k is None
                else f"{diff.mean():+.4f} ± {diff.std(ddof=1) / np.sqrt(diff.size):.4f} "
                f"({100 * (test / base - 1):+.1f}%)"
            )
            if k is not None and len(runs) < len(dense):
                paired += f"; dense EASE on the same splits: {base:.4f}"
            name = {None: "dense EASE", "pattern": "dense B on the co-occurrence pattern"}.get(
                k, f"k = {k}"
            )
            timing = "" if k == "pattern" else f"{np.mean([r['fit_seconds'] for r in runs]):.1f}"
            memory = (
                ""
                if k == "pattern"
                else f"{max(r['peak_rss_gib'] for r in runs):.2f} "
                f"({max(r['rss_before_fit_gib'] for r in runs):.2f})"
            )
            lines.append(
                f"| {name} | {len(runs)} | {test:.4f} | {paired} | "
                f"{np.mean([r['valid_ndcg@100'] for r in runs]):.4f} | "
                f"{int(np.mean([r['coef_nnz'] for r in runs])):,} | {timing} | {memory} |"
            )
        lines.append("")
    scale_keys = sorted(
        (k for k in rows if k.startswith("scale ")), key=lambda k: rows[k]["max_neighbors"]
    )
    if scale_keys:
        first = rows[scale_keys[0]]
        n_users, n_items = first["shape"]
        lines += [
            f"## Synthetic: {n_users:,} training users x {n_items:,} items, "
            f"{first['nnz']:,} interactions (`make_interactions(n_users={first['n_users']}, "
            f"n_items={first['n_items']}, density={first['density']}, random_state=0)`, "
            "2,000 users held out to recommend for), λ = 200",
            "",
            f"Dense EASE: {first['dense_ease']}",
            "",
            "| k | fit s | peak RSS GiB (before fit) | nnz(B) | B MiB | "
            "recommend 100 to 2,000 users, s | peak RSS GiB after recommend |",
            "|---|---|---|---|---|---|---|",
        ]
        for key in scale_keys:
            row = rows[key]
            lines.append(
                f"| {row['max_neighbors']} | {row['fit_seconds']:.1f} | "
                f"{row['peak_rss_gib']:.2f} ({row['rss_before_fit_gib']:.2f}) | "
                f"{row['coef_nnz']:,} | {row['coef_mib']:.0f} | "
                f"{row['recommend_2000_seconds']:.1f} | {row['peak_after_recommend_gib']:.2f} |"
            )
        lines.append("")
    (RESULTS / "ease_large.md").write_text("\n".join(lines))
    print("\n".join(lines))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        sys.path.insert(0, str(Path(__file__).parent))
        kind, *rest = sys.argv[2:]
        if kind == "accuracy":
            data, split_id, k, lam = rest
            row = child_accuracy(data, int(split_id), None if k == "None" else int(k), float(lam))
        else:
            row = child_scale(int(rest[0]))
        print(json.dumps(row))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--data", nargs="+", default=["ml-1m", "lastfm-2k"])
    a.add_argument("--k", nargs="+", type=int, default=[100, 200, 500, 1000])
    a.add_argument("--splits", nargs="+", type=int, default=[0])
    a.add_argument("--force", action="store_true")
    s = sub.add_parser("scale")
    s.add_argument("--k", nargs="+", type=int, default=[100, 200])
    s.add_argument("--force", action="store_true")
    sub.add_parser("tables")
    args = parser.parse_args()
    {"accuracy": accuracy, "scale": scale, "tables": tables}[args.command](args)


if __name__ == "__main__":
    main()
