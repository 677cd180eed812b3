"""
Data-parallel training under torchrun
=====================================

Trains the Sw-dae Pipeline (``ItemGrouper`` then ``SparseWideDAE``) with
``torch.distributed``, one process per rank, each rank on its own shard of the training
users, and saves the fitted Pipeline from rank 0. Not run by the documentation build: start
it with ``torchrun``, e.g. two CPU processes on this machine::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node=2 examples/ddp_train.py

or one process per GPU (NCCL) with ``--device cuda``. Options: ``--users``, ``--items``,
``--epochs``, ``--out`` (the model file, default ``swdae_ddp.skcfae``).

Every rank generates the same synthetic data here and keeps its rows
(``skcfae.distributed.shard_rows``); with real data, read only the rows
``skcfae.distributed.shard_slice(n_users)`` of each rank. The ItemGrouper is fitted once,
on rank 0, on the rows of all ranks, and sent to every rank; the training all-reduces the
gradients of every update. Rank 0 then scores the test users, never seen in training
(``score``: NDCG@100 of 20% of each user's items from the other 80%), and writes the model
file, which loads on any machine with ``skcfae.load``.
"""

from __future__ import annotations

import argparse
import time

import torch.distributed as dist
from sklearn.pipeline import Pipeline

import skcfae
from skcfae import ItemGrouper, SparseWideDAE
from skcfae.datasets import make_interactions
from skcfae.distributed import fit_distributed, shard_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL)")
    parser.add_argument("--out", default="swdae_ddp.skcfae")
    args = parser.parse_args()

    # The same users on every rank (in practice: each rank reads its rows only).
    X = make_interactions(args.users, args.items, random_state=0)
    n_test = args.users // 10
    X_train, X_valid, X_test = X[: -2 * n_test], X[-2 * n_test : -n_test], X[-n_test:]

    pipe = Pipeline(
        [
            ("group", ItemGrouper(K=args.items // 5, random_state=0)),
            ("dae", SparseWideDAE(epochs=args.epochs, device=args.device, random_state=0)),
        ]
    )
    tic = time.perf_counter()
    # X_valid: the same validation users on every rank, scored on rank 0 after every epoch.
    fit_distributed(pipe, shard_rows(X_train), X_valid=X_valid)
    seconds = time.perf_counter() - tic

    rank, world_size = dist.get_rank(), dist.get_world_size()
    if rank == 0:
        model = pipe[-1]
        print(
            f"{world_size} rank(s), {X_train.shape[0]} training users "
            f"(~{X_train.shape[0] // world_size} per rank): fit in {seconds:.1f} s, best "
            f"epoch {model.best_epoch_} of {len(model.history_)}, test NDCG@100 "
            f"{pipe.score(X_test):.4f}"
        )
        skcfae.save(pipe, args.out)
        print(f"saved to {args.out}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
