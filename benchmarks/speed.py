"""Speed of the shared engine: one Mult-VAE epoch on ML-20M-shaped data, and top-100 for 10k users.

Reports seconds, peak memory and the ratio to the FLOP floor measured in the same run: the time
torch takes for the dense decoder GEMMs of the epoch (per batch of 500: logits = h Wᵀ, and the
two backward products G W and Gᵀ h, with h 500 x 600 and W n_items x 600). The floor is taken
under the CPU allocator setting the engine trains with (``reuse_freed_memory``: freed large
blocks reused, no fresh pages per GEMM output) and, for reference, without it; the epoch is
timed with and without it too. The optimiser's share is timed alone (torch's fused Adam over
the fitted network's parameters, per batch): a memory-bound pass over every parameter that
the FLOP floor leaves out, so ``floor + Adam`` is what an epoch with dense Adam can approach.
A "dense" reference
epoch (dense input batch, autograd log-softmax loss, for-each Adam: how common peer
implementations write Mult-VAE) is timed on a slice of the epoch for comparison.

    python benchmarks/speed.py                 # ML-20M shape: 136,677 x 20,108, ~10M entries
    python benchmarks/speed.py --users 20000   # quicker

Results go to benchmarks/results/speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from skcfae import MultVAE
from skcfae.datasets import make_interactions
from skcfae.nn import _allocator

RESULTS = Path(__file__).parent / "results"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floor_seconds(n_batches: int, n_items: int, batch: int = 500, hidden: int = 600) -> float:
    """Time of the decoder's three dense GEMMs per batch, times the number of batches."""
    g = torch.Generator().manual_seed(0)
    h = torch.randn(batch, hidden, generator=g)
    W = torch.randn(n_items, hidden, generator=g)
    G = torch.randn(batch, n_items, generator=g)
    for _ in range(2):  # warm-up
        h @ W.T, G @ W, G.T @ h
    reps = 10
    tic = time.perf_counter()
    for _ in range(reps):
        h @ W.T, G @ W, G.T @ h
    return (time.perf_counter() - tic) / reps * n_batches


def adam_seconds(module: torch.nn.Module, n_batches: int) -> float:
    """Time of the optimiser alone over an epoch: torch's fused Adam step (the engine's) over
    copies of the fitted network's parameters, with gradients, times the number of batches.
    A pass over every parameter per step, bound by memory bandwidth, not FLOPs."""
    params = [p.detach().clone().requires_grad_(True) for p in module.parameters()]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)
    for _ in range(2):  # warm-up: the moment buffers are allocated on the first step
        opt.step()
    reps = 10
    tic = time.perf_counter()
    for _ in range(reps):
        opt.step()
    return (time.perf_counter() - tic) / reps * n_batches


