"""NCAEImplicit (Li, Zheng and Wu, arXiv:1712.09043, implicit setting): Eq. 10-11 against
dense references, the sparsity-aware augmentation of §4.2, NCAE- and new users."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import skcfae.models._ncae_implicit as ncae_implicit
import skcfae.models._neural as neural
from skcfae import NCAEImplicit
from skcfae.datasets import make_interactions
from skcfae.models._ncae_implicit import ncae_implicit_loss, sparsity_aware_augmentation
from skcfae.nn import TrainState, user_rows

CPU = torch.device("cpu")


def _batch(X):
    X = sp.csr_array(X, dtype=np.float32)
    return user_rows(X, CPU).batch(torch.arange(X.shape[0]))


def _small(**params):
    base = dict(
        hidden_layer_sizes=(8,),
        c0=5.0,
        epochs=3,
        batch_size=20,
        learning_rate=1e-2,
        random_state=0,
        device="cpu",
    )
    return NCAEImplicit(**{**base, **params})


@pytest.fixture(scope="module")
def X():
    """Planted groups, then each user keeps a random share of their items."""
    full = make_interactions(120, 30, n_groups=3, density=0.35, random_state=0).toarray()
    rng = np.random.default_rng(0)
    full *= rng.random(full.shape) < rng.uniform(0.2, 1.0, size=(120, 1))
    return sp.csr_array(full)


# -- Eq. 11 --------------------------------------------------------------------------------------
OBSERVED = np.array([[1, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=np.float32)


def test_loss_equals_an_explicit_double_loop_over_users_and_items():
    rng = np.random.default_rng(0)
    output = rng.uniform(-1, 1, size=OBSERVED.shape)
    weights = rng.uniform(0.1, 2.0, size=OBSERVED.shape[1])
    expected = 0.0
    for u in range(OBSERVED.shape[0]):
        for j in range(OBSERVED.shape[1]):
            if OBSERVED[u, j]:
                expected += (output[u, j] - 1.0) ** 2  # observed: weight 1, target 1
            else:
                expected += weights[j] * output[u, j] ** 2  # unobserved: weight c_j, target 0
    expected /= OBSERVED.shape[0]  # the mean over the users of the batch (Eq. 6)
    got = ncae_implicit_loss(
        torch.tensor(output, dtype=torch.float64),
        _batch(OBSERVED * 3),  # stored values are not targets: every observed item is a 1
        torch.tensor(weights, dtype=torch.float64),
    )
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_loss_value_and_gradient_equal_the_dense_weighted_sum_over_all_items():
    rng = np.random.default_rng(1)
    output = torch.tensor(rng.normal(size=OBSERVED.shape), requires_grad=True)
    weights = torch.tensor(rng.uniform(0.0, 3.0, size=OBSERVED.shape[1]))
    got = ncae_implicit_loss(output, _batch(OBSERVED), weights)
    (grad,) = torch.autograd.grad(got, output)
    Y = torch.tensor(OBSERVED, dtype=torch.float64)
    confidence = Y + (1 - Y) * weights  # 1 at the observed items, c_j elsewhere
    dense = (confidence * (output - Y) ** 2).sum(dim=1).mean()
    (dense_grad,) = torch.autograd.grad(dense, output)
    assert float(got.detach()) == pytest.approx(float(dense.detach()), rel=1e-12)
    torch.testing.assert_close(grad, dense_grad)


def test_missing_weights_are_eq10_by_hand():
    X = sp.csr_array(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [5, 0, 1, 0]], dtype=np.float32))
    model = _small(c0=512.0, omega=0.5, augmentation=False, epochs=1).fit(X)
    f = np.array([3, 1, 2, 0]) / 6  # each item's share of the interactions (users, not counts)
    expected = 512 * np.sqrt(f) / np.sqrt(f).sum()
    np.testing.assert_allclose(model.missing_weights_, expected, rtol=1e-12)
    assert model.missing_weights_.sum() == pytest.approx(512.0)


def test_training_loss_is_eq11_through_the_network_by_hand(monkeypatch):
    """The corrupted binary history goes in, the clean whole row is the target, tanh on every
    layer (Eq. 1), the weights of Eq. 10."""
    counts = np.array([[2, 0, 1, 0], [0, 1, 0, 4], [1, 1, 1, 0]], dtype=np.float32)
    X = sp.csr_array(counts)
    model = _small(hidden_layer_sizes=(2,), c0=4.0, omega=1.0, dropout=0.5, l2_reg=0.0)
    model.n_items_in_ = 4
    net = model._build_module(torch.Generator().manual_seed(0)).double()
    rng = np.random.default_rng(2)
    W1, b1 = rng.normal(size=(4, 2)), rng.normal(size=2)  # items x K (the sparse layer)
    W2, b2 = rng.normal(size=(4, 2)), rng.normal(size=4)  # output: items x K
    with torch.no_grad():
        net.encoders[0].weight.copy_(torch.tensor(W1))
        net.encoders[0].bias.copy_(torch.tensor(b1))
        net.out.weight.copy_(torch.tensor(W2))
        net.out.bias.copy_(torch.tensor(b2))
    keep = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64)

    def fixed(batch, q, generator):  # drop (0, 2), (2, 0); scale the kept by 1/(1 - q)
        return batch.with_values(batch.vals * keep / (1 - q)), keep > 0

    monkeypatch.setattr(ncae_implicit, "_drop_observed", fixed)
    batch = _batch(X)
    batch = batch.with_values(batch.vals.double())
    weights = torch.tensor([0.4, 0.8, 0.8, 2.0], dtype=torch.float64)  # any c_j
    got = model._eq11(net, batch, TrainState(torch.Generator()), weights)

    Y = (counts > 0).astype(float)
    corrupted = np.zeros_like(Y)
    corrupted[Y > 0] = keep.numpy() * 2.0
    out = np.tanh(np.tanh(corrupted @ W1 + b1) @ W2.T + b2)
    c = weights.numpy()
    per_user = (Y * (out - 1) ** 2 + (1 - Y) * c * out**2).sum(axis=1)
    assert float(got.detach()) == pytest.approx(per_user.mean(), rel=1e-10)


# -- NCAE- ---------------------------------------------------------------------------------------
def test_uniform_weighting_is_the_popularity_model_with_every_weight_set_to_c(X, monkeypatch):
    uniform = _small(weighting="uniform", uniform_weight=0.05).fit(X)
    np.testing.assert_array_equal(uniform.missing_weights_, np.full(X.shape[1], 0.05))

    def constant(X, c0, omega):
        return np.full(X.shape[1], 0.05)

    monkeypatch.setattr(ncae_implicit, "missing_weights", constant)
    popularity = _small(weighting="popularity").fit(X)
    assert [h["train_loss"] for h in uniform.history_] == [
        h["train_loss"] for h in popularity.history_
    ]
    np.testing.assert_array_equal(uniform.decision_function(X), popularity.decision_function(X))
    monkeypatch.undo()
    assert not np.allclose(_small().fit(X).missing_weights_, 0.05)  # Eq. 10 is not constant


# -- sparsity-aware data augmentation (§4.2) ------------------------------------------------------
# item popularity (rows holding the item): 5, 4, 4, 3, 2, 2, 1, 0, 0, 0
AUG = np.zeros((6, 10), dtype=np.float32)
AUG[0, [0, 1, 2, 3, 4]] = 1  # 5 items: ⌊5 · 0.6⌋ = 3 dropped: 0, then 1 before 2 (a tie)
AUG[1, [0, 1, 5]] = 2  # 3 items: ⌊1.8⌋ = 1 dropped: item 0
AUG[2, [0, 1, 2, 3, 4, 5, 6]] = 1  # 7 items: not below ε · n_items = 6, untouched
AUG[3, [2]] = 1  # 1 item: ⌊0.6⌋ = 0 dropped, u' = u, no sample
AUG[4, [0, 3]] = 1  # 2 items: ⌊1.2⌋ = 1 dropped: item 0
AUG[5, [0, 1, 2]] = 1  # 3 items: ⌊1.8⌋ = 1 dropped: item 0
AUG = sp.csr_array(AUG)


def test_augmentation_drops_the_most_popular_items_of_the_sparse_users_only():
    got = sparsity_aware_augmentation(AUG, 0.6, 0.6)  # users with fewer than 6 of 10 items
    expected = np.zeros((4, 10), dtype=np.float32)
    expected[0, [3, 4]] = 1  # from user 0
    expected[1, [1, 5]] = 1  # from user 1, values binary
    expected[2, [3]] = 1  # from user 4
    expected[3, [1, 2]] = 1  # from user 5
    np.testing.assert_array_equal(got.toarray(), expected)
    assert got.has_canonical_format


def test_augmentation_threshold_is_a_share_of_the_items_and_ties_drop_the_lower_item():
    assert sparsity_aware_augmentation(AUG, 0.0, 0.6).shape == (0, 10)
    assert sparsity_aware_augmentation(AUG, 0.6, 1.0).shape == (0, 10)  # p = 1: nothing left
    assert sparsity_aware_augmentation(AUG, 0.6, 0.0).shape == (0, 10)  # p = 0: nothing dropped
    everyone = sparsity_aware_augmentation(AUG, 1.0, 0.5)
    assert everyone.shape == (5, 10)  # user 3 (one item) drops ⌊0.5⌋ = 0 and adds nothing
    np.testing.assert_array_equal(everyone[[2]].indices, [3, 4, 5, 6])  # user 2 drops ⌊3.5⌋
    ties = sp.csr_array(np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32))
    np.testing.assert_array_equal(sparsity_aware_augmentation(ties, 1.0, 0.5).indices, [1, 3])


def test_augmented_samples_are_extra_training_rows(X, monkeypatch):
    captured = {}
    real_train = neural.train

    def spy(plan):
        rows = plan.phases[0].rows
        captured["rows"] = sp.csr_array(
            (rows.data.numpy(), rows.indices.numpy(), rows.indptr.numpy()), shape=rows.shape
        )
        return real_train(plan)

    monkeypatch.setattr(neural, "train", spy)
    model = _small(sparsity_threshold=0.15, drop_ratio=0.8, epochs=1).fit(X)
    binary = X.copy()
    binary.data[:] = 1
    extra = sparsity_aware_augmentation(binary, 0.15, 0.8)
    assert 0 < model.n_augmented_ == extra.shape[0] < X.shape[0]
    expected = sp.vstack([binary, extra]).toarray()
    np.testing.assert_array_equal(captured["rows"].toarray(), expected)

    off = _small(augmentation=False, epochs=1).fit(X)
    assert off.n_augmented_ == 0 and captured["rows"].shape == X.shape
    assert _small(epochs=1).fit(X).n_augmented_ == 0  # ε = 0.001 of 30 items: nobody


# -- scoring and new users -----------------------------------------------------------------------
def test_new_users_are_scored_from_their_history_by_one_forward_pass(X):
    model = _small(hidden_layer_sizes=(6, 5), sparsity_threshold=0.2).fit(X[:100])
    assert model.n_augmented_ > 0
    new = X[100:]
    net = model.module_
    W1 = net.encoders[0].weight.detach().numpy().astype(float)
    b1 = net.encoders[0].bias.detach().numpy()
    W2, b2 = (p.detach().numpy() for p in (net.encoders[1].weight, net.encoders[1].bias))
    V, c = net.out.weight.detach().numpy(), net.out.bias.detach().numpy()
    binary = (new.toarray() > 0).astype(float)  # counts enter as 1, the full history
    expected = np.tanh(np.tanh(binary @ W1 + b1) @ W2.T + b2) @ V.T + c  # before the tanh
    np.testing.assert_allclose(model.decision_function(new), expected, rtol=1e-4, atol=1e-5)
    one_by_one = np.vstack([model.decision_function(new[[i]]) for i in range(new.shape[0])])
    np.testing.assert_allclose(one_by_one, model.decision_function(new), rtol=1e-5, atol=1e-6)
    top = model.recommend(new, n=5)
    assert top.shape == (new.shape[0], 5)
    assert not np.take_along_axis(new.toarray(), top, axis=1).any()  # seen items never


def test_fit_learns_and_is_reproducible(X):
    model = _small(epochs=10, sparsity_threshold=0.15).fit(X)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < losses[0]
    again = _small(epochs=10, sparsity_threshold=0.15).fit(X)
    np.testing.assert_array_equal(model.decision_function(X), again.decision_function(X))


def test_defaults_follow_the_paper():
    params = NCAEImplicit().get_params()
    assert params["hidden_layer_sizes"] == (128,)
    assert (params["dropout"], params["l2_reg"], params["c0"], params["omega"]) == (
        0.5,
        0.01,
        512.0,
        0.5,
    )
    assert (params["weighting"], params["uniform_weight"]) == ("popularity", 0.05)
    assert (params["augmentation"], params["sparsity_threshold"], params["drop_ratio"]) == (
        True,
        0.001,
        0.8,
    )
    assert (params["batch_size"], params["learning_rate"], params["epochs"]) == (128, 1e-3, 30)


@pytest.mark.parametrize("sizes", [(), (4, 0), (2.5,)])
def test_bad_hidden_layer_sizes_are_refused(X, sizes):
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        _small(hidden_layer_sizes=sizes).fit(X)
