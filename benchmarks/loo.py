"""Leave-one-out top-M accuracy on Last.fm 2k: the implicit protocol of NCAE.

Li, Zheng and Wu, Neural Collaborative Autoencoder (arXiv:1712.09043), §5.1 (protocol), §5.3
(Fig. 8 and Fig. 10: NCAE+, NCAE, NCAE-, WMF, NCF, eALS, BPR, POP on Lastfm) and §5.4
(Table 5: training on a share D of each user's interactions).

Protocol, per seed s (the split and every model use random_state=s):

1. Last.fm 2k plays, binarized (a user listened to an artist: 1), 1,892 users x 17,632 artists.
2. ``leave_one_out_validation_split``: each user's latest interaction is the test item and a
   random one of the rest the validation item. The plays have no time: a pair's time is the
   latest date the user tagged that artist (``load_lastfm(return_tag_dates=True)``, month
   granularity), ties on a user's latest date broken at random (``ties="random"``), and a
   user without any tagged artist holds out a random one. ``--test-item random`` holds out a
   random test item for everybody (the variant the peers' numbers below are measured on).
3. Each model's main hyper-parameter, the factor count K (NCAE: the hidden layer), is tuned
   on the validation items over ``--grid`` (the paper's K in {8, 16, 32, 64, 128}) with
   ``GridSearchCV(cv=[(rows, rows)], scoring=holdout_scorer(...))``: fit on the training
   part, rank all items but the training ones, best NDCG@100 wins. The other settings are the
   paper's (§5.1, §5.3): NCAE q=0.5, λ=0.01, c0=512, ω=0.5, 30 epochs of batches of 128;
   NCAE+ adds the augmentation ε=0.001, p=0.8; NCAE- weighs every missing entry c=0.05;
   WMF c=0.05, λ=0.1 (``WMF(alpha=19, l2_reg=2)``, the same minimiser); eALS c0=512, ω=0.5,
   λ=0.05; BPR learning rate 0.1, λ=0.01; NCF NeuMF 2K->K->K/2->1 with 4 negatives.
   WMF-tuned (not in the paper) searches WMF's alpha and l2_reg too (``SEARCH``), for a
   comparison with the peers' tuned numbers.
4. The best K is refitted on training + validation and scored on the test items: HR@M and
   NDCG@M, M in {50, 100, 150, 200, 250}, ranking all items but the training + validation
   ones, averaged over the users with a test item. Reported: mean ± standard error over the
   seeds, and the refit's wall time.
5. ``--ratio`` (Table 5): for D in {0.4, 0.6, 0.8}, ``data_ratio_split`` keeps a random
   share D of each user's training + validation interactions; the best K of step 3 is
   refitted on it and scored on the same test items.

Every user scored here is a training user, but ``recommend`` scores the rows it is given as
new users (fold-in): the autoencoders and popularity need nothing else; WMF, eALS, BPR and
NCF re-fit each user's factors (embeddings) to their own training items with the item side
frozen, instead of reading their trained vector as the paper's implementations do.

    python benchmarks/loo.py                         # latest (tag-dated) test item, 5 seeds
    python benchmarks/loo.py --test-item random      # random test item
    python benchmarks/loo.py --ratio                 # Table 5 on top (eALS, NCF, NCAE+)
    python benchmarks/loo.py --ratio --keep-done     # Table 5 for seeds already run
    python benchmarks/loo.py --test-item random --parity   # WMF vs implicit's ALS
    python benchmarks/loo.py --per-k                 # also the test scores of every K (Fig. 8)

The smoke run (1 seed, one K, epochs capped: checks the pipeline, not the numbers):

    OMP_NUM_THREADS=1 python benchmarks/loo.py --seeds 0 --grid 8 --max-epochs 2 \\
        --ratio --ratios 0.4 --out /tmp/loo_smoke

Writes ``loo_lastfm-2k.json`` and ``loo_lastfm-2k.md`` under ``--out`` (default
benchmarks/results); results of other seeds, models and protocols already there are kept.

Peers measured on lastfm-2k leave-one-out with a random test item: implicit ALS HR@100 0.522
/ NDCG@100 0.198, BPR 0.395 / 0.141, POP 0.254 / 0.076.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from skcfae import BPR, EALS, NCF, WMF, NCAEImplicit, Popularity
from skcfae._ranking import KERNELS
from skcfae.datasets import load_lastfm
from skcfae.metrics import holdout_scorer
from skcfae.model_selection import data_ratio_split, leave_one_out_validation_split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
NAME = "loo_lastfm-2k"
MODELS = ["NCAE+", "NCAE", "NCAE-", "WMF", "WMF-tuned", "NCF", "eALS", "BPR", "POP"]
RATIO_MODELS = ["eALS", "NCF", "NCAE+"]
GRID = [8, 16, 32, 64, 128]
RATIOS = [0.4, 0.6, 0.8]
CUTOFFS = [50, 100, 150, 200, 250]
TUNE_K = 100  # the cut-off of the tuning metric (§5.1: 100 unless noted)
PEERS = {  # lastfm-2k, random test item
    "implicit ALS": (0.522, 0.198),
    "BPR": (0.395, 0.141),
    "POP": (0.254, 0.076),
}
#: ``--parity``: skcfae's WMF and implicit's ALS (the same model: Hu et al. 2008) at the same
#: settings, label -> (factors, regularization λ, alpha: confidence 1 + alpha · x), 15 sweeps.
PARITY = {
    "implicit's defaults": (100, 0.01, 1.0),
    "λ 0.1, alpha 5": (100, 0.1, 5.0),
    "the paper's WMF (c = 0.05, λ = 0.1), K 128": (128, 2.0, 19.0),
}
#: Settings searched on the validation items beside K (the peers' numbers are of tuned models).
SEARCH = {"WMF-tuned": {"alpha": [2.0, 5.0, 10.0, 20.0, 40.0], "l2_reg": [0.1, 1.0, 10.0, 100.0]}}
PAPER_ORDER = [  # §5.3 on Lastfm: (better, worse)
    ("NCAE+", "NCAE"),
    ("NCAE", "NCAE-"),
    ("NCAE-", "WMF"),
    ("NCAE+", "NCF"),
    ("NCAE+", "eALS"),
    ("NCAE+", "BPR"),
    ("NCAE+", "POP"),
]


def make(name: str, seed: int):
    """The model of the paper's settings (§5.1, §5.3) and the name of its K parameter."""
    if name == "NCAE+":
        return NCAEImplicit(random_state=seed), "hidden_layer_sizes"
    if name == "NCAE":
        return NCAEImplicit(augmentation=False, random_state=seed), "hidden_layer_sizes"
    if name == "NCAE-":
        model = NCAEImplicit(
            weighting="uniform", uniform_weight=0.05, augmentation=False, random_state=seed
        )
        return model, "hidden_layer_sizes"
    if name == "WMF":
        return WMF(alpha=19.0, l2_reg=2.0, random_state=seed), "n_components"
    if name == "WMF-tuned":  # alpha and l2_reg from SEARCH
        return WMF(random_state=seed), "n_components"
    if name == "NCF":
        return NCF(random_state=seed), "n_components"
    if name == "eALS":
        return EALS(random_state=seed), "n_components"
    if name == "BPR":
        return BPR(learning_rate=0.1, l2_reg=0.01, random_state=seed), "n_components"
    if name == "POP":
        return Popularity(), None
    raise ValueError(f"unknown model {name!r}; choose from {MODELS}")


