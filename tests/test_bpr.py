"""BPR: the LearnBPR update, the triple sampler, and fold-in with frozen item parameters."""

import copy
import math

import numpy as np
import pytest
import scipy.sparse as sp

import skcfae.models._bpr as bpr_module
from skcfae import BPR
from skcfae.datasets import make_interactions
from skcfae.models._bpr import bpr_update


def _params():
    U = np.array([[0.1, -0.2], [0.3, 0.05]], dtype=np.float32)
    V = np.array([[0.3, 0.1], [-0.2, 0.4], [0.05, -0.1]], dtype=np.float32)
    b = np.array([0.05, -0.1, 0.2], dtype=np.float32)
    return U, V, b


def test_one_triple_update_by_hand():
    """(u, i, j) = (0, 0, 1): x = w·(h_i - h_j) + b_i - b_j = 0.1·0.5 + (-0.2)(-0.3) + 0.15
    = 0.26, z = σ(-0.26); each parameter moves by lr (∂ ln σ(x)/∂θ - λ θ)."""
    U, V, b = _params()
    lr, lam = 0.1, 0.01
    x = bpr_update(U, V, b, np.array([0]), np.array([0]), np.array([1]), lr, lam)
    assert x[0] == pytest.approx(0.26, abs=1e-6)
    z = 1.0 / (1.0 + math.exp(0.26))  # σ(-x) = 0.4353637...
    assert z == pytest.approx(0.4353637, abs=1e-6)
    w, hi, hj = np.array([0.1, -0.2]), np.array([0.3, 0.1]), np.array([-0.2, 0.4])
    np.testing.assert_allclose(U[0], w + lr * (z * (hi - hj) - lam * w), rtol=1e-6)
    np.testing.assert_allclose(V[0], hi + lr * (z * w - lam * hi), rtol=1e-6)
    np.testing.assert_allclose(V[1], hj + lr * (-z * w - lam * hj), rtol=1e-6)
    assert b[0] == pytest.approx(0.05 + lr * (z - lam * 0.05), abs=1e-7)
    assert b[1] == pytest.approx(-0.1 + lr * (-z - lam * -0.1), abs=1e-7)
    # untouched: the other user, the other item
    np.testing.assert_array_equal(U[1], _params()[0][1])
    np.testing.assert_array_equal(V[2], _params()[1][2])
    assert b[2] == np.float32(0.2)
    # spelled out: w_u = (0.1, -0.2) + 0.1 (0.43536 (0.5, -0.3) - 0.01 (0.1, -0.2))
    np.testing.assert_allclose(U[0], [0.1216681, -0.2128609], rtol=1e-5)


