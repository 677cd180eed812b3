"""CFN (Strub & Mary 2015): the α/β sparse denoising loss, the three noises, the unbiasing,
the stacked training of Fig. 1."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone

import skcfae.nn._engine as engine
from skcfae import CFN
from skcfae.metrics import rmse
from skcfae.model_selection import rating_holdout_split
from skcfae.models._cfn import _stage_step, corrupt, denoising_loss
from skcfae.nn import fold_in_rows, make_optimizer
from skcfae.nn._rows import Batch

from .test_ratings import _planted_ratings


def _batch(rows):
    """A Batch from a list of {col: value} dicts (the known entries of each row)."""
    counts = torch.tensor([len(r) for r in rows])
    cols = torch.tensor([c for r in rows for c in sorted(r)])
    vals = torch.tensor([r[c] for r in rows for c in sorted(r)], dtype=torch.float32)
    return Batch(torch.cumsum(counts, 0) - counts, counts, cols, vals, 4)


def test_denoising_loss_matches_a_hand_computed_case():
    # row 0 knows columns 0, 2; row 1 knows 1, 2, 3; entries 0 and 3 (row 0 col 0, row 1
    # col 2) were corrupted
    target = _batch([{0: 1.0, 2: -0.5}, {1: 0.5, 2: 0.0, 3: -1.0}])
    pred = torch.tensor([[0.5, 9.0, 0.0, 9.0], [9.0, 0.0, 0.25, -0.5]])
    corrupted = torch.tensor([True, False, False, True, False])
    alpha, beta = 1.2, 0.8
    # α (0.5² + 0.25²) + β (0.5² + 0.5² + 0.5²), over 2 rows
    expected = (alpha * (0.25 + 0.0625) + beta * (0.25 + 0.25 + 0.25)) / 2
    loss = denoising_loss(pred, target, corrupted, alpha, beta)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # α = 0 keeps only the intact entries, β = 0 only the corrupted ones
    assert denoising_loss(pred, target, corrupted, 0.0, 1.0).item() == pytest.approx(0.75 / 2)
    assert denoising_loss(pred, target, corrupted, 1.0, 0.0).item() == pytest.approx(0.3125 / 2)


def test_denoising_loss_never_reads_unknown_entries():
    target = _batch([{0: 1.0, 2: -0.5}, {1: 0.5, 2: 0.0, 3: -1.0}])
    corrupted = torch.tensor([True, False, False, True, False])
    pred = torch.full((2, 4), 0.3, requires_grad=True)
    loss = denoising_loss(pred, target, corrupted, 1.0, 0.8)
    loss.backward()
    unknown = torch.ones(2, 4, dtype=torch.bool)
    unknown[target.row_of, target.cols] = False
    assert torch.all(pred.grad[unknown] == 0) and torch.all(pred.grad[~unknown] != 0)
    changed = pred.detach().clone()
    changed[unknown] = torch.tensor([100.0, -7.0, 3.0])
    assert denoising_loss(changed, target, corrupted, 1.0, 0.8).item() == loss.item()


def test_the_rating_loss_of_a_model_ignores_unobserved_ratings():
    """Dense NaN (unobserved) entries with any values behind them: the same fit."""
    R = _planted_ratings(n_users=40, n_items=30, seed=3).toarray()
    R[R == 0] = np.nan
    a = CFN(hidden_ratios=(0.2,), epochs=2, random_state=0, device="cpu").fit(R)
    other = sp.csr_array(np.nan_to_num(R, nan=0.0))  # the same observed ratings, sparse
    b = CFN(hidden_ratios=(0.2,), epochs=2, random_state=0, device="cpu").fit(other)
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]


def _noise(**kw):
    vals = torch.linspace(-0.5, 0.5, 400_000)
    settings = dict(gaussian=0.0, gaussian_std=0.02, salt_and_pepper=0.0, masking=0.0)
    settings.update(kw)
    return vals, *corrupt(
        vals, low=-2.0, high=3.0, generator=torch.Generator().manual_seed(0), **settings
    )


def test_masking_noise_zeroes_its_fraction():
    vals, noisy, hit = _noise(masking=0.15)
    assert hit.float().mean().item() == pytest.approx(0.15, abs=0.003)
    assert torch.all(noisy[hit] == 0) and torch.equal(noisy[~hit], vals[~hit])


def test_gaussian_noise_has_its_fraction_and_std():
    vals, noisy, hit = _noise(gaussian=0.8, gaussian_std=0.02)
    assert hit.float().mean().item() == pytest.approx(0.8, abs=0.003)
    diff = noisy[hit] - vals[hit]
    assert diff.mean().item() == pytest.approx(0.0, abs=2e-4)
    assert diff.std().item() == pytest.approx(0.02, rel=0.01)
    assert torch.equal(noisy[~hit], vals[~hit])


def test_salt_and_pepper_sets_the_input_minimum_or_maximum():
    vals, noisy, hit = _noise(salt_and_pepper=0.1)
    assert hit.float().mean().item() == pytest.approx(0.1, abs=0.003)
    flipped = noisy[hit]
    assert set(flipped.unique().tolist()) == {-2.0, 3.0}
    assert (flipped == 3.0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert torch.equal(noisy[~hit], vals[~hit])


def test_noises_are_disjoint_and_add_up():
    vals, noisy, hit = _noise(gaussian=0.2, salt_and_pepper=0.1, masking=0.15)
    assert hit.float().mean().item() == pytest.approx(0.45, abs=0.003)
    assert (noisy[hit] == 0).float().mean().item() == pytest.approx(0.15 / 0.45, abs=0.01)


def test_unbiasing_centres_each_row_and_predictions_add_the_means_back():
    R = _planted_ratings(n_users=50, n_items=30, seed=1)
    model = CFN(kind="user", hidden_ratios=(0.2,), epochs=3, random_state=0, device="cpu")
    model.fit(R)
    net = model.module_
    batch = fold_in_rows(R, torch.device("cpu")).batch(torch.arange(R.shape[0]))
    centred, bias = net.prepare(batch)
    np.testing.assert_allclose(centred.row_sums().numpy(), 0.0, atol=1e-5)
    means = np.asarray(R.sum(axis=1)).ravel() / np.diff(R.indptr)
    np.testing.assert_allclose(bias.numpy(), (means - 3.0) / 2.0, rtol=1e-5)  # 1-5 -> [-1, 1]
    with torch.no_grad():
        z = net(batch).numpy()  # tanh outputs, in the unbiased [-1, 1] scale
    expected = np.clip(means[:, None] + 2.0 * z, 1, 5)
    np.testing.assert_allclose(
        model.predict(R).toarray()[R.toarray() > 0], expected[R.toarray() > 0], rtol=1e-5
    )
    np.testing.assert_allclose(model.decision_function(R), expected, rtol=1e-5)


def test_u_cfn_folds_in_new_users_v_cfn_cannot():
    R = _planted_ratings(n_users=60, n_items=30, seed=2)
    new = _planted_ratings(n_users=5, n_items=30, seed=4)
    u = CFN(kind="user", hidden_ratios=(0.2,), epochs=2, random_state=0, device="cpu").fit(R)
    assert u.predict(new, ratings=new).nnz == new.nnz
    v = CFN(kind="item", hidden_ratios=(0.2,), epochs=2, random_state=0, device="cpu").fit(R)
    with pytest.raises(ValueError, match="cannot fold in"):
        v.predict(new, ratings=new)


def test_the_stacking_stages_appear_in_the_history():
    R = _planted_ratings(n_users=60, n_items=40, seed=0)
    model = CFN(epochs=(3, 2, 4), random_state=0, device="cpu").fit(R, X_valid=R)
    phases = [h["phase"] for h in model.history_]
    assert phases == ["outer"] * 3 + ["inner"] * 2 + ["finetune"] * 4
    assert [h["epoch"] for h in model.history_] == list(range(1, 10))
    assert all("valid_rmse" in h for h in model.history_ if h["phase"] != "inner")
    assert all("valid_rmse" not in h for h in model.history_ if h["phase"] == "inner")
    assert 6 <= model.best_epoch_ <= 9  # in the fine-tuning
    two = CFN(hidden_ratios=(0.1,), epochs=(3, 2, 4), random_state=0, device="cpu").fit(R)
    assert len(two.history_) == 3 and "phase" not in two.history_[0]
    # sizes: 1/10 and 1/12 of the input size (60 users for the default V-CFN)
    assert model.module_.encoders[0].weight.shape == (60, 6)
    assert model.module_.encoders[1].weight.shape == (5, 6)
    assert model.module_.out.weight.shape == (60, 6)


def test_the_4_layer_network_starts_from_the_pretrained_2_layer_weights(monkeypatch):
    before, after = {}, {}
    real = engine._fit_loop  # the loop train() runs

    def spy(phase, config, validation=None, *rest, **kw):
        before[phase.name] = {k: v.detach().clone() for k, v in phase.module.state_dict().items()}
        out = real(phase, config, validation, *rest, **kw)
        after[phase.name] = {k: v.detach().clone() for k, v in phase.module.state_dict().items()}
        return out

    monkeypatch.setattr(engine, "_fit_loop", spy)
    R = _planted_ratings(n_users=60, n_items=40, seed=0)
    CFN(kind="user", epochs=(2, 2, 2), random_state=0, device="cpu").fit(R)
    start, outer, inner = before["finetune"], after["outer"], after["inner"]
    pairs = {
        "encoders.0.weight": outer["encoders.0.weight"],
        "encoders.0.bias": outer["encoders.0.bias"],
        "out.weight": outer["out.weight"],
        "out.bias": outer["out.bias"],
        "encoders.1.weight": inner["encoder.weight"],
        "encoders.1.bias": inner["encoder.bias"],
        "decoders.0.weight": inner["decoder.weight"],
        "decoders.0.bias": inner["decoder.bias"],
    }
    assert set(start) == set(pairs)
    for name, value in pairs.items():
        assert torch.equal(start[name], value), name
    # and the pre-training did move them
    assert not torch.equal(before["outer"]["encoders.0.weight"], outer["encoders.0.weight"])
    assert not torch.equal(before["inner"]["encoder.weight"], inner["encoder.weight"])


def test_each_stage_steps_with_its_decayed_rate_and_weight_decay():
    layer = torch.nn.Linear(3, 2)
    opt = make_optimizer(list(layer.named_parameters()), "sgd", 1.0, 0.0, momentum=0.8)
    step = _stage_step(0.03, 0.1, 0.2, 0.8)
    state = engine.TrainState(torch.Generator(), epoch=3)
    batch = _batch([{0: 1.0}])

    def loss(module, b, s):
        return module(torch.ones(1, 3)).sum()

    step(layer, batch, loss, opt, state)
    for group in opt.param_groups:
        assert group["lr"] == pytest.approx(0.03 * 0.2 / 1.3)
        weights = all(p.ndim >= 2 for p in group["params"])
        assert group["weight_decay"] == (0.2 if weights else 0.0)
    assert state.step == 1


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(alpha=(1.0, 1.0)), "'alpha' parameter of CFN"),
        (dict(masking=(0.15, 0.0, 1.5)), "'masking' parameter"),
        (dict(gaussian=0.5, masking=0.6), "sum to 1.1"),
        (dict(hidden_ratios=(0.1, 0.1, 0.1)), "'hidden_ratios'"),
        (dict(hidden_ratios=(0.0,)), "'hidden_ratios'"),
        (dict(epochs=(2, 0, 2)), "'epochs' parameter"),
    ],
)
def test_per_stage_parameters_are_checked(params, match):
    R = _planted_ratings(n_users=30, n_items=20, seed=0)
    with pytest.raises(ValueError, match=match):
        CFN(**params).fit(R)


@pytest.fixture(scope="module")
def four_layer():
    """The stacked 4-layer V-CFN and U-CFN on the planted ratings of the contract suite (its
    CONTRACT line is the 2-layer network: that suite's validation test expects one phase)."""
    R = _planted_ratings()
    train, test = rating_holdout_split(R, test_size=0.1, random_state=0)
    kw = dict(epochs=(30, 5, 30), batch_size=4, learning_rate=0.05, random_state=0)
    models = {k: CFN(kind=k, device="cpu", **kw).fit(train) for k in ("item", "user")}
    return train, test, models


@pytest.mark.parametrize("kind", ["item", "user"])
def test_the_4_layer_network_keeps_the_rating_contract(four_layer, kind):
    train, test, models = four_layer
    model = models[kind]
    mean = rmse(test, np.full(test.shape, train.data.mean()))
    assert -model.score(test) < mean - 0.05
    pred = model.predict(test)
    np.testing.assert_array_equal(pred.indices, test.indices)
    assert pred.data.min() >= 1.0 and pred.data.max() <= 5.0
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.predict(test).data, pred.data)
    twin = clone(model).fit(train)
    np.testing.assert_array_equal(twin.predict(test).data, pred.data)


def test_validation_keeps_the_best_fine_tuning_epoch(four_layer):
    train, test, models = four_layer
    model = clone(models["item"]).set_params(epochs=(4, 2, 6)).fit(train, X_valid=test)
    tuned = [h for h in model.history_ if h["phase"] == "finetune"]
    values = [h["valid_rmse"] for h in tuned]
    assert model.best_epoch_ == tuned[int(np.argmin(values))]["epoch"]
    assert -model.score(test) == pytest.approx(min(values), rel=1e-5)
