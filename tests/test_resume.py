"""Resuming training: ``warm_start`` continues a fitted network, ``checkpoint`` survives a
killed process, and both end bit for bit where one uninterrupted fit ends (CPU)."""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skcfae import MultDAE
from skcfae.base import shared_args
from skcfae.datasets import make_interactions
from skcfae.models._neural import RESUME_CONSTRAINTS
from skcfae.nn import Phase, Plan, TrainConfig, user_rows
from skcfae.nn import train as engine_train

ROOT = Path(__file__).resolve().parents[1]


class ResumableDAE(MultDAE):
    """MultDAE with the opt-in resume parameters, as a model takes them."""

    _parameter_constraints = {**MultDAE._parameter_constraints, **RESUME_CONSTRAINTS}

    def __init__(
        self,
        n_components=200,
        *,
        hidden_layer_sizes=(),
        dropout=0.5,
        l2_reg=2e-5,
        epochs=200,
        batch_size=500,
        learning_rate=1e-3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=20,
        device="auto",
        random_state=None,
        verbose=0,
        warm_start=False,
        checkpoint=None,
    ):
        super().__init__(**shared_args(locals(), MultDAE))
        self.warm_start = warm_start
        self.checkpoint = checkpoint

    def _write_checkpoint(self, path, content):
        super()._write_checkpoint(path, content)
        epoch = content["state"]["epoch"]
        if hasattr(self, "_written"):
            self._written.append(epoch)
        if getattr(self, "_kill_after", None) == epoch:  # dies once the file of epoch is written
            os.kill(os.getpid(), signal.SIGKILL)


def _counting(**kw):
    model = ResumableDAE(**kw)
    model._written = []
    return model


def _data(n_users=60, seed=0):
    return make_interactions(n_users, 30, random_state=seed)


def _params(**kw):
    base = dict(n_components=8, epochs=8, batch_size=16, device="cpu", random_state=0)
    return {**base, **kw}


def _child(path, threads):
    torch.set_num_threads(int(threads))
    model = ResumableDAE(**_params(checkpoint=path))
    model._kill_after = 3
    model.fit(_data())


def _assert_same(a, b):
    sa, sb = a.module_.state_dict(), b.module_.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    assert [r["epoch"] for r in a.history_] == [r["epoch"] for r in b.history_]
    assert [r["train_loss"] for r in a.history_] == [r["train_loss"] for r in b.history_]


def test_a_killed_fit_resumed_from_its_checkpoint_is_bit_identical(tmp_path):
    path = tmp_path / "dae.ckpt"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    code = "import sys, tests.test_resume as t; t._child(sys.argv[1], sys.argv[2])"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path), str(torch.get_num_threads())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    state = torch.load(path, weights_only=True)["state"]  # loads without running code
    assert state["epoch"] == 3 and len(state["history"]) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["dae.ckpt"]  # no temporary file left

    X = _data()
    resumed = _counting(**_params(checkpoint=str(path))).fit(X)
    assert resumed._written == [4, 5, 6, 7, 8]  # epochs 1-3 came from the file
    reference = ResumableDAE(**_params()).fit(X)
    _assert_same(resumed, reference)

    again = _counting(**_params(checkpoint=str(path))).fit(X)  # a finished checkpoint
    assert again._written == []
    _assert_same(again, reference)


def test_checkpoint_with_early_stopping_resumes_the_best_epoch(tmp_path):
    X = _data(120)
    kw = _params(
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=2, epochs=12,
        learning_rate=0.01,
    )  # fmt: skip
    first = _counting(**kw, checkpoint=tmp_path / "full.ckpt").fit(X)
    assert first._written == [1, 2, 3, 4] and first.best_epoch_ == 2  # stopped early
    # the file of epoch 3, as a process killed then leaves it: the best weights are epoch 2's
    tracker = ResumableDAE(**kw, checkpoint=tmp_path / "unused.ckpt")
    tracker._write_checkpoint = lambda p, c: (
        torch.save(c, tmp_path / "at3.ckpt") if c["state"]["epoch"] == 3 else None
    )
    tracker.fit(X)
    resumed = _counting(**kw, checkpoint=tmp_path / "at3.ckpt").fit(X)
    assert resumed._written == [4]
    _assert_same(resumed, first)
    assert resumed.best_epoch_ == 2
    done = _counting(**kw, checkpoint=tmp_path / "full.ckpt").fit(X)  # stopped: no epoch
    assert done._written == []
    _assert_same(done, first)


