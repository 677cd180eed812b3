"""Speed and accuracy of ItemGrouper (Khawar et al., WWW 2020, §3.1, Algorithms 1 and 2).

Four parts, all on CPU:

1. Eigen-solvers for the top-50 eigenvectors of the Laplacian Δ on ML-20M-shaped synthetic data:
   ARPACK on the matrix-free operator (what ItemGrouper uses), the same with two BLAS threads,
   randomized SVD and PROPACK, with their accuracy against the first.
2. ItemGrouper timings on that data as in the paper's Table 6 (spectrum and k-means seconds),
   both methods, both k-means variants, K=1000 (R=100) and K=15000 (R=1500), F=50.
3. Planted-group recovery on smaller synthetic data: row normalisation (l2 / sum / none),
   method and k-means variant, over three seeds.
4. Real ml-1m (../shared/data/ml-1m, skipped when absent): timings and agreement of the learned
   groups with the MovieLens genres.

    python benchmarks/grouping.py             # everything, ~15 min on 2 cores
    python benchmarks/grouping.py --quick     # no K=15000, no PROPACK, one seed; prints only

Results go to benchmarks/results/grouping.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import sklearn
from sklearn.metrics import adjusted_mutual_info_score
from sklearn.utils.extmath import randomized_svd
from threadpoolctl import threadpool_info

from skcfae.datasets import load_movielens, make_interactions
from skcfae.grouping import ItemGrouper, _item_scaling, _spectral_embedding

RESULTS = Path(__file__).parent / "results"
SHARED_DATA = Path(
    os.environ.get("SKCFAE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
ML20M_SHAPE = dict(n_users=136_677, n_items=20_108, density=0.0036)


# -- planted-group recovery measures --------------------------------------------------------
def pair_scores(membership: sp.csr_array, truth: sp.csr_array) -> dict[str, float]:
    """Precision and recall of "these two items share a group", learned vs planted.

    A pair of distinct items is predicted when some learned group holds both, and true when
    some planted group does. ``base_rate`` is the precision of a random guess.
    """
    learned = (membership @ membership.T).toarray() > 0
    true = (truth @ truth.T).toarray() > 0
    np.fill_diagonal(learned, False)
    np.fill_diagonal(true, False)
    both = float(np.sum(learned & true))
    return {
        "pair_precision": both / max(1.0, float(learned.sum())),
        "pair_recall": both / max(1.0, float(true.sum())),
        "base_rate": float(true.mean()),
    }


def best_jaccard(membership: sp.csr_array, truth: sp.csr_array) -> float:
    """Mean over planted groups of the Jaccard index of the best-matching learned group."""
    inter = (truth.T @ membership).toarray()
    size_t = np.asarray(truth.sum(axis=0)).ravel()
    size_m = np.asarray(membership.sum(axis=0)).ravel()
    union = size_t[:, None] + size_m[None, :] - inter
    return float(np.mean(np.max(inter / np.maximum(union, 1), axis=1)))


def random_membership(n_items: int, K: int, R: int, seed: int) -> sp.csr_array:
    """R distinct random groups per item: the baseline any criterion must beat."""
    rng = np.random.RandomState(seed)
    nearest = np.sort(np.argsort(rng.random_sample((n_items, K)), axis=1)[:, :R], axis=1)
    return sp.csr_array(
        (np.ones(n_items * R, np.float32), nearest.ravel(), np.arange(0, n_items * R + 1, R)),
        shape=(n_items, K),
    )


# -- 1. eigen-solvers --------------------------------------------------------------------------
def subspace_agreement(V_ref: np.ndarray, V: np.ndarray) -> float:
    """Smallest cosine of the principal angles between two F-dim subspaces (1 = equal)."""
    q_ref, _ = np.linalg.qr(V_ref)
    q, _ = np.linalg.qr(V)
    return float(np.linalg.svd(q_ref.T @ q, compute_uv=False).min())


def bench_solvers(X: sp.csr_array, F: int, propack: bool) -> list[dict[str, Any]]:
    scale = _item_scaling(X, "laplacian")
    A = X.astype(np.float32, copy=True)
    A.data *= scale[A.indices].astype(np.float32)
    A64 = A.astype(np.float64)
    rows: list[dict[str, Any]] = []

    tic = time.perf_counter()
    ref, values = _spectral_embedding(X, F, method="laplacian", normalize=None, seed=0)
    rows.append(
        dict(
            solver="ARPACK eigsh on v -> Aᵀ(Av), 1 BLAS thread (ItemGrouper)",
            seconds=time.perf_counter() - tic,
            min_cos=1.0,
            max_eig_rel_err=0.0,
        )
    )

    def record(name: str, seconds: float, vals: np.ndarray, vecs: np.ndarray) -> None:
        order = np.argsort(vals)[::-1]
        vals, vecs = vals[order], vecs[:, order]
        rows.append(
            dict(
                solver=name,
                seconds=seconds,
                min_cos=subspace_agreement(ref, vecs),
                max_eig_rel_err=float(np.max(np.abs(vals - values) / values)),
            )
        )
        print(f"  {name}: {seconds:.1f} s", flush=True)

    At = sp.csr_array(A.T)
    n_items = X.shape[1]
    op = sla.LinearOperator(
        (n_items, n_items),
        matvec=lambda v: np.asarray(At @ (A @ np.asarray(v, np.float32).ravel()), np.float64),
        dtype=np.float64,
    )
    v0 = np.random.RandomState(0).uniform(-1, 1, n_items)
    tic = time.perf_counter()
    vals, vecs = sla.eigsh(op, k=F, which="LA", v0=v0, tol=1e-6)  # default BLAS threads
    record(
        "ARPACK eigsh on v -> Aᵀ(Av), default BLAS threads", time.perf_counter() - tic, vals, vecs
    )
    for n_iter in (4, 10):
        tic = time.perf_counter()
        _, s, vt = randomized_svd(A64, F, n_oversamples=20, n_iter=n_iter, random_state=0)
        record(f"randomized_svd(X D^-1/2), n_iter={n_iter}", time.perf_counter() - tic, s**2, vt.T)
    if propack:
        tic = time.perf_counter()
        _, s, vt = sla.svds(A64, k=F, solver="propack", random_state=0)
        record(
            "PROPACK svds(X D^-1/2) (Lanczos bidiagonalisation)",
            time.perf_counter() - tic,
            s**2,
            vt.T,
        )
    return rows


# -- 2. ItemGrouper timings --------------------------------------------------------------------
def bench_grouper(X: sp.csr_array, Ks: list[tuple[int, int]], label: str) -> list[dict[str, Any]]:
    rows = []
    for method in ("laplacian", "svd"):
        spectrum = None
        # The first fit of each method computes the embedding, the others load it from memory.
        memory = tempfile.TemporaryDirectory()
        for K, R in Ks:
            for kmeans in ("full", "minibatch"):
                g = ItemGrouper(
                    K, R=R, F=50, method=method, kmeans=kmeans, memory=memory.name, random_state=0
                ).fit(X)
                t = g.timings_
                if not g.embedding_cached_:
                    spectrum = t["spectrum"]
                assert spectrum is not None
                row = dict(
                    data=label,
                    method=method,
                    K=K,
                    R=R,
                    kmeans=kmeans,
                    spectrum=spectrum,
                    kmeans_seconds=t["kmeans"],
                    assign=t["assign"],
                    total=spectrum + t["kmeans"] + t["assign"],
                    inertia=g.inertia_,
                    n_iter=g.n_iter_,
                    cached_lookup=t["spectrum"] if g.embedding_cached_ else None,
                )
                rows.append(row)
                print(
                    f"  {label} {method} K={K} {kmeans}: spectrum {spectrum:.1f} s, k-means "
                    f"{t['kmeans']:.1f} s, assign {t['assign']:.1f} s, inertia {g.inertia_:.1f}",
                    flush=True,
                )
        memory.cleanup()
    return rows


# -- 3. planted-group recovery -----------------------------------------------------------------
def bench_recovery(seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    n_groups = 40
    for seed in seeds:
        for gpi in (1, 2):
            X, truth, _ = make_interactions(
                20_000,
                2_000,
                n_groups=n_groups,
                groups_per_item=gpi,
                density=0.01,
                noise=0.1,
                random_state=seed,
                return_groups=True,
            )
            primary = truth.toarray().argmax(axis=1)
            K, R = n_groups, gpi
            rand = random_membership(X.shape[1], K, R, seed)
            rows.append(
                dict(
                    seed=seed,
                    groups_per_item=gpi,
                    config="random grouping",
                    best_jaccard=best_jaccard(rand, truth),
                    **pair_scores(rand, truth),
                )
            )
            for method in ("laplacian", "svd"):
                for normalize in ("l2", "sum", None):
                    for kmeans in ("full", "minibatch"):
                        g = ItemGrouper(
                            K,
                            R=R,
                            F=n_groups,
                            method=method,
                            normalize=normalize,
                            kmeans=kmeans,
                            random_state=seed,
                        ).fit(X)
                        row = dict(
                            seed=seed,
                            groups_per_item=gpi,
                            method=method,
                            normalize=str(normalize),
                            kmeans=kmeans,
                            config=f"{method}/{normalize}/{kmeans}",
                            best_jaccard=best_jaccard(g.membership_, truth),
                            inertia=g.inertia_,
                            kmeans_seconds=g.timings_["kmeans"],
                            **pair_scores(g.membership_, truth),
                        )
                        if gpi == 1:
                            row["ami"] = adjusted_mutual_info_score(primary, g.labels_)
                        rows.append(row)
            print(f"  recovery seed {seed} groups_per_item {gpi} done", flush=True)
    return rows


# -- 4. ml-1m ----------------------------------------------------------------------------------
def bench_ml1m() -> dict[str, Any] | None:
    path = SHARED_DATA / "ml-1m"
    if not path.is_dir():
        print(f"  {path} not found: ml-1m skipped")
        return None
    bunch = load_movielens("1m", path=path)
    X = sp.csr_array(bunch.data)
    names = {name: j for j, name in enumerate(bunch.genre_names)}
    rows_, cols_ = zip(
        *[(i, names[g]) for i, genres in enumerate(bunch.item_genres) for g in genres],
        strict=True,
    )
    genres = sp.csr_array(
        (np.ones(len(rows_), np.float32), (rows_, cols_)), shape=(X.shape[1], len(names))
    )
    out: dict[str, Any] = {"shape": list(X.shape), "nnz": int(X.nnz)}
    solvers = {}
    for solver in ("arpack", "dense"):
        tic = time.perf_counter()
        _spectral_embedding(X, 50, method="laplacian", seed=0, solver=solver)
        solvers[solver] = time.perf_counter() - tic
    out["laplacian_spectrum_seconds_by_solver"] = solvers
    out["timings"] = bench_grouper(X, [(1000, 100)], "ml-1m")
    agreement = [
        dict(
            config="random grouping",
            **pair_scores(random_membership(X.shape[1], 100, 10, 0), genres),
        )
    ]
    for method in ("laplacian", "svd"):
        for normalize in ("l2", "sum", None):
            g = ItemGrouper(
                100, R=10, F=50, method=method, normalize=normalize, random_state=0
            ).fit(X)
            agreement.append(
                dict(config=f"{method}/{normalize}/full", **pair_scores(g.membership_, genres))
            )
    out["genre_agreement_K100_R10"] = agreement
    return out


# -- report ------------------------------------------------------------------------------------
def summarize_recovery(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    table = []
    for gpi in (1, 2):
        configs = sorted(
            {r["config"] for r in rows if r["groups_per_item"] == gpi},
            key=lambda c: (c != "random grouping", c),
        )
        for config in configs:
            sel = [r for r in rows if r["groups_per_item"] == gpi and r["config"] == config]
            entry = dict(groups_per_item=gpi, config=config, n_seeds=len(sel))
            for key in (
                "ami",
                "best_jaccard",
                "pair_precision",
                "pair_recall",
                "inertia",
                "kmeans_seconds",
            ):
                vals = [r[key] for r in sel if key in r]
                if vals:
                    entry[key] = float(np.mean(vals))
            table.append(entry)
    return table


def fmt(value: Any, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_md(result: dict[str, Any]) -> str:
    d = result["ml20m_shape"]
    md = [
        "# ItemGrouper speed and accuracy",
        "",
        f"Machine: {result['machine']['cpu_count']} CPU cores, load average at start "
        f"{result['machine']['loadavg_start']}, {result['machine']['platform']}. The machine is "
        "shared; timings are wall-clock seconds of one run.",
        "",
        f"## ML-20M-shaped synthetic data ({d['shape'][0]:,} x {d['shape'][1]:,}, "
        f"{d['nnz']:,} interactions, {d['n_groups']} planted groups), F = 50",
        "",
        "Paper (Table 6, ML-20M, K=1000): Algorithm 1 spectrum 155 s + k-means 528.6 s = "
        "683.6 s; Algorithm 2 41.3 s + 833.1 s = 874.4 s.",
        "",
        "| method | K | R | k-means | spectrum s | k-means s | assign s | total s | inertia "
        "| iterations |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["timings"]:
        md.append(
            f"| {r['method']} | {r['K']} | {r['R']} | {r['kmeans']} | {r['spectrum']:.1f} | "
            f"{r['kmeans_seconds']:.1f} | {r['assign']:.1f} | {r['total']:.1f} | "
            f"{r['inertia']:.1f} | {r['n_iter']} |"
        )
    lookups = [r["cached_lookup"] for r in result["timings"] if r["cached_lookup"] is not None]
    if lookups:
        md += [
            "",
            "Later fits on the same X load the embedding from `memory` (joblib: hash of X, "
            f"load) in {max(lookups):.2f} s at most instead of computing the spectrum.",
        ]
    if result.get("solvers"):
        md += [
            "",
            "### Eigen-solvers for the top-50 eigenvectors of Δ (same data)",
            "",
            "| solver | seconds | min cos of principal angles vs ItemGrouper | max rel. "
            "eigenvalue error |",
            "|---|---|---|---|",
        ]
        for r in result["solvers"]:
            md.append(
                f"| {r['solver']} | {r['seconds']:.1f} | {r['min_cos']:.4f} | "
                f"{r['max_eig_rel_err']:.1e} |"
            )
    md += [
        "",
        "## Planted-group recovery (20,000 x 2,000, 40 planted groups, noise 0.1, K = 40, "
        "F = 40, R = groups per item)",
        "",
        f"Mean over seeds {result['recovery_seeds']}. AMI: labels_ (nearest centroid) vs the "
        "planted group (one group per item only). Best Jaccard: for each planted group, the "
        "learned group that matches it best. Pair precision/recall: item pairs sharing a learned "
        "group vs pairs sharing a planted group.",
        "",
        "| groups/item | method/normalize/k-means | AMI | best Jaccard | pair precision | "
        "pair recall | inertia | k-means s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["recovery_summary"]:
        md.append(
            f"| {r['groups_per_item']} | {r['config']} | {fmt(r.get('ami'))} | "
            f"{fmt(r.get('best_jaccard'))} | {fmt(r.get('pair_precision'))} | "
            f"{fmt(r.get('pair_recall'))} | {fmt(r.get('inertia'), 1)} | "
            f"{fmt(r.get('kmeans_seconds'), 2)} |"
        )
    ml = result.get("ml1m")
    if ml:
        md += [
            "",
            f"## ml-1m ({ml['shape'][0]:,} x {ml['shape'][1]:,}, {ml['nnz']:,} interactions)",
            "",
            "Laplacian spectrum (F = 50) by solver: "
            + ", ".join(
                f"{k} {v:.2f} s" for k, v in ml["laplacian_spectrum_seconds_by_solver"].items()
            )
            + ".",
            "",
            "| method | K | R | k-means | spectrum s | k-means s | assign s | total s | inertia |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in ml["timings"]:
            md.append(
                f"| {r['method']} | {r['K']} | {r['R']} | {r['kmeans']} | {r['spectrum']:.2f} | "
                f"{r['kmeans_seconds']:.2f} | {r['assign']:.2f} | {r['total']:.2f} | "
                f"{r['inertia']:.1f} |"
            )
        md += [
            "",
            "Agreement with the MovieLens genres (K = 100, R = 10): item pairs that share a "
            "learned group and also share a genre.",
            "",
            "| method/normalize/k-means | pair precision | pair recall |",
            "|---|---|---|",
        ]
        for r in ml["genre_agreement_K100_R10"]:
            md.append(f"| {r['config']} | {r['pair_precision']:.3f} | {r['pair_recall']:.3f} |")
        md.append(
            f"\nShare of item pairs with a common genre: "
            f"{ml['genre_agreement_K100_R10'][0]['base_rate']:.3f}."
        )
    return "\n".join(md) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="no K=15000, no PROPACK, one seed")
    parser.add_argument(
        "--n-groups",
        type=int,
        default=200,
        help="planted groups of the ML-20M-shaped data (default 200)",
    )
    args = parser.parse_args()

    result: dict[str, Any] = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "platform": platform.platform(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "sklearn": sklearn.__version__,
            "blas": [(i["internal_api"], i["num_threads"]) for i in threadpool_info()],
        },
    }
    tic = time.perf_counter()
    X = make_interactions(**ML20M_SHAPE, n_groups=args.n_groups, random_state=0)
    result["ml20m_shape"] = {
        "shape": list(X.shape),
        "nnz": int(X.nnz),
        "n_groups": args.n_groups,
        "generate_seconds": time.perf_counter() - tic,
    }
    print("ItemGrouper timings, ML-20M shape", flush=True)
    Ks = [(1000, 100)] if args.quick else [(1000, 100), (15000, 1500)]
    result["timings"] = bench_grouper(X, Ks, "ml20m-shape")
    print("eigen-solvers", flush=True)
    result["solvers"] = bench_solvers(X, 50, propack=not args.quick)
    del X
    print("planted-group recovery", flush=True)
    seeds = [0] if args.quick else [0, 1, 2]
    result["recovery_seeds"] = seeds
    result["recovery"] = bench_recovery(seeds)
    result["recovery_summary"] = summarize_recovery(result["recovery"])
    print("ml-1m", flush=True)
    result["ml1m"] = bench_ml1m()
    result["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]

    md = write_md(result)
    print(md)
    if args.quick:  # a partial run never overwrites the committed results
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "grouping.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "grouping.md").write_text(md)


if __name__ == "__main__":
    main()
