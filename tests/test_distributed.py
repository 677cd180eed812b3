"""Data-parallel training (``skcfae.distributed``): 2 ranks on loopback under ``torchrun`` give
the fit of one process, within float32 summation noise; one rank gives it bit for bit.

Run as a script (``torchrun --standalone --nproc-per-node=2 tests/test_distributed.py OUT``)
this file is the worker of :func:`test_two_ranks_match_one_process`: every rank fits the
same models on its shard and writes them to OUT.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from skcfae.distributed import shard_rows, shard_slice

ROOT = Path(__file__).resolve().parents[1]

#: Largest |weight difference| allowed between the 2-rank fit and the fit in one process, and
#: the relative difference of their training losses. The updates are the same sums in another
#: order (each rank sums its rows, then the ranks' sums are added): float32 rounding,
#: eps = 1.2e-7, carried through 12 to 20 Adam updates. Measured: at most 9e-8 (weights) and 1e-7
#: (losses); 1e-5 leaves two orders of magnitude for other CPUs and BLAS builds.
TOLERANCE = 1e-5


def _data():
    from skcfae.datasets import make_interactions

    X = make_interactions(300, 80, random_state=0)
    return X[:240], X[240:]


def _models():
    """name -> (estimator, fit kwargs): deterministic settings (no dropout) except "vae" and
    "early_stopping"."""
    from sklearn.pipeline import Pipeline

    from skcfae import FCDAE, ItemGrouper, MultDAE, MultVAE, SparseWideDAE

    _, X_valid = _data()
    common = {"epochs": 3, "batch_size": 64, "random_state": 0, "device": "cpu"}
    wide = {**common, "dropout": 0.0, "hidden_dropout": 0.0, "early_stopping": False}
    return {
        "dae": (MultDAE(16, dropout=0.0, **common), {}),
        "dae_valid": (MultDAE(16, dropout=0.0, **common), {"X_valid": X_valid}),
        "vae": (MultVAE(8, hidden_layer_sizes=(32,), **common), {}),
        "swdae": (SparseWideDAE(16, R=3, F=8, **wide), {}),
        "fcdae_prune": (FCDAE(16, prune=0.5, prune_epochs=2, l1_activation=0.01, **wide), {}),
        "pipeline": (
            Pipeline(
                [
                    ("group", ItemGrouper(16, R=3, F=8, random_state=0)),
                    ("dae", SparseWideDAE(**wide)),
                ]
            ),
            {},
        ),
        "early_stopping": (SparseWideDAE(16, R=3, F=8, n_iter_no_change=1, **common), {}),
    }


def _last(estimator):
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def _worker(out: Path) -> None:
    """One rank of the torchrun job: fit every model of :func:`_models` on this rank's
    shard, write the fitted models (and rank 0 a skcfae.save file), and check that
    disagreeing ranks fail together."""
    warnings.simplefilter("ignore")  # ConvergenceWarning of 3-epoch fits
    import torch.distributed as dist

    import skcfae
    from skcfae import MultDAE
    from skcfae.distributed import fit_distributed

    X_train, X_valid = _data()
    fitted = {}
    for name, (estimator, kwargs) in _models().items():
        fitted[name] = pickle.dumps(fit_distributed(estimator, shard_rows(X_train), **kwargs))
    rank = dist.get_rank()
    if rank == 0:
        skcfae.save(_last(pickle.loads(fitted["dae"])), out / "dae.skcfae")
    errors = {}
    cases = {  # rank 1 differs from rank 0: every rank must raise, none may hang
        "params": (MultDAE(8 + rank, epochs=1, device="cpu"), {}),
        "X_valid": (MultDAE(8, epochs=1, device="cpu"), {"X_valid": X_valid[rank:]}),
    }
    for case, (estimator, kwargs) in cases.items():
        try:
            fit_distributed(estimator, shard_rows(X_train), **kwargs)
        except ValueError as exc:
            errors[case] = str(exc)
    with open(out / f"rank{rank}.pkl", "wb") as f:
        pickle.dump({"fitted": fitted, "errors": errors}, f)
    dist.destroy_process_group()
    # Skip interpreter finalization: there gloo's worker threads can still release tensors
    # and abort the process ("terminate called without an active exception", SIGABRT) after
    # all the work is done and written (a torch teardown race, pytorch/pytorch PR 179291).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _torch_distributed_missing() -> str | None:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return "torch is not installed"
    if not dist.is_available():
        return "this build of torch has no torch.distributed"
    if not dist.is_gloo_available():
        return "torch.distributed has no gloo backend (needed for CPU ranks)"
    return None


needs_gloo = pytest.mark.skipif(
    _torch_distributed_missing() is not None, reason=str(_torch_distributed_missing())
)


def _state(estimator):
    return _last(estimator).module_.state_dict()


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """The fitted models of both ranks of one ``torchrun --nproc-per-node=2`` job."""
    reason = _torch_distributed_missing()
    if reason is not None:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cmd += [str(Path(__file__).resolve()), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240, cwd=ROOT)
    assert run.returncode == 0, f"torchrun failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    ranks = []
    for rank in range(2):
        with open(out / f"rank{rank}.pkl", "rb") as f:
            content = pickle.load(f)
        content["fitted"] = {k: pickle.loads(v) for k, v in content["fitted"].items()}
        ranks.append(content)
    return out, ranks


@pytest.fixture(scope="module")
def one_process():
    """The same models fitted in this process on all training rows."""
    X_train, _ = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {name: est.fit(X_train, **kw) for name, (est, kw) in _models().items()}


@needs_gloo
def test_two_ranks_match_one_process(two_ranks, one_process):
    _, (rank0, rank1) = two_ranks
    for name in ("dae", "dae_valid", "swdae", "fcdae_prune", "pipeline"):
        distributed, single = rank0["fitted"][name], one_process[name]
        assert _max_diff(_state(distributed), _state(single)) <= TOLERANCE, name
        losses = np.array([r["train_loss"] for r in _last(distributed).history_])
        expected = np.array([r["train_loss"] for r in _last(single).history_])
        np.testing.assert_allclose(losses, expected, rtol=TOLERANCE, err_msg=name)
    valid = [r["valid_ndcg"] for r in _last(rank0["fitted"]["dae_valid"]).history_]
    expected = [r["valid_ndcg"] for r in _last(one_process["dae_valid"]).history_]
    np.testing.assert_allclose(valid, expected, atol=TOLERANCE)
    # the groups are those of one process: the grouper is fitted on the rows of all ranks
    for name in ("swdae", "pipeline"):
        for rank in (rank0, rank1):
            got = _last(rank["fitted"][name]).membership_
            assert (got != _last(one_process[name]).membership_).nnz == 0, name
    assert rank1["fitted"]["swdae"].grouper_.membership_.shape == (80, 16)
    assert rank1["fitted"]["pipeline"].steps[0][1].membership_.shape == (80, 16)


@needs_gloo
def test_ranks_end_with_the_same_model(two_ranks):
    _, (rank0, rank1) = two_ranks
    for name in rank0["fitted"]:
        a, b = _last(rank0["fitted"][name]), _last(rank1["fitted"][name])
        assert _max_diff(_state(a), _state(b)) == 0.0, name  # bit for bit
        strip = [{k: v for k, v in r.items() if k != "dur"} for r in a.history_]
        assert strip == [{k: v for k, v in r.items() if k != "dur"} for r in b.history_], name
    # early stopping: validation users drawn from both shards, one decision for both ranks
    a, b = rank0["fitted"]["early_stopping"], rank1["fitted"]["early_stopping"]
    assert a.best_epoch_ == b.best_epoch_ and "valid_ndcg" in a.history_[0]


@needs_gloo
def test_sampling_models_match_in_distribution(two_ranks, one_process):
    """Mult-VAE's noise is drawn per rank: not the same numbers, the same training."""
    _, (rank0, _) = two_ranks
    losses = [r["train_loss"] for r in rank0["fitted"]["vae"].history_]
    expected = [r["train_loss"] for r in one_process["vae"].history_]
    np.testing.assert_allclose(losses, expected, rtol=0.05)