def test_update_is_the_gradient_of_the_triple_objective():
    """lr x the finite-difference gradient of ln σ(x_uij) - λ/2 ||θ_uij||² (float64)."""
    U, V, b = (a.astype(np.float64) for a in _params())
    lr, lam, eps = 0.5, 0.03, 1e-6

    def objective(U, V, b):
        x = U[1] @ (V[2] - V[0]) + b[2] - b[0]
        reg = U[1] @ U[1] + V[2] @ V[2] + V[0] @ V[0] + b[2] ** 2 + b[0] ** 2
        return -np.logaddexp(0.0, -x) - lam / 2 * reg

    grads = []
    for arr in (U, V, b):
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + eps
            up = objective(U, V, b)
            arr[idx] = old - eps
            down = objective(U, V, b)
            arr[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    before = [a.copy() for a in (U, V, b)]
    bpr_update(U, V, b, np.array([1]), np.array([2]), np.array([0]), lr, lam)
    for after, start, g in zip((U, V, b), before, grads, strict=True):
        np.testing.assert_allclose(after - start, lr * g, atol=1e-8)


def test_a_batch_sums_the_steps_of_a_shared_parameter():
    """Two triples sharing item 0 (positive of both): each step is computed at the batch's
    start and the two steps of h_0 and b_0 add up."""
    users, pos, neg = np.array([0, 1]), np.array([0, 0]), np.array([1, 2])
    together = _params()
    bpr_update(*together, users, pos, neg, 0.1, 0.01)
    expected = [a.copy() for a in _params()]
    for t in range(2):
        single = _params()
        bpr_update(*single, users[t : t + 1], pos[t : t + 1], neg[t : t + 1], 0.1, 0.01)
        for e, s, start in zip(expected, single, _params(), strict=True):
            e += s - start
    for got, want in zip(together, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


def test_an_epoch_is_nnz_triples_with_unseen_negatives(monkeypatch):
    rng = np.random.RandomState(0)
    dense = rng.rand(80, 25) < np.linspace(0.05, 0.6, 80)[:, None]  # users of all sizes
    dense[:, 0] = True
    X = sp.csr_array(dense.astype(np.float32))
    seen = []
    real = bpr_module.bpr_update

    def spy(U, V, b, users, pos, neg, lr, lam):
        seen.append((users.copy(), pos.copy(), neg.copy()))
        return real(U, V, b, users, pos, neg, lr, lam)

    monkeypatch.setattr(bpr_module, "bpr_update", spy)
    BPR(n_components=3, epochs=2, batch_size=64, random_state=0).fit(X)
    users, pos, neg = (np.concatenate(a) for a in zip(*seen, strict=True))
    assert users.size == 2 * X.nnz
    assert all(u.size <= 64 for u, _, _ in seen)
    assert np.all(dense[users, pos]) and not np.any(dense[users, neg])
    # (u, i) is drawn uniformly over the positive pairs: a user is drawn in proportion to
    # their number of items (2 epochs: 2 n_u times on average)
    counts = np.bincount(users, minlength=X.shape[0])
    assert np.corrcoef(counts, np.diff(X.indptr))[0, 1] > 0.8  # ~0 if uniform over users


def test_user_with_every_item_is_never_drawn():
    X = np.zeros((6, 4), dtype=np.float32)
    X[0] = 1.0  # has every item: no negative exists
    X[1:, 0] = 1.0
    X[2, 1] = X[3, 2] = 1.0
    model = BPR(n_components=2, epochs=3, random_state=0).fit(X)
    assert len(model.history_) == 3 and np.isfinite(model.history_[-1]["train_loss"])
    assert np.all(model.fold_in(X[:1]) == 0)  # folds in to w = 0 too


def test_training_auc_beats_popularity(planted):
    """Mean per-user AUC of the training users' own scores (seen vs unseen items)."""
    X_train, _, _ = planted
    model = BPR(n_components=16, learning_rate=0.05, epochs=30, random_state=0).fit(X_train)
    seen = X_train.toarray() > 0
    scores_bpr = model.user_factors_ @ model.item_factors_.T + model.item_bias_
    scores_pop = np.broadcast_to(seen.sum(axis=0).astype(np.float64), seen.shape)

    def auc(scores):
        out = []
        for row, mask in zip(scores, seen, strict=True):
            pos, neg = row[mask], row[~mask]
            if pos.size and neg.size:
                greater = (pos[:, None] > neg[None, :]).mean()
                ties = (pos[:, None] == neg[None, :]).mean()
                out.append(greater + ties / 2)
        return float(np.mean(out))

    auc_bpr, auc_pop = auc(scores_bpr), auc(scores_pop)
    assert auc_bpr > auc_pop + 0.1, (auc_bpr, auc_pop)
    assert model.history_[-1]["train_auc"] > 0.9
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]


@pytest.fixture(scope="module")
def fitted(planted):
    X_train, _, _ = planted
    return BPR(n_components=16, learning_rate=0.05, epochs=30, random_state=0).fit(X_train)


def test_fold_in_never_changes_item_or_training_parameters(fitted, planted):
    X_train, fold_in, _ = planted
    before = [a.copy() for a in (fitted.item_factors_, fitted.item_bias_, fitted.user_factors_)]
    fitted.recommend(fold_in, n=10)
    fitted.decision_function(X_train[:50])
    fitted.fold_in(fold_in)
    after = (fitted.item_factors_, fitted.item_bias_, fitted.user_factors_)
    for a, b in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_row_is_folded_in_never_given_a_training_vector(fitted, planted):
    X_train, _, _ = planted
    W = fitted.fold_in(X_train[:20])
    assert not np.allclose(W, fitted.user_factors_[:20])
    np.testing.assert_allclose(
        fitted.decision_function(X_train[:20]),
        W @ fitted.item_factors_.T + fitted.item_bias_,
        rtol=1e-5,
        atol=1e-6,
    )
    # a training user's folded-in vector ranks their own items as well as their training
    # vector does (precision@5 of the items they have)
    seen = X_train[:200].toarray() > 0

    def precision(W):
        scores = W @ fitted.item_factors_.T + fitted.item_bias_
        return np.mean(np.take_along_axis(seen, np.argsort(-scores, axis=1)[:, :5], 1))

    folded, trained = (
        precision(fitted.fold_in(X_train[:200])),
        precision(fitted.user_factors_[:200]),
    )
    popular = np.mean(seen[:, np.argsort(-seen.sum(axis=0))[:5]])
    assert folded > trained - 0.05 and folded > popular + 0.2, (folded, trained, popular)


def test_fold_in_is_seeded_per_history_not_per_batch(fitted, planted):
    _, fold_in, _ = planted
    together = fitted.fold_in(fold_in[:12])
    for r in (0, 5, 11):
        np.testing.assert_array_equal(together[r], fitted.fold_in(fold_in[r : r + 1])[0])
    np.testing.assert_array_equal(fitted.fold_in(fold_in[:12]), together)
    # the same history in another row, or in another matrix, folds in to the same vector
    twice = sp.vstack([fold_in[3:4], fold_in[3:4]]).tocsr()
    W = fitted.fold_in(twice)
    np.testing.assert_array_equal(W[0], W[1])
    np.testing.assert_array_equal(W[0], together[3])


def test_one_fold_in_epoch_of_one_item_is_one_step(fitted):
    """A user with n_u items gets fold_in_epochs * n_u SGD steps from w = 0: one epoch of one
    item is one step, w = lr z (h_i - h_j) with z = σ(-(b_i - b_j)) = 1 / (1 + e^(b_i - b_j))
    for the drawn negative j."""
    one = copy.deepcopy(fitted).set_params(fold_in_epochs=1)
    x = np.zeros((1, fitted.n_items_in_), dtype=np.float32)
    x[0, 7] = 1.0
    w = one.fold_in(x)[0]
    V, b, lr = fitted.item_factors_, fitted.item_bias_, fitted.learning_rate
    steps = [lr / (1 + np.exp(b[7] - b[j])) * (V[7] - V[j]) for j in range(V.shape[0])]
    gaps = [np.abs(step - w).max() for step in steps]
    assert np.abs(w).max() > 0 and min(gaps) < 1e-6 and gaps[7] > 1e-6
    # more epochs, more steps: a different vector
    assert not np.allclose(fitted.fold_in(x)[0], w)


def test_empty_rows_score_the_item_bias(fitted):
    X = sp.csr_array((3, fitted.n_items_in_), dtype=np.float32)
    np.testing.assert_array_equal(fitted.fold_in(X), 0)
    np.testing.assert_allclose(fitted.decision_function(X), np.tile(fitted.item_bias_, (3, 1)))


def test_scoring_batches_do_not_follow_batch_size(planted):
    """batch_size counts training triples; users are scored 1000 at a time."""
    model = BPR(n_components=2, epochs=1, batch_size=3, random_state=0)
    assert model._batch_users() == 1000


def test_divergence_is_a_clear_error():
    X = make_interactions(100, 30, random_state=0)
    with pytest.raises(FloatingPointError, match="diverged"):
        BPR(learning_rate=1e6, n_components=4, epochs=10, random_state=0).fit(X)


def test_verbose_prints_one_line_per_epoch(capsys):
    X = make_interactions(50, 20, random_state=0)
    BPR(n_components=2, epochs=3, verbose=2, random_state=0).fit(X)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch    1 train_loss=")