def test_checkpoint_of_another_fit_is_an_error(tmp_path):
    X = _data()
    path = tmp_path / "dae.ckpt"
    ResumableDAE(**_params(epochs=2, checkpoint=path)).fit(X)
    with pytest.raises(ValueError, match=r"other parameters \(dropout: 0.5 -> 0.3\)"):
        ResumableDAE(**_params(epochs=2, dropout=0.3, checkpoint=path)).fit(X)
    with pytest.raises(ValueError, match="other training data"):
        ResumableDAE(**_params(epochs=2, checkpoint=path)).fit(_data(seed=1))
    # verbose may change; the file is then used as it is
    ResumableDAE(**_params(epochs=2, checkpoint=path, verbose=2)).fit(X)
    (tmp_path / "junk").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a skcfae checkpoint"):
        ResumableDAE(**_params(epochs=2, checkpoint=tmp_path / "junk")).fit(X)
    torch.save({"format": "other"}, tmp_path / "other")
    with pytest.raises(ValueError, match="is not a skcfae checkpoint"):
        ResumableDAE(**_params(epochs=2, checkpoint=tmp_path / "other")).fit(X)


def test_two_warm_fits_of_3_epochs_equal_one_of_6():
    X = _data()
    warm = ResumableDAE(**_params(epochs=3, warm_start=True)).fit(X)
    first = {k: v.clone() for k, v in warm.module_.state_dict().items()}
    warm.fit(X)
    assert not all(torch.equal(first[k], v) for k, v in warm.module_.state_dict().items())
    _assert_same(warm, ResumableDAE(**_params(epochs=6)).fit(X))
    assert [r["epoch"] for r in warm.history_] == [1, 2, 3, 4, 5, 6]


def test_warm_start_survives_pickling():
    X = _data()
    warm = ResumableDAE(**_params(epochs=3, warm_start=True)).fit(X)
    copy = pickle.loads(pickle.dumps(warm))
    _assert_same(copy.fit(X), ResumableDAE(**_params(epochs=6)).fit(X))


def test_warm_start_without_kept_state_continues_the_weights():
    X = _data()
    model = ResumableDAE(**_params(epochs=3)).fit(X)
    assert not hasattr(model, "_train_state")
    before = {k: v.clone() for k, v in model.module_.state_dict().items()}
    model.set_params(warm_start=True).fit(X)
    assert [r["epoch"] for r in model.history_] == [1, 2, 3, 4, 5, 6]
    # continued from the fitted weights (a fresh start would redo epoch 1's loss)
    fresh = ResumableDAE(**_params(epochs=3)).fit(X)
    assert model.history_[3]["train_loss"] != fresh.history_[0]["train_loss"]
    assert not all(torch.equal(before[k], v) for k, v in model.module_.state_dict().items())


def test_warm_start_false_starts_over():
    X = _data()
    model = ResumableDAE(**_params(epochs=3)).fit(X).fit(X)
    _assert_same(model, ResumableDAE(**_params(epochs=3)).fit(X))


def test_warm_start_refuses_other_data_or_network_and_keeps_the_model():
    X = _data()
    model = ResumableDAE(**_params(epochs=2, warm_start=True)).fit(X)
    module, history = model.module_, model.history_
    with pytest.raises(ValueError, match=r"shape \(60, 30\); got X of shape \(50, 30\)"):
        model.fit(X[:50])
    with pytest.raises(ValueError, match="shape"):
        model.fit(make_interactions(60, 25, random_state=0))
    with pytest.raises(ValueError, match="the current parameters build another one"):
        model.set_params(n_components=4).fit(X)
    assert model.module_ is module and model.history_ is history and model.n_items_in_ == 30
    model.set_params(n_components=8, checkpoint="x.ckpt")
    with pytest.raises(ValueError, match="cannot be combined"):
        model.fit(X)


def test_warm_start_uses_the_new_learning_rate():
    X = _data()
    model = ResumableDAE(**_params(epochs=1, warm_start=True)).fit(X)
    model.set_params(learning_rate=0.5)
    kept = model._train_state
    assert all(g["lr"] == 1e-3 for g in kept["optimizer"]["param_groups"])
    model.fit(X)
    assert all(g["lr"] == 0.5 for g in model._train_state["optimizer"]["param_groups"])


