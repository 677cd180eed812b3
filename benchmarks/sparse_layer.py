"""Speed of Sw-dae's sparse layer: kernel designs, and an epoch against the FC network.

1. Kernels: the decoder product ``Y = H Wᵀ`` and its two backward products for a batch of
   the model's default size (128 users), W of shape (n_items, K) with R connections per item,
   in four designs:

   - ``compiled`` (the model's kernels on CPU where a C compiler is found,
     ``skcfae/nn/_kernels.c``): the forward an item-major sweep in tiles of 32 users, both
     gradients in one sweep over the connections (its time is split in half between the two
     backward columns);
   - ``embedding_bag`` (the model's torch kernels, used on GPUs and where nothing compiles):
     forward is an embedding bag over each item's neurons, the hidden gradient an embedding
     bag over each neuron's items (CSC order, in slices of users), the weight gradient an
     SDDMM (``torch.sparse.sampled_addmm``);
   - ``csr``: torch CSR ``sparse.mm`` (MKL on CPU) for the forward and for the transposed
     product of the backward pass, the same SDDMM;
   - ``gather``: ``(H[:, idx] * w).sum(-1)`` over item chunks (forward only).

   Each is timed against the three dense GEMMs of an FC layer of the same width, measured in
   the same run; GFLOP/s count the useful multiply-adds (2·b·n_items·R per product).
2. Epoch: ``SparseWideDAE`` (compiled kernels, then torch kernels) vs ``FCDAE`` of the same
   width K on ML-20M-shaped synthetic data, the fastest of three epochs over ``--users``
   users through the real training engine (R/K = 10%, the models' defaults otherwise).

    python benchmarks/sparse_layer.py                 # ML-20M shape, K=1000 and 2000, 10k users
    python benchmarks/sparse_layer.py --K 1000 --users 5000

Results go to benchmarks/results/sparse_layer.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from skcfae.datasets import make_interactions
from skcfae.models import FCDAE, SparseWideDAE
from skcfae.nn import _native
from skcfae.nn._sparse import _item_major, _neuron_major, _Pattern, _sampled_product

RESULTS = Path(__file__).parent / "results"
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
warnings.filterwarnings("ignore", message="Sparse invariant checks")


def vector_isa() -> str:
    """The widest vector instructions of this CPU that the kernels can use (Linux)."""
    flags = _native._cpu_signature().split()
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def timed(fn, reps: int = 5) -> float:
    """Best of ``reps`` timed calls after a warm-up (the machine is a shared VM: the minimum is
    the least disturbed measurement)."""
    fn()
    best = float("inf")
    for _ in range(reps):
        tic = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - tic)
    return best


def torch_kernels(enabled: bool = True) -> None:
    """Make the model's layers use their torch kernels (True) or the compiled ones."""
    os.environ["SKCFAE_NATIVE"] = "0" if enabled else "1"


def random_pattern(n_items: int, K: int, R: int, seed: int = 0) -> sp.csr_array:
    g = torch.Generator().manual_seed(seed)
    cols = torch.argsort(torch.rand(n_items, K, generator=g), dim=1)[:, :R].sort(dim=1).values
    return sp.csr_array(
        (np.ones(n_items * R, np.float32), cols.numpy().ravel(), np.arange(0, n_items * R + 1, R)),
        shape=(n_items, K),
    )


