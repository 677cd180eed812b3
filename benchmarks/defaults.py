"""The cross-dataset study behind SparseWideDAE's and EASE's defaults.

Protocol: the strong-generalization split of accuracy.py (10% + 10% held-out users, split seed
98765 + i) on ml-100k, ml-1m, ml-latest-small, lastfm-2k (from ../shared/data) and a sparse
synthetic set (``make_interactions``: 5,000 users x 17,000 items, 0.2% dense). Candidates are
*chosen on validation users only*; test NDCG@100 is reported beside, never used to choose.

    python benchmarks/defaults.py study --data lastfm-2k          # candidates, split 0
    python benchmarks/defaults.py proof --data ml-1m --split-ids 0 1 2 3 4
    python benchmarks/defaults.py proof --data ml-latest-small --models 'Sw-dae{"l2_reg":0.001}'
    python benchmarks/defaults.py time --data ml-1m --threads 2   # default fit times, alone
    python benchmarks/defaults.py tables                          # the Markdown tables

``study`` trains each candidate with the validation users as ``X_valid`` (epoch cap
``--epochs``, patience ``--patience``) and keeps the whole validation curve, so that update
budgets (a fixed number of epochs, early stopping) can be read off it without refitting.
``proof`` fits the *defaults* as a user gets them (``SparseWideDAE()``, ``EASE()``,
``MultDAE()``, no X_valid) and scores the test users. Results:
benchmarks/results/defaults_<data>.json and defaults.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from accuracy import load
from sklearn.pipeline import Pipeline

from skcfae import EASE, ItemGrouper, MultDAE, SparseWideDAE, recommend
from skcfae._ranking import ndcg_from_topk
from skcfae.datasets import make_interactions
from skcfae.model_selection import strong_generalization_split

RESULTS = Path(__file__).parent / "results"
SEED = 98765
DATASETS = ["ml-100k", "ml-1m", "ml-latest-small", "lastfm-2k", "synthetic-sparse"]
CACHE = Path(tempfile.gettempdir()) / "skcfae-defaults-cache"

#: Sw-dae candidates of the study: name -> parameters (the rest at the paper's values).
CANDIDATES = {
    "logistic lr1e-3": dict(loss="logistic", learning_rate=1e-3),
    "logistic lr1e-2": dict(loss="logistic", learning_rate=1e-2),
    "multinomial lr1e-3": dict(loss="multinomial", learning_rate=1e-3),
    "multinomial lr1e-2": dict(loss="multinomial", learning_rate=1e-2),
}


def split_of(data: str, i: int):
    if data == "synthetic-sparse":
        X, threshold = (
            make_interactions(5000, 17000, n_groups=50, density=0.002, random_state=0),
            None,
        )
    else:
        X, threshold = load(data)
    return strong_generalization_split(
        X, n_heldout_users=0.1, threshold=threshold, random_state=SEED + i
    )


def swdae(params: dict) -> Pipeline:
    """ItemGrouper (spectral embedding cached across candidates) + SparseWideDAE."""
    grouper_params = {k: params.pop(k) for k in ("K", "R", "F") if k in params}
    grouper = ItemGrouper(**grouper_params, random_state=0, memory=str(CACHE))
    return Pipeline([("group", grouper), ("dae", SparseWideDAE(**{"random_state": 0, **params}))])


def ndcg(model, fold_in, holdout) -> float:
    return float(np.nanmean(ndcg_from_topk(recommend(model, fold_in, n=100), holdout, 100)))


def test_and_valid(model, split) -> dict:
    return {
        "test_ndcg@100": ndcg(model, split.test_fold_in, split.test_holdout),
        "valid_ndcg@100": ndcg(model, split.valid_fold_in, split.valid_holdout),
    }


#: ``--part``: results of a concurrent process go to their own file (merged by ``tables``).
PART = ""


def results_path(data: str) -> Path:
    return RESULTS / f"defaults_{data}{PART}.json"


def all_rows(data: str) -> dict:
    rows: dict = {}
    for path in sorted(RESULTS.glob(f"defaults_{data}*.json")):
        rows.update(json.loads(path.read_text()))
    return rows


def record(data: str, key: str, row: dict) -> None:
    path = results_path(data)
    rows = json.loads(path.read_text()) if path.exists() else {}
    rows[key] = row
    path.write_text(json.dumps(rows, indent=1) + "\n")
    print(key, {k: v for k, v in row.items() if k != "valid_curve"}, flush=True)


def study(args) -> None:
    split = split_of(args.data, 0)
    valid = (split.valid_fold_in, split.valid_holdout)
    names = args.candidates or list(CANDIDATES)
    for name in names:
        given = dict(CANDIDATES[name]) if name in CANDIDATES else json.loads(name)
        params = {"epochs": args.epochs, "n_iter_no_change": args.patience, **given}
        params.setdefault("learning_rate", 1e-2)  # the study's base (see ``tables``)
        params["device"] = "cpu"
        tic = time.perf_counter()
        model = swdae(params).fit(split.train, dae__X_valid=valid)
        seconds = time.perf_counter() - tic
        dae = model[-1]
        curve = [round(h["valid_ndcg"], 4) for h in dae.history_]
        row = {
            "fit_seconds": seconds,
            "epoch_seconds": float(np.median([h["dur"] for h in dae.history_])),
            "best_epoch": dae.best_epoch_,
            "epochs_run": len(dae.history_),
            "steps_per_epoch": -(-split.train.shape[0] // dae.batch_size),
            "valid_best": max(curve),
            "valid_curve": curve,
            **test_and_valid(model, split),
        }
        record(args.data, f"study {name}", row)


def default_model(name: str):
    """The model of ``--models`` NAME: a name below, or ``Sw-dae{json}``, the default
    SparseWideDAE with the parameters of the JSON object (no spaces) changed."""
    if name.startswith("Sw-dae{"):
        return swdae(json.loads(name[len("Sw-dae") :]))
    # the defaults before 0.1 (and the learning rate before 3e-3)
    k1000 = {"K": 1000, "n_iter_no_change": 20, "n_lr_decays": 0, "learning_rate": 1e-2}
    return {
        "Sw-dae": lambda: swdae({}),
        "Sw-dae-K1000-p20": lambda: swdae(dict(k1000)),
        "Sw-dae-decay": lambda: swdae({**k1000, "n_lr_decays": 1}),  # one learning-rate decay
        "Sw-dae-b500": lambda: swdae({**k1000, "batch_size": 500}),  # the paper's batch
        "Sw-dae-K2000": lambda: swdae({**k1000, "K": 2000}),
        "Sw-dae-K1000": lambda: swdae({"K": 1000}),  # the defaults but K
        "Sw-dae-K2000-decay-p10": lambda: swdae(
            {"K": 2000, "n_lr_decays": 1, "n_iter_no_change": 10, "learning_rate": 1e-2}
        ),
        "EASE": lambda: EASE(random_state=0),
        "EASE-500": lambda: EASE(lam=500.0),  # the default before lam="auto"
        "Mult-DAE": lambda: MultDAE(random_state=0),
    }[name]()


def proof(args) -> None:
    for i in args.split_ids:
        split = split_of(args.data, i)
        done = all_rows(args.data)
        for name in args.models:
            if f"proof {name} s{i}" in done:
                continue
            tic = time.perf_counter()
            model = default_model(name)
            model.fit(split.train)
            row = {"fit_seconds": time.perf_counter() - tic, **test_and_valid(model, split)}
            for attr in ("lam_", "best_epoch_"):
                if hasattr(model[-1] if isinstance(model, Pipeline) else model, attr):
                    row[attr] = getattr(model[-1] if isinstance(model, Pipeline) else model, attr)
            record(args.data, f"proof {name} s{i}", row)


def timing(args) -> None:
    """Wall time of the default fits alone (run it on a quiet machine, ``--threads 2``)."""
    split = split_of(args.data, 0)
    for name, make in [
        ("SparseWideDAE()", lambda: SparseWideDAE(random_state=0)),
        ("EASE()", lambda: EASE(random_state=0)),
        ("MultDAE()", lambda: MultDAE(random_state=0)),
    ]:
        tic = time.perf_counter()
        model = make().fit(split.train)
        row = {
            "fit_seconds": time.perf_counter() - tic,
            "threads": torch.get_num_threads(),
            "test_ndcg@100": ndcg(model, split.test_fold_in, split.test_holdout),
        }
        if hasattr(model, "best_epoch_"):
            row.update(best_epoch_=model.best_epoch_, epochs_run=len(model.history_))
        record(args.data, f"time {name}", row)


def tables(args) -> None:
    lines = ["# Defaults study", ""]
    for data in DATASETS:
        rows = all_rows(data)
        if not rows:
            continue
        lines += [f"## {data}", ""]
        study_rows = {k[6:]: r for k, r in rows.items() if k.startswith("study ")}
        if study_rows:
            lines += [
                "Candidates (split 0; chosen on validation users; the settings a candidate "
                "does not name: K 1000, R K/10, dropout 0.6, hidden dropout 0.2, batch 500, "
                "learning rate 1e-2, patience 20 epochs, no learning-rate decay; "
                "best epoch kept; s / epoch measured on shared, loaded cores):",
                "",
                "| candidate | valid NDCG@100 | test NDCG@100 | best epoch / run | "
                "updates to 99% of best | s / epoch |",
                "|---|---|---|---|---|---|",
            ]
            for name, r in study_rows.items():
                if name.startswith("{"):
                    name = ", ".join(f"{k} {v}" for k, v in json.loads(name).items())
                curve = np.array(r["valid_curve"])
                to99 = int(np.argmax(curve >= 0.99 * curve.max())) + 1
                lines.append(
                    f"| {name} | {r['valid_best']:.4f} | {r['test_ndcg@100']:.4f} | "
                    f"{r['best_epoch']} / {r['epochs_run']} | {to99 * r['steps_per_epoch']} | "
                    f"{r['epoch_seconds']:.2f} |"
                )
            lines.append("")
        models = sorted({k.split()[1] for k in rows if k.startswith("proof ")})
        if models:
            lines += [
                "Defaults as a user gets them (test users; mean ± s.e. over splits; paired "
                "difference against Sw-dae; the validation users' mean beside, for choosing; "
                "`Sw-dae{...}`: the default with those parameters changed):",
                "",
                "| model | test NDCG@100 | Sw-dae minus model | valid NDCG@100 | splits | fit s |",
                "|---|---|---|---|---|---|",
            ]
            per = {
                m: {
                    int(k.split()[2][1:]): r for k, r in rows.items() if k.startswith(f"proof {m} ")
                }
                for m in models
            }
            for m in models:
                s = sorted(per[m])
                v = np.array([per[m][i]["test_ndcg@100"] for i in s])
                common = [i for i in s if i in per.get("Sw-dae", {})]
                d = np.array(
                    [per["Sw-dae"][i]["test_ndcg@100"] - per[m][i]["test_ndcg@100"] for i in common]
                )
                se = lambda a: a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else float("nan")  # noqa: E731
                diff = "" if m == "Sw-dae" or not len(d) else f"{d.mean():+.4f} ± {se(d):.4f}"
                t = np.mean([per[m][i]["fit_seconds"] for i in s])
                valid = np.mean([per[m][i]["valid_ndcg@100"] for i in s])
                lines.append(
                    f"| {m} | {v.mean():.4f} ± {se(v):.4f} | {diff} | {valid:.4f} | {len(s)} "
                    f"| {t:.0f} |"
                )
            lines.append("")
    lines += [
        "Fit seconds above were measured on 2 cores shared with other jobs (load 3-6; the "
        "Sw-dae rows with the learning-rate decay at load 6-11).",
        "",
    ]
    for data in DATASETS:
        timed = {k[5:]: r for k, r in all_rows(data).items() if k.startswith("time ")}
        if timed:
            lines += [f"Alone on 2 threads (`defaults.py time --data {data}`), split 0:", ""]
            lines += [
                f"- `{m}`: fit {r['fit_seconds']:.1f} s, test NDCG@100 {r['test_ndcg@100']:.4f}"
                + (
                    f", best epoch {r['best_epoch_']} of {r['epochs_run']}"
                    if "best_epoch_" in r
                    else ""
                )
                + (f" ({r['note']})" if "note" in r else "")
                for m, r in timed.items()
            ]
            lines.append("")
    (RESULTS / "defaults.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=["study", "proof", "time", "tables"])
    parser.add_argument("--data", default="ml-1m", choices=DATASETS)
    parser.add_argument("--candidates", nargs="*", help="names of CANDIDATES or JSON params")
    parser.add_argument("--models", nargs="*", default=["Sw-dae", "EASE", "Mult-DAE"])
    parser.add_argument("--split-ids", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--part", default="", help="suffix of this process's results file")
    args = parser.parse_args()
    global PART
    PART = f".{args.part}" if args.part else ""
    torch.set_num_threads(args.threads)
    {"study": study, "proof": proof, "time": timing, "tables": tables}[args.experiment](args)


if __name__ == "__main__":
    main()