def test_several_phases_cannot_be_resumed(monkeypatch):
    X = _data()
    model = ResumableDAE(**_params(epochs=1, warm_start=True)).fit(X)

    def two_phases(X_train, config, **given):
        module = model._build_module(torch.Generator().manual_seed(0))
        rows = user_rows(X_train, config.device)
        return [Phase("a", module, rows, model._loss), Phase("b", module, rows, model._loss)]

    monkeypatch.setattr(model, "_phases", two_phases)
    with pytest.raises(ValueError, match="warm_start=True needs a model trained in one phase"):
        model.fit(X)
    config = TrainConfig(1, 16, 1e-3, torch.device("cpu"), 0)
    plan = Plan(config, two_phases(X, config), on_epoch=lambda state: None)
    with pytest.raises(ValueError, match="only a training plan of one phase"):
        engine_train(plan)


def test_engine_loop_state_is_complete_and_resumable():
    """The engine alone: resuming the state of epoch 2 reproduces epochs 3-4 exactly."""
    X = _data()
    model = MultDAE(n_components=8, device="cpu")
    model.n_items_in_ = X.shape[1]
    config = TrainConfig(4, 16, 1e-3, torch.device("cpu"), 7)

    def plan(resume=None, on_epoch=None):
        module = model._build_module(torch.Generator().manual_seed(1))
        phase = Phase("train", module, user_rows(X, config.device), model._loss)
        return Plan(config, [phase], resume=resume, on_epoch=on_epoch)

    states = []
    full = engine_train(plan(on_epoch=states.append))
    assert [s["epoch"] for s in states] == [1, 2, 3, 4]
    assert set(states[1]) == {
        "epoch", "step", "optimizer", "shuffle", "generator", "history", "lr_decays",
        "lr_decayed_at", "module",
        "best",
    }  # fmt: skip
    assert states[1]["step"] == 2 * 4  # 60 rows / 16 = 4 batches an epoch
    part = engine_train(plan(resume=states[1]))
    for k, v in full.module.state_dict().items():
        assert torch.equal(v, part.module.state_dict()[k])
    np.testing.assert_array_equal(
        [r["train_loss"] for r in full.history], [r["train_loss"] for r in part.history]
    )
    assert full.state is not None and "module" not in full.state and full.state["epoch"] == 4


def test_resume_parameters_are_validated():
    X = _data()
    with pytest.raises(ValueError, match="'warm_start' parameter"):
        ResumableDAE(**_params(epochs=1, warm_start="yes")).fit(X)
    with pytest.raises(ValueError, match="'checkpoint' parameter"):
        ResumableDAE(**_params(epochs=1, checkpoint=3)).fit(X)


def test_a_checkpoint_written_after_a_learning_rate_decay_resumes_bit_identical(tmp_path):
    """The plateau count is part of the loop state: resumed after the decay, the fit goes on
    at the divided learning rate and ends where the uninterrupted fit ends."""
    from skcfae import SparseWideDAE

    X = make_interactions(150, 40, random_state=0)
    kw = dict(
        K=8, F=4, epochs=30, batch_size=16, n_iter_no_change=2, n_lr_decays=1,
        validation_fraction=0.2,
        learning_rate=0.05, device="cpu", random_state=0,
    )  # fmt: skip
    full = SparseWideDAE(**kw).fit(X)
    rates = [h["learning_rate"] for h in full.history_]
    assert sorted(set(rates)) == pytest.approx([0.005, 0.05])  # one decay, then the stop
    decayed_at = rates.index(min(rates))  # the epoch (1-based) of the decay
    saved = {}
    tap = SparseWideDAE(**kw, checkpoint=tmp_path / "unused.ckpt")
    tap._write_checkpoint = lambda path, content: (
        saved.setdefault("content", content) if content["state"]["epoch"] == decayed_at else None
    )
    tap.fit(X)
    assert saved["content"]["state"]["lr_decays"] == 1
    torch.save(saved["content"], tmp_path / "after_decay.ckpt")
    resumed = SparseWideDAE(**kw, checkpoint=tmp_path / "after_decay.ckpt").fit(X)
    _assert_same(resumed, full)
    assert [h["learning_rate"] for h in resumed.history_] == rates