def kernels(n_items: int, K: int, R: int, b: int = SparseWideDAE().batch_size) -> dict:
    g = torch.Generator().manual_seed(0)
    pattern = random_pattern(n_items, K, R)
    indptr = torch.from_numpy(pattern.indptr.astype(np.int64))
    cols = torch.from_numpy(pattern.indices.astype(np.int64))
    vals = torch.randn(len(cols), generator=g)
    W = torch.sparse_csr_tensor(indptr, cols, vals, (n_items, K))
    Wt = W.to_dense().T.contiguous().to_sparse_csr()
    Wd = W.to_dense()
    H = torch.rand(b, K, generator=g)
    # the output gradient in the layout the model produces: item-major, like the logits of
    # the embedding-bag forward (its elementwise loss keeps that layout)
    G = torch.randn(n_items, b, generator=g).t()
    Ht, Gt = H.T.contiguous(), G.T.contiguous()
    p = _Pattern(pattern)  # the model's own kernels (skcfae.nn._sparse)
    flops = 2.0 * b * n_items * R

    out: dict = {"batch": b, "dense_gemms_s": timed(lambda: (H @ Wd.T, G @ Wd, G.T @ H))}
    out["dense_gflops"] = 3 * 2.0 * b * n_items * K / out["dense_gemms_s"] / 1e9
    torch_kernels(True)
    sddmm = timed(lambda: _sampled_product(p, G, H))
    designs = {
        "embedding_bag": (
            timed(lambda: _item_major(p, vals, H)),
            timed(lambda: _neuron_major(p, vals, G)),
            sddmm,
        ),
        "csr": (
            timed(lambda: torch.sparse.mm(W, Ht)),
            timed(lambda: torch.sparse.mm(Wt, Gt)),
            sddmm,
        ),
    }
    idx = cols.view(n_items, R)
    w = vals.view(n_items, R)

    def gather() -> None:
        for s in range(0, n_items, 1024):
            (H[:, idx[s : s + 1024]] * w[s : s + 1024]).sum(-1)

    designs["gather"] = (timed(gather, reps=1), float("nan"), float("nan"))
    torch_kernels(False)
    if _native.library() is not None:  # forward, then both gradients in one sweep
        both = timed(lambda: _native.neuron_side(p, vals, G, H, accumulate=True))
        designs["compiled"] = (timed(lambda: _native.item_major(p, vals, H)), both / 2, both / 2)
    for name, (fwd, bwd_h, bwd_w) in designs.items():
        total = fwd + bwd_h + bwd_w
        out[name] = {
            "forward_s": fwd,
            "backward_hidden_s": bwd_h,
            "backward_weight_s": bwd_w,
            "total_s": total,
            "gflops": {
                "forward": flops / fwd / 1e9,
                "backward_hidden": flops / bwd_h / 1e9,
                "backward_weight": flops / bwd_w / 1e9,
            },
            "ratio_to_dense": total / out["dense_gemms_s"],
        }
    return out


def block_fill(membership: sp.csr_array, labels: np.ndarray) -> dict:
    """The block-sparse design, judged before writing its kernel: items sorted by their
    k-means group, cut into blocks of ``size`` items; a dense tile spans the union of a
    block's neurons. Returns the tiles' multiply-adds over the useful ones (the pattern's)."""
    M = sp.csr_array(membership)[np.argsort(labels, kind="stable")]
    out = {}
    for size in (16, 32, 64, 128):
        tiles = sum(
            np.unique(M[s : s + size].indices).size * min(size, M.shape[0] - s)
            for s in range(0, M.shape[0], size)
        )
        out[size] = tiles / M.nnz
    return out


