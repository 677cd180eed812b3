"""The GPU checks in one run (≤ 8 minutes on one GPU): run it whenever a CUDA machine is lent.

1. ``pytest -m gpu``: every test that needs a CUDA device (they skip elsewhere).
2. Mult-VAE, one epoch on ML-20M-shaped synthetic data (136,677 x 20,108, ~10M entries), against
   the floor measured in the same run: the decoder's three dense GEMMs per batch of 500 on the
   device (anchor: NVIDIA's VAE-CF, 0.28 s per epoch on one A100).
3. Sw-dae against Fc-dae of the same width (K = 1000, 2000; R = K/10), the fastest of 3 epochs on
   10,000 users of the same data.
4. Recommendation memory: peak device memory of ``recommend(n=100)`` for 10,000 users.
5. A GPU-trained model saved with ``skcfae.save`` and loaded in a process that sees no GPU
   (``CUDA_VISIBLE_DEVICES=""``): the same scores.
6. Data-parallel training: ``examples/ddp_train.py`` under ``torchrun`` with one rank per
   visible GPU (NCCL; gloo on CPU), its test NDCG@100 and wall time.

    python benchmarks/gpu_check.py                       # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --small  # dry run of the script on a CPU

Results go to benchmarks/results/gpu_check{,_small}.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

import skcfae
from skcfae import FCDAE, ItemGrouper, MultVAE, SparseWideDAE
from skcfae.datasets import make_interactions

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).parent.parent


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def gpu_tests() -> dict:
    tic = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    lines = out.stdout.strip().splitlines()
    return {
        "returncode": out.returncode,
        "summary": lines[-1] if lines else out.stderr[-500:],
        "seconds": time.perf_counter() - tic,
    }


def floor_seconds(device: str, n_batches: int, n_items: int, batch=500, hidden=600) -> float:
    """The decoder's three dense GEMMs per batch (h Wᵀ, G W, Gᵀ h) times the batches."""
    g = torch.Generator(device=device).manual_seed(0)
    h = torch.randn(batch, hidden, generator=g, device=device)
    W = torch.randn(n_items, hidden, generator=g, device=device)
    G = torch.randn(batch, n_items, generator=g, device=device)
    for _ in range(3):
        h @ W.T, G @ W, G.T @ h
    sync(device)
    reps = 20
    tic = time.perf_counter()
    for _ in range(reps):
        h @ W.T, G @ W, G.T @ h
    sync(device)
    return (time.perf_counter() - tic) / reps * n_batches


def multvae_epoch(X: sp.csr_array, device: str) -> dict:
    model = MultVAE(epochs=2, random_state=0, device=device).fit(X)  # epoch 1 warms up
    epoch_s = model.history_[-1]["dur"]
    floor = floor_seconds(device, int(np.ceil(X.shape[0] / 500)), X.shape[1])
    return {"epoch_s": epoch_s, "floor_s": floor, "ratio_to_floor": epoch_s / floor}, model


def sparse_vs_fc(X: sp.csr_array, device: str, widths: list[int]) -> list[dict]:
    rows = []
    for K in widths:
        R = max(1, round(K / 10))
        grouped = ItemGrouper(K, R=R, random_state=0).fit_transform(X)
        common = dict(epochs=3, early_stopping=False, random_state=0, device=device)
        sw = SparseWideDAE(**common).fit(grouped)
        fc = FCDAE(K=K, **common).fit(X)
        sw_s = min(h["dur"] for h in sw.history_)
        fc_s = min(h["dur"] for h in fc.history_)
        rows.append(
            {
                "K": K,
                "R": R,
                "users": X.shape[0],
                "swdae_epoch_s": sw_s,
                "fcdae_epoch_s": fc_s,
                "ratio": sw_s / fc_s,
            }
        )
    return rows


