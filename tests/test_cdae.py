"""CDAE (Wu et al., WSDM 2016): the losses by hand, the negative sampler, the user node and
the two ways of scoring a new user."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import skcfae.models._cdae as cdae_module
from skcfae import CDAE
from skcfae.datasets import make_interactions
from skcfae.models._cdae import cdae_loss, sample_negatives
from skcfae.nn import TrainState, make_optimizer, user_rows
from skcfae.nn._modules import dropout

CPU = torch.device("cpu")


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x):
    return np.log1p(np.exp(x))


@pytest.fixture(scope="module")
def data():
    X = make_interactions(300, 60, n_groups=6, density=0.08, random_state=0)
    return X[:240], X[240:]


@pytest.fixture(scope="module")
def fitted(data):
    X_train, _ = data
    model = CDAE(
        n_components=8,
        new_user="fold_in",
        epochs=15,
        batch_size=60,
        learning_rate=1e-2,
        random_state=0,
        device="cpu",
    )
    return model.fit(X_train)


# -- the loss against hand-computed cases --------------------------------------------------
X_HAND = sp.csr_array(np.array([[1, 1, 0, 0], [0, 0, 3, 0]], dtype=np.float32))  # 3 -> binary 1
W = np.array([[0.5, -0.2], [0.1, 0.3], [-0.4, 0.2], [0.3, 0.1]])  # encoder, items x K
B = np.array([0.05, -0.1])
V = np.array([[0.2, -0.3], [-0.1, 0.4]])  # user nodes
W2 = np.array([[0.3, -0.5], [0.2, 0.4], [-0.1, 0.2], [0.6, -0.3]])  # decoder, items x K
B2 = np.array([0.1, -0.2, 0.0, 0.05])


def _hand_model(**params):
    """A fitted-looking CDAE over X_HAND whose network holds the weights above."""
    model = CDAE(**{"n_components": 2, "dropout": 0.5, "l2_reg": 0.0, "device": "cpu", **params})
    model.n_items_in_ = 4
    model.n_users_ = 2
    net = model._build_module(torch.Generator().manual_seed(0))
    with torch.no_grad():
        net.encoder.weight.copy_(torch.tensor(W))
        net.encoder.bias.copy_(torch.tensor(B))
        net.user.copy_(torch.tensor(V))
        net.decoder.weight.copy_(torch.tensor(W2))
        net.decoder.bias.copy_(torch.tensor(B2))
    return model, net


def _fixed_corruption(batch, p, generator):
    """Drop the second stored entry (user 0, item 1); scale the kept ones by 1/(1-p)."""
    keep = torch.tensor([1.0, 0.0, 1.0])
    return batch.with_values(batch.vals * keep / (1.0 - p))


def _hand_outputs():
    x_tilde = np.array([[2.0, 0, 0, 0], [0, 0, 2.0, 0]])  # item 1 of user 0 dropped, q=0.5
    h = _sigmoid(x_tilde @ W + B + V)
    return h @ W2.T + B2  # z, (users x items)


def _loss_value(model, net, generator=None):
    batch = user_rows(X_HAND, CPU).batch(torch.arange(2))
    state = TrainState(generator or torch.Generator().manual_seed(0))
    return float(model._loss(net, batch, state).detach())


def test_logistic_loss_all_items_hand_computed(monkeypatch):
    monkeypatch.setattr(cdae_module, "dropout_values", _fixed_corruption)
    model, net = _hand_model(loss="logistic", negative_samples=None, positive_weight=2.0)
    z = _hand_outputs()
    y = np.array([[1, 1, 0, 0], [0, 0, 1, 0]])
    # c·Σ_O -log σ(z) + Σ_unobserved -log(1 - σ(z)), mean over the two users
    per_user = (2.0 * y * _softplus(-z) + (1 - y) * _softplus(z)).sum(axis=1)
    assert _loss_value(model, net) == pytest.approx(per_user.mean(), abs=1e-6)


def test_square_loss_all_items_hand_computed(monkeypatch):
    monkeypatch.setattr(cdae_module, "dropout_values", _fixed_corruption)
    model, net = _hand_model(loss="square", negative_samples=None, positive_weight=3.0)
    z = _hand_outputs()
    expected = (
        3.0 * ((z[0, 0] - 1) ** 2 + (z[0, 1] - 1) ** 2)
        + z[0, 2] ** 2
        + z[0, 3] ** 2
        + 3.0 * (z[1, 2] - 1) ** 2
        + z[1, 0] ** 2
        + z[1, 1] ** 2
        + z[1, 3] ** 2
    ) / 2
    assert _loss_value(model, net) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("loss", ["logistic", "square"])
def test_sampled_loss_hand_computed(monkeypatch, loss):
    """Observed items plus the drawn negatives only (a negative drawn twice counts twice)."""
    monkeypatch.setattr(cdae_module, "dropout_values", _fixed_corruption)
    drawn = (torch.tensor([0, 0, 1]), torch.tensor([3, 3, 0]))
    monkeypatch.setattr(cdae_module, "sample_negatives", lambda batch, ratio, g: drawn)
    model, net = _hand_model(loss=loss, negative_samples=1)
    z = _hand_outputs()
    pos = [z[0, 0], z[0, 1], z[1, 2]]
    neg = [z[0, 3], z[0, 3], z[1, 0]]
    if loss == "logistic":
        expected = (sum(_softplus(-v) for v in pos) + sum(_softplus(v) for v in neg)) / 2
    else:
        expected = (sum((v - 1) ** 2 for v in pos) + sum(v * v for v in neg)) / 2
    assert _loss_value(model, net) == pytest.approx(expected, abs=1e-6)


def test_corruption_is_dropout_of_the_stored_entries():
    """Without the patch, the loss uses dropout drawn from the state's generator: the same
    draws as nn._modules.dropout on the stored values, reproduced here by hand."""
    model, net = _hand_model(loss="logistic", negative_samples=None)
    seed = 3
    keep = dropout(torch.ones(3), 0.5, torch.Generator().manual_seed(seed)).numpy()
    x_tilde = np.zeros((2, 4))
    x_tilde[0, 0], x_tilde[0, 1], x_tilde[1, 2] = keep
    z = _sigmoid(x_tilde @ W + B + V) @ W2.T + B2
    y = np.array([[1, 1, 0, 0], [0, 0, 1, 0]])
    expected = (y * _softplus(-z) + (1 - y) * _softplus(z)).sum(axis=1).mean()
    value = _loss_value(model, net, torch.Generator().manual_seed(seed))
    assert value == pytest.approx(expected, abs=1e-6)


def test_cdae_loss_formula():
    z_pos, z_neg = torch.tensor([0.5, -1.0]), torch.tensor([2.0])
    got = cdae_loss(z_pos, z_neg, 2, loss="square", positive_weight=2.0)
    assert float(got) == pytest.approx((2.0 * (0.25 + 4.0) + 4.0) / 2)
    got = cdae_loss(z_pos, z_neg, 1, loss="logistic")
    want = np.log1p(np.exp(-0.5)) + np.log1p(np.exp(1.0)) + np.log1p(np.exp(2.0))
    assert float(got) == pytest.approx(want, rel=1e-6)


# -- negative sampling ---------------------------------------------------------------------
def test_negatives_are_unobserved_and_counted_per_user():
    rng = np.random.RandomState(0)
    dense = (rng.rand(30, 25) < rng.rand(30, 1)).astype(np.float32)
    dense[0] = 1.0  # every item observed: no room for a negative
    dense[1] = 0.0  # nothing observed: nothing to draw
    dense[2, [0, 24]] = 0.0
    dense[2, 1:24] = 1.0  # two unobserved items: the first and the last
    X = sp.csr_array(dense)
    batch = user_rows(X, CPU).batch(torch.arange(30))
    rows, cols = sample_negatives(batch, 4, torch.Generator().manual_seed(0))
    rows, cols = rows.numpy(), cols.numpy()
    assert not dense[rows, cols].any()  # only unobserved items
    observed = dense.sum(axis=1).astype(int)
    expected = np.where(observed < 25, 4 * observed, 0)
    np.testing.assert_array_equal(np.bincount(rows, minlength=30), expected)
    assert set(cols[rows == 2]) == {0, 24}
    assert np.all(np.diff(rows * 25 + cols) >= 0)  # sorted by row, then item


@pytest.mark.parametrize("cost", [1, 10**9])
def test_outputs_at_pairs_sampled_and_dense_agree(monkeypatch, cost):
    """Both ways of computing the outputs at (row, item) pairs give h_r · W'_c + b'_c and
    its gradients."""
    monkeypatch.setattr(cdae_module, "_SAMPLED_COST", cost)
    net = cdae_module._CDAENet(3, 40, 5, torch.Generator().manual_seed(0))
    h = torch.rand(4, 5, generator=torch.Generator().manual_seed(1), requires_grad=True)
    rows, cols = torch.tensor([0, 0, 0, 2, 3, 3]), torch.tensor([1, 1, 7, 39, 0, 5])
    z = net.at(h, rows, cols)
    weight = torch.arange(1.0, 7.0)
    grads = torch.autograd.grad((z * weight).sum(), [h, net.decoder.weight])
    W2n, B2n = net.decoder.weight.detach().numpy(), net.decoder.bias.detach().numpy()
    hn = h.detach().numpy()
    expected = (hn[rows] * W2n[cols]).sum(axis=1) + B2n[cols]
    np.testing.assert_allclose(z.detach().numpy(), expected, atol=1e-6)
    grad_h = np.zeros_like(hn)
    np.add.at(grad_h, rows.numpy(), weight.numpy()[:, None] * W2n[cols])
    grad_w = np.zeros_like(W2n)
    np.add.at(grad_w, cols.numpy(), weight.numpy()[:, None] * hn[rows])
    np.testing.assert_allclose(grads[0].numpy(), grad_h, atol=1e-5)
    np.testing.assert_allclose(grads[1].numpy(), grad_w, atol=1e-5)


def test_negatives_are_uniform_over_the_unobserved_items():
    X = sp.csr_array(np.array([[0, 1, 0, 1, 1, 0, 0, 1]], dtype=np.float32))
    batch = user_rows(X, CPU).batch(torch.arange(1))
    _, cols = sample_negatives(batch, 5000, torch.Generator().manual_seed(0))  # 20,000 draws
    freq = np.bincount(cols.numpy(), minlength=8) / cols.numel()
    np.testing.assert_array_equal(freq[[1, 3, 4, 7]], 0.0)
    np.testing.assert_allclose(freq[[0, 2, 5, 6]], 0.25, atol=0.015)


def test_sampled_update_reaches_only_the_outputs_it_computes(monkeypatch):
    """With negatives, the data term touches the decoder rows of O_u ∪ S_u only."""
    drawn = (torch.tensor([0, 1]), torch.tensor([2, 3]))
    monkeypatch.setattr(cdae_module, "sample_negatives", lambda batch, ratio, g: drawn)
    X = sp.csr_array(np.array([[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=np.float32))
    model = CDAE(n_components=3, negative_samples=1, device="cpu")
    model.n_items_in_, model.n_users_ = 6, 2
    net = model._build_module(torch.Generator().manual_seed(0))
    batch = user_rows(X, CPU).batch(torch.arange(2))
    model._loss(net, batch, TrainState(torch.Generator().manual_seed(0))).backward()
    touched = net.decoder.weight.grad.abs().sum(dim=1) > 0
    np.testing.assert_array_equal(touched.numpy(), [True, True, True, True, False, False])


# -- the user node -------------------------------------------------------------------------
def test_user_node_is_penalised_with_the_weights():
    model, net = _hand_model(l2_reg=0.1)
    opt = make_optimizer(list(net.named_parameters()), "adam", 1e-3, model._weight_decay())
    decayed = opt.param_groups[0]
    assert decayed["weight_decay"] == pytest.approx(0.2)  # gradient of 0.1 · ||V||²
    assert any(p is net.user for p in decayed["params"])
    assert not any(p is net.encoder.bias for p in decayed["params"])


def test_user_node_matters_for_training_users(fitted, data):
    """A training user scored with its own V_u differs from the same history folded in as a
    new user, and from V_u = 0; overwriting V changes the training-user scores."""
    X_train, _ = data
    model = pickle.loads(pickle.dumps(fitted))
    net = model.module_
    assert float(net.user.detach().abs().max()) > 1e-3  # V was learned
    batch = user_rows(X_train, CPU).batch(torch.arange(20))
    with torch.no_grad():
        own = model._scores(net, batch).numpy()
    folded = model.decision_function(X_train[:20])
    zero = model.set_params(new_user="zero").decision_function(X_train[:20])
    assert np.abs(own - folded).max() > 1e-2
    assert np.abs(own - zero).max() > 1e-2


@pytest.mark.parametrize("new_user", ["zero", "fold_in"])
def test_new_user_never_receives_a_training_vector(data, new_user):
    X_train, X_new = data
    model = CDAE(n_components=8, epochs=3, new_user=new_user, random_state=0, device="cpu")
    model.fit(X_train)
    before = model.decision_function(X_new)
    batch = user_rows(X_train, CPU).batch(torch.arange(5))
    with torch.no_grad():
        own_before = model._scores(model.module_, batch).numpy()
        model.module_.user.fill_(1e6)
        own_after = model._scores(model.module_, batch).numpy()
    assert not np.allclose(own_before, own_after)  # the training path does read V
    np.testing.assert_array_equal(model.decision_function(X_new), before)
    np.testing.assert_array_equal(model.recommend(X_new, n=5), model.recommend(X_new, n=5))


def test_zero_new_user_is_the_network_with_v_zero(fitted, data):
    _, X_new = data
    model = pickle.loads(pickle.dumps(fitted)).set_params(new_user="zero")
    net = model.module_
    Wn, Bn = net.encoder.weight.detach().numpy(), net.encoder.bias.detach().numpy()
    W2n, B2n = net.decoder.weight.detach().numpy(), net.decoder.bias.detach().numpy()
    y = (X_new.toarray() > 0).astype(np.float64)
    expected = _sigmoid(y @ Wn + Bn) @ W2n.T + B2n
    np.testing.assert_allclose(model.decision_function(X_new), expected, atol=1e-5)


def _fold_in_objective(model, X, user):
    """ℓ_u (clean history, unobserved items weighted by s|O_u|/(n - |O_u|)) + n_users ·
    l2_reg · ||V_u||², summed over the rows, by hand."""
    net = model.module_
    Wn, Bn = net.encoder.weight.detach().numpy(), net.encoder.bias.detach().numpy()
    W2n, B2n = net.decoder.weight.detach().numpy(), net.decoder.bias.detach().numpy()
    y = (X.toarray() > 0).astype(np.float64)
    z = _sigmoid(y @ Wn + Bn + user) @ W2n.T + B2n
    counts = y.sum(axis=1, keepdims=True)
    weight = model.negative_samples * counts / (y.shape[1] - counts)
    data_term = (y * _softplus(-z) + weight * (1 - y) * _softplus(z)).sum()
    return data_term + model.n_users_ * model.l2_reg * (user**2).sum()


def test_fold_in_fits_a_fresh_vector_to_the_new_users_history(fitted, data):
    _, X_new = data
    model = pickle.loads(pickle.dumps(fitted)).set_params(l2_reg=1e-4)
    user = model._fold_in(model.module_, X_new).numpy()
    assert np.abs(user).max() > 1e-3
    zero = np.zeros_like(user)
    assert _fold_in_objective(model, X_new, user) < _fold_in_objective(model, X_new, zero)
    longer = model.set_params(fold_in_steps=60)._fold_in(model.module_, X_new).numpy()
    assert _fold_in_objective(model, X_new, longer) < _fold_in_objective(model, X_new, user)
    # the scores are those of the network with the folded-in vectors
    net = model.module_
    Wn, Bn = net.encoder.weight.detach().numpy(), net.encoder.bias.detach().numpy()
    W2n, B2n = net.decoder.weight.detach().numpy(), net.decoder.bias.detach().numpy()
    y = (X_new.toarray() > 0).astype(np.float64)
    expected = _sigmoid(y @ Wn + Bn + longer) @ W2n.T + B2n
    np.testing.assert_allclose(model.decision_function(X_new), expected, atol=1e-4)


def test_fold_in_is_deterministic_and_per_user(fitted, data):
    _, X_new = data
    together = fitted.decision_function(X_new[:10])
    alone = np.vstack([fitted.decision_function(X_new[i : i + 1]) for i in range(10)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fitted.decision_function(X_new[:10]), together)


def test_fold_in_does_not_touch_the_trained_network(fitted, data):
    _, X_new = data
    model = pickle.loads(pickle.dumps(fitted))  # a loaded model: no gradient anywhere yet
    state = {k: v.clone() for k, v in model.module_.state_dict().items()}
    model.decision_function(X_new)
    for name, value in model.module_.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert all(p.grad is None for p in model.module_.parameters())


def test_validation_users_are_new_users(data):
    X_train, _ = data
    model = CDAE(n_components=8, epochs=3, early_stopping=True, random_state=0, device="cpu")
    model.fit(X_train)
    assert model.n_users_ == X_train.shape[0] - round(0.1 * X_train.shape[0])
    assert model.module_.user.shape == (model.n_users_, 8)
    assert all(np.isfinite(h["valid_ndcg"]) for h in model.history_)


def test_pickle_round_trip(fitted, data):
    _, X_new = data
    again = pickle.loads(pickle.dumps(fitted))
    assert again.n_users_ == fitted.n_users_
    assert torch.equal(again.module_.user, fitted.module_.user)
    np.testing.assert_array_equal(again.decision_function(X_new), fitted.decision_function(X_new))
    np.testing.assert_array_equal(again.recommend(X_new, n=5), fitted.recommend(X_new, n=5))


def test_same_random_state_same_model(data):
    X_train, X_new = data
    make = lambda: CDAE(n_components=8, epochs=2, random_state=1, device="cpu").fit(X_train)  # noqa: E731
    np.testing.assert_array_equal(make().decision_function(X_new), make().decision_function(X_new))
