"""NCAE (Li, Zheng and Wu, arXiv:1712.09043): Eq. 5, observed-only dropout, the sparse
output, the tanh output map, and the S+U+S pre-training stages."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone

import skcfae.nn._engine as engine
from skcfae import NCAE
from skcfae.model_selection import rating_holdout_split
from skcfae.models._ncae import _at_entries, _drop_observed, _NCAENet, ncae_loss
from skcfae.nn import TrainState, item_rows, user_rows
from skcfae.nn._modules import dropout_values

from .test_ratings import _mean_rmse, _planted_ratings


def _batch(X):
    X = sp.csr_array(X, dtype=np.float32)
    return user_rows(X, torch.device("cpu")).batch(torch.arange(X.shape[0]))


@pytest.fixture(scope="module")
def ratings():
    return rating_holdout_split(_planted_ratings(), test_size=0.1, random_state=0)


def _small(**params):
    base = dict(
        hidden_layer_sizes=(16, 12),
        pretrain_epochs=3,
        epochs=4,
        batch_size=16,
        learning_rate=1e-2,
        random_state=0,
        device="cpu",
    )
    return NCAE(**{**base, **params})


# -- Eq. 5 ---------------------------------------------------------------------------------------
def _u4_case():
    """Row 0 is the paper's u4: K = {1, 3, 5}, C = {5} (0-based columns 0, 2, 4); row 1 has two
    ratings, the first dropped; row 2 has none. Returns (batch, predictions, kept mask)."""
    X = np.zeros((3, 5), np.float32)
    X[0, [0, 2, 4]] = [4, 2, 5]
    X[1, [1, 3]] = [1, 3]
    pred = torch.tensor([3.5, 2.0, 4.0, 2.0, 3.0])
    return _batch(X), pred, torch.tensor([True, True, False, False, True])


def test_eq5_is_hand_computed_with_its_division_by_the_observed_count():
    # row 0 is the paper's u4: K = {1, 3, 5}, C = {5} (0-based columns 0, 2, 4); row 1 has two
    # ratings, the first dropped; row 2 has none
    batch, pred, kept = _u4_case()
    row0 = 2.0 / 3 * (4 - 5) ** 2 + 1.0 / 3 * ((3.5 - 4) ** 2 + 0.0)
    row1 = 2.0 / 2 * (2 - 1) ** 2 + 1.0 / 2 * 0.0
    expected = (row0 + row1 + 0.0) / 3  # averaged over the 3 rows of the batch (Eq. 6)
    got = ncae_loss(pred, batch, kept, alpha=2.0, beta=1.0)
    assert float(got) == pytest.approx(expected, rel=1e-6)
    # α = β = 1: each row's mean squared error, then the mean over rows
    plain = ncae_loss(pred, batch, kept)
    assert float(plain) == pytest.approx(((1 + 0.25) / 3 + 1 / 2) / 3, rel=1e-6)
    # β weights the kept entries only, α the dropped ones only
    assert float(ncae_loss(pred, batch, kept, alpha=0.0, beta=1.0)) == pytest.approx(
        (0.25 / 3) / 3, rel=1e-6
    )


def test_without_row_balance_every_rating_weighs_the_same():
    # the case above: errors² 0.25, 0, 1 (row 0) and 1, 0 (row 1); α = 2 on the dropped ones
    batch, pred, kept = _u4_case()
    got = ncae_loss(pred, batch, kept, alpha=2.0, beta=1.0, balance_rows=False)
    assert float(got) == pytest.approx((0.25 + 0.0 + 2 * 1.0 + 2 * 1.0 + 0.0) / 5, rel=1e-6)
    # rows of equal counts: the two weightings agree; a batch without ratings costs 0
    even = _batch(np.array([[4, 0, 2], [0, 5, 1.0]], np.float32))
    p2, k2 = torch.tensor([3.0, 2.5, 4.0, 2.0]), torch.tensor([True, False, True, True])
    assert float(ncae_loss(p2, even, k2, balance_rows=False)) == pytest.approx(
        float(ncae_loss(p2, even, k2)), rel=1e-6
    )
    empty = _batch(np.zeros((2, 3), np.float32))
    none = torch.zeros(0, dtype=torch.bool)
    assert float(ncae_loss(torch.zeros(0), empty, none, balance_rows=False)) == 0.0


def test_loss_of_the_estimator_is_eq5_at_the_observed_entries_of_the_dense_output(ratings):
    train, _ = ratings
    est = _small(dropout=0.5, alpha=1.5, beta=0.5, pretrain=False, epochs=1).fit(train)
    net = est.module_
    rows = item_rows(train, torch.device("cpu"))
    batch = rows.batch(torch.arange(20))
    for balance in (True, False):
        est.set_params(balance_rows=balance)
        with torch.no_grad():
            loss = est._loss(net, batch, TrainState(torch.Generator().manual_seed(3)))
            corrupted, kept = _drop_observed(batch, 0.5, torch.Generator().manual_seed(3))
            dense = net(corrupted)  # finish(out(hidden)) over every column
            reference = ncae_loss(
                dense[batch.row_of, batch.cols],
                batch,
                kept,
                alpha=1.5,
                beta=0.5,
                balance_rows=balance,
            )
        assert float(loss) == pytest.approx(float(reference), rel=1e-5)


def test_unobserved_entries_are_never_read():
    gen = torch.Generator().manual_seed(0)
    net = _NCAENet(10, (6, 4), 10, rating_range=(1.0, 5.0), generator=gen)
    X = np.zeros((4, 10), np.float32)
    X[0, [1, 4]] = [5, 3]
    X[1, [4, 7]] = [2, 1]
    X[3, [1]] = [4]
    batch = _batch(X)
    h = net.hidden(batch)
    pred = _at_entries(net, h, batch)
    dense = net(batch)
    np.testing.assert_allclose(pred.detach(), dense[batch.row_of, batch.cols].detach(), rtol=1e-6)
    loss = ncae_loss(pred, batch, torch.ones_like(batch.vals, dtype=torch.bool))
    loss.backward()
    unseen = [c for c in range(10) if c not in (1, 4, 7)]
    # no error flows from an unobserved output: its weights and bias get no gradient
    assert torch.all(net.out.weight.grad[unseen] == 0)
    assert torch.all(net.out.bias.grad[unseen] == 0)
    assert torch.all(net.out.weight.grad[[1, 4, 7]].abs().sum(1) > 0)
    # nor does an unobserved input: the first layer's rows of unrated columns stay at 0
    assert torch.all(net.encoders[0].weight.grad[unseen] == 0)


# -- input dropout (Eq. 3) ----------------------------------------------------------------------
def test_dropout_touches_only_observed_entries_and_rescales_them():
    rng = np.random.default_rng(0)
    X = sp.random(200, 300, density=0.1, random_state=0, format="csr", dtype=np.float32)
    X.data = rng.integers(1, 6, X.nnz).astype(np.float32)
    batch = _batch(X)
    corrupted, kept = _drop_observed(batch, 0.5, torch.Generator().manual_seed(1))
    # the same pattern: an unobserved entry is never created, an observed one never moved
    assert torch.equal(corrupted.cols, batch.cols) and torch.equal(corrupted.offsets, batch.offsets)
    np.testing.assert_array_equal(corrupted.vals[kept], 2.0 * batch.vals[kept])  # 1/(1-q)
    assert torch.all(corrupted.vals[~kept] == 0)
    assert abs(float((~kept).float().mean()) - 0.5) < 0.02
    # the same draws as the shared dropout_values
    same = dropout_values(batch, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(same.vals, corrupted.vals)
    # q = 0 keeps everything; a stored 0 rating keeps its own kept/dropped flag
    unchanged, all_kept = _drop_observed(batch, 0.0, torch.Generator().manual_seed(1))
    assert torch.equal(unchanged.vals, batch.vals) and bool(all_kept.all())
    zeros = batch.with_values(torch.zeros_like(batch.vals))
    _, flags = _drop_observed(zeros, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(flags, kept)


# -- output map ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "low, high, scale, shift", [(0.5, 5.0, 2.25, 2.75), (1.0, 5.0, 2.0, 3.0), (3.0, 3.0, 1.0, 3.0)]
)
def test_tanh_output_is_mapped_onto_the_rating_range(low, high, scale, shift):
    net = _NCAENet(3, (2,), 3, rating_range=(low, high), generator=torch.Generator())
    z = torch.linspace(-4, 4, 9)
    torch.testing.assert_close(net.finish(z), scale * torch.tanh(z) + shift)


def test_parameters_checked_in_fit():
    R = _planted_ratings(30, 20)
    for sizes in ((), (4, 0), (4, 2.5)):
        with pytest.raises(ValueError, match="hidden_layer_sizes"):
            NCAE(sizes, epochs=1).fit(R)


# -- the S+U+S pre-training (§4.3) --------------------------------------------------------------
def test_pretraining_stages_appear_in_history(ratings):
    train, test = ratings
    est = _small().fit(train, X_valid=test)
    phases = [h["phase"] for h in est.history_]
    assert (
        phases == ["pretrain_sr"] * 3 + ["pretrain_dr"] * 3 + ["pretrain_v"] * 3 + ["finetune"] * 4
    )
    assert [h["epoch"] for h in est.history_] == list(range(1, 14))
    # pre-training runs its fixed epochs unvalidated; fine-tuning is validated
    assert all("valid_rmse" not in h for h in est.history_[:9])
    assert all("valid_rmse" in h for h in est.history_[9:])
    assert 10 <= est.best_epoch_ <= 13
    best = min(h["valid_rmse"] for h in est.history_[9:])
    assert -est.score(test) == pytest.approx(best, rel=1e-5)


def test_without_pretraining_one_phase(ratings):
    train, _ = ratings
    est = _small(pretrain=False).fit(train)
    assert len(est.history_) == 4 and all("phase" not in h for h in est.history_)


@pytest.mark.parametrize(
    "sizes, names",
    [
        ((8,), ["pretrain_sr", "pretrain_v", "finetune"]),  # "S+S" of a single hidden layer
        ((8, 6, 4), ["pretrain_sr", "pretrain_dr2", "pretrain_dr3", "pretrain_v", "finetune"]),
    ],
)
def test_one_dr_stage_per_further_hidden_layer(ratings, sizes, names):
    train, _ = ratings
    est = _small(hidden_layer_sizes=sizes, pretrain_epochs=1, epochs=1).fit(train)
    assert [h["phase"] for h in est.history_] == names


def test_each_stage_trains_its_own_layers_only(ratings, monkeypatch):
    train, _ = ratings
    seen = {}
    real = engine._fit_loop  # the loop train() runs

    def spy(phase, config, validation=None, *rest, **kw):
        before = {k: v.detach().clone() for k, v in phase.module.state_dict().items()}
        out = real(phase, config, validation, *rest, **kw)
        after = {k: v.detach().clone() for k, v in phase.module.state_dict().items()}
        seen[phase.name] = (before, after)
        return out

    monkeypatch.setattr(engine, "_fit_loop", spy)
    _small().fit(train)

    def changed(name):
        before, after = seen[name]
        return {k for k in before if not torch.equal(before[k], after[k])}

    sr, dr, v = seen["pretrain_sr"], seen["pretrain_dr"], seen["pretrain_v"]
    assert changed("pretrain_sr") == set(sr[0])  # W1, b1 and the SR decoder
    # U: the first layer is frozen, the new layer and its decoder learn (Eq. 13)
    assert changed("pretrain_dr") == {
        "layer.weight",
        "layer.bias",
        "decoder.weight",
        "decoder.bias",
    }
    torch.testing.assert_close(dr[1]["below.0.weight"], sr[1]["encoders.0.weight"])
    # S: the hidden layers start from the pre-trained ones and stay frozen, V learns (Eq. 15)
    torch.testing.assert_close(v[0]["encoders.0.weight"], sr[1]["encoders.0.weight"])
    torch.testing.assert_close(v[0]["encoders.1.weight"], dr[1]["layer.weight"])
    assert changed("pretrain_v") == {"out.weight", "out.bias"}
    # fine-tuning starts from V's result and trains everything (Eq. 6)
    assert all(torch.equal(seen["finetune"][0][k], v[1][k]) for k in v[1])
    assert changed("finetune") == set(v[1])


def test_dr_stage_reconstructs_the_code_below_in_mean_squared_error(ratings, monkeypatch):
    train, _ = ratings
    est = _small(dropout=0.0)
    captured = {}
    real = engine._fit_loop  # the loop train() runs

    def spy(phase, config, validation=None, *rest, **kw):
        out = real(phase, config, validation, *rest, **kw)
        captured[phase.name] = phase
        return out

    monkeypatch.setattr(engine, "_fit_loop", spy)
    est.fit(train)
    phase = captured["pretrain_dr"]
    module = phase.module
    batch = phase.rows.batch(torch.arange(10))
    with torch.no_grad():
        code = torch.tanh(module.below[0](batch))  # SR: z1 (no dropout with q = 0)
        rebuilt = torch.tanh(module.decoder(torch.tanh(module.layer(code))))
        expected = ((rebuilt - code) ** 2).sum() / (10 * code.shape[1])  # 1/(M K1) Σ Σ
        got = phase.loss(module, batch, TrainState(torch.Generator()))
    assert float(got) == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("kind", ["item", "user"])
def test_plain_model_learns_pickles_and_is_reproducible(ratings, kind):
    # the rating contract runs the default (pre-trained) NCAE; this is the one-phase one
    train, test = ratings
    est = _small(hidden_layer_sizes=(32, 32), kind=kind, epochs=30, batch_size=32, pretrain=False)
    est.fit(train)
    assert -est.score(test) < _mean_rmse(train, test) - 0.05
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(test).data, est.predict(test).data)
    twin = clone(est).fit(train)
    np.testing.assert_array_equal(twin.predict(test).data, est.predict(test).data)


# -- where a prediction comes from, and how λ enters --------------------------------------------
@pytest.mark.parametrize("kind", ["item", "user"])
def test_prediction_of_an_entry_reads_the_input_row_of_its_item_or_user(ratings, kind):
    # item-based: (u, i) is output u of item i's clean column of training ratings; user-based:
    # output i of user u's clean row (120 users x 60 items: a transposed read cannot match)
    train, test = ratings
    est = _small(kind=kind, pretrain=False, epochs=2).fit(train)
    make_rows = item_rows if kind == "item" else user_rows
    rows = make_rows(train, torch.device("cpu"))
    with torch.no_grad():
        dense = est.module_(rows.batch(torch.arange(rows.n_rows))).numpy()
    users = np.repeat(np.arange(test.shape[0]), np.diff(test.indptr))
    items = test.indices
    expected = dense[items, users] if kind == "item" else dense[users, items]
    low, high = est.rating_range_
    np.testing.assert_allclose(est.predict(test).data, np.clip(expected, low, high), rtol=1e-5)


def test_weight_decay_is_lambda_on_the_weight_matrices_in_every_stage(ratings, monkeypatch):
    # Eq. 6 is a mean over rows plus λ/2 ||W||²: the coupled decay is λ itself (not λ/N as for
    # AutoRec's summed Eq. 2), on the weight matrices only (biases: the documented deviation)
    train, _ = ratings
    built = []
    real = torch.optim.Adam

    def adam(groups, **kw):
        built.append(
            [([tuple(p.shape) for p in g["params"]], g.get("weight_decay", 0.0)) for g in groups]
        )
        return real(groups, **kw)

    monkeypatch.setattr(torch.optim, "Adam", adam)
    _small(l2_reg=3e-3).fit(train)  # hidden (16, 12) over item rows of 120 users
    n = train.shape[0]
    assert built == [
        [([(n, 16), (n, 16)], 3e-3), ([(16,), (n,)], 0.0)],  # S: W1 and its decoder
        [([(12, 16), (16, 12)], 3e-3), ([(12,), (16,)], 0.0)],  # U: W2 and its decoder
        [([(n, 12)], 3e-3), ([(n,)], 0.0)],  # S: V alone
        [([(n, 16), (12, 16), (n, 12)], 3e-3), ([(16,), (12,), (n,)], 0.0)],  # fine-tuning
    ]
