"""DeepRec (Kuchaiev & Ginsburg 2017): the masked MSE, dense re-feeding, code-only dropout,
SELU, and the paper's defaults."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F

import skcfae.models._deeprec as deeprec
import skcfae.models._neural as neural
from skcfae import DeepRec
from skcfae.models._deeprec import SELU_MIN, _DeepRecNet, masked_mean_squared_error
from skcfae.models._rating_ae import masked_squared_error
from skcfae.nn import TrainState, fold_in_rows, user_rows

from .test_ratings import _planted_ratings

CPU = torch.device("cpu")


def _batch(X):
    X = sp.csr_array(X)
    return user_rows(X, CPU).batch(torch.arange(X.shape[0]))


def _net(n_items=6, hidden=(5,), code=4, *, p=0.8, output="selu", seed=0):
    g = torch.Generator().manual_seed(seed)
    return _DeepRecNet(n_items, hidden, code, dropout=p, output_activation=output, generator=g)


def _ratings(n_users=12, n_items=6, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random_array((n_users, n_items), density=0.4, random_state=rng, format="csr")
    X.data = rng.integers(1, 6, X.nnz).astype(np.float32)
    return sp.csr_array(X, dtype=np.float32)


# -- the loss ------------------------------------------------------------------------------
def test_masked_mse_is_the_mean_over_the_observed_entries_of_the_batch():
    # row 0 rates items 0 (5) and 2 (3); row 1 rates item 1 (4) and item 2 with a stored 0
    X = sp.csr_array((np.array([5.0, 3.0, 4.0, 0.0]), ([0, 0, 1, 1], [0, 2, 1, 2])), shape=(2, 3))
    pred = torch.tensor([[4.0, 0.0, 3.5], [1.0, 2.0, 1.0]])
    batch = _batch(X)
    # (4-5)² + (3.5-3)² + (2-4)² + (1-0)² = 1 + 0.25 + 4 + 1 = 6.25 over 4 observed ratings
    assert masked_mean_squared_error(pred, batch).item() == pytest.approx(6.25 / 4)
    # AutoRec's masked error divides the same sum by the rows instead
    assert masked_squared_error(pred, batch).item() == pytest.approx(6.25 / 2)


def test_unobserved_entries_are_never_read():
    X = _ratings()
    batch = _batch(X)
    observed = torch.from_numpy(X.toarray() != 0)
    pred = torch.randn(X.shape, generator=torch.Generator().manual_seed(0))
    poisoned = torch.where(observed, pred, torch.full_like(pred, float("nan")))
    poisoned.requires_grad_(True)
    value = masked_mean_squared_error(poisoned, batch)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(masked_mean_squared_error(pred, batch).item())
    value.backward()
    assert torch.all(poisoned.grad[~observed] == 0)
    assert torch.all(poisoned.grad[observed] != 0)


def test_the_sparse_pass_reaches_only_the_input_weights_of_rated_items():
    X = _ratings().tolil()
    X[:, 3] = 0  # nobody rates item 3
    X = sp.csr_array(X)
    X.eliminate_zeros()
    net = _net()
    value = masked_mean_squared_error(net.reconstruct(_batch(X)), _batch(X))
    value.backward()
    grad = net.input_layer.weight.grad
    assert torch.all(grad[3] == 0)
    assert torch.all(grad[[0, 1, 2, 4, 5]].abs().sum(1) > 0)


# -- dense re-feeding ------------------------------------------------------------------------
class _Recorder(torch.optim.Optimizer):
    """Records the gradients at each step and leaves the weights as they are."""

    def __init__(self, params):
        super().__init__(params, {})
        self.grads = []

    def step(self, closure=None):
        self.grads.append([p.grad.clone() for g in self.param_groups for p in g["params"]])


@pytest.mark.parametrize("refeed_steps", [1, 2])
def test_refeeding_updates_again_on_f_of_x_as_input_and_target(refeed_steps, monkeypatch):
    X = _ratings()
    batch = _batch(X)
    net = _net(p=0.5)
    net.train()
    params = list(net.parameters())
    est = DeepRec(refeed_steps=refeed_steps)
    inputs, outputs = [], []
    real = net.reconstruct

    def spy(x, generator=None):
        out = real(x, generator)
        inputs.append(x)
        outputs.append(out.detach())
        return out

    monkeypatch.setattr(net, "reconstruct", spy)
    opt = _Recorder(params)
    state = TrainState(torch.Generator().manual_seed(7))
    reference = torch.Generator().manual_seed(7)
    value = est._refeed_step(net, batch, est._loss, opt, state)

    assert len(opt.grads) == state.step == 1 + refeed_steps
    assert inputs[0] is batch
    for t in range(1, 1 + refeed_steps):  # a dense (b, n_items) example: the last output
        assert inputs[t].shape == X.shape and not inputs[t].requires_grad
        assert torch.equal(inputs[t], outputs[t - 1])

    # the same computation by hand, with the same dropout draws
    out = real(batch, reference)
    first = masked_mean_squared_error(out, batch)
    assert value.item() == pytest.approx(first.item())
    expected = [torch.autograd.grad(first, params)]
    for _ in range(refeed_steps):
        x = out.detach()
        out = real(x, reference)
        dense = ((out - x) ** 2).sum() / x.numel()  # Eq. 1 with every m_i = 1
        expected.append(torch.autograd.grad(dense, params))
    for got, want in zip(opt.grads, expected, strict=True):
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w)


def test_fit_makes_one_plus_refeed_steps_updates_per_batch(monkeypatch):
    calls = []
    real = deeprec.apply_update

    def counting(optimizer, value, state):
        calls.append(type(optimizer).__name__)
        real(optimizer, value, state)

    monkeypatch.setattr(deeprec, "apply_update", counting)
    X = _planted_ratings(40, 20, density=0.5)  # 40 users, batches of 16: 3 per epoch
    kw = dict(n_components=8, hidden_layer_sizes=(4,), epochs=2, batch_size=16, device="cpu")
    DeepRec(**kw, random_state=0).fit(X)
    assert calls == ["SGD"] * (2 * 3 * 2)
    calls.clear()
    DeepRec(**kw, refeed_steps=0, random_state=0).fit(X)  # the engine's own step
    assert calls == []


# -- the network ---------------------------------------------------------------------------
def test_dropout_acts_on_the_code_only():
    net = _net(n_items=30, hidden=(16,), code=300, p=0.8)
    layers = [net.input_layer, *net.encoder, *net.decoder, net.out]
    seen = {}

    def record(i):
        def hook(module, args, output):
            seen.setdefault(i, []).append(args[0] if i else None)

        return hook

    for i, layer in enumerate(layers):
        layer.register_forward_hook(record(i))
    batch = _batch(_planted_ratings(20, 30, density=0.5))
    net.eval()
    net.reconstruct(batch, torch.Generator().manual_seed(0))  # eval: no dropout at all
    net.train()
    net.reconstruct(batch, torch.Generator().manual_seed(0))
    code_layer = 1 + len(net.encoder)  # the first decoder layer reads the code
    for i in range(1, len(layers)):
        clean, dropped = seen[i]
        if i < code_layer:  # encoder: untouched
            torch.testing.assert_close(dropped, clean)
        elif i == code_layer:
            kept = dropped != 0
            assert abs(1 - kept.float().mean().item() - 0.8) < 0.03
            torch.testing.assert_close(dropped[kept], clean[kept] / 0.2)
        else:  # after the code: changed by the code's dropout, but no mask of its own
            assert not torch.allclose(dropped, clean) and torch.all(dropped != 0)


def test_selu_after_every_layer_by_hand():
    net = _net(n_items=6, hidden=(5, 3), code=4, output="selu").eval()
    x = torch.from_numpy(_ratings(4, 6).toarray())
    W0, b0 = net.input_layer.weight, net.input_layer.bias  # stored (n_in, n_out)
    h = F.selu(x @ W0 + b0)
    for layer in [*net.encoder, *net.decoder]:
        h = F.selu(h @ layer.weight.T + layer.bias)
    want = F.selu(h @ net.out.weight.T + net.out.bias)
    with torch.no_grad():
        torch.testing.assert_close(net.reconstruct(x), want)
        # the sparse first layer computes the same as the dense one
        torch.testing.assert_close(net.reconstruct(_batch(_ratings(4, 6))), want)
        identity = _net(n_items=6, hidden=(5, 3), code=4, output="identity").eval()
        torch.testing.assert_close(
            identity.reconstruct(x), identity.out(identity.hidden(_batch(_ratings(4, 6))))
        )
    assert SELU_MIN == pytest.approx(F.selu(torch.tensor(-30.0, dtype=torch.float64)).item())
    assert [layer.out_features for layer in [*net.encoder, *net.decoder]] == [3, 4, 3, 5]


def test_the_last_layer_is_selu_when_the_ratings_fit_its_range():
    kw = dict(n_components=8, hidden_layer_sizes=(4,), epochs=1, device="cpu", random_state=0)
    stars = _planted_ratings(30, 10, density=0.5)
    assert DeepRec(**kw).fit(stars).module_.output_activation == "selu"
    centred = stars.copy()
    centred.data = centred.data - 3.0  # -2 .. 2: below SELU's -1.758
    model = DeepRec(**kw).fit(centred)
    assert model.module_.output_activation == "identity"
    forced = DeepRec(**kw, output_activation="selu").fit(centred)
    assert forced.module_.output_activation == "selu"
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        DeepRec(hidden_layer_sizes=(4, 0), epochs=1).fit(stars)


# -- the estimator -------------------------------------------------------------------------
def test_paper_defaults_and_architecture(monkeypatch):
    est = DeepRec()
    params = est.get_params()
    assert params["n_components"] == 1024 and tuple(params["hidden_layer_sizes"]) == (512, 512)
    assert params["dropout"] == 0.8 and params["refeed_steps"] == 1
    assert params["learning_rate"] == 1e-3 and params["batch_size"] == 512
    assert params["output_activation"] == "auto" and params["l2_reg"] == 0.0
    assert "kind" not in params and DeepRec.kind == "user"
    plans = []
    real_train = neural.train
    monkeypatch.setattr(neural, "train", lambda plan: plans.append(plan) or real_train(plan))
    est.set_params(epochs=1, device="cpu", random_state=0).fit(_planted_ratings(20, 50))
    (plan,) = plans
    config = plan.config
    assert config.optimizer == "sgd" and config.momentum == 0.9 and config.weight_decay == 0.0
    assert config.learning_rate == 1e-3 and config.batch_size == 512
    (phase,) = plan.phases
    assert phase.step is not None  # dense re-feeding
    net = est.module_
    dims = [net.input_layer.weight.shape[0], net.input_layer.weight.shape[1]]
    dims += [layer.out_features for layer in [*net.encoder, *net.decoder, net.out]]
    assert dims == [50, 512, 512, 1024, 512, 512, 50]
    assert net.dropout == 0.8 and net.output_activation == "selu"


def test_new_users_are_folded_in_from_their_ratings():
    R = _planted_ratings(60, 20, density=0.5)
    train, new = R[:50], R[50:]
    model = DeepRec(32, hidden_layer_sizes=(16,), epochs=3, device="cpu", random_state=0)
    model.fit(train)
    pred = model.predict(new, ratings=new)
    net = model.module_.eval()
    with torch.no_grad():
        full = net(fold_in_rows(new, CPU).batch(torch.arange(10))).numpy()
    want = np.clip(full[new.nonzero()], *model.rating_range_)
    np.testing.assert_allclose(pred.data, want, rtol=1e-5)
    # the training users' own rows, passed as ratings, give the default predictions
    np.testing.assert_array_equal(
        model.predict(train, ratings=train).data, model.predict(train).data
    )
