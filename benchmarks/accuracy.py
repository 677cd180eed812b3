"""Strong-generalization accuracy of the recommenders on the real data in ../shared/data.

Protocol (papers/000 §4.1, Liang et al. 2018): binarize, keep users with >= 5 interactions,
permute users with seed 98765, hold out 10% of users for validation and 10% for test, keep the
items of training users, split each held-out user's history 80/20 into fold-in / hold-out.
Models train on the training users; hyper-parameters (EASE's λ) and the epoch (neural models)
are chosen on validation users only; test users are scored once.

    python benchmarks/accuracy.py                       # all data sets, all models
    python benchmarks/accuracy.py --data ml-1m --models EASE MultVAE

Writes benchmarks/results/accuracy.{json,md} (results of earlier runs for other data sets and
models are kept and merged).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from skcfae import EASE, MultDAE, MultVAE, Popularity
from skcfae._ranking import ndcg_from_topk, recall_from_topk
from skcfae.datasets import load_lastfm, load_movielens
from skcfae.model_selection import strong_generalization_split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).parent / "results"
EASE_GRID = [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0]


def load(name: str):
    """The interaction matrix of a data set and the binarization threshold used for it.

    MovieLens ratings are binarized at >= 4 where ratings exist (Liang et al.); the local
    ml-1m copy holds interactions without ratings, and Last.fm play counts are all kept.
    """
    if name == "lastfm-2k":
        return load_lastfm(path=SHARED / name).data, None
    variant = name.removeprefix("ml-")
    bunch = load_movielens(variant, path=SHARED / name)
    has_ratings = bunch.data.data.max() > 1
    return bunch.data, (3.5 if has_ratings else None)


def per_user(model, fold_in, holdout):
    top = model.recommend(fold_in, n=100)
    return {
        "ndcg@100": ndcg_from_topk(top, holdout, 100),
        "recall@20": recall_from_topk(top, holdout, 20),
        "recall@50": recall_from_topk(top, holdout, 50),
    }


def summarize(values):
    out = {}
    for metric, v in values.items():
        v = v[~np.isnan(v)]
        out[metric] = float(v.mean())
        out[metric + "_se"] = float(v.std(ddof=1) / np.sqrt(len(v)))
    return out


def fit_model(name: str, split, seed: int):
    valid = (split.valid_fold_in, split.valid_holdout)
    if name == "Popularity":
        return Popularity().fit(split.train), {}
    if name == "EASE":
        scores = {}
        for lam in EASE_GRID:
            m = EASE(lam=lam).fit(split.train)
            scores[lam] = np.nanmean(per_user(m, *valid)["ndcg@100"])
        best = max(scores, key=scores.get)
        return EASE(lam=best).fit(split.train), {"lam": best}
    model = {"MultDAE": MultDAE, "MultVAE": MultVAE}[name](random_state=seed)
    model.fit(split.train, X_valid=valid)
    return model, {"best_epoch": model.best_epoch_, "epochs_run": len(model.history_)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", nargs="+", default=["ml-100k", "ml-latest-small", "lastfm-2k", "ml-1m"]
    )
    parser.add_argument("--models", nargs="+", default=["Popularity", "EASE", "MultDAE", "MultVAE"])
    parser.add_argument("--seed", type=int, default=0, help="model seed (the split seed is 98765)")
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "accuracy.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for data in args.data:
        X, threshold = load(data)
        n_users = X.shape[0]
        split = strong_generalization_split(X, n_heldout_users=0.1, threshold=threshold)
        info = {
            "users_train": split.train.shape[0],
            "users_test": split.test_fold_in.shape[0],
            "items": split.train.shape[1],
            "threshold": threshold,
            "users_raw": n_users,
        }
        print(f"== {data}: {info}", flush=True)
        for name in args.models:
            tic = time.perf_counter()
            model, chosen = fit_model(name, split, args.seed)
            fit_s = time.perf_counter() - tic
            row = summarize(per_user(model, split.test_fold_in, split.test_holdout))
            row.update(chosen, fit_seconds=fit_s)
            results.setdefault(data, {"split": info, "models": {}})["split"] = info
            results[data]["models"][name] = row
            print(
                f"{name:<11} NDCG@100 {row['ndcg@100']:.3f}±{row['ndcg@100_se']:.3f} "
                f"R@20 {row['recall@20']:.3f} R@50 {row['recall@50']:.3f} "
                f"fit {fit_s:.1f}s {chosen}",
                flush=True,
            )
            path.write_text(json.dumps(results, indent=2) + "\n")
    write_markdown(results)


def write_markdown(results) -> None:
    lines = ["# Strong-generalization accuracy (test users, ± standard error)", ""]
    for data, block in results.items():
        s = block["split"]
        lines += [
            f"## {data}: {s['users_train']} train users, {s['users_test']} test users, "
            f"{s['items']} items",
            "",
            "| model | NDCG@100 | Recall@20 | Recall@50 | fit s | chosen on validation |",
            "|---|---|---|---|---|---|",
        ]
        for name, r in block["models"].items():
            chosen = ", ".join(f"{k}={r[k]}" for k in ("lam", "best_epoch") if k in r)
            lines.append(
                f"| {name} | {r['ndcg@100']:.3f} ± {r['ndcg@100_se']:.3f} | "
                f"{r['recall@20']:.3f} ± {r['recall@20_se']:.3f} | "
                f"{r['recall@50']:.3f} ± {r['recall@50_se']:.3f} | {r['fit_seconds']:.1f} | "
                f"{chosen} |"
            )
        lines.append("")
    (RESULTS / "accuracy.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