@needs_gloo
def test_rank_zero_saves_a_model_that_loads_anywhere(two_ranks, one_process):
    import skcfae

    out, _ = two_ranks
    X_train, X_valid = _data()
    model = skcfae.load(out / "dae.skcfae")
    np.testing.assert_allclose(
        model.decision_function(X_valid), one_process["dae"].decision_function(X_valid), atol=1e-4
    )
    assert model.recommend(X_valid, n=5).shape == (60, 5)


@needs_gloo
def test_ranks_that_disagree_all_raise(two_ranks):
    _, ranks = two_ranks
    for rank in ranks:
        assert (
            "the estimator's parameters must be the same on every rank" in rank["errors"]["params"]
        )
        assert "X_valid must be the same on every rank" in rank["errors"]["X_valid"]


@pytest.fixture
def single_rank_group(tmp_path):
    """A gloo process group of one rank in this process (no torchrun)."""
    reason = _torch_distributed_missing()
    if reason is not None:
        pytest.skip(reason)
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("name", ["dae_valid", "swdae"])
def test_one_rank_is_one_process_bit_for_bit(single_rank_group, name):
    from sklearn.base import clone

    from skcfae.distributed import fit_distributed

    X_train, _ = _data()
    estimator, kwargs = _models()[name]
    estimator.set_params(dropout=0.5)  # the corruption too: rank 0 draws what one process draws
    single = clone(estimator).fit(X_train, **kwargs)
    distributed = fit_distributed(estimator, X_train, **kwargs)
    assert _max_diff(_state(distributed), _state(single)) == 0.0
    strip = [{k: v for k, v in r.items() if k != "dur"} for r in single.history_]
    assert strip == [{k: v for k, v in r.items() if k != "dur"} for r in distributed.history_]