def k_value(param: str, K: int):
    return (K,) if param == "hidden_layer_sizes" else K


def k_of(param: str, value) -> int:
    """The K of a ``param`` value: the inverse of :func:`k_value`."""
    return int(value[0] if param == "hidden_layer_sizes" else value)


def load(test_item: str):
    fm = load_lastfm(path=SHARED / "lastfm-2k", return_tag_dates=True)
    X = fm.data.copy()
    X.data[:] = 1.0
    return X, (fm.tag_dates if test_item == "latest" else None)


def split_info(X, T, train, valid, test) -> dict:
    info = {
        "users": int(X.shape[0]),
        "items": int(X.shape[1]),
        "interactions": int(X.nnz),
        "test_users": int(np.count_nonzero(np.diff(test.indptr))),
        "valid_users": int(np.count_nonzero(np.diff(valid.indptr))),
    }
    if T is not None:
        timed = ~np.isnan(T.data)
        rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
        latest = np.full(X.shape[0], -np.inf)
        np.maximum.at(latest, rows[timed], T.data[timed])
        at_latest = np.bincount(rows[timed & (T.data == latest[rows])], minlength=X.shape[0])
        has_test = np.diff(test.indptr) > 0
        info["test_users_dated"] = int(np.count_nonzero(has_test & (latest > -np.inf)))
        info["test_users_tied"] = int(np.count_nonzero(has_test & (at_latest > 1)))
        info["test_users_random"] = int(np.count_nonzero(has_test & (latest == -np.inf)))
    return info