def recommend_memory(model, X: sp.csr_array, device: str) -> dict:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    tic = time.perf_counter()
    top = model.recommend(X, n=100)
    sync(device)
    out = {"users": X.shape[0], "seconds": time.perf_counter() - tic, "shape": list(top.shape)}
    if device.startswith("cuda"):
        out["peak_mb_over_model"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    return out


def loads_without_gpu(model, X: sp.csr_array) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        skcfae.save(model, Path(tmp) / "m.skcfae")
        sp.save_npz(Path(tmp) / "X.npz", X)
        np.save(Path(tmp) / "scores.npy", model.decision_function(X))
        code = (
            "import sys, warnings, numpy as np, scipy.sparse as sp, skcfae, torch;"
            "warnings.simplefilter('ignore'); d = sys.argv[1];"
            "m = skcfae.load(d + '/m.skcfae'); X = sp.load_npz(d + '/X.npz');"
            "diff = np.abs(m.decision_function(X) - np.load(d + '/scores.npy')).max();"
            "print(torch.cuda.is_available(), m.device_, float(diff))"
        )
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        out = subprocess.run(
            [sys.executable, "-c", code, tmp], env=env, capture_output=True, text=True, check=True
        )
    cuda_seen, device, diff = out.stdout.split()
    return {"cuda_visible": cuda_seen == "True", "device_": device, "max_abs_diff": float(diff)}


def data_parallel(device: str, small: bool) -> dict:
    ranks = max(1, torch.cuda.device_count()) if device.startswith("cuda") else 2
    with tempfile.TemporaryDirectory() as tmp:
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={ranks}", str(ROOT / "examples" / "ddp_train.py"),
            "--device", "cuda" if device.startswith("cuda") else "cpu",
            "--epochs", "3" if small else "10", "--out", str(Path(tmp) / "ddp.skcfae"),
        ]  # fmt: skip
        tic = time.perf_counter()
        out = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = (out.stdout if out.returncode == 0 else out.stderr).strip().splitlines()
    return {
        "ranks": ranks,
        "returncode": out.returncode,
        "seconds": time.perf_counter() - tic,
        "tail": lines[-3:],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--small", action="store_true", help="a small shape: a dry run")
    args = parser.parse_args()
    users, items, nnz = (3000, 2000, 1.0e5) if args.small else (136_677, 20_108, 10.0e6)
    widths = [100, 200] if args.small else [1000, 2000]
    result: dict = {"device": args.device, "torch": torch.__version__}
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
    result["gpu_tests"] = gpu_tests()
    print(result["gpu_tests"], flush=True)
    X = make_interactions(users, items, n_groups=200, density=nnz / (users * items), random_state=0)
    result["multvae"], model = multvae_epoch(X, args.device)
    print(result["multvae"], flush=True)
    result["sparse_vs_fc"] = sparse_vs_fc(X[:10_000], args.device, widths)
    print(result["sparse_vs_fc"], flush=True)
    result["recommend"] = recommend_memory(model, X[:10_000], args.device)
    print(result["recommend"], flush=True)
    result["load_without_gpu"] = loads_without_gpu(model, X[:200])
    print(result["load_without_gpu"], flush=True)
    result["data_parallel"] = data_parallel(args.device, args.small)
    print(result["data_parallel"], flush=True)

    name = "gpu_check_small" if args.small else "gpu_check"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    v, r = result["multvae"], result["recommend"]
    lines = [
        f"# GPU checks ({result.get('gpu', args.device)}, torch {result['torch']})",
        "",
        f"- `pytest -m gpu`: {result['gpu_tests']['summary']}",
        f"- Mult-VAE epoch on {users:,} x {items:,} ({X.nnz:,} entries): {v['epoch_s']:.2f} s, "
        f"floor {v['floor_s']:.2f} s, {v['ratio_to_floor']:.2f}x the floor",
        *(
            f"- Sw-dae vs Fc-dae epoch, K={s['K']}, R={s['R']}, {s['users']:,} users: "
            f"{s['swdae_epoch_s']:.3f} s vs {s['fcdae_epoch_s']:.3f} s = {s['ratio']:.2f}x"
            for s in result["sparse_vs_fc"]
        ),
        f"- recommend(n=100) for {r['users']:,} users: {r['seconds']:.2f} s"
        + (
            f", peak {r['peak_mb_over_model']:.0f} MiB over the model"
            if "peak_mb_over_model" in r
            else ""
        ),
        f"- loaded where no GPU is visible: device_ {result['load_without_gpu']['device_']}, "
        f"max |score difference| {result['load_without_gpu']['max_abs_diff']:.2e}",
        f"- torchrun, {result['data_parallel']['ranks']} rank(s): exit "
        f"{result['data_parallel']['returncode']}, {result['data_parallel']['seconds']:.0f} s, "
        f"{' / '.join(result['data_parallel']['tail'])}",
        "",
        f"Command: `python benchmarks/gpu_check.py{' --small' if args.small else ''}"
        f"{'' if args.device == 'cuda' else ' --device ' + args.device}`",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
