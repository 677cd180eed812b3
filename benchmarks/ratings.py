"""Rating prediction on the 90/10 random-entries protocol: every skcfae rating model and
Surprise's classics on the very same splits.

Protocol (Strub & Mary 2015; AutoRec): for each seed, ``rating_holdout_split(R, test_size=0.1,
random_state=seed)`` holds out 10% of the ratings as the test set. A model that accepts
``X_valid`` (the neural models, BiasedMF, ALSWR) is fitted on 90% of the training ratings and
early-stopped on the other 10% (``rating_holdout_split(train, test_size=0.1,
random_state=100 + seed)``); the test ratings are never seen before the final score. Surprise's
``SVD``, ``SVDpp``, ``KNNBaseline`` and ``BaselineOnly`` (their defaults) are fitted on the
whole training part (built into a Surprise ``Trainset`` from the same entries) and tested on
the same test entries. Reported: test RMSE mean ± standard error over the seeds, fit seconds.

The skcfae models are discovered with ``skcfae.utils.all_estimators("rating")`` and built with
their defaults (``random_state=seed``); a model with a ``kind`` parameter runs in both kinds.
:data:`VARIANTS` adds labelled rows of a model with other fixed parameters
(``NCAE(pretrain=False)``, the paper's plain NCAE). :data:`TUNED` adds rows whose main
hyper-parameter is chosen on the validation entries (the papers' own procedure, e.g. Li et
al. §5.1: "grid search ... on a separate validation set"): each candidate is fitted on the fit
part and early-stopped on the validation entries, the candidate with the lowest validation
RMSE (at its best epoch) is kept, and only that model is scored on the test entries; ``fit s``
is then the time of the whole search. The Markdown also gives, for every model, the paired
difference of test RMSE against the best Surprise model over the common seeds (mean ± s.e. of
the per-seed differences).
``--parity`` also fits BiasedMF and Surprise's SVD with the same hyperparameters and epochs,
without validation (the implementation check).

Usage::

    python benchmarks/ratings.py --data ml-100k --seeds 0 1 2 3 4
    python benchmarks/ratings.py --data ml-100k --models BiasedMF ALSWR Surprise-SVD --parity
    python benchmarks/ratings.py --data ml-100k --models "AutoRec (λ chosen on validation entries)"

Results go to ``benchmarks/results/ratings_<data>.json`` and ``.md``; a run updates the
entries of the models it ran and keeps the others. Needs ``pip install -e .[bench]`` for
Surprise (its models are skipped, with a message, without it).
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from skcfae.model_selection import rating_holdout_split
from skcfae.utils import all_estimators

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SURPRISE = ("SVD", "SVDpp", "KNNBaseline", "BaselineOnly")
#: Hyperparameters shared by BiasedMF and Surprise's SVD in the ``--parity`` runs:
#: Strub & Mary's SVD (Table 2) and Surprise's defaults.
PARITY = {
    "rank 15, lr 0.02, λ 0.02, 20 epochs": dict(n_components=15, learning_rate=0.02, l2_reg=0.02),
    "rank 100, lr 0.005, λ 0.02, 20 epochs": dict(
        n_components=100, learning_rate=0.005, l2_reg=0.02
    ),
}

#: Labelled rows of a discovered model with other fixed parameters: label -> (model, params).
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "NCAE(pretrain=False)": ("NCAE", {"pretrain": False}),
    "CFN(2 layers)": ("CFN", {"hidden_ratios": (0.1,)}),
}
#: Rows with one hyper-parameter chosen on the validation entries:
#: label -> (model, fixed params, searched parameter, candidates).
#: AutoRec: its paper's range of λ ({0.001, ..., 1000}, Sedhain et al. 2015) from 1 up, about
#: x3 apart (below 1 nothing changes with the per-row scaling λ/N: on ml-100k's split 0 the
#: validation RMSE is 0.9002 at 0.1 and 0.9001 at 1).
#: NCAE: 10 to 50 times the paper's 2e-4 (set for MovieLens 10M, §5.1), around the optimum on
#: the validation entries of ml-100k's split 0 (validation RMSE of NCAE* 0.957 at 2e-4, 0.916
#: at 2e-3, 0.905 at 5e-3, 0.912 at 1e-2, 0.934 at 2e-2; see the NCAE docstring); three
#: candidates bound the time of a search (15 fits per data set). With ``balance_rows=False``
#: (every rating weighs the same in Eq. 5) the optimum there moves up (validation RMSE without
#: pre-training 0.905 at 2e-3, 0.888 at 5e-3, 0.886 at 1e-2): one step higher.
_NCAE_GRID = (2e-3, 5e-3, 1e-2)
_NCAE_ENTRY_GRID = (5e-3, 1e-2, 2e-2)
TUNED: dict[str, tuple[str, dict[str, Any], str, tuple[Any, ...]]] = {
    "AutoRec (λ chosen on validation entries)": (
        "AutoRec",
        {},
        "l2_reg",
        (1.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
    ),
    "NCAE (λ chosen on validation entries)": ("NCAE", {}, "l2_reg", _NCAE_GRID),
    "NCAE(pretrain=False, λ chosen on validation entries)": (
        "NCAE",
        {"pretrain": False},
        "l2_reg",
        _NCAE_GRID,
    ),
    "NCAE(balance_rows=False, λ chosen on validation entries)": (
        "NCAE",
        {"balance_rows": False},
        "l2_reg",
        _NCAE_ENTRY_GRID,
    ),
    "NCAE(pretrain=False, balance_rows=False, λ chosen on validation entries)": (
        "NCAE",
        {"pretrain": False, "balance_rows": False},
        "l2_reg",
        _NCAE_ENTRY_GRID,
    ),
}

#: The papers' orderings, paired by seed in the Markdown: (a, b) reads "a beats b". Sedhain et
#: al. (Table 1a): I-AutoRec < U-AutoRec. Strub & Mary (Table 2): V-CFN < U-CFN on MovieLens,
#: and the 4-layer CFN at most the 2-layer one. Li et al. (Table 3): NCAE* 0.767 < NCAE 0.775 <
#: I-AutoRec 0.782 on MovieLens 10M, at the defaults and with λ chosen on the validation entries.
PAIRS: tuple[tuple[str, str], ...] = (
    ("AutoRec", "AutoRec(kind=user)"),
    ("CFN", "CFN(kind=user)"),
    ("CFN", "CFN(2 layers)"),
    ("NCAE", "NCAE(pretrain=False)"),
    ("NCAE(pretrain=False)", "AutoRec"),
    (
        "NCAE (λ chosen on validation entries)",
        "NCAE(pretrain=False, λ chosen on validation entries)",
    ),
    (
        "NCAE(pretrain=False, λ chosen on validation entries)",
        "AutoRec (λ chosen on validation entries)",
    ),
    (
        "NCAE(balance_rows=False, λ chosen on validation entries)",
        "NCAE(pretrain=False, balance_rows=False, λ chosen on validation entries)",
    ),
    (
        "NCAE(pretrain=False, balance_rows=False, λ chosen on validation entries)",
        "AutoRec (λ chosen on validation entries)",
    ),
)


def load(name: str) -> sp.csr_array:
    """The ratings of ``name`` as a users x items CSR matrix (ids made contiguous)."""
    if name == "ml-100k":
        raw = np.loadtxt(DATA / "ml-100k" / "u.data", dtype=np.int64)
        users, items, values = raw[:, 0], raw[:, 1], raw[:, 2].astype(np.float32)
    elif name == "ml-latest-small":
        with open(DATA / "ml-latest-small" / "ratings.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        users = np.array([int(r["userId"]) for r in rows])
        items = np.array([int(r["movieId"]) for r in rows])
        values = np.array([float(r["rating"]) for r in rows], dtype=np.float32)
    else:
        raise ValueError(f"unknown data set {name!r}; use ml-100k or ml-latest-small")
    _, u = np.unique(users, return_inverse=True)
    _, i = np.unique(items, return_inverse=True)
    return sp.csr_array((values, (u, i)), shape=(u.max() + 1, i.max() + 1))


def _rmse(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2)))


# -- the contenders --------------------------------------------------------------------------
def skcfae_models() -> dict[str, Callable[[int], Any]]:
    """Label -> factory(seed) for every discovered skcfae rating model (both kinds)."""
    out: dict[str, Callable[[int], Any]] = {}
    for name, cls in all_estimators("rating"):
        params = cls().get_params()
        kinds = ["item", "user"] if "kind" in params else [None]
        for kind in kinds:
            label = name if kind in (None, params.get("kind")) else f"{name}(kind={kind})"

            def make(seed: int, cls: type = cls, kind: str | None = kind) -> Any:
                est = cls()
                if kind is not None:
                    est.set_params(kind=kind)
                if "random_state" in est.get_params():
                    est.set_params(random_state=seed)
                return est

            out[label] = make
    classes = dict(all_estimators("rating"))
    for label, (name, fixed) in VARIANTS.items():
        if name in classes:

            def variant(seed: int, cls: type = classes[name], fixed: dict = fixed) -> Any:
                est = cls(**fixed)
                if "random_state" in est.get_params():
                    est.set_params(random_state=seed)
                return est

            out[label] = variant
    return out


def _valid_rmse(est: Any) -> float:
    """The validation RMSE of the epoch a fitted model kept (its best epoch)."""
    scores = [h["valid_rmse"] for h in est.history_ if "valid_rmse" in h]
    return float(min(scores))


def fit_tuned(label: str, seed: int, train: sp.csr_array) -> tuple[Any, dict]:
    """Fit every candidate of ``TUNED[label]`` on the fit part, early-stopped on the validation
    entries; return the one of the lowest validation RMSE. The test entries are not used."""
    name, fixed, param, candidates = TUNED[label]
    cls = dict(all_estimators("rating"))[name]
    fit_part, valid = rating_holdout_split(train, test_size=0.1, random_state=100 + seed)
    tic = time.perf_counter()
    best, best_score, scores = None, np.inf, {}
    for value in candidates:
        est = cls(**fixed, **{param: value}, random_state=seed).fit(fit_part, X_valid=valid)
        scores[repr(value)] = score = _valid_rmse(est)
        if score < best_score:
            best, best_score = est, score
    assert best is not None
    info = {
        "fit_s": time.perf_counter() - tic,
        "chosen": {param: best.get_params()[param]},
        "valid_rmse": scores,
        "best_epoch": int(best.best_epoch_),
    }
    return best, info


def fit_skcfae(make: Callable[[int], Any], seed: int, train: sp.csr_array) -> tuple[Any, dict]:
    est = make(seed)
    tic = time.perf_counter()
    if "X_valid" in inspect.signature(est.fit).parameters:
        fit_part, valid = rating_holdout_split(train, test_size=0.1, random_state=100 + seed)
        est.fit(fit_part, X_valid=valid)
    else:
        est.fit(train)
    info = {"fit_s": time.perf_counter() - tic}
    if hasattr(est, "best_epoch_"):
        info["best_epoch"] = int(est.best_epoch_)
    return est, info


def _surprise_sets(train: sp.csr_array, test: sp.csr_array) -> tuple[Any, list]:
    from surprise import Dataset, Reader

    low, high = float(train.data.min()), float(train.data.max())
    coo = sp.coo_array(train)
    raw = list(
        zip(
            coo.row.tolist(),
            coo.col.tolist(),
            coo.data.astype(float).tolist(),
            [None] * coo.nnz,
            strict=True,
        )
    )
    trainset = Dataset(Reader(rating_scale=(low, high))).construct_trainset(raw)
    t = sp.coo_array(test)
    testset = list(zip(t.row.tolist(), t.col.tolist(), t.data.astype(float).tolist(), strict=True))
    return trainset, testset


def run_surprise(name: str, seed: int, trainset: Any, testset: list, **params: Any) -> dict:
    import surprise

    cls = getattr(surprise, name)
    if "random_state" in inspect.signature(cls.__init__).parameters:
        params.setdefault("random_state", seed)
    if name == "KNNBaseline":
        params.setdefault("verbose", False)
    algo = cls(**params)
    tic = time.perf_counter()
    algo.fit(trainset)
    fit_s = time.perf_counter() - tic
    pred = [algo.predict(u, i, r_ui=r, clip=True).est for u, i, r in testset]
    return {"rmse": _rmse(np.array(pred), np.array([r for _, _, r in testset])), "fit_s": fit_s}


# -- the runs -----------------------------------------------------------------------------------
def _summary(runs: list[dict]) -> dict:
    rmse = np.array([r["rmse"] for r in runs])
    se = float(rmse.std(ddof=1) / np.sqrt(rmse.size)) if rmse.size > 1 else float("nan")
    return {
        "rmse_mean": float(rmse.mean()),
        "rmse_se": se,
        "fit_s_mean": float(np.mean([r["fit_s"] for r in runs])),
        "seeds": [r["seed"] for r in runs],
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="ml-100k", choices=["ml-100k", "ml-latest-small"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--models", nargs="+", default=None, help="labels; default: all")
    parser.add_argument("--parity", action="store_true", help="BiasedMF vs Surprise SVD")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(args.threads)
    except ImportError:  # pragma: no cover
        pass
    try:
        import surprise  # noqa: F401

        have_surprise = True
    except ImportError:
        have_surprise = False
        print("scikit-surprise is not installed (pip install -e .[bench]): skipping its models")

    ours = skcfae_models()
    peers = [f"Surprise-{n}" for n in SURPRISE] if have_surprise else []
    known = [*ours, *TUNED, *(f"Surprise-{n}" for n in SURPRISE)]
    labels = args.models or [*ours, *TUNED, *peers]
    unknown = [m for m in labels if m not in known]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; available: {[*ours, *TUNED, *peers]}")
    labels = [m for m in labels if m in ours or m in TUNED or m in peers]

    R = load(args.data)
    out_json = RESULTS / f"ratings_{args.data}.json"
    runs: dict[str, list[dict]] = {m: [] for m in labels}
    parity_runs: dict[str, list[dict]] = {}
    for seed in args.seeds:
        train, test = rating_holdout_split(R, test_size=0.1, random_state=seed)
        sets = _surprise_sets(train, test) if have_surprise else None
        for label in labels:
            if label in ours or label in TUNED:
                if label in ours:
                    est, info = fit_skcfae(ours[label], seed, train)
                else:
                    est, info = fit_tuned(label, seed, train)
                info["rmse"] = -float(est.score(test))
            else:
                assert sets is not None
                info = run_surprise(label.removeprefix("Surprise-"), seed, *sets)
            info["seed"] = seed
            runs[label].append(info)
            print(f"{args.data} seed {seed} {label}: " + json.dumps(info), flush=True)
        if args.parity and have_surprise:
            from skcfae import BiasedMF

            assert sets is not None
            for title, hp in PARITY.items():
                tic = time.perf_counter()
                est = BiasedMF(**hp, epochs=20, n_iter_no_change=None, random_state=seed)
                est.fit(train)
                mine = {"rmse": -float(est.score(test)), "fit_s": time.perf_counter() - tic}
                theirs = run_surprise(
                    "SVD",
                    seed,
                    *sets,
                    n_factors=hp["n_components"],
                    lr_all=hp["learning_rate"],
                    reg_all=hp["l2_reg"],
                    n_epochs=20,
                )
                for who, info in (("BiasedMF", mine), ("Surprise-SVD", theirs)):
                    info["seed"] = seed
                    parity_runs.setdefault(f"{title}|{who}", []).append(info)
                print(f"parity {title} seed {seed}: BiasedMF {mine} SVD {theirs}", flush=True)
    # read the file only now, so that runs of other models meanwhile are kept
    report = json.loads(out_json.read_text()) if out_json.exists() else {}
    report.update(
        data=args.data,
        shape=list(R.shape),
        n_ratings=int(R.nnz),
        protocol=(
            "rating_holdout_split(R, 0.1, seed); models accepting X_valid fit on "
            "rating_holdout_split(train, 0.1, 100 + seed)[0], early-stopped on [1]; others "
            "(Surprise) fit on the whole train part; RMSE on the test part"
        ),
    )
    results = report.setdefault("results", {})
    parity = report.setdefault("parity", {})
    for label, done in runs.items():
        results[label] = _summary(done)
    for key, done in parity_runs.items():
        parity[key] = _summary(done)
    RESULTS.mkdir(exist_ok=True)
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"ratings_{args.data}.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        f"# Rating prediction on {report['data']} (90/10 random entries)",
        "",
        f"{report['n_ratings']} ratings, {report['shape'][0]} users x {report['shape'][1]} "
        f"items. Protocol: {report['protocol']}. Models at their defaults unless the label "
        "says otherwise. Fit seconds: mean "
        "wall time of one fit on the machine of the run, with `torch.set_num_threads(1)`. "
        "Written by `benchmarks/ratings.py`.",
        "",
        "| model | test RMSE (mean ± s.e.) | best epoch | fit s | seeds |",
        "|---|---|---|---|---|",
    ]
    ranked = sorted(report["results"].items(), key=lambda kv: kv[1]["rmse_mean"])
    for label, s in ranked:
        seeds = " ".join(str(x) for x in s["seeds"])
        epochs = [r["best_epoch"] for r in s["runs"] if "best_epoch" in r]
        best = f"{np.mean(epochs):.0f}" if epochs else "-"
        lines.append(
            f"| {label} | {s['rmse_mean']:.4f} ± {s['rmse_se']:.4f} | {best} | "
            f"{s['fit_s_mean']:.1f} | {seeds} |"
        )
    lines += _paired_lines(report["results"])
    ordered = [(a, b, d) for a, b in PAIRS if (d := _pair(report["results"], a, b)) is not None]
    if ordered:
        lines += [
            "",
            "## The papers' orderings, paired by seed",
            "",
            "Test RMSE of a minus that of b, mean ± s.e. over the common seeds (negative: a is "
            "better, as the paper says).",
            "",
            "| a | b | RMSE(a) − RMSE(b) | seeds |",
            "|---|---|---|---|",
        ]
        for a, b, (mean, se, n) in ordered:
            lines.append(f"| {a} | {b} | {mean:+.4f} ± {se:.4f} | {n} |")
    chosen = {k: s for k, s in report["results"].items() if s["runs"] and "chosen" in s["runs"][0]}
    if chosen:
        lines += [
            "",
            "## Hyper-parameters chosen on the validation entries",
            "",
            "Per seed: the value of the lowest validation RMSE among the candidates (each fitted "
            "on the fit part, early-stopped on the validation entries); the test entries are "
            "not used. The fit seconds of these rows are those of the whole search.",
            "",
            "| model | candidates | chosen (seeds in order) |",
            "|---|---|---|",
        ]
        for label, s in chosen.items():
            (param,) = s["runs"][0]["chosen"]
            values = " ".join(f"{r['chosen'][param]:g}" for r in s["runs"])
            grid = ", ".join(s["runs"][0]["valid_rmse"])
            lines.append(f"| {label} | {param} ∈ {{{grid}}} | {values} |")
    if report.get("parity"):
        lines += [
            "",
            "## BiasedMF vs Surprise SVD, same hyperparameters (no validation, whole train part)",
            "",
            "| hyperparameters | model | test RMSE (mean ± s.e.) | fit s | seeds |",
            "|---|---|---|---|---|",
        ]
        for key, s in report["parity"].items():
            title, who = key.split("|")
            seeds = " ".join(str(x) for x in s["seeds"])
            lines.append(
                f"| {title} | {who} | {s['rmse_mean']:.4f} ± {s['rmse_se']:.4f} | "
                f"{s['fit_s_mean']:.2f} | {seeds} |"
            )
    return "\n".join(lines) + "\n"


def paired(results: dict, a: str, b: str) -> tuple[float, float, int] | None:
    """Mean and standard error of ``rmse(a) - rmse(b)`` over the seeds both ran, and their
    number; None with fewer than 2 common seeds."""
    ra = {r["seed"]: r["rmse"] for r in results[a]["runs"]}
    rb = {r["seed"]: r["rmse"] for r in results[b]["runs"]}
    common = sorted(set(ra) & set(rb))
    if len(common) < 2:
        return None
    d = np.array([ra[s] - rb[s] for s in common])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size)), int(d.size)


def _pair(results: dict, a: str, b: str) -> tuple[float, float, int] | None:
    return paired(results, a, b) if a in results and b in results else None


def _paired_lines(results: dict) -> list[str]:
    """Every non-Surprise model against the best Surprise model, paired by seed."""
    theirs = [k for k in results if k.startswith("Surprise-")]
    if not theirs:
        return []
    ref = min(theirs, key=lambda k: results[k]["rmse_mean"])
    rows = []
    for label in sorted(results, key=lambda k: results[k]["rmse_mean"]):
        if label.startswith("Surprise-") or (diff := paired(results, label, ref)) is None:
            continue
        mean, se, n = diff
        rows.append(f"| {label} | {mean:+.4f} ± {se:.4f} | {n} |")
    if not rows:
        return []
    return [
        "",
        f"## Paired against {ref} (the best Surprise model)",
        "",
        f"Test RMSE of the model minus that of {ref} on the same split, mean ± s.e. over the "
        "common seeds (negative: the model is better).",
        "",
        f"| model | RMSE − {ref} | seeds |",
        "|---|---|---|",
        *rows,
    ]


if __name__ == "__main__":
    main()
