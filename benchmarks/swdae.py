"""Reproductions of papers/000_a2475424b54d3d60.txt (Sw-dae, WWW'20) on the data in ../shared/data.

Protocol: the strong-generalization split of accuracy.py (Liang et al.; 10% + 10% held-out
users), with ``--splits`` different user permutations (seeds 98765, 98766, ...). Every choice
(K, λ of EASE, the epoch of each neural model) is made on validation users; test users are
scored once. Mean over splits ± standard error of the split means.

The other baselines of Table 3 (§4.4), each chosen on the validation NDCG@100 of the split:

- WMF (Hu et al., ICDM 2008): the weight of a consumption event ``1 + α`` over {2, 5, 10},
  the low half of Khawar et al.'s {2, 5, 10, 30, 50, 100} (after Liang et al., WWW 2018), times
  λ ∈ {10, 30, 100}, which neither paper gives, at K = 100; then K = 200 at the chosen α and
  λ, kept if it validates better (K ∈ {100, 200} as in §4.4). The best λ grows with the weight
  (split 0, validation: ml-100k 0.442 at (α, λ) = (1, 10), 0.460 at (4, 30), 0.445 at
  (29, 100); every weight of 30 or more lost to a weight of 5 on ml-100k and ml-1m), hence the
  joint grid and its cut. 15 ALS iterations with 3 CG steps (the model's defaults).
- SLIM (Ning & Karypis, ICDM 2011): λ (L1) and β (L2) each over §4.4's {0.1, 0.5, 1, 5}, all
  16 pairs; on ml-1m, where one fit takes 5-10 minutes on one loaded core, the pairs of {1, 5}
  only (split 0 of ml-100k: λ = 5 best whatever β, λ ≤ 0.5 the worst; λ = 10 and 20 lower
  again). ``n_jobs=1``.
- CDAE (Wu et al., WSDM 2016) in §4.4's setting: the weighted square loss over every item
  (``loss="square", negative_samples=None``), Adam 1e-3, batches of 500 (the model's
  defaults, as Liang et al.), K ∈ {50, 200} (Wu et al.'s 50; 200, the width of the neural
  baselines of §5.2) times the weight c of the observed items ∈ {1, 2} (c = 5 never won on
  ml-100k, splits 0-4, in a first run over c ∈ {1, 2, 5} at K = 50).
  Epochs: CDAE's ``"auto"`` (300 on ml-1m, the cap of the other models here; 1,500 on
  ml-100k, where an epoch is 2 updates and 300 epochs were still improving) with the same
  early stopping on the validation users (patience ``--patience``). The model's default
  logistic loss with 5 sampled negatives per item (Wu et al.) learns far more slowly here:
  on ml-1m split 0 its validation NDCG@100 stays at popularity's for ~80 epochs and is 0.389
  after 300 (still rising; 14 minutes), against 0.445 at epoch 131 for the square loss.

    python benchmarks/swdae.py likelihood --data ml-1m      # loss and learning rate (validation)
    python benchmarks/swdae.py width    --data ml-1m        # Figure 5: NDCG vs K, Sw-dae & FC
    python benchmarks/swdae.py table3   --data ml-1m --K 1000 --split-ids 0 1 2  # Table 3 + 7,
    python benchmarks/swdae.py table3   --data ml-1m --K 1000 --split-ids 3 4    # in parallel
    python benchmarks/swdae.py merge    --data ml-1m                             # the tables
    python benchmarks/swdae.py density  --data ml-1m --K 1000      # Figure 6: R/K sweep
    python benchmarks/swdae.py grouping --data ml-1m --K 1000      # Table 6: Alg. 1 vs 2
    python benchmarks/swdae.py grouping_time --data ml-1m          # Table 6: time, quiet
    python benchmarks/swdae.py spectral --data ml-1m --K 1000      # Figure 4: spectral norms
    python benchmarks/swdae.py genres   --data ml-1m --K 1000      # Table 8: genres of neurons

Results: benchmarks/results/swdae_<experiment>.{json,md} (and .png with matplotlib).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from accuracy import EASE_GRID, SHARED, load, per_user, summarize
from sklearn.exceptions import ConvergenceWarning

from skcfae import (
    CDAE,
    EASE,
    FCDAE,
    SLIM,
    WMF,
    ItemGrouper,
    MultDAE,
    MultVAE,
    Popularity,
    SparseWideDAE,
)
from skcfae.model_selection import cold_start_users, strong_generalization_split
from skcfae.models import matching_width

RESULTS = Path(__file__).parent / "results"
SEED = 98765
DEFAULT_LR = 1e-3  # the models' default, Adam 1e-3 (papers/000 §4.3)
#: WMF: 1 + α, the weight of a consumption event, from the low half of Khawar et al.'s
#: {2, 5, 10, 30, 50, 100} (§4.4); λ, which they do not give, searched with it.
WMF_ALPHA = [1.0, 4.0, 9.0]
WMF_L2 = [10.0, 30.0, 100.0]
WMF_COMPONENTS = [100, 200]  # searched at the chosen α and λ only
#: SLIM: λ (L1) and β (L2) each over Khawar et al.'s {0.1, 0.5, 1, 5} (§4.4, after Liang et
#: al.), all 16 pairs; on ml-1m, where one fit takes minutes, the pairs of {1, 5} only.
SLIM_GRID = {"default": [0.1, 0.5, 1.0, 5.0], "ml-1m": [1.0, 5.0]}
#: CDAE: K (Wu et al.'s 50; 200, the width of §5.2's neural baselines, after Liang et al.)
#: times the weight c of the observed items in the square loss over every item.
CDAE_GRID = [{"n_components": k, "positive_weight": c} for k in (50, 200) for c in (1.0, 2.0)]


def split_of(data: str, i: int):
    X, threshold = load(data)
    return strong_generalization_split(
        X, n_heldout_users=0.1, threshold=threshold, random_state=SEED + i
    )


def valid_of(split):
    return split.valid_fold_in, split.valid_holdout


def neural(name: str, args, split, **extra):
    """A neural model with the epoch cap and early stopping of this script.

    A suffix ``-K<width>`` (e.g. ``Sw-dae-K2000``) overrides ``--K`` for that model."""
    common = dict(epochs=args.epochs, n_iter_no_change=args.patience, random_state=0, device="cpu")
    name, K = width_of(name, extra.pop("K", args.K))
    R = extra.pop("R", None)
    if name.startswith(("Sw", "Fc")):
        common["learning_rate"] = args.lr
    if name == "Sw-dae":
        model = SparseWideDAE(K, R=R, **common, **extra)
    elif name == "Fc-dae":
        model = FCDAE(K=K, **common, **extra)
    elif name == "Fc-prune-90":
        model = FCDAE(K=K, prune=0.9, **common, **extra)
    elif name.startswith("Fc-reg"):
        model = FCDAE(K=K, l1_activation=args.l1, **common, **extra)
    elif name == "Mult-VAE":
        model = MultVAE(**{**common, "epochs": 200})
    elif name == "Mult-DAE":
        model = MultDAE(**{**common, "epochs": 200})
    else:
        raise ValueError(name)
    return model.fit(split.train, X_valid=valid_of(split))


def width_of(name: str, default: int) -> tuple[str, int]:
    """``("Sw-dae-K2000", 1000)`` -> ``("Sw-dae", 2000)``; without a suffix, ``default``."""
    base, sep, K = name.rpartition("-K")
    return (base, int(K)) if sep and K.isdigit() else (name, default)


def valid_ndcg(model, split) -> float:
    """Mean NDCG@100 of the validation users (the score every choice of this script uses)."""
    return float(np.nanmean(per_user(model, *valid_of(split))["ndcg@100"]))


def grid_search(fit, grid: list[dict], split, chosen: dict, best=None):
    """``fit(**params)`` for every point of ``grid``; the model with the best validation
    NDCG@100. Every point's score is appended to ``chosen["grid"]``, the winner's parameters
    go to ``chosen["params"]`` (the test users are not looked at). ``best``: the winner of an
    earlier stage recorded in ``chosen``, kept unless a point of ``grid`` beats it."""
    scores = chosen.setdefault("grid", [])
    best_score = max((p["valid_ndcg@100"] for p in scores), default=-np.inf)
    for params in grid:
        model = fit(**params)
        score = valid_ndcg(model, split)
        scores.append({**params, "valid_ndcg@100": score})
        print(f"  {params} valid NDCG@100 {score:.4f}", flush=True)
        if score > best_score:
            best, best_score = model, score
            chosen["params"] = params
    return best


def evaluate(model, split) -> dict:
    test = summarize(per_user(model, split.test_fold_in, split.test_holdout))
    valid = summarize(per_user(model, *valid_of(split)))
    test["valid_ndcg@100"] = valid["ndcg@100"]
    if hasattr(model, "best_epoch_"):
        test["best_epoch"] = model.best_epoch_
        test["epochs_run"] = len(model.history_)
    return test


def fit_any(name: str, args, split, chosen: dict | None = None):
    """The model ``name`` fitted on the training users of ``split``, its hyper-parameters
    chosen on the validation users; ``chosen`` receives the grid's scores and the choice."""
    chosen = {} if chosen is None else chosen
    if name == "Popularity":
        return Popularity().fit(split.train)
    if name == "EASE":
        scores = {}
        for lam in EASE_GRID:
            m = EASE(lam=lam).fit(split.train)
            scores[lam] = float(np.nanmean(per_user(m, *valid_of(split))["ndcg@100"]))
        return EASE(lam=max(scores, key=scores.get)).fit(split.train)
    if name == "WMF":

        def wmf(**params):
            return WMF(**params, device="cpu", random_state=0).fit(split.train)

        small, large = WMF_COMPONENTS
        grid = [
            {"n_components": small, "alpha": a, "l2_reg": lam} for a in WMF_ALPHA for lam in WMF_L2
        ]
        best = grid_search(wmf, grid, split, chosen)
        # the larger K at the chosen weight and λ, kept if it validates better
        return grid_search(wmf, [{**chosen["params"], "n_components": large}], split, chosen, best)
    if name == "SLIM":
        values = SLIM_GRID.get(args.data, SLIM_GRID["default"])
        grid = [{"l1_reg": a, "l2_reg": b} for a in values for b in values]
        with warnings.catch_warnings():  # items at max_iter: counted in n_not_converged_
            warnings.simplefilter("ignore", ConvergenceWarning)
            return grid_search(
                lambda **p: SLIM(**p, n_jobs=1).fit(split.train), grid, split, chosen
            )
    if name == "CDAE":

        def cdae(**params):
            model = CDAE(
                loss="square",
                negative_samples=None,
                **params,
                n_iter_no_change=args.patience,
                random_state=0,
                device="cpu",
            )
            return model.fit(split.train, X_valid=valid_of(split))

        return grid_search(cdae, CDAE_GRID, split, chosen)
    if name == "Sw-dae-p":
        target = MultVAE().set_params(epochs=1).fit(split.train[:10]).n_parameters_
        K = matching_width(split.train.shape[1], target)
        if K > split.train.shape[1]:
            return None  # equal parameters need more groups than items (see notes)
        return neural("Sw-dae", args, split, K=K)
    return neural(name, args, split)


