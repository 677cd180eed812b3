"""NCF / NeuMF (He et al., WWW 2017): the forward pass and the log loss by hand, the
negatives, the instance updates, and the fold-in of new users."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import skcfae.models._ncf as ncf_module
from skcfae import NCF
from skcfae.datasets import make_interactions
from skcfae.models._ncf import grid_logits, pair_logits
from skcfae.nn import TrainState, fold_in_rows, make_optimizer, user_rows

CPU = torch.device("cpu")


def _softplus(x):
    return np.log1p(np.exp(x))


@pytest.fixture(scope="module")
def data():
    X = make_interactions(300, 60, n_groups=6, density=0.08, random_state=0)
    return X[:240], X[240:]


@pytest.fixture(scope="module")
def fitted(data):
    X_train, _ = data
    return NCF(n_components=8, epochs=3, random_state=0, device="cpu").fit(X_train)


# -- the network against a hand computation ------------------------------------------------
X_HAND = sp.csr_array(np.array([[1, 0, 0], [0, 2, 1]], dtype=np.float32))  # 2 -> binary 1
P = np.array([[0.5, -0.2], [0.1, 0.3]])  # GMF user embeddings
Q = np.array([[0.4, 0.2], [-0.3, 0.6], [0.2, -0.1]])  # GMF item embeddings
P2 = np.array([[0.3, -0.5], [-0.2, 0.4]])  # MLP user embeddings
Q2 = np.array([[0.1, 0.2], [0.6, -0.3], [-0.4, 0.5]])  # MLP item embeddings
W1 = np.array([[0.5, -0.3, 0.8, 0.1], [-0.6, 0.2, -0.4, 0.7]])  # 2K=4 -> K=2
B1 = np.array([0.05, -0.1])
W2 = np.array([[0.9, -0.7]])  # K=2 -> K/2=1
B2 = np.array([0.2])
H = np.array([[0.7, -0.4, 1.1]])  # fusion of [φ_GMF (2); φ_MLP (1)]
B = np.array([-0.15])


def _hand_model(**params):
    model = NCF(**{"n_components": 2, "device": "cpu", **params})
    model.n_items_in_, model.n_users_, model.fold_in_seed_ = 3, 2, 7
    net = model._build_module(torch.Generator().manual_seed(0))
    with torch.no_grad():
        for param, value in [
            (net.user_gmf, P),
            (net.item_gmf, Q),
            (net.user_mlp, P2),
            (net.item_mlp, Q2),
            (net.tower[0].weight, W1),
            (net.tower[0].bias, B1),
            (net.tower[1].weight, W2),
            (net.tower[1].bias, B2),
            (net.output.weight, H),
            (net.output.bias, B),
        ]:
            param.copy_(torch.tensor(value))
    return model, net


def _hand_logit(u, i):
    gmf = P[u] * Q[i]
    h1 = np.maximum(W1 @ np.concatenate([P2[u], Q2[i]]) + B1, 0.0)
    h2 = np.maximum(W2 @ h1 + B2, 0.0)
    return float((H @ np.concatenate([gmf, h2]) + B)[0])


def _hand_grid():
    return np.array([[_hand_logit(u, i) for i in range(3)] for u in range(2)])


def test_tower_is_2k_k_half_k_1():
    model = NCF(n_components=16)
    model.n_items_in_, model.n_users_ = 5, 4
    net = model._build_module(torch.Generator().manual_seed(0))
    shapes = [tuple(layer.weight.shape) for layer in net.tower]
    assert shapes == [(16, 32), (8, 16)]
    assert tuple(net.output.weight.shape) == (1, 16 + 8)  # [φ_GMF (K); φ_MLP (K/2)] -> 1
    assert net.user_gmf.shape == net.user_mlp.shape == (4, 16)
    assert net.item_gmf.shape == net.item_mlp.shape == (5, 16)


def test_forward_hand_computed():
    _, net = _hand_model()
    grid = _hand_grid()
    assert (grid > 0).any() and (grid < 0).any()
    users = torch.tensor([0, 0, 0, 1, 1, 1])
    items = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        pairs = net(users, items).numpy()
    np.testing.assert_allclose(pairs, grid.ravel(), atol=1e-6)
    # the ReLUs matter: some hidden unit is inactive at some pair
    pre = np.array([W1 @ np.concatenate([P2[u], Q2[i]]) + B1 for u in range(2) for i in range(3)])
    assert (pre < 0).any() and (pre > 0).any()


def test_training_user_scores_are_the_grid_of_logits():
    model, net = _hand_model()
    batch = user_rows(X_HAND, CPU).batch(torch.tensor([1, 0]))
    with torch.no_grad():
        scores = model._scores(net, batch).numpy()
    np.testing.assert_allclose(scores, _hand_grid()[[1, 0]], atol=1e-6)


def test_grid_in_slices_equals_pairs(monkeypatch):
    rng = torch.Generator().manual_seed(0)
    model = NCF(n_components=6)
    model.n_items_in_, model.n_users_ = 13, 5
    net = model._build_module(rng)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=rng))
        w = net.weights()
        whole = grid_logits(w, net.user_gmf, net.user_mlp)
        monkeypatch.setattr(ncf_module, "_SCORE_ELEMENTS", 1)  # one user per slice
        sliced = grid_logits(w, net.user_gmf, net.user_mlp)
        users, items = torch.meshgrid(torch.arange(5), torch.arange(13), indexing="ij")
        users, items = users.reshape(-1), items.reshape(-1)
        pairs = pair_logits(w, net.user_gmf[users], net.user_mlp[users], items).view(5, 13)
    torch.testing.assert_close(sliced, whole)
    torch.testing.assert_close(pairs, whole, rtol=1e-5, atol=1e-5)


# -- the loss and the updates --------------------------------------------------------------
DRAWN = (torch.tensor([0, 1, 1]), torch.tensor([2, 0, 0]))  # one negative per positive


def test_log_loss_hand_computed(monkeypatch):
    """Mean log loss (He et al., Eq. 7) over the positives and the drawn negatives; a
    negative drawn twice counts twice."""
    monkeypatch.setattr(ncf_module, "sample_negatives", lambda batch, ratio, g: DRAWN)
    model, net = _hand_model(negative_samples=1)
    batch = user_rows(X_HAND, CPU).batch(torch.arange(2))
    value = float(model._loss(net, batch, TrainState(torch.Generator().manual_seed(0))).detach())
    z = _hand_grid()
    pos = [z[0, 0], z[1, 1], z[1, 2]]
    neg = [z[0, 2], z[1, 0], z[1, 0]]
    expected = (sum(_softplus(-v) for v in pos) + sum(_softplus(v) for v in neg)) / 6
    assert value == pytest.approx(expected, abs=1e-6)


def test_instance_step_cuts_the_block_into_updates_of_batch_size(monkeypatch):
    monkeypatch.setattr(ncf_module, "sample_negatives", lambda batch, ratio, g: DRAWN)
    batch = user_rows(X_HAND, CPU).batch(torch.arange(2))
    for size, updates in [(2, 3), (4, 2), (6, 1), (100, 1)]:
        model, net = _hand_model(negative_samples=1, batch_size=size)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        opt = make_optimizer(list(net.named_parameters()), "adam", 1e-2, 0.0)
        state = TrainState(torch.Generator().manual_seed(3))
        value = model._instance_step(net, batch, model._loss, opt, state, n_instances=6)
        assert state.step == updates
        assert not torch.equal(net.item_gmf, before["item_gmf"])
        if updates == 1:  # one update: the returned value is the loss before it
            _, fresh = _hand_model(negative_samples=1)
            same = TrainState(torch.Generator().manual_seed(3))
            assert float(value) == pytest.approx(
                float(model._loss(fresh, batch, same).detach()), 1e-6
            )


def test_training_instances_are_positives_and_unobserved_negatives():
    rng = np.random.RandomState(0)
    dense = (rng.rand(30, 25) < rng.rand(30, 1)).astype(np.float32)
    dense[0] = 1.0  # every item observed: positives only
    dense[1] = 0.0  # nothing observed: no instance
    X = sp.csr_array(dense)
    model = NCF(negative_samples=4)
    batch = user_rows(X, CPU).batch(torch.arange(30))
    users, items, labels = model._instances(batch, TrainState(torch.Generator().manual_seed(0)))
    users, items, labels = users.numpy(), items.numpy(), labels.numpy()
    pos, neg = labels == 1, labels == 0
    assert pos.sum() + neg.sum() == labels.size
    assert dense[users[pos], items[pos]].all()  # positives: every observed pair, once
    assert sorted(zip(users[pos], items[pos], strict=True)) == sorted(
        zip(*np.nonzero(dense), strict=True)
    )
    assert not dense[users[neg], items[neg]].any()  # negatives: never an observed item
    observed = dense.sum(axis=1).astype(int)
    expected = np.where(observed < 25, 4 * observed, 0)
    np.testing.assert_array_equal(np.bincount(users[neg], minlength=30), expected)
    assert np.any(np.diff(users) < 0)  # shuffled, not grouped by user


def test_train_loss_is_the_mean_over_the_epoch_instances(data, monkeypatch):
    """With blocks of unequal sizes and updates of 7 instances, ``train_loss`` is the mean
    over all the epoch's instances: checked with a stand-in loss, label x item, whose mean
    is known (the positives' item indices over 5 instances per positive)."""
    X_train, _ = data

    def fake(module, users, items, labels):
        return (labels * items.to(labels.dtype)).mean() + 0.0 * module(users, items).sum()

    monkeypatch.setattr(NCF, "_log_loss", staticmethod(fake))
    monkeypatch.setattr(ncf_module, "_BLOCK_USERS", 100)  # blocks of 100, 100 and 40 users
    model = NCF(n_components=4, epochs=2, batch_size=7, random_state=0, device="cpu")
    model.fit(X_train)
    expected = X_train.indices.sum() / (5 * X_train.nnz)
    for record in model.history_:
        assert record["train_loss"] == pytest.approx(expected, rel=1e-5)


# -- new users -----------------------------------------------------------------------------
def test_fold_in_negatives_are_unobserved_and_seeded_by_the_history():
    model, _ = _hand_model(negative_samples=3, fold_in_epochs=5)
    dense = np.zeros((4, 40), dtype=np.float32)
    dense[0, [1, 5, 6, 39]] = 1
    dense[1, :] = 1  # no unobserved item
    dense[3, [1, 5, 6, 39]] = 1  # the history of row 0
    X = sp.csr_array(dense)
    model.n_items_in_ = 40
    rows, items = model._fold_in_negatives(user_rows(X, CPU).batch(torch.arange(4)))
    assert items.shape == (5, rows.size)
    np.testing.assert_array_equal(np.bincount(rows, minlength=4), [12, 0, 0, 12])
    assert not dense[rows[None, :].repeat(5, axis=0), items].any()
    np.testing.assert_array_equal(items[:, rows == 0], items[:, rows == 3])  # same history
    assert not np.array_equal(items[0, rows == 0], items[1, rows == 0])  # fresh every epoch
    alone, again = (
        model._fold_in_negatives(user_rows(X[[3]], CPU).batch(torch.arange(1)))[1] for _ in range(2)
    )
    np.testing.assert_array_equal(alone, items[:, rows == 3])
    np.testing.assert_array_equal(alone, again)


def test_fold_in_leaves_the_trained_network_unchanged(fitted, data):
    _, X_new = data
    model = pickle.loads(pickle.dumps(fitted))  # a loaded model: no gradient anywhere yet
    state = {k: v.clone() for k, v in model.module_.state_dict().items()}
    model.decision_function(X_new)
    for name, value in model.module_.state_dict().items():
        assert torch.equal(value, state[name]), name
    assert all(p.grad is None for p in model.module_.parameters())


def test_fold_in_is_deterministic_and_per_user(fitted, data):
    _, X_new = data
    together = fitted.decision_function(X_new[:12])
    alone = np.vstack([fitted.decision_function(X_new[i : i + 1]) for i in range(12)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fitted.decision_function(X_new[:12]), together)
    reversed_ = fitted.decision_function(X_new[:12][::-1])
    np.testing.assert_allclose(reversed_[::-1], together, rtol=1e-5, atol=1e-5)


def _fold_in_loss(model, X, user_gmf, user_mlp):
    """Sum over the rows of each row's mean log loss on its positives and fold-in negatives
    of the first epoch, from the given embeddings."""
    net = model.module_
    batch = user_rows(X, CPU).batch(torch.arange(X.shape[0]))
    rows, items = model._fold_in_negatives(batch)
    w = net.weights()
    with torch.no_grad():
        all_rows = torch.cat([batch.row_of, torch.from_numpy(rows)])
        all_items = torch.cat([batch.cols, torch.from_numpy(items[0])])
        labels = torch.cat([torch.ones(len(batch.cols)), torch.zeros(rows.size)])
        z = pair_logits(w, user_gmf[all_rows], user_mlp[all_rows], all_items)
        each = torch.nn.functional.binary_cross_entropy_with_logits(z, labels, reduction="none")
        per_row = torch.zeros(X.shape[0]).index_add_(0, all_rows, each)
        count = torch.bincount(all_rows, minlength=X.shape[0])
    return float((per_row / count).sum())


def test_fold_in_fits_the_new_users_histories(fitted, data):
    """The folded-in embeddings lower the new users' loss from the start vectors, and the
    scores are the network's logits with them."""
    _, X_new = data
    net = fitted.module_
    new = fitted._fold_in(net, fold_in_rows(X_new, CPU).batch(torch.arange(X_new.shape[0])))
    start_gmf = net.start_gmf.expand(X_new.shape[0], -1)
    start_mlp = net.start_mlp.expand(X_new.shape[0], -1)
    assert not torch.equal(new.user_gmf.detach(), start_gmf)
    folded = _fold_in_loss(fitted, X_new, new.user_gmf.detach(), new.user_mlp.detach())
    assert folded < _fold_in_loss(fitted, X_new, start_gmf, start_mlp)
    with torch.no_grad():
        expected = grid_logits(net.weights(), new.user_gmf, new.user_mlp).numpy()
    np.testing.assert_allclose(fitted.decision_function(X_new), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("start", ["mean", "zeros"])
def test_new_user_never_receives_a_training_embedding(data, start):
    X_train, X_new = data
    model = NCF(n_components=8, epochs=2, fold_in_start=start, random_state=0, device="cpu")
    model.fit(X_train)
    before = model.decision_function(X_new)
    batch = user_rows(X_train, CPU).batch(torch.arange(5))
    with torch.no_grad():
        own_before = model._scores(model.module_, batch).numpy()
        model.module_.user_gmf.fill_(1e6)
        model.module_.user_mlp.fill_(-1e6)
        own_after = model._scores(model.module_, batch).numpy()
    assert not np.allclose(own_before, own_after)  # the training path reads them
    np.testing.assert_array_equal(model.decision_function(X_new), before)


def test_fold_in_start_vectors(data):
    X_train, _ = data
    mean = NCF(n_components=8, epochs=2, random_state=0, device="cpu").fit(X_train)
    net = mean.module_
    torch.testing.assert_close(net.start_gmf, net.user_gmf.detach().mean(dim=0))
    torch.testing.assert_close(net.start_mlp, net.user_mlp.detach().mean(dim=0))
    assert float(net.start_gmf.abs().max()) > 0
    zeros = NCF(n_components=8, epochs=2, fold_in_start="zeros", random_state=0, device="cpu")
    zeros.fit(X_train)
    assert not zeros.module_.start_gmf.any() and not zeros.module_.start_mlp.any()
    # a user without items keeps the start vectors: the logits of the start user
    empty = sp.csr_array((1, X_train.shape[1]), dtype=np.float32)
    with torch.no_grad():
        s = net.start_gmf[None], net.start_mlp[None]
        expected = grid_logits(net.weights(), *s).numpy()
    np.testing.assert_allclose(mean.decision_function(empty), expected, rtol=1e-6, atol=1e-6)


def test_validation_users_are_new_users(data):
    X_train, _ = data
    model = NCF(n_components=4, epochs=2, early_stopping=True, random_state=0, device="cpu")
    model.fit(X_train)
    assert model.n_users_ == X_train.shape[0] - round(0.1 * X_train.shape[0])
    assert model.module_.user_gmf.shape == (model.n_users_, 4)
    assert all(np.isfinite(h["valid_ndcg"]) for h in model.history_)
    assert model.best_epoch_ in (1, 2)


# -- persistence and determinism -----------------------------------------------------------
def test_pickle_round_trip(fitted, data):
    _, X_new = data
    again = pickle.loads(pickle.dumps(fitted))
    assert again.n_users_ == fitted.n_users_ and again.fold_in_seed_ == fitted.fold_in_seed_
    for name, value in fitted.module_.state_dict().items():
        assert torch.equal(again.module_.state_dict()[name], value), name
    np.testing.assert_array_equal(again.decision_function(X_new), fitted.decision_function(X_new))
    np.testing.assert_array_equal(again.recommend(X_new, n=5), fitted.recommend(X_new, n=5))


def test_same_random_state_same_model(data):
    X_train, X_new = data

    def make(seed):
        return NCF(n_components=4, epochs=2, random_state=seed, device="cpu").fit(X_train)

    a, b, c = make(1), make(1), make(2)
    np.testing.assert_array_equal(a.decision_function(X_new), b.decision_function(X_new))
    assert [h["train_loss"] for h in a.history_] == [h["train_loss"] for h in b.history_]
    assert not np.allclose(a.decision_function(X_new), c.decision_function(X_new))
