"""The default embedding dimension F of ItemGrouper, chosen by planted-group recovery.

Khawar, Poon and Zhang, "Learning the Structure of Auto-Encoding Recommenders" (WWW 2020)
embed the items in F = 50 dimensions (§4.3) with K in the thousands. With K < F most of
the F eigenvectors of Algorithm 1 (``method="laplacian"``) describe structure *inside* the
groups, and after row normalisation they weigh as much as the K that separate the groups.
This script measures, on planted disjoint groups, the adjusted Rand index (ARI) of
``labels_`` (R = 1) against the planted group for these candidates:

- ``F=50``: the paper's value, the former default;
- ``F=auto``: ``min(50, K)``, K eigenvectors for K clusters as in Ng, Jordan and Weiss
  (NIPS 2001), the paper's 50 for K >= 50 (the new default);
- ``F=K``: K eigenvectors without the cap at 50 (for reference);
- ``F=50, V diag(lambda^p)``: Algorithm 1's 50 eigenvectors weighted by a power p of their
  eigenvalue before the row normalisation (Algorithm 2 already weighs them by Σ).

Two planted data sets, K = 4 to 64 groups of 25 items, three seeds:

- ``blocks``: clean disjoint blocks, each user interacts with each item of one block with
  probability 0.3 and with nothing else (the co-occurrence graph has K components);
- ``generator``: ``make_interactions(groups_per_item=1, noise=0.05)``: Zipf popularity,
  users interested in 1 to 3 groups, 5% interactions from global popularity.

On the blocks, whose co-occurrence graph has K components, eigenvalue 1 of Δ is repeated K
times; the script also counts how many of its copies plain ARPACK finds (Lanczos from one
start vector sees one vector per distinct eigenvalue), against ItemGrouper's solver, which
is given them (one per component) and runs ARPACK on the rest.

Then, on ml-1m (../shared/data/ml-1m, skipped when absent), that the default gives the same
groups as F=50 at the paper's K=1000, and the cost of the embedding with and without
``memory``.

    python benchmarks/grouping_F.py            # ~2 min on 2 cores

Results go to benchmarks/results/grouping_F.{json,md}.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp
import sklearn
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.utils import check_random_state

from skcfae.datasets import load_movielens, make_interactions
from skcfae.grouping import (
    ItemGrouper,
    _item_scaling,
    _normalize_rows,
    _spectral_embedding,
    _top_eigenpairs,
    _unit_eigenvectors,
)

RESULTS = Path(__file__).parent / "results"
SHARED_DATA = Path(
    os.environ.get("SKCFAE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
KS = (4, 8, 16, 32, 64)
SEEDS = (0, 1, 2)
GROUP_SIZE = 25
WEIGHT_POWERS = (0.5, 1.0, 2.0)


# -- planted data ---------------------------------------------------------------------------
def planted_blocks(K: int, seed: int) -> tuple[sp.csr_array, np.ndarray]:
    """K disjoint blocks of 25 items, 50 users each, every block item with probability 0.3."""
    rng = np.random.RandomState(seed)
    users_per_block = 50
    n_users = K * users_per_block
    user_block = np.repeat(np.arange(K), users_per_block)
    picked = rng.random_sample((n_users, GROUP_SIZE)) < 0.3
    picked[~picked.any(axis=1), 0] = True  # nobody without interactions
    rows, offsets = np.nonzero(picked)
    cols = user_block[rows] * GROUP_SIZE + offsets
    X = sp.csr_array(
        (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n_users, K * GROUP_SIZE)
    )
    return X, np.repeat(np.arange(K), GROUP_SIZE)


def planted_generator(K: int, seed: int) -> tuple[sp.csr_array, np.ndarray]:
    """make_interactions with K disjoint groups of 25 items, Zipf popularity, 5% noise."""
    X, item_groups, _ = make_interactions(
        250 * K,
        GROUP_SIZE * K,
        n_groups=K,
        groups_per_item=1,
        noise=0.05,
        random_state=seed,
        return_groups=True,
    )
    return X, item_groups.toarray().argmax(axis=1)


DATA = {"blocks": planted_blocks, "generator": planted_generator}


# -- candidates -----------------------------------------------------------------------------
def kmeans_labels(embedding: np.ndarray, K: int, seed: int) -> np.ndarray:
    """k-means as ItemGrouper(random_state=seed) runs it (same derived seed, same settings)."""
    kmeans_seed = int(check_random_state(seed).randint(np.iinfo(np.int32).max))
    km = KMeans(n_clusters=K, n_init=1, max_iter=100, random_state=kmeans_seed)
    return np.asarray(km.fit(embedding).labels_)


def candidates(X: sp.csr_array, K: int, method: str, seed: int) -> dict[str, np.ndarray]:
    """labels_ of every candidate on X (R = 1: the nearest centroid)."""
    out = {
        "F=50": ItemGrouper(K, R=1, F=50, method=method, random_state=seed).fit(X).labels_,
        "F=auto": ItemGrouper(K, R=1, method=method, random_state=seed).fit(X).labels_,
        "F=K": ItemGrouper(K, R=1, F=K, method=method, random_state=seed).fit(X).labels_,
    }
    if method == "laplacian":
        raw, values = _spectral_embedding(X, 50, method=method, normalize=None)
        for p in WEIGHT_POWERS:
            weighted = _normalize_rows(raw * np.clip(values, 0.0, None) ** p, "l2")
            out[f"F=50, V diag(lambda^{p:g})"] = kmeans_labels(weighted, K, seed)
    return out


def bench_planted() -> list[dict[str, Any]]:
    rows = []
    for data, make in DATA.items():
        for K in KS:
            for seed in SEEDS:
                X, truth = make(K, seed)
                for method in ("laplacian", "svd"):
                    for name, labels in candidates(X, K, method, seed).items():
                        rows.append(
                            dict(
                                data=data,
                                K=K,
                                n_items=X.shape[1],
                                n_users=X.shape[0],
                                method=method,
                                seed=seed,
                                candidate=name,
                                ari=float(adjusted_rand_score(truth, labels)),
                            )
                        )
                print(f"  {data} K={K} seed={seed} done", flush=True)
    return rows


# -- repeated eigenvalue 1 on disconnected blocks -------------------------------------------
def bench_repeated_eigenvalue() -> list[dict[str, Any]]:
    rows = []
    for K in (32, 64):
        for seed in SEEDS:
            X, truth = planted_blocks(K, seed)
            F = min(50, K)
            scale = _item_scaling(X, "laplacian")
            plain, vectors = _top_eigenpairs(X, scale, F, 0, "arpack")
            given, _ = _top_eigenpairs(X, scale, F, 0, "arpack", _unit_eigenvectors(X, scale))
            dense, _ = _top_eigenpairs(X, scale, F, 0, "dense")
            labels_plain = kmeans_labels(_normalize_rows(vectors, "l2"), K, seed)
            labels = ItemGrouper(K, R=1, random_state=seed).fit(X).labels_
            rows.append(
                dict(
                    K=K,
                    seed=seed,
                    F=F,
                    ones_plain_arpack=int(np.sum(plain > 1 - 1e-6)),
                    ones_given=int(np.sum(given > 1 - 1e-6)),
                    ones_dense=int(np.sum(dense > 1 - 1e-6)),
                    ari_plain_arpack=float(adjusted_rand_score(truth, labels_plain)),
                    ari_item_grouper=float(adjusted_rand_score(truth, labels)),
                )
            )
    return rows


# -- ml-1m ------------------------------------------------------------------------------------
def bench_ml1m() -> dict[str, Any] | None:
    path = SHARED_DATA / "ml-1m"
    if not path.exists():
        print(f"  {path} not found: ml-1m skipped")
        return None
    X = load_movielens("1m", path=path).data
    if X.data.max() > 1:  # binarize ratings as benchmarks/accuracy.py does (>= 3.5)
        X = sp.csr_array(X >= 3.5, dtype=np.float32)
        X.eliminate_zeros()
    out: dict[str, Any] = {"shape": list(X.shape), "nnz": int(X.nnz), "K": []}
    for K in (1000, 50):
        for method in ("laplacian", "svd"):
            paper = ItemGrouper(K, F=50, method=method, random_state=0).fit(X)
            default = ItemGrouper(K, method=method, random_state=0).fit(X)
            row = dict(
                K=K,
                method=method,
                F_default=default.F_,
                identical_membership=bool((paper.membership_ != default.membership_).nnz == 0),
                identical_embedding=bool(np.array_equal(paper.embedding_, default.embedding_)),
                timings_F50=paper.timings_,
                timings_default=default.timings_,
            )
            out["K"].append(row)
            print(f"  ml-1m K={K} {method}: {row}", flush=True)
    # The embedding through memory: first fit computes and stores it, the next loads it.
    with tempfile.TemporaryDirectory() as cache:
        spectrum = []
        for K in (1000, 500, 1000):
            g = ItemGrouper(K, memory=cache, random_state=0).fit(X)
            spectrum.append(dict(K=K, cached=g.embedding_cached_, seconds=g.timings_["spectrum"]))
        out["memory"] = spectrum
    print(f"  ml-1m memory: {out['memory']}", flush=True)
    return out


# -- report -----------------------------------------------------------------------------------
def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table: dict[tuple[Any, ...], list[float]] = {}
    for r in rows:
        table.setdefault((r["data"], r["method"], r["candidate"], r["K"]), []).append(r["ari"])
    return [
        dict(data=d, method=m, candidate=c, K=K, mean=float(np.mean(v)), min=float(np.min(v)))
        for (d, m, c, K), v in table.items()
    ]


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    md = [
        "# ItemGrouper: the default F (planted-group recovery)",
        "",
        f"`python benchmarks/grouping_F.py`; numpy {env['numpy']}, scipy {env['scipy']}, "
        f"scikit-learn {env['sklearn']}, {env['cpus']} CPUs. {result['seconds']:.0f} s.",
        "",
        "ARI of `labels_` (R = 1) against the planted group, mean over seeds "
        f"{', '.join(map(str, SEEDS))} (min in parentheses); groups of {GROUP_SIZE} items. "
        "`blocks`: clean disjoint blocks (50 users per block, each block item with "
        "probability 0.3); `generator`: `make_interactions(groups_per_item=1, noise=0.05)`, "
        "250 users per group. Candidates: see the script's docstring; `F=auto` = min(50, K) is "
        "the default.",
        "",
    ]
    summary = result["summary"]
    for data in DATA:
        for method in ("laplacian", "svd"):
            md += [
                f"## {data}, method={method}",
                "",
                "| candidate | " + " | ".join(f"K={K}" for K in KS) + " |",
                "|---|" + "---|" * len(KS),
            ]
            names = dict.fromkeys(
                s["candidate"] for s in summary if s["data"] == data and s["method"] == method
            )
            for name in names:
                cells = []
                for K in KS:
                    (s,) = [
                        s
                        for s in summary
                        if (s["data"], s["method"], s["candidate"], s["K"])
                        == (data, method, name, K)
                    ]
                    cells.append(f"{s['mean']:.3f} ({s['min']:.2f})")
                md.append(f"| {name} | " + " | ".join(cells) + " |")
            md.append("")
    md += [
        "## Repeated eigenvalue 1 (blocks, laplacian, F = min(50, K), ARPACK: > 500 items)",
        "",
        "Copies of eigenvalue 1 among the top F found (K components, so min(K, F) exist), "
        "and the ARI of the default fit with each solver.",
        "",
        "| K | seed | plain ARPACK | ItemGrouper (given per component) | dense eigh "
        "| ARI plain ARPACK | ARI ItemGrouper |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["repeated_eigenvalue"]:
        md.append(
            f"| {r['K']} | {r['seed']} | {r['ones_plain_arpack']} | {r['ones_given']} | "
            f"{r['ones_dense']} | {r['ari_plain_arpack']:.3f} | {r['ari_item_grouper']:.3f} |"
        )
    md.append("")
    ml = result.get("ml1m")
    if ml:
        md += [
            f"## ml-1m ({ml['shape'][0]:,} x {ml['shape'][1]:,}, {ml['nnz']:,} interactions), "
            "random_state=0",
            "",
            "| K | method | F_ (default) | membership_ identical to F=50 | embedding_ identical "
            "| spectrum s (F=50 / default) | k-means s (F=50 / default) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in ml["K"]:
            a, b = r["timings_F50"], r["timings_default"]
            md.append(
                f"| {r['K']} | {r['method']} | {r['F_default']} | {r['identical_membership']} | "
                f"{r['identical_embedding']} | {a['spectrum']:.2f} / {b['spectrum']:.2f} | "
                f"{a['kmeans']:.2f} / {b['kmeans']:.2f} |"
            )
        md += [
            "",
            "With `memory=<dir>` (laplacian, default F): spectrum seconds of successive fits "
            "on the same X: "
            + ", ".join(
                f"K={m['K']} {'loaded' if m['cached'] else 'computed'} {m['seconds']:.2f} s"
                for m in ml["memory"]
            )
            + ".",
        ]
    return "\n".join(md) + "\n"


def main() -> None:
    tic = time.perf_counter()
    with warnings.catch_warnings():
        # k-means warns when fewer distinct embedded points than K exist (F=50 on blocks).
        warnings.simplefilter("ignore", ConvergenceWarning)
        rows = bench_planted()
        repeated = bench_repeated_eigenvalue()
    ml1m = bench_ml1m()
    result = dict(
        environment=dict(
            python=platform.python_version(),
            numpy=np.__version__,
            scipy=scipy.__version__,
            sklearn=sklearn.__version__,
            cpus=os.cpu_count(),
        ),
        seconds=time.perf_counter() - tic,
        rows=rows,
        summary=summarize(rows),
        repeated_eigenvalue=repeated,
        ml1m=ml1m,
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "grouping_F.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (RESULTS / "grouping_F.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