def epoch(X: sp.csr_array, K: int, R: int, grouper: str) -> dict:
    n_items = X.shape[1]
    if grouper == "random":
        membership, group_s = random_pattern(n_items, K, R), 0.0
        labels = np.asarray(membership.argmax(axis=1)).ravel()
    else:
        from skcfae import ItemGrouper

        tic = time.perf_counter()
        fitted = ItemGrouper(K, R=R, random_state=0).fit(X)
        membership, labels = fitted.membership_, fitted.labels_
        group_s = time.perf_counter() - tic

    class Carrying(sp.csr_array):
        pass

    Xg = Carrying(X)
    Xg.membership = membership
    common = dict(epochs=3, random_state=0, device="cpu")
    torch_kernels(True)
    sw_torch = SparseWideDAE(**common).fit(Xg)
    torch_kernels(False)
    sw = SparseWideDAE(**common).fit(Xg)
    fc = FCDAE(K=K, **common).fit(X)
    sw_s = min(h["dur"] for h in sw.history_)  # fastest of 3 epochs (shared VM)
    sw_torch_s = min(h["dur"] for h in sw_torch.history_)
    fc_s = min(h["dur"] for h in fc.history_)
    return {
        "kernels": "compiled" if _native.library() is not None else "torch",
        "batch_size": sw.batch_size,
        "swdae_torch_kernels_epoch_s": sw_torch_s,
        "ratio_torch_kernels": sw_torch_s / fc_s,
        "users": X.shape[0],
        "items": n_items,
        "K": K,
        "R": R,
        "grouping": grouper,
        "grouping_s": group_s,
        "swdae_epoch_s": sw_s,
        "fcdae_epoch_s": fc_s,
        "ratio": sw_s / fc_s,
        "block_fill": block_fill(membership, labels),
        "swdae_parameters": sw.n_parameters_,
        "fcdae_parameters": fc.n_parameters_,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20108)
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--K", type=int, nargs="+", default=[1000, 2000])
    parser.add_argument("--grouper", choices=["random", "itemgrouper"], default="itemgrouper")
    args = parser.parse_args()
    X = make_interactions(136_677, args.items, n_groups=200, density=0.0036, random_state=0)[
        : args.users
    ]
    result: dict = {
        "machine": f"{platform.processor() or platform.machine()} ({vector_isa()}), "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "runs": [],
    }
    for K in args.K:
        R = max(1, round(0.1 * K))
        run = {"K": K, "R": R, "kernels": kernels(args.items, K, R)}
        print(json.dumps(run["kernels"], indent=1), flush=True)
        run["epoch"] = epoch(sp.csr_array(X), K, R, args.grouper)
        print(json.dumps(run["epoch"], indent=1), flush=True)
        result["runs"].append(run)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sparse_layer.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Sw-dae sparse layer speed", "", f"{result['machine']}.", ""]
    for run in result["runs"]:
        lines += report(run, args.items)
    (RESULTS / "sparse_layer.md").write_text("\n".join(lines))


def report(run: dict, n_items: int) -> list[str]:
    k, e, R = run["kernels"], run["epoch"], run["R"]
    lines = [
        f"## K={run['K']}, R={R}",
        "",
        f"Decoder of {n_items} items, K={run['K']}, R={R} (10%), "
        f"batch {k['batch']} (the model's default). Dense = the three GEMMs of the FC layer "
        "of the same width, "
        f"{k['dense_gemms_s']:.3f} s ({k['dense_gflops']:.1f} GFLOP/s).",
        "",
        "| design | forward s | backward (hidden) s | backward (weights) s | total s | "
        "GFLOP/s fwd / bwd-h / bwd-w | total / dense |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("embedding_bag", "csr", "gather", "compiled"):
        if name not in k:
            continue
        d = k[name]
        gf = d["gflops"]
        lines.append(
            f"| {name} | {d['forward_s']:.4f} | {d['backward_hidden_s']:.4f} | "
            f"{d['backward_weight_s']:.4f} | {d['total_s']:.4f} | "
            f"{gf['forward']:.1f} / {gf['backward_hidden']:.1f} / {gf['backward_weight']:.1f} | "
            f"{d['ratio_to_dense']:.3f} |"
        )
    lines += [
        "",
        f"Epoch over {e['users']} users x {e['items']} items (ML-20M-shaped synthetic), "
        f"K={e['K']}, R={e['R']}, groups from {e['grouping']}: Sw-dae {e['swdae_epoch_s']:.2f} s, "
        f"Fc-dae {e['fcdae_epoch_s']:.2f} s, ratio **{e['ratio']:.3f}** (goal <= 0.3; FLOP "
        f"ratio 0.1) with the {e['kernels']} kernels; with the torch kernels Sw-dae takes "
        f"{e['swdae_torch_kernels_epoch_s']:.2f} s, ratio {e['ratio_torch_kernels']:.3f}. "
        f"Batches of {e['batch_size']} users, the fastest of 3 epochs. "
        f"Parameters: {e['swdae_parameters']:,} vs {e['fcdae_parameters']:,}.",
        "",
        "Block-sparse (items sorted by group, dense tiles over each block's neurons), judged "
        "by its multiply-adds before writing a kernel: tiles hold "
        + ", ".join(f"{v:.1f}x ({k} items)" for k, v in e["block_fill"].items())
        + f" the useful ones, i.e. {min(e['block_fill'].values()) * R / run['K']:.2f}x or more "
        "of the dense layer's work, before the gathers; it cannot beat the sweeps over the "
        "connections, so it was not built.",
        "",
    ]
    return lines


if __name__ == "__main__":
    main()
