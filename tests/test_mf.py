"""BiasedMF and ALSWR: hand-computed updates, the exact SGD schedule, ALS-WR's closed-form
half-steps, its monotone objective and its exact fold-in."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from skcfae import ALSWR, BiasedMF
from skcfae.models._alswr import weighted_lambda_solve
from skcfae.models._biasedmf import sgd_epoch, sgd_schedule


def _random_ratings(n_users=30, n_items=20, density=0.4, seed=0):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    values = rng.integers(1, 6, size=(n_users, n_items)).astype(np.float32)
    R = sp.csr_array(np.where(mask, values, 0.0))
    R.eliminate_zeros()
    return R


def _params(n_users, n_items, k, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "global_mean": np.array([3.0]),
        "user_bias": rng.normal(size=n_users) * 0.1,
        "item_bias": rng.normal(size=n_items) * 0.1,
        "user": rng.normal(size=(n_users, k)) * 0.3,
        "item": rng.normal(size=(n_items, k)) * 0.3,
    }


# -- BiasedMF ------------------------------------------------------------------------------
def test_sgd_step_on_one_rating_is_the_hand_computed_update():
    params = {
        "global_mean": np.array([3.0]),
        "user_bias": np.array([0.5]),
        "item_bias": np.array([-0.25]),
        "user": np.array([[1.0, 2.0]]),
        "item": np.array([[0.5, -1.0]]),
    }
    lr, reg = 0.1, 0.2
    # r̂ = 3 + 0.5 - 0.25 + (0.5 - 2) = 1.75; e = 4 - 1.75 = 2.25
    mse = sgd_epoch(
        params,
        np.array([0]),
        np.array([0]),
        np.array([4.0]),
        np.array([0]),
        learning_rate=lr,
        l2_reg=reg,
    )
    assert mse == pytest.approx(2.25**2)
    np.testing.assert_allclose(params["user_bias"], [0.5 + 0.1 * (2.25 - 0.2 * 0.5)])
    np.testing.assert_allclose(params["item_bias"], [-0.25 + 0.1 * (2.25 + 0.2 * 0.25)])
    # p += γ(e q - λ p), q += γ(e p_old - λ q)
    np.testing.assert_allclose(params["user"], [[1 + 0.1 * (1.125 - 0.2), 2 + 0.1 * (-2.25 - 0.4)]])
    np.testing.assert_allclose(params["item"], [[0.5 + 0.1 * (2.25 - 0.1), -1 + 0.1 * (4.5 + 0.2)]])
    assert params["global_mean"][0] == 3.0


def test_rounds_are_independent_and_equal_the_sequential_sgd():
    R = _random_ratings()
    coo = sp.coo_array(R)
    users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    ratings = coo.data.astype(np.float64)
    order = np.random.default_rng(3).permutation(ratings.size)
    run, bounds = sgd_schedule(users, items, order, *R.shape)
    assert np.array_equal(np.sort(run), np.arange(ratings.size))
    assert bounds[0] == 0 and bounds[-1] == ratings.size
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        block = run[start:stop]
        assert block.size >= 1
        assert np.unique(users[block]).size == block.size
        assert np.unique(items[block]).size == block.size
    # one rating after the other in `order`, written out plainly
    fast, slow = _params(*R.shape, 4), _params(*R.shape, 4)
    lr, reg = 0.05, 0.02
    mse = sgd_epoch(fast, users, items, ratings, order, learning_rate=lr, l2_reg=reg)
    sq = 0.0
    for j in order:
        u, i = users[j], items[j]
        pu, qi = slow["user"][u].copy(), slow["item"][i].copy()
        err = ratings[j] - 3.0 - slow["user_bias"][u] - slow["item_bias"][i] - pu @ qi
        sq += err**2
        slow["user_bias"][u] += lr * (err - reg * slow["user_bias"][u])
        slow["item_bias"][i] += lr * (err - reg * slow["item_bias"][i])
        slow["user"][u] = pu + lr * (err * qi - reg * pu)
        slow["item"][i] = qi + lr * (err * pu - reg * qi)
    assert mse == pytest.approx(sq / ratings.size, rel=1e-10)
    for name in fast:
        np.testing.assert_allclose(fast[name], slow[name], rtol=1e-10, atol=1e-12)


def test_biasedmf_fit_starts_from_zero_biases_and_the_mean():
    R = sp.csr_array(np.array([[4.0, 0.0], [0.0, 2.0]]))
    model = BiasedMF(n_components=2, epochs=1, learning_rate=0.1, l2_reg=0.0, random_state=0)
    model.fit(R)
    rng = np.random.RandomState(0)
    P, Q = rng.normal(0, 0.1, (2, 2)), rng.normal(0, 0.1, (2, 2))
    assert model.global_mean_ == 3.0
    # each user and item has one rating, so every rating's update starts from the init
    err = np.array([1.0 - P[0] @ Q[0], -1.0 - P[1] @ Q[1]])
    np.testing.assert_allclose(model.user_bias_, 0.1 * err)
    np.testing.assert_allclose(model.item_bias_, 0.1 * err)
    np.testing.assert_allclose(model.user_factors_, P + 0.1 * err[:, None] * Q[[0, 1]])
    np.testing.assert_allclose(model.item_factors_, Q + 0.1 * err[:, None] * P[[0, 1]])


def test_biasedmf_learns_a_planted_bias_model():
    rng = np.random.default_rng(0)
    bu, bi = rng.normal(size=80), rng.normal(size=40)
    mask = rng.random((80, 40)) < 0.5
    R = sp.csr_array(np.where(mask, 3 + bu[:, None] + bi[None, :], 0.0))
    R.eliminate_zeros()
    model = BiasedMF(n_components=1, epochs=60, learning_rate=0.02, l2_reg=0.0, random_state=0)
    pred = model.fit(R).predict(R)
    assert np.sqrt(np.mean((pred.data - R.data) ** 2)) < 0.05


def test_biasedmf_cannot_fold_in_new_users():
    R = _random_ratings()
    model = BiasedMF(n_components=2, epochs=2, random_state=0).fit(R)
    with pytest.raises(ValueError, match="cannot fold in new users"):
        model.predict(R[:5])
    with pytest.raises(ValueError, match="cannot fold in new users"):
        model.recommend(R[:5], n=3)


# -- ALSWR ---------------------------------------------------------------------------------
def test_half_step_is_the_weighted_lambda_least_squares_solution():
    dense = _random_ratings().toarray()
    dense[4] = 0.0  # a user without ratings
    R = sp.csr_array(dense)
    F = np.random.default_rng(1).normal(size=(R.shape[1], 3))
    lam = 0.3
    W = weighted_lambda_solve(R, F, lam)
    for u in range(R.shape[0]):
        rated = np.flatnonzero(dense[u])
        if rated.size == 0:
            np.testing.assert_array_equal(W[u], 0.0)
            continue
        Fu = F[rated]
        expected = np.linalg.solve(Fu.T @ Fu + lam * rated.size * np.eye(3), Fu.T @ dense[u, rated])
        np.testing.assert_allclose(W[u], expected, rtol=1e-10)
        # the gradient of Σ (r - wᵀf)² + λ n_u ||w||² vanishes there
        grad = -2 * Fu.T @ (dense[u, rated] - Fu @ W[u]) + 2 * lam * rated.size * W[u]
        np.testing.assert_allclose(grad, 0.0, atol=1e-9)


def _objective(model, R):
    U, M, lam = model.user_factors_, model.item_factors_, model.l2_reg
    coo = sp.coo_array(R)
    err = coo.data - np.einsum("ij,ij->i", U[coo.row], M[coo.col])
    n_u, n_i = np.diff(R.indptr), np.bincount(R.indices, minlength=R.shape[1])
    return err @ err + lam * (n_u @ (U**2).sum(1) + n_i @ (M**2).sum(1))


def test_alswr_objective_never_increases():
    """Each half-step minimises the weighted-λ objective exactly in its block, so the
    objective cannot rise."""
    R = _random_ratings(60, 40, density=0.3)
    values = [
        _objective(ALSWR(n_components=4, l2_reg=0.05, epochs=e, random_state=0).fit(R), R)
        for e in range(1, 8)
    ]
    assert np.all(np.diff(values) <= 1e-9 * values[0])
    assert values[-1] < values[0]


def test_alswr_user_factors_solve_for_the_final_item_factors():
    R = _random_ratings()
    model = ALSWR(n_components=3, l2_reg=0.1, epochs=4, random_state=0).fit(R)
    np.testing.assert_allclose(
        model.user_factors_, weighted_lambda_solve(R, model.item_factors_, 0.1), rtol=1e-12
    )


def test_alswr_fold_in_equals_refitting_the_users_with_items_fixed():
    R = _random_ratings(40, 20, seed=0)
    model = ALSWR(n_components=3, l2_reg=0.1, epochs=5, random_state=0).fit(R)
    new = _random_ratings(7, 20, density=0.5, seed=5)
    query = sp.csr_array(np.ones((7, 20)))
    pred = model.predict(query, ratings=new).toarray()
    M = model.item_factors_
    dense = new.toarray()
    for u in range(7):
        rated = np.flatnonzero(dense[u])
        Mu = M[rated]
        p = np.linalg.solve(Mu.T @ Mu + 0.1 * rated.size * np.eye(3), Mu.T @ dense[u, rated])
        np.testing.assert_allclose(pred[u], np.clip(M @ p, 1, 5), rtol=1e-5)
    # recommend folds its rows in the same way
    top, scores = model.recommend(new, n=3, return_scores=True)
    np.testing.assert_allclose(scores, np.take_along_axis(pred, top, axis=1), rtol=1e-5)
    # the training users' own ratings give back their training factors
    again = model.predict(R, ratings=R.copy())
    np.testing.assert_allclose(again.data, model.predict(R).data, rtol=1e-5)


def test_alswr_starts_from_the_item_means():
    """Zhou et al. §3, step 1: M's first factor is the item's mean rating, the others small
    random numbers; U then solves for it."""
    R = _random_ratings(50, 10, density=0.6)
    model = ALSWR(n_components=2, l2_reg=1e-9, random_state=0)
    means = np.bincount(R.indices, R.data, minlength=10) / np.bincount(R.indices, minlength=10)
    start = model._init_params(R, np.random.RandomState(0))
    np.testing.assert_allclose(start["item"][:, 0], means)
    assert 0 < np.abs(start["item"][:, 1]).max() < 0.05
    np.testing.assert_allclose(start["user"], weighted_lambda_solve(R, start["item"], 1e-9))


def test_the_factorisation_models_do_not_import_torch():
    code = (
        "import sys, numpy as np, skcfae;"
        "R = np.array([[5, 4, np.nan], [4, np.nan, 1], [np.nan, 5, 2.0]]);"
        "skcfae.BiasedMF(n_components=2, epochs=2).fit(R).predict(R);"
        "skcfae.ALSWR(n_components=2, epochs=2).fit(R).recommend(R, n=1);"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_users_and_items_without_training_ratings_get_the_mean():
    dense = _random_ratings(30, 12, density=0.5).toarray()
    dense[:, 3] = 0.0  # item 3 never rated in training
    R = sp.csr_array(dense)
    query = sp.csr_array(np.ones((30, 12)))
    als = ALSWR(n_components=2, l2_reg=0.1, epochs=3, random_state=0).fit(R)
    mean = R.data.mean()
    assert als.global_mean_ == pytest.approx(mean)
    np.testing.assert_array_equal(als.item_factors_[3], 0.0)
    np.testing.assert_allclose(als.predict(query).toarray()[:, 3], mean, rtol=1e-6)
    new = sp.csr_array(([4.0], ([1], [0])), shape=(2, 12))  # user 0: no known rating
    pred = als.predict(sp.csr_array(np.ones((2, 12))), ratings=new).toarray()
    np.testing.assert_allclose(pred[0], mean, rtol=1e-6)
    assert not np.allclose(pred[1], mean)
    scores = als.decision_function(new)
    np.testing.assert_allclose(scores[0], mean, rtol=1e-6)
    np.testing.assert_allclose(scores[:, 3], mean, rtol=1e-6)
    mf = BiasedMF(n_components=2, epochs=3, random_state=0).fit(R)
    np.testing.assert_array_equal(mf.item_factors_[3], 0.0)
    assert mf.item_bias_[3] == 0.0
    np.testing.assert_allclose(
        mf.predict(query).toarray()[:, 3],
        np.clip(mf.global_mean_ + mf.user_bias_, 1, 5),
        rtol=1e-6,
    )
