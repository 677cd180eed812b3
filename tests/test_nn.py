"""The shared torch engine: batching, losses, training loop, devices, pickling."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skcfae import MultDAE, MultVAE
from skcfae.exceptions import ConvergenceWarning, DeviceWarning
from skcfae.nn import (
    Phase,
    Plan,
    SparseRows,
    TrainConfig,
    TrainState,
    Validation,
    fold_in_rows,
    item_rows,
    resolve_device,
    train,
    user_rows,
)
from skcfae.nn._losses import gaussian_kl, logistic_nll, multinomial_nll
from skcfae.nn._modules import MultiLayerAE, SparseLinear, l2_normalize_rows


def _random_csr(n_rows=30, n_cols=12, density=0.3, seed=0):
    X = sp.random(
        n_rows, n_cols, density=density, format="csr", random_state=seed, dtype=np.float32
    )
    return sp.csr_array(X)


def test_batch_gathers_rows_like_scipy():
    X = _random_csr()
    rows = torch.tensor([5, 0, 29, 5, 17])
    batch = SparseRows(X, torch.device("cpu")).batch(rows)
    np.testing.assert_array_equal(batch.dense().numpy(), X[rows.numpy()].toarray())
    np.testing.assert_allclose(batch.row_sums().numpy(), X[rows.numpy()].sum(axis=1), rtol=1e-6)


def test_sparse_linear_equals_dense_matmul():
    X = _random_csr()
    batch = SparseRows(X, torch.device("cpu")).batch(torch.arange(30))
    layer = SparseLinear(12, 4, torch.Generator().manual_seed(0))
    expected = batch.dense() @ layer.weight + layer.bias
    torch.testing.assert_close(layer(batch), expected)


def test_multinomial_nll_equals_dense_reference():
    X = _random_csr()
    batch = SparseRows(X, torch.device("cpu")).batch(torch.arange(30))
    logits = torch.randn(30, 12, generator=torch.Generator().manual_seed(1))
    expected = -(torch.log_softmax(logits, 1) * batch.dense()).sum(1).mean()
    torch.testing.assert_close(multinomial_nll(logits, batch), expected)


def _dense_references():
    return {
        multinomial_nll: lambda z, x: -(torch.log_softmax(z, 1) * x).sum(1).mean(),
        logistic_nll: lambda z, x: (
            torch.nn.functional.binary_cross_entropy_with_logits(z, x, reduction="sum") / z.shape[0]
        ),
    }


@pytest.mark.parametrize("loss", [multinomial_nll, logistic_nll])
@pytest.mark.parametrize("item_major", [False, True])
@pytest.mark.parametrize("native", ["0", "1"])  # logistic_nll: torch's ops or one compiled pass
@pytest.mark.parametrize("weight", [1.0, 2.5])  # the compiled pass saves sigmoid / b for 1.0
def test_sparse_target_losses_match_dense_value_and_gradient(
    loss, item_major, native, weight, monkeypatch
):
    # soft targets too (stacked Sw-dae reconstructs codes in [0, 1]); item-major logits are
    # what a SparseDecoder returns (a transposed view)
    monkeypatch.setenv("SKCFAE_NATIVE", native)
    X = _random_csr()
    X.data = np.random.default_rng(0).uniform(0.1, 1.0, X.nnz).astype(np.float32)
    batch = SparseRows(X, torch.device("cpu")).batch(torch.arange(30))
    base = torch.randn(12, 30, generator=torch.Generator().manual_seed(1)) * 5
    z = (base.t() if item_major else base.t().contiguous()).requires_grad_(True)
    z_ref = z.detach().clone().requires_grad_(True)
    value = loss(z, batch)
    expected = _dense_references()[loss](z_ref, batch.dense())
    torch.testing.assert_close(value, expected)
    (weight * value).backward()
    (weight * expected).backward()
    torch.testing.assert_close(z.grad, z_ref.grad)


def test_multinomial_nll_backward_reuses_its_buffer_and_refuses_a_second_pass():
    # the gradient is written over the saved log-probabilities: a second backward through
    # the same graph must fail, not return a wrong gradient
    batch = SparseRows(_random_csr(), torch.device("cpu")).batch(torch.arange(30))
    z = torch.randn(30, 12, generator=torch.Generator().manual_seed(1), requires_grad=True)
    value = multinomial_nll(z, batch)
    value.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        value.backward()


def test_gaussian_kl_zero_at_prior():
    assert float(gaussian_kl(torch.zeros(3, 2), torch.zeros(3, 2))) == 0.0
    assert float(gaussian_kl(torch.ones(3, 2), torch.zeros(3, 2))) == pytest.approx(1.0)


def test_l2_normalize_rows():
    X = _random_csr()
    batch = l2_normalize_rows(SparseRows(X, torch.device("cpu")).batch(torch.arange(30)))
    norms = batch.dense().norm(dim=1)
    nonempty = torch.from_numpy(np.diff(X.indptr) > 0)
    torch.testing.assert_close(norms[nonempty], torch.ones(int(nonempty.sum())))


def _config(**overrides):
    base = dict(epochs=1, batch_size=64, learning_rate=1e-2, device=torch.device("cpu"), seed=0)
    return TrainConfig(**{**base, **overrides})


def _vae_loss(m, batch, state: TrainState):
    logits, mu, logvar = m(batch, state.generator)
    return multinomial_nll(logits, batch) + 0.1 * gaussian_kl(mu, logvar)


def _small_ae(seed=0):
    gen = torch.Generator().manual_seed(seed)
    return MultiLayerAE(20, (8,), 4, variational=True, dropout=0.5, generator=gen)


def _binary(n_rows=64, n_cols=20):
    return sp.csr_array((_random_csr(n_rows, n_cols, 0.3) > 0).astype(np.float32))


def test_batches_say_whether_rows_are_training_rows():
    X = _random_csr()
    rows = torch.tensor([3, 1])
    assert torch.equal(user_rows(X, torch.device("cpu")).batch(rows).ids, rows)
    assert fold_in_rows(X, torch.device("cpu")).batch(rows).ids is None
    items = item_rows(X, torch.device("cpu"))
    assert items.n_rows == X.shape[1]
    np.testing.assert_array_equal(items.batch(rows).dense().numpy(), X.T.toarray()[[3, 1]])


def test_validation_direction_picks_the_best_epoch_and_restores_it():
    """A lower-is-better validation keeps the epoch of the lowest score (RMSE-like)."""
    X = _binary()
    module = _small_ae()
    scores = iter([0.5, 0.2, 0.4, 0.3])
    snapshots = []

    def score(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(scores)

    plan = Plan(
        _config(epochs=4),
        [Phase("train", module, user_rows(X, torch.device("cpu")), _vae_loss)],
        Validation("rmse", score, greater_is_better=False),
    )
    result = train(plan)
    assert [h["valid_rmse"] for h in result.history] == [0.5, 0.2, 0.4, 0.3]
    assert result.best_epoch == 2 and "phase" not in result.history[0]
    for k, v in result.module.state_dict().items():
        torch.testing.assert_close(v, snapshots[1][k])


def test_phases_are_stitched_and_factories_see_trained_modules():
    X = _binary()
    rows = user_rows(X, torch.device("cpu"))
    seen = {}

    def second(trained):
        seen.update(trained)
        return Phase("second", _small_ae(1), rows, _vae_loss, epochs=3, validate=False)

    plan = Plan(
        _config(epochs=2),
        [Phase("first", _small_ae(), rows, _vae_loss), second],
        Validation("ndcg", lambda m: 0.0),
    )
    result = train(plan)
    assert list(seen) == ["first"]
    assert [(h["phase"], h["epoch"]) for h in result.history] == [
        ("first", 1),
        ("first", 2),
        ("second", 3),
        ("second", 4),
        ("second", 5),
    ]
    assert "valid_ndcg" in result.history[0] and "valid_ndcg" not in result.history[2]
    assert result.best_epoch == 1 and result.module is result.trained["second"]


def test_optimiser_over_a_chosen_subset_of_parameters():
    """Fold-in of per-user vectors trains some parameters and freezes the others."""
    X = _binary()
    module = _small_ae()
    before = {k: v.detach().clone() for k, v in module.named_parameters()}

    def decoder_only(m):
        return [(n, p) for n, p in m.named_parameters() if n.startswith("decoder")]

    rows = user_rows(X, torch.device("cpu"))
    phase = Phase("fold-in", module, rows, _vae_loss, parameters=decoder_only)
    train(Plan(_config(), [phase]))
    for name, param in module.named_parameters():
        assert torch.equal(before[name], param.detach()) != name.startswith("decoder"), name


@pytest.mark.parametrize("variational", [False, True])
def test_one_step_changes_every_parameter(variational):
    X = _binary()
    module = MultiLayerAE(
        20,
        (8,),
        4,
        variational=variational,
        dropout=0.5,
        generator=torch.Generator().manual_seed(0),
    )
    before = {k: v.detach().clone() for k, v in module.named_parameters()}
    phase = Phase("train", module, user_rows(X, torch.device("cpu")), _vae_loss)
    train(Plan(_config(), [phase]))
    for name, param in module.named_parameters():
        assert not torch.equal(before[name], param.detach()), name


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="'device' parameter"):
        resolve_device("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda:0")
        with pytest.raises(ValueError, match="no CUDA device"):
            MultDAE(epochs=1, device="cuda").fit(np.eye(5))


def test_history_validation_and_best_epoch(planted):
    X_train, fold_in, holdout = planted
    model = MultDAE(n_components=16, epochs=6, batch_size=100, random_state=0, device="cpu")
    model.fit(X_train, X_valid=(fold_in, holdout))
    assert [h["epoch"] for h in model.history_] == list(range(1, 7))
    assert {"train_loss", "valid_ndcg", "dur"} <= set(model.history_[0])
    best = int(np.argmax([h["valid_ndcg"] for h in model.history_])) + 1
    assert model.best_epoch_ == best
    # the kept weights are those of the best epoch: rescoring gives its validation NDCG
    assert model.score(fold_in + holdout) >= 0.0


def test_early_stopping_stops(planted):
    X_train, _, _ = planted
    model = MultDAE(
        n_components=8,
        epochs=200,
        learning_rate=0.5,
        early_stopping=True,
        n_iter_no_change=2,
        batch_size=100,
        random_state=0,
        device="cpu",
    ).fit(X_train)
    assert len(model.history_) < 200
    assert len(model.history_) - model.best_epoch_ == 2


def _scripted_plan(scores, epochs, patience):
    X = _binary()
    plan = Plan(
        _config(epochs=epochs, n_iter_no_change=patience),
        [Phase("train", _small_ae(), user_rows(X, torch.device("cpu")), _vae_loss)],
        Validation("ndcg", lambda m: next(scores)),
    )
    return plan


@pytest.mark.parametrize(
    "scores, patience, warns",
    [
        ([0.1, 0.2, 0.3, 0.4], None, True),  # the last epoch is the best
        ([0.1, 0.4, 0.3, 0.2], None, False),
        ([0.1, 0.4, 0.3, 0.2], 3, True),  # patience left: it might still have improved
        ([0.4, 0.3, 0.2, 0.1], 3, False),  # stopped early: converged
    ],
)
def test_convergence_warning_when_validation_still_improves(scores, patience, warns):
    plan = _scripted_plan(iter(scores), 4, patience)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(plan)
    found = [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert bool(found) == warns
    if warns:
        assert "still improving" in str(found[0].message)


def _few_long_rows(n_long, n_short=40, n_items=30):
    """``n_long`` users with 10 interactions and ``n_short`` with 2."""
    rows = [np.arange(i % 20, i % 20 + 10) for i in range(n_long)]
    rows += [np.array([i % n_items, (i + 1) % n_items]) for i in range(n_short)]
    indptr = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    data = np.ones(indptr[-1], dtype=np.float32)
    return sp.csr_array((data, np.concatenate(rows), indptr), shape=(len(rows), n_items))


def test_early_stopping_auto_needs_ten_validation_users():
    """ "auto" validates when validation_fraction of the users, drawn among those with at least
    5 interactions, gives 10 or more; else it trains on every user without validation."""
    kw = dict(n_components=4, epochs=2, validation_fraction=0.1, random_state=0, device="cpu")
    on = MultDAE(early_stopping="auto", **kw).fit(_few_long_rows(100, n_short=0))
    assert hasattr(on, "best_epoch_") and "valid_ndcg" in on.history_[0]
    # 140 users -> 14 validation users wanted, but only 9 have 5 interactions
    off = MultDAE(early_stopping="auto", **kw).fit(_few_long_rows(9, n_short=131))
    assert not hasattr(off, "best_epoch_") and "valid_ndcg" not in off.history_[0]
    with pytest.raises(ValueError, match="early_stopping=False"):
        MultDAE(early_stopping=True, **kw).fit(_few_long_rows(0, n_short=50))


def test_validation_users_are_drawn_among_users_with_five_interactions(monkeypatch):
    from skcfae import model_selection

    seen = {}
    real = model_selection.fold_in_split

    def spy(X, **kw):
        seen["rows"] = np.diff(X.indptr)
        return real(X, **kw)

    monkeypatch.setattr(model_selection, "fold_in_split", spy)
    X = _few_long_rows(30, n_short=170)  # 20 validation users wanted, 30 eligible
    MultDAE(n_components=4, epochs=1, early_stopping=True, random_state=0, device="cpu").fit(X)
    assert seen["rows"].size == 20 and np.all(seen["rows"] >= 5)


def test_validation_errors(planted):
    X_train, fold_in, holdout = planted
    with pytest.raises(ValueError, match="fold_in, holdout"):
        MultDAE(epochs=1).fit(X_train, X_valid=(fold_in,))
    with pytest.raises(ValueError, match="features"):
        MultDAE(epochs=1).fit(X_train, X_valid=fold_in[:, :5])
    with pytest.raises(ValueError, match="no validation user"):
        MultDAE(epochs=1).fit(X_train, X_valid=(fold_in, holdout * 0))


def test_verbose_two_prints_a_line_per_epoch(planted, capsys):
    MultDAE(n_components=4, epochs=3, verbose=2, random_state=0, device="cpu").fit(planted[0])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 3 and "train_loss" in lines[0]


def test_model_from_missing_gpu_loads_on_cpu(planted):
    X_train, fold_in, _ = planted
    model = MultVAE(n_components=4, hidden_layer_sizes=(8,), epochs=1, random_state=0, device="cpu")
    model.fit(X_train)
    expected = model.decision_function(fold_in)
    model.device_ = torch.device("cuda:7")  # as if trained on a GPU absent here
    blob = pickle.dumps(model)
    with pytest.warns(DeviceWarning, match="loaded on the CPU"):
        again = pickle.loads(blob)
    assert again.device_ == torch.device("cpu")
    np.testing.assert_array_equal(again.decision_function(fold_in), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_model_loads_in_cpu_only_process(planted, tmp_path):
    X_train, fold_in, _ = planted
    model = MultDAE(n_components=8, epochs=2, random_state=0, device="cuda").fit(X_train)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps((model, fold_in, model.decision_function(fold_in))))
    code = (
        "import pickle, sys, warnings, numpy as np; warnings.simplefilter('ignore');"
        f"m, X, s = pickle.loads(open({str(path)!r}, 'rb').read());"
        "np.testing.assert_allclose(m.decision_function(X), s, rtol=1e-4, atol=1e-4);"
        "print(m.device_)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""},
        check=True,
    )
    assert out.stdout.strip() == "cpu"


def _fit_and_count_threads(X):
    MultDAE(n_components=4, epochs=1, random_state=0, device="cpu").fit(X)
    return torch.get_num_threads()


def test_joblib_workers_do_not_oversubscribe(planted):
    """Under joblib's process backend (what n_jobs uses in GridSearchCV) each worker's torch
    gets cpu_count // n_jobs threads, and training does not raise it."""
    import os

    from joblib import Parallel, delayed

    threads = Parallel(n_jobs=2)(delayed(_fit_and_count_threads)(planted[0]) for _ in range(2))
    assert all(t <= max(1, (os.cpu_count() or 2) // 2) for t in threads), threads


def test_a_phase_may_replace_the_step_and_set_sgd_momentum():
    """A custom step (two updates per batch, as DeepRec's re-feeding) and SGD's momentum."""
    from skcfae.nn import train_step

    X = _binary()
    calls = []

    def twice(module, batch, loss, optimizer, state):
        calls.append(optimizer.param_groups[0]["momentum"])
        train_step(module, batch, loss, optimizer, state)
        return train_step(module, batch, loss, optimizer, state)

    rows = user_rows(X, torch.device("cpu"))
    phase = Phase("train", _small_ae(), rows, _vae_loss, epochs=2, step=twice)
    config = _config(batch_size=16, optimizer="sgd", momentum=0.8)
    result = train(Plan(config, [phase]))
    assert len(calls) == 2 * 4 and set(calls) == {0.8}
    assert np.isfinite(result.history[-1]["train_loss"])


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_plateau_divides_the_learning_rate_from_the_best_epoch():
    """n_lr_decays=1: the first plateau restores the best weights and trains on at lr / 10
    for n_iter_no_change more epochs; every epoch's rate is in the history."""
    X = _binary()
    scores = iter([0.1, 0.3, 0.2, 0.2, 0.4, 0.5, 0.6, 0.7])
    after = []  # the weights of each epoch, as validated
    before = {}  # the weights each epoch starts from

    def score(m):
        after.append({k: v.clone() for k, v in m.state_dict().items()})
        return next(scores)

    def loss(m, batch, state):
        if state.epoch not in before:
            before[state.epoch] = {k: v.detach().clone() for k, v in m.state_dict().items()}
        return _vae_loss(m, batch, state)

    plan = Plan(
        _config(epochs=8, n_iter_no_change=2, n_lr_decays=1),
        [Phase("train", _small_ae(), user_rows(X, torch.device("cpu")), loss)],
        Validation("ndcg", score),
    )
    result = train(plan)
    # epochs 3-4 do not improve on epoch 2: epoch 5 starts from epoch 2's weights at lr 1e-3
    assert [h["learning_rate"] for h in result.history] == [1e-2] * 4 + [1e-3] * 2
    assert _same_state(before[5], after[1])
    assert _same_state(before[4], after[2]) and not _same_state(before[4], after[1])
    # 2 epochs after the last decay training ends, still improving: the best is the last
    assert len(result.history) == 6 and result.best_epoch == 6
    assert _same_state(result.module.state_dict(), after[5])


def test_training_after_the_last_decay_is_capped(monkeypatch):
    """After the last decay training runs min(n_iter_no_change, AFTER_LAST_DECAY) epochs."""
    from skcfae.nn import _engine

    monkeypatch.setattr(_engine, "AFTER_LAST_DECAY", 1)
    scores = iter([0.1, 0.3, 0.2, 0.2, 0.2, 0.4, 0.5, 0.6, 0.7])
    plan = Plan(
        _config(epochs=9, n_iter_no_change=3, n_lr_decays=1),
        [Phase("train", _small_ae(), user_rows(_binary(), torch.device("cpu")), _vae_loss)],
        Validation("ndcg", lambda m: next(scores)),
    )
    result = train(plan)
    # the plateau of epochs 3-5 decays at epoch 5; one epoch later training ends
    assert [h["learning_rate"] for h in result.history] == [1e-2] * 5 + [1e-3]
    assert result.best_epoch == 6


def test_without_lr_decays_the_history_has_no_learning_rate():
    X = _binary()
    phase = Phase("train", _small_ae(), user_rows(X, torch.device("cpu")), _vae_loss)
    assert "learning_rate" not in train(Plan(_config(epochs=2), [phase])).history[0]