def dense_reference_seconds(X, n_batches: int, seed: int = 0) -> float:
    """Seconds per batch of a textbook dense implementation (dense batch, log_softmax, Adam)."""
    n_items = X.shape[1]
    g = torch.Generator().manual_seed(seed)
    enc = torch.nn.Sequential(
        torch.nn.Linear(n_items, 600), torch.nn.Tanh(), torch.nn.Linear(600, 400)
    )
    dec = torch.nn.Sequential(
        torch.nn.Linear(200, 600), torch.nn.Tanh(), torch.nn.Linear(600, n_items)
    )
    params = [*enc.parameters(), *dec.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    times = []
    for b in range(n_batches):
        x = torch.from_numpy(X[b * 500 : (b + 1) * 500].toarray())
        tic = time.perf_counter()
        opt.zero_grad()
        xn = torch.nn.functional.normalize(x, dim=1)
        xn = torch.nn.functional.dropout(xn, 0.5)
        h = enc(xn)
        mu, logvar = h[:, :200], h[:, 200:]
        z = mu + torch.randn(mu.shape, generator=g) * torch.exp(0.5 * logvar)
        logits = dec(z)
        nll = -(torch.log_softmax(logits, 1) * x).sum(1).mean()
        kl = (0.5 * (torch.exp(logvar) + mu**2 - 1 - logvar)).sum(1).mean()
        (nll + 0.2 * kl).backward()
        opt.step()
        times.append(time.perf_counter() - tic)
    return float(np.median(times[1:]))


def recommend_in_subprocess(model_path: str, X_path: str, n_users: int) -> dict:
    code = f"""
import pickle, resource, time, json
model = pickle.load(open({model_path!r}, 'rb')); X = pickle.load(open({X_path!r}, 'rb'))
X = X[:{n_users}]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
tic = time.perf_counter(); top = model.recommend(X, n=100); sec = time.perf_counter() - tic
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(dict(seconds=sec, peak_mb_over_loaded=peak - base, shape=list(top.shape))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=136_677)
    parser.add_argument("--items", type=int, default=20_108)
    parser.add_argument("--interactions", type=float, default=10.0e6)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    tic = time.perf_counter()
    density = args.interactions / (args.users * args.items)
    X = make_interactions(args.users, args.items, n_groups=200, density=density, random_state=0)
    gen_s = time.perf_counter() - tic
    n_batches = int(np.ceil(X.shape[0] / 500))
    print(f"data {X.shape} nnz={X.nnz} generated in {gen_s:.1f}s", flush=True)

    floor_plain = floor_seconds(n_batches, X.shape[1])
    with _allocator.reuse_freed_memory():
        floor = floor_seconds(n_batches, X.shape[1])
    print(
        f"floor (decoder GEMMs of one epoch): {floor:.1f}s (fresh pages per output: "
        f"{floor_plain:.1f}s)",
        flush=True,
    )
    rss0 = peak_rss_mb()
    model = MultVAE(epochs=1, random_state=0, device=args.device)
    tic = time.perf_counter()
    model.fit(X)
    fit_s = time.perf_counter() - tic
    epoch_s = model.history_[0]["dur"]
    print(
        f"Mult-VAE epoch: {epoch_s:.1f}s (fit {fit_s:.1f}s) = {epoch_s / floor:.2f}x floor",
        flush=True,
    )
    with _allocator.reuse_freed_memory():
        adam = adam_seconds(model.module_, n_batches)
    print(
        f"fused Adam steps of one epoch ({model.n_parameters_:,} parameters): {adam:.1f}s; "
        f"floor + Adam {floor + adam:.1f}s = {(floor + adam) / floor:.2f}x floor",
        flush=True,
    )
    libc, _allocator._LIBC = _allocator._LIBC, None  # the same epoch with glibc's defaults
    try:
        plain = MultVAE(epochs=1, random_state=0, device=args.device).fit(X)
    finally:
        _allocator._LIBC = libc
    epoch_plain = plain.history_[0]["dur"]
    print(f"Mult-VAE epoch, glibc's default allocation: {epoch_plain:.1f}s", flush=True)
    dense_batch = dense_reference_seconds(X, n_batches=min(6, n_batches))
    dense_epoch = dense_batch * n_batches
    print(f"dense reference: {dense_epoch:.1f}s per epoch = {dense_epoch / floor:.2f}x floor")

    with tempfile.TemporaryDirectory() as tmp:
        mp, xp = f"{tmp}/m.pkl", f"{tmp}/x.pkl"
        Path(mp).write_bytes(pickle.dumps(model))
        Path(xp).write_bytes(pickle.dumps(X[:10_000]))
        rec = recommend_in_subprocess(mp, xp, 10_000)
    dense_scores_mb = 10_000 * X.shape[1] * 4 / 2**20
    print(
        f"recommend top-100 for 10,000 users: {rec['seconds']:.1f}s, "
        f"+{rec['peak_mb_over_loaded']:.0f} MB "
        f"(a dense score matrix would be {dense_scores_mb:.0f} MB)"
    )

    result = {
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "device": args.device,
        },
        "data": {"shape": list(X.shape), "nnz": int(X.nnz), "generate_seconds": gen_s},
        "epoch_seconds": epoch_s,
        "fit_seconds": fit_s,
        "epoch_seconds_glibc_default_allocation": epoch_plain,
        "floor_seconds": floor,
        "floor_seconds_glibc_default_allocation": floor_plain,
        "epoch_over_floor": epoch_s / floor,
        "adam_seconds": adam,
        "epoch_over_floor_plus_adam": epoch_s / (floor + adam),
        "dense_reference_epoch_seconds": dense_epoch,
        "dense_reference_over_floor": dense_epoch / floor,
        "fit_peak_rss_mb": peak_rss_mb(),
        "fit_peak_rss_mb_before": rss0,
        "recommend_10k_seconds": rec["seconds"],
        "recommend_10k_peak_mb": rec["peak_mb_over_loaded"],
        "dense_score_matrix_mb": dense_scores_mb,
    }
    RESULTS.mkdir(exist_ok=True)
    tag = "" if args.users == 136_677 else f"_{args.users}"
    (RESULTS / f"speed{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# Speed ({X.shape[0]:,} x {X.shape[1]:,}, {X.nnz:,} interactions, "
        f"{torch.get_num_threads()} CPU threads, {args.device})",
        "",
        "| measurement | seconds | x floor |",
        "|---|---|---|",
        f"| FLOP floor: decoder GEMMs of one epoch | {floor:.1f} | 1.00 |",
        f"| skcfae Mult-VAE epoch | {epoch_s:.1f} | {epoch_s / floor:.2f} |",
        f"| fused Adam steps of one epoch, alone | {adam:.1f} | {adam / floor:.2f} |",
        f"| floor + Adam | {floor + adam:.1f} | {(floor + adam) / floor:.2f} |",
        f"| floor, glibc's default allocation | {floor_plain:.1f} | {floor_plain / floor:.2f} |",
        f"| epoch, glibc's default allocation | {epoch_plain:.1f} | {epoch_plain / floor:.2f} |",
        f"| dense reference epoch | {dense_epoch:.1f} | {dense_epoch / floor:.2f} |",
        f"| recommend top-100, 10,000 users | {rec['seconds']:.1f} | |",
        "",
        f"Recommendation peak memory: +{rec['peak_mb_over_loaded']:.0f} MB over the loaded model "
        f"(a dense 10,000 x {X.shape[1]:,} score matrix is {dense_scores_mb:.0f} MB).",
        f'Synthetic data generated in {gen_s:.1f} s. "glibc\'s default allocation": a fresh '
        "mmap for every block above 32 MB, as outside skcfae's training loop; the engine "
        "reuses freed blocks while it trains (`skcfae.nn._allocator`).",
    ]
    (RESULTS / f"speed{tag}.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