def save(name: str, payload: dict, lines: list[str]) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"swdae_{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"swdae_{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def plot(name: str, draw) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # plots are optional: pip install matplotlib
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    draw(ax)
    fig.tight_layout()
    fig.savefig(RESULTS / f"swdae_{name}.png", dpi=120)
    plt.close(fig)


def header(args) -> str:
    return (
        f"data {args.data}, split seed {SEED}+i, epochs cap {args.epochs}, patience "
        f"{args.patience}, torch threads {torch.get_num_threads()}"
    )


# -- experiments ----------------------------------------------------------------------------


def _cold_rows(split, percentile: float) -> np.ndarray:
    activity = np.diff(split.test_fold_in.indptr)
    cap = int(np.percentile(activity, percentile))
    return cold_start_users(split.test_fold_in, max_interactions=cap)


def table3(args) -> None:
    """Fit every model on the splits ``--split-ids``; one JSON per split and model, so that
    several processes can share the work. ``merge`` builds the table from them."""
    out = Path(args.out) if args.out else RESULTS / "table3"
    out.mkdir(parents=True, exist_ok=True)
    for i in args.split_ids:
        split = split_of(args.data, i)
        cold = _cold_rows(split, args.cold_percentile)
        for name in args.models:
            if name.startswith(("Sw", "Fc")) and args.lr != DEFAULT_LR:
                name += f"@lr{args.lr:g}"  # a learning-rate variant is a model of its own
            path = out / f"{args.data}_s{i}_{name}.json"
            if path.exists():
                continue
            tic = time.perf_counter()
            chosen: dict = {}
            model = fit_any(name.split("@")[0], args, split, chosen)
            row = {"model": name, "split": i, "K": width_of(name, args.K)[1], "lr": args.lr}
            row.update(chosen)
            if model is None:
                row["skipped"] = "no K <= n_items gives Mult-VAE's parameter count"
            else:
                row["K"] = getattr(model, "K", row["K"])  # Sw-dae-p chooses its own
                row.update(evaluate(model, split))
                row["fit_seconds"] = time.perf_counter() - tic
                c = summarize(per_user(model, split.test_fold_in[cold], split.test_holdout[cold]))
                row["cold"] = {**c, "users": int(cold.size)}
                print(
                    f"split {i} {name:<12} NDCG@100 {row['ndcg@100']:.4f} (valid "
                    f"{row['valid_ndcg@100']:.4f}) {row['fit_seconds']:.0f}s",
                    flush=True,
                )
            path.write_text(json.dumps(row, indent=1) + "\n")


def merge(args) -> None:
    """Table 3 and Table 7 (cold start) from the per-split results of ``table3``."""
    rows = [
        json.loads(p.read_text()) for p in sorted((RESULTS / "table3").glob(f"{args.data}_s*.json"))
    ]
    present = sorted({r["model"] for r in rows})
    order = [m for n in args.models for m in present if m.split("@")[0] == n]
    lines = [
        f"# Table 3 analogue: {args.data}, mean over user splits ± s.e. of the split means",
        "",
        "| model | NDCG@100 | Recall@20 | Recall@50 | valid NDCG@100 | splits | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    cold_lines = [
        "",
        "# Table 7 analogue (cold start): the same models on the test users whose "
        f"fold-in activity is <= the {args.cold_percentile:g}th percentile",
        "",
        "| model | NDCG@100 | Recall@20 | Recall@50 | users per split |",
        "|---|---|---|---|---|",
    ]
    notes, summary = [], {}

    def agg(values):
        v = np.array(values, dtype=float)
        se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
        return float(v.mean()), float(se)

    def pm(ms):  # "mean ± s.e.", the mean alone for one split
        return f"{ms[0]:.4f}" if np.isnan(ms[1]) else f"{ms[0]:.4f} ± {ms[1]:.4f}"

    n_splits = max((len({r["split"] for r in rows if r["model"] == n}) for n in order), default=0)

    for name in order:
        rs = [r for r in rows if r["model"] == name and "skipped" not in r]
        notes += sorted(
            {f"{name}: {r['skipped']}" for r in rows if r["model"] == name and "skipped" in r}
        )
        if not rs:
            continue
        s = {
            k: agg([r[k] for r in rs])
            for k in ("ndcg@100", "recall@20", "recall@50", "valid_ndcg@100", "fit_seconds")
        }
        c = {k: agg([r["cold"][k] for r in rs]) for k in ("ndcg@100", "recall@20", "recall@50")}
        summary[name] = {"test": s, "cold": c, "splits": [r["split"] for r in rs]}
        splits = str(len(rs)) if len(rs) == n_splits else " ".join(f"s{r['split']}" for r in rs)
        lines.append(
            f"| {name} | {pm(s['ndcg@100'])} | {pm(s['recall@20'])} | {pm(s['recall@50'])} | "
            f"{s['valid_ndcg@100'][0]:.4f} | {splits} | {s['fit_seconds'][0]:.0f} |"
        )
        cold_lines.append(
            f"| {name} | {pm(c['ndcg@100'])} | "
            f"{c['recall@20'][0]:.4f} | {c['recall@50'][0]:.4f} | "
            f"{np.mean([r['cold']['users'] for r in rs]):.0f} |"
        )
    settings = sorted(
        {(r.get("K"), r.get("lr")) for r in rows if r["model"].startswith(("Sw", "Fc"))}
    )
    lines += cold_lines + [
        "",
        f"Sw-dae / Fc-dae (K, learning rate): {settings}; "
        f"epoch of every neural model chosen on validation users.",
    ]
    lines += [f"- {n}" for n in notes]
    for name in order:
        picks = [
            f"s{r['split']} {r['params']}" for r in rows if r["model"] == name and "params" in r
        ]
        if picks:
            lines.append(f"- {name} chosen on validation users: " + "; ".join(picks))
    save(f"table3_{args.data}", summary, lines)


def width(args) -> None:
    split = split_of(args.data, 0)
    path = RESULTS / f"swdae_width_{args.data}.json"
    done = {(m, K) for m in args.models for K in args.Ks}
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    rows = [r for r in old if (r["model"], r["K"]) not in done]  # earlier runs are kept
    for K in args.Ks:
        for name in args.models:
            tic = time.perf_counter()
            row = evaluate(neural(name, args, split, K=K), split)
            row.update(model=name, K=K, fit_seconds=time.perf_counter() - tic)
            rows.append(row)
            print(row, flush=True)
            path.write_text(json.dumps({"rows": rows}, indent=2) + "\n")  # partial results
    rows.sort(key=lambda r: (r["model"], r["K"]))
    lines = [
        f"# Figure 5 analogue (width): {header(args)}, split 0, R = K/10",
        "",
        "| model | K | valid NDCG@100 | test NDCG@100 | test Recall@20 | best epoch | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['K']} | {r['valid_ndcg@100']:.4f} | {r['ndcg@100']:.4f} | "
        f"{r['recall@20']:.4f} | {r.get('best_epoch')} | {r['fit_seconds']:.0f} |"
        for r in rows
    ]
    save(f"width_{args.data}", {"rows": rows}, lines)
    models = sorted({r["model"] for r in rows})

    def draw(ax):
        for name in models:
            pts = sorted((r["K"], r["ndcg@100"]) for r in rows if r["model"] == name)
            ax.plot(*zip(*pts, strict=True), marker="o", label=name)
        ax.set_xlabel("K (hidden neurons)")
        ax.set_ylabel("test NDCG@100")
        ax.legend()

    plot(f"width_{args.data}", draw)


def likelihood(args) -> None:
    """The choice of the default likelihood and the learning rate, on validation users."""
    split = split_of(args.data, 0)
    rows = []
    for loss in ("logistic", "multinomial"):
        for lr in args.lrs:
            args.lr = lr
            model = neural("Sw-dae", args, split, loss=loss)
            valid = [h["valid_ndcg"] for h in model.history_]
            rows.append(
                {
                    "loss": loss,
                    "lr": lr,
                    "best_valid_ndcg@100": max(valid),
                    "best_epoch": model.best_epoch_,
                    "epochs_run": len(valid),
                    "curve": valid,
                }
            )
            print({k: v for k, v in rows[-1].items() if k != "curve"}, flush=True)
    lines = [
        f"# Sw-dae likelihood and learning rate: {header(args)}, K={args.K}, split 0, "
        "validation users only",
        "",
        "| loss | learning rate | best valid NDCG@100 | best epoch | epochs run |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['loss']} | {r['lr']:g} | {r['best_valid_ndcg@100']:.4f} | "
        f"{r['best_epoch']} | {r['epochs_run']} |"
        for r in rows
    ]
    save(f"likelihood_{args.data}", {"rows": rows}, lines)


def density(args) -> None:
    split = split_of(args.data, 0)
    rows = []
    for frac in args.fractions:
        R = max(1, round(frac * args.K))
        row = evaluate(neural("Sw-dae", args, split, R=R), split)
        row.update(R=R, fraction=R / args.K)
        rows.append(row)
        print(row, flush=True)
    lines = [
        f"# Figure 6 analogue (R/K): {header(args)}, K={args.K}",
        "",
        "| R/K | R | valid NDCG@100 | test NDCG@100 | test Recall@20 | test Recall@50 |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['fraction']:.2f} | {r['R']} | {r['valid_ndcg@100']:.4f} | "
        f"{r['ndcg@100']:.4f} | {r['recall@20']:.4f} | {r['recall@50']:.4f} |"
        for r in rows
    ]
    save(f"density_{args.data}", {"rows": rows}, lines)

    def draw(ax):
        x = [r["fraction"] for r in rows]
        ax.plot(x, [r["valid_ndcg@100"] for r in rows], marker="o", label="validation")
        ax.plot(x, [r["ndcg@100"] for r in rows], marker="s", label="test")
        ax.set_xscale("log")
        ax.set_xlabel("R/K (density)")
        ax.set_ylabel("NDCG@100")
        ax.legend()

    plot(f"density_{args.data}", draw)


def grouping(args) -> None:
    split = split_of(args.data, 0)
    rows = []
    for method in ("laplacian", "svd"):
        for kmeans in args.kmeans:
            grouper = ItemGrouper(args.K, method=method, kmeans=kmeans, random_state=0)
            grouper.fit(split.train)
            X = grouper.transform(split.train)
            model = SparseWideDAE(
                epochs=args.epochs,
                n_iter_no_change=args.patience,
                learning_rate=args.lr,
                random_state=0,
                device="cpu",
            ).fit(X, X_valid=valid_of(split))
            row = evaluate(model, split)
            row.update(method=method, kmeans=kmeans)
            row.update({f"{step}_s": t for step, t in grouper.timings_.items()})
            rows.append(row)
            print(row, flush=True)
    lines = [
        f"# Table 6 analogue (Algorithm 1 vs 2): {header(args)}, K={args.K}",
        "",
        "Accuracy only: the fits ran beside other benchmarks, so their timings (in the JSON) "
        "are not comparable; `grouping_time` measures the time on a quiet machine.",
        "",
        "| method | k-means | valid NDCG@100 | test NDCG@100 | test Recall@20 | "
        "test Recall@50 | best epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['kmeans']} | {r['valid_ndcg@100']:.4f} | "
        f"{r['ndcg@100']:.4f} | {r['recall@20']:.4f} | {r['recall@50']:.4f} | "
        f"{r.get('best_epoch')} |"
        for r in rows
    ]
    save(f"grouping_{args.data}", {"rows": rows}, lines)


def grouping_time(args) -> None:
    """Table 6's time columns on the same training users: best of 3 fits of each algorithm,
    each computing its embedding (no ``memory``; run it on a quiet machine)."""
    split = split_of(args.data, 0)
    rows = []
    for method in ("laplacian", "svd"):
        best: dict[str, float] = {}
        for _ in range(3):
            tic = time.perf_counter()
            grouper = ItemGrouper(args.K, F=50, method=method, kmeans="full", random_state=0)
            grouper.fit(split.train)
            times = {**grouper.timings_, "total": time.perf_counter() - tic}
            best = {k: min(v, best.get(k, float("inf"))) for k, v in times.items()}
        rows.append({"method": method, **best})
    lines = [
        f"# Table 6 analogue, time: {header(args)}, K={args.K}, F=50, R=K/10, k-means full, "
        f"best of 3 (seconds, {split.train.shape[0]} x {split.train.shape[1]} training users)",
        "",
        "| method | spectrum s | k-means s | assign s | total s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['spectrum']:.2f} | {r['kmeans']:.2f} | {r['assign']:.2f} | "
        f"{r['total']:.2f} |"
        for r in rows
    ]
    save(f"grouping_time_{args.data}", {"rows": rows}, lines)


def spectral(args) -> None:
    split = split_of(args.data, 0)
    curves = {}
    for name in ("Sw-dae", "Fc-dae"):
        model = neural(name, args, split, record_diagnostics=True)
        curves[name] = model.history_
    keys = ("spectral_norm_enc0", "spectral_norm_dec0", "generalization_bound", "valid_ndcg")
    lines = [
        f"# Figure 4 analogue (spectral norm over epochs): {header(args)}, K={args.K}",
        "",
        "| model | epoch | " + " | ".join(keys) + " | train_loss |",
        "|---|---|" + "---|" * (len(keys) + 1),
    ]
    for name, hist in curves.items():
        for h in hist[:: max(1, len(hist) // 10)] + [hist[-1]]:
            lines.append(
                f"| {name} | {h['epoch']} | "
                + " | ".join(f"{h[k]:.4g}" for k in keys)
                + f" | {h['train_loss']:.4g} |"
            )
    save(f"spectral_{args.data}", {"history": curves}, lines)

    def draw(ax):
        for name, hist in curves.items():
            ax.plot([h["spectral_norm_enc0"] for h in hist], label=f"{name} encoder")
        ax.set_xlabel("epoch")
        ax.set_ylabel("spectral norm")
        ax.legend()

    plot(f"spectral_{args.data}", draw)


def genres(args) -> None:
    """Genre make-up of the learned groups (neurons), from the MovieLens movie files."""
    from skcfae.datasets import load_movielens

    variant = args.data.removeprefix("ml-")
    bunch = load_movielens(variant, path=SHARED / args.data)
    names = sorted({g for gs in bunch.item_genres for g in gs})
    if not names:
        raise SystemExit(f"{args.data}: the loader returned no genres")
    column = {g: j for j, g in enumerate(names)}
    all_genres = np.zeros((len(bunch.item_genres), len(names)))
    for i, gs in enumerate(bunch.item_genres):
        all_genres[i, [column[g] for g in gs]] = 1.0
    split = split_of(args.data, 0)
    item_genres = all_genres[split.item_index]  # (n_items, n_genres) 0/1
    M = ItemGrouper(args.K, random_state=0).fit(split.train).membership_
    size = np.asarray(M.sum(axis=0)).ravel()
    share = np.asarray(M.T @ item_genres) / np.maximum(size, 1)[:, None]  # (K, n_genres)
    lines = [
        f"# Table 8 analogue (genres of neurons): {args.data}, K={args.K}",
        "",
        "For each genre, the neuron (among those with at least half the median group size) "
        "with the largest share of it, and its top three genres (share of the neuron's "
        "movies; a movie has several genres).",
        "",
        "| genre | neuron | movies | top three genres |",
        "|---|---|---|---|",
    ]
    big = size >= 0.5 * np.median(size)  # tiny groups would win with 1-2 movies
    for g, genre in enumerate(names):
        k = int(np.argmax(np.where(big, share[:, g], -1.0)))
        top = np.argsort(-share[k])[:3]
        lines.append(
            f"| {genre} | {k} | {int(size[k])} | "
            + ", ".join(f"{names[t]} ({100 * share[k, t]:.0f}%)" for t in top)
            + " |"
        )
    base = item_genres.mean(axis=0)
    lines += [
        "",
        "Catalog shares: "
        + ", ".join(
            f"{n} {100 * b:.0f}%"
            for n, b in sorted(zip(names, base, strict=True), key=lambda t: -t[1])
        ),
    ]
    save(f"genres_{args.data}", {"share": share.tolist(), "genres": names}, lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "experiment",
        choices=[
            "table3",
            "merge",
            "likelihood",
            "width",
            "density",
            "grouping",
            "grouping_time",
            "spectral",
            "genres",
        ],
    )
    parser.add_argument("--data", default="ml-1m")
    parser.add_argument("--K", type=int, default=1000)
    parser.add_argument("--Ks", type=int, nargs="+", default=[250, 500, 1000, 2000, 3000])
    parser.add_argument(
        "--fractions", type=float, nargs="+", default=[0.02, 0.05, 0.1, 0.2, 0.3, 0.5]
    )
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--split-ids", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--lr", type=float, default=DEFAULT_LR, help="Sw-dae/Fc-dae learning rate")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--l1", type=float, default=1e-3)
    parser.add_argument("--cold-percentile", type=float, default=25.0)
    parser.add_argument(
        "--kmeans", nargs="+", default=["full", "minibatch"], choices=["full", "minibatch"]
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--out", default=None, help="table3: folder of the per-split JSON (default results/table3)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.models is None:
        args.models = (
            ["Sw-dae", "Fc-dae"]
            if args.experiment == "width"
            else [
                "Popularity",
                "WMF",
                "SLIM",
                "EASE",
                "CDAE",
                "Mult-DAE",
                "Mult-VAE",
                "Sw-dae",
                "Sw-dae-K2000",
                "Sw-dae-p",
                "Fc-dae",
                "Fc-prune-90",
                "Fc-reg",
            ]
        )
    globals()[args.experiment](args)


if __name__ == "__main__":
    main()