def test_unsupported_estimators_are_refused_before_any_collective():
    from skcfae import CDAE, EASE, MultDAE, SparseWideDAE
    from skcfae.distributed import fit_distributed

    X_train, _ = _data()
    for estimator in (EASE(), CDAE()):
        with pytest.raises(TypeError, match="trains FCDAE, MultDAE, MultVAE and SparseWideDAE"):
            fit_distributed(estimator, X_train)
    for estimator, match in [
        (MultDAE(warm_start=True), "warm_start=True or a checkpoint"),
        (MultDAE(checkpoint="x.ckpt"), "warm_start=True or a checkpoint"),
        (SparseWideDAE(record_diagnostics=True), "record_diagnostics"),
        (SparseWideDAE(stacked_sizes=(8,)), "stacked SparseWideDAE"),
    ]:
        with pytest.raises(ValueError, match=match):
            fit_distributed(estimator, X_train)


def test_outside_torchrun_the_error_says_how_to_start(monkeypatch):
    import torch.distributed as dist

    from skcfae import MultDAE
    from skcfae.distributed import fit_distributed

    if dist.is_available() and dist.is_initialized():  # pragma: no cover
        pytest.skip("a process group is already initialised")
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --nproc-per-node=N"):
        fit_distributed(MultDAE(device="cpu"), _data()[0])


def test_shards_are_contiguous_blocks_that_stack_to_x():
    from skcfae.grouping import GroupedInteractions

    assert [shard_slice(10, r, 4) for r in range(4)] == [
        slice(0, 2),
        slice(2, 5),
        slice(5, 7),
        slice(7, 10),
    ]
    X, _ = _data()
    parts = [shard_rows(X, r, 3) for r in range(3)]
    assert [p.shape[0] for p in parts] == [80, 80, 80]
    assert (sp.vstack(parts) != X).nnz == 0
    membership = sp.csr_array(np.eye(80, 4, dtype=np.float32))
    part = shard_rows(GroupedInteractions(X, membership=membership), 1, 2)
    assert part.shape == (120, 80) and part.membership is membership
    with pytest.raises(ValueError, match="rank must be in"):
        shard_slice(10, 2, 2)


def test_shards_default_to_torchruns_environment(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert shard_slice(7) == slice(3, 7)
    monkeypatch.delenv("RANK")
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        with pytest.raises(ValueError, match="pass rank and world_size"):
            shard_slice(7)


def test_each_rank_draws_its_own_noise():
    from skcfae.nn._distributed import DataParallel

    seeds = []
    for rank in range(3):
        group = object.__new__(DataParallel)
        group.rank = rank
        seeds.append(group._rank_seed(12345))
    assert seeds[0] == 12345 and len(set(seeds)) == 3


def test_the_module_imports_without_torch():
    code = "import sys, skcfae.distributed; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