def cap_epochs(model, max_epochs: int | None):
    if max_epochs is not None and "epochs" in model.get_params():
        model.set_params(epochs=min(model.get_params()["epochs"], max_epochs))
    return model


def test_scores(model, history, test) -> dict:
    """HR@M and NDCG@M of the test items, ranked from ``history``, with per-user s.e."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    top = model.recommend(history[users], n=max(CUTOFFS))
    out = {}
    for M in CUTOFFS:
        for metric, label in (("hit_rate", "hr"), ("ndcg", "ndcg")):
            v = KERNELS[metric](top, test[users], M)
            out[f"{label}@{M}"] = float(v.mean())
            out[f"{label}@{M}_user_se"] = float(v.std(ddof=1) / np.sqrt(v.size))
    return out


def tune(name: str, seed: int, grid, train, valid, max_epochs):
    """Grid over K (and the model's SEARCH settings) on the validation items; returns (best K
    or None, the best SEARCH settings, per-candidate validation rows)."""
    from sklearn.model_selection import GridSearchCV

    model, param = make(name, seed)
    cap_epochs(model, max_epochs)
    if param is None:
        return None, {}, {}
    rows = np.arange(train.shape[0])
    scoring = {
        "hr": holdout_scorer("hit_rate", k=TUNE_K),
        "ndcg": holdout_scorer("ndcg", k=TUNE_K),
    }
    search = GridSearchCV(
        model,
        {param: [k_value(param, K) for K in grid], **SEARCH.get(name, {})},
        cv=[(rows, rows)],
        scoring=scoring,
        refit=False,
        error_score="raise",
    )
    search.fit(train, valid)
    res = search.cv_results_
    per_candidate = {}
    for i, params in enumerate(res["params"]):
        extra = {k: v for k, v in params.items() if k != param}
        key = str(k_of(param, params[param]))
        key += "".join(f" {k}={v:g}" for k, v in sorted(extra.items()))
        per_candidate[key] = {
            f"hr@{TUNE_K}": float(res["mean_test_hr"][i]),
            f"ndcg@{TUNE_K}": float(res["mean_test_ndcg"][i]),
            "fit_s": float(res["mean_fit_time"][i]),
        }
    best = res["params"][int(np.argmax(res["mean_test_ndcg"]))]
    return k_of(param, best[param]), {k: v for k, v in best.items() if k != param}, per_candidate


def refit(name: str, seed: int, K, X_fit, test, max_epochs, extra=None) -> dict:
    model, param = make(name, seed)
    cap_epochs(model, max_epochs)
    if param is not None:
        model.set_params(**{param: k_value(param, K)}, **(extra or {}))
    tic = time.perf_counter()
    model.fit(X_fit)
    fit_s = time.perf_counter() - tic
    row = test_scores(model, X_fit, test)
    row["fit_s"] = fit_s
    return row


def parity(seed: int, X_fit, test) -> dict:
    """WMF against implicit's ALS at each setting of :data:`PARITY` (one thread each): test
    HR@100 / NDCG@100 (implicit ranks from its trained user factors, WMF folds the same users
    in exactly) and fit seconds."""
    import scipy.sparse as sp

    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError as exc:
        raise SystemExit("--parity needs implicit: pip install -e .[bench]") from exc

    users = np.flatnonzero(np.diff(test.indptr) > 0)
    fitted = sp.csr_matrix(X_fit)  # implicit takes scipy's matrix type
    out = {}
    for label, (factors, lam, alpha) in PARITY.items():
        tic = time.perf_counter()
        als = AlternatingLeastSquares(
            factors=factors,
            regularization=lam,
            alpha=alpha,
            iterations=15,
            num_threads=1,
            random_state=seed,
        )
        als.fit(fitted, show_progress=False)
        theirs = {"fit_s": time.perf_counter() - tic}
        top, _ = als.recommend(users, fitted[users], N=100, filter_already_liked_items=True)
        for metric, key in (("hit_rate", "hr@100"), ("ndcg", "ndcg@100")):
            theirs[key] = float(KERNELS[metric](top, test[users], 100).mean())
        model = WMF(n_components=factors, alpha=alpha, l2_reg=lam, epochs=15, random_state=seed)
        tic = time.perf_counter()
        model.fit(X_fit)
        ours = {"fit_s": time.perf_counter() - tic}
        ours.update({k: v for k, v in test_scores(model, X_fit, test).items() if "@100" in k})
        out[label] = {"implicit": theirs, "skcfae": ours}
        print(f"parity {label}: implicit {theirs} | WMF {ours}", flush=True)
    return out


def summarize(per_seed: dict) -> dict:
    """Mean and standard error over the seeds of every test number."""
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]
    keys = [
        k
        for k, v in first.items()
        if isinstance(v, int | float) and not k.endswith("_user_se") and k != "K"
    ]
    out: dict = {"n_seeds": len(seeds)}
    for key in keys:
        v = np.array([per_seed[s][key] for s in seeds], dtype=float)
        out[key] = float(v.mean())
        out[key + "_se"] = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None
    out["K"] = [per_seed[s].get("K") for s in seeds]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--grid", nargs="+", type=int, default=GRID, help="values of K")
    parser.add_argument("--test-item", choices=["latest", "random"], default="latest")
    parser.add_argument("--ratio", action="store_true", help="Table 5 (data ratio D)")
    parser.add_argument("--ratios", nargs="+", type=float, default=RATIOS)
    parser.add_argument("--ratio-models", nargs="+", default=RATIO_MODELS, choices=MODELS)
    parser.add_argument("--per-k", action="store_true", help="test scores of every K")
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="cap every model's epochs (smoke runs only)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--parity", action="store_true", help="WMF vs implicit's ALS, same settings (only)"
    )
    parser.add_argument(
        "--keep-done",
        action="store_true",
        help="reuse the tuned K and test scores of the seeds a model has in the results file "
        "(e.g. to add --ratio to finished runs)",
    )
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{NAME}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    block = results.setdefault(args.test_item, {"split": {}, "models": {}, "ratio": {}})
    if not args.parity:  # the settings of the model runs
        block["settings"] = {
            "grid": args.grid,
            "tuned_on": f"validation NDCG@{TUNE_K}",
            "max_epochs": args.max_epochs,
            "ties": "random" if args.test_item == "latest" else None,
        }
    X, T = load(args.test_item)
    for seed in args.seeds:
        ties = "random" if T is not None else "highest_item"
        train, valid, test = leave_one_out_validation_split(X, T, ties=ties, random_state=seed)
        X_fit = train + valid
        info = split_info(X, T, train, valid, test)
        print(f"== {args.test_item} test item, seed {seed}: {info}")
        if args.parity:  # "split" lists the seeds of the model rows
            block.setdefault("parity", {})[str(seed)] = parity(seed, X_fit, test)
            path.write_text(json.dumps(results, indent=2) + "\n")
            continue
        block["split"][str(seed)] = info
        for name in args.models:
            entry = block["models"].setdefault(name, {"seeds": {}})
            if args.keep_done and str(seed) in entry["seeds"]:
                row = entry["seeds"][str(seed)]
                K, extra = row["K"], row.get("params", {})
            else:
                tic = time.perf_counter()
                K, extra, per_k = tune(name, seed, args.grid, train, valid, args.max_epochs)
                tune_s = time.perf_counter() - tic
                row = refit(name, seed, K, X_fit, test, args.max_epochs, extra)
                row.update(K=K, tune_s=tune_s, **({"params": extra} if extra else {}))
                entry["seeds"][str(seed)] = {**row, "valid": per_k}
            if args.per_k and K is not None:
                entry["seeds"][str(seed)]["test_per_k"] = {
                    str(k): refit(name, seed, k, X_fit, test, args.max_epochs, extra)
                    for k in args.grid
                }
            entry["summary"] = summarize(entry["seeds"])
            print(
                f"{name:<6} K={K} HR@100 {row['hr@100']:.3f} NDCG@100 {row['ndcg@100']:.3f} "
                f"fit {row['fit_s']:.1f}s tune {row['tune_s']:.1f}s",
                flush=True,
            )
            if args.ratio and name in args.ratio_models:
                for D in args.ratios:
                    kept, _ = data_ratio_split(X_fit, D, random_state=seed)
                    r = refit(name, seed, K, kept, test, args.max_epochs, extra)
                    r["K"] = K
                    slot = block["ratio"].setdefault(name, {}).setdefault(str(D), {"seeds": {}})
                    slot["seeds"][str(seed)] = r
                    slot["summary"] = summarize(slot["seeds"])
                    print(f"       D={D}: HR@100 {r['hr@100']:.3f} NDCG@100 {r['ndcg@100']:.3f}")
            path.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results, args.out / f"{NAME}.md")


def _cell(s: dict, key: str) -> str:
    se = s.get(key + "_se")
    return f"{s[key]:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def write_markdown(results: dict, path: Path) -> None:
    lines = [
        "# Leave-one-out on Last.fm 2k (NCAE, Li, Zheng & Wu, arXiv:1712.09043, §5.1, §5.3-5.4)",
        "",
        "Made by `benchmarks/loo.py` (protocol in its docstring). Test items of the users with",
        "at least 2 interactions, all items but the training ones ranked; mean ± standard error",
        "over the seeds (none with one seed); K tuned on the validation items by NDCG@100.",
        "",
    ]
    for protocol in ("latest", "random"):
        if protocol not in results:
            continue
        block = results[protocol]
        seeds = sorted(block["split"], key=int)
        first = block["split"][seeds[0]]
        title = (
            "latest (tag-dated) test item, ties at random, random without tags"
            if protocol == "latest"
            else "random test item"
        )
        lines += [f"## {title}", ""]
        desc = (
            f"{first['users']:,} users, {first['items']:,} items, {first['interactions']:,} "
            f"interactions; {first['test_users']:,} test users"
        )
        if "test_users_dated" in first:
            desc += (
                f", of which {first['test_users_dated']:,} with a dated test item "
                f"({first['test_users_tied']:,} of them with a tie on the latest date) and "
                f"{first['test_users_random']:,} without any tag (random)"
            )
        lines += [
            desc + f" (seed {seeds[0]}). Seeds: {', '.join(seeds)}. "
            f"Settings: {block.get('settings', {})}.",
            "",
            "| model | HR@100 | NDCG@100 | HR@50 | NDCG@50 | HR@250 | NDCG@250 | K per seed "
            "| refit s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in MODELS:
            if name not in block["models"]:
                continue
            s = block["models"][name]["summary"]
            lines.append(
                f"| {name} | {_cell(s, 'hr@100')} | {_cell(s, 'ndcg@100')} | "
                f"{_cell(s, 'hr@50')} | {_cell(s, 'ndcg@50')} | {_cell(s, 'hr@250')} | "
                f"{_cell(s, 'ndcg@250')} | {s['K']} | {s['fit_s']:.1f} |"
            )
        lines.append("")
        for name in SEARCH:
            per_seed = block["models"].get(name, {}).get("seeds", {})
            chosen = [per_seed[sd].get("params") for sd in sorted(per_seed, key=int)]
            if chosen:
                lines += [f"{name}: settings chosen on validation items, per seed: {chosen}.", ""]
        order = []
        for better, worse in PAPER_ORDER:
            if better in block["models"] and worse in block["models"]:
                a, b = block["models"][better]["summary"], block["models"][worse]["summary"]
                holds = [m for m in ("hr@100", "ndcg@100") if a[m] > b[m]]
                verdict = "holds" if len(holds) == 2 else (f"on {holds[0]} only" if holds else "no")
                order.append(f"{better} > {worse}: {verdict}")
        if order:
            lines += ["Paper's order (§5.3, Fig. 8 and 10, Lastfm): " + "; ".join(order) + ".", ""]
        if protocol == "random":
            lines += [
                "Peers on the same protocol (HR@100 / NDCG@100): "
                + "; ".join(f"{k} {hr:.3f} / {nd:.3f}" for k, (hr, nd) in PEERS.items())
                + ".",
                "",
            ]
        if block.get("parity"):
            seeds_p = sorted(block["parity"], key=int)
            lines += [
                "### WMF against implicit's ALS at the same settings (15 sweeps, 1 thread each)",
                "",
                f"Seeds {', '.join(seeds_p)}; mean over the seeds. implicit ranks from its "
                "trained user factors, WMF folds the same users in (exact least squares).",
                "",
                "| setting | implicit HR@100 / NDCG@100 | WMF HR@100 / NDCG@100 | fit s "
                "(implicit / WMF) |",
                "|---|---|---|---|",
            ]
            for label in PARITY:
                runs = [p[label] for sd in seeds_p if label in (p := block["parity"][sd])]
                if not runs:
                    continue

                def mean(who: str, key: str, runs: list = runs) -> float:
                    return float(np.mean([r[who][key] for r in runs]))

                lines.append(
                    f"| {label} | {mean('implicit', 'hr@100'):.3f} / "
                    f"{mean('implicit', 'ndcg@100'):.3f} | {mean('skcfae', 'hr@100'):.3f} / "
                    f"{mean('skcfae', 'ndcg@100'):.3f} | {mean('implicit', 'fit_s'):.1f} / "
                    f"{mean('skcfae', 'fit_s'):.1f} |"
                )
            lines.append("")
        if block.get("ratio"):
            ratios = sorted({D for per in block["ratio"].values() for D in per}, key=float)
            lines += [
                "### Data ratio D (Table 5): the best K refitted on a share D of each user's "
                "training interactions",
                "",
                "| model | metric | " + " | ".join(f"D = {float(D):.0%}" for D in ratios) + " |",
                "|---|---|" + "---|" * len(ratios),
            ]
            for name in MODELS:
                if name not in block["ratio"]:
                    continue
                per = block["ratio"][name]
                for metric in ("hr@50", "ndcg@50", "hr@100", "ndcg@100"):
                    cells = [_cell(per[D]["summary"], metric) if D in per else "" for D in ratios]
                    lines.append(f"| {name} | {metric.upper()} | " + " | ".join(cells) + " |")
            lines.append("")
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
