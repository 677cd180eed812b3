"""WMF and EALS: hand-computed solves and updates, dense references, monotone objectives,
exact fold-in, the torch backend against numpy, and agreement with ``implicit``."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import skcfae
from skcfae import EALS, WMF
from skcfae.datasets import make_interactions
from skcfae.models._eals import coordinate_sweep, eals_objective, missing_weights
from skcfae.models._wmf import (
    als_epochs,
    cg_solve,
    confidence,
    exact_solve,
    wmf_objective,
)


def _counts(n_users=12, n_items=9, density=0.35, seed=0):
    """Small implicit counts (1-4) with every user and item present."""
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density) * rng.integers(1, 5, (n_users, n_items))
    dense[np.arange(n_users), np.arange(n_users) % n_items] = 1
    dense[np.arange(n_items) % n_users, np.arange(n_items)] = 2
    return sp.csr_array(dense.astype(np.float32))


def _rows(C):
    return np.repeat(np.arange(C.shape[0]), np.diff(C.indptr))


def _dense_wmf_user(X, V, alpha, lam):
    """Closed form per user: (VᵀC_uV + λI)⁻¹ VᵀC_u p_u with dense C_u, p_u (Hu et al. Eq. 4)."""
    D = X.toarray().astype(np.float64)
    out = []
    for x in D:
        c, p = 1 + alpha * x, (x > 0).astype(np.float64)
        A = V.T @ (c[:, None] * V) + lam * np.eye(V.shape[1])
        out.append(np.linalg.solve(A, V.T @ (c * p)))
    return np.array(out)


# -- WMF -------------------------------------------------------------------------------------
def test_confidence_is_one_plus_alpha_x():
    X = sp.csr_array(np.array([[2.0, 0.0], [0.0, 1.0]], dtype=np.float32))
    C = confidence(X, 3.0)
    np.testing.assert_array_equal(C.toarray(), [[7.0, 0.0], [0.0, 4.0]])
    assert C.dtype == np.float32


def test_exact_solve_hand_computed():
    # k = 1, v = (1, 2), user x = (1, 0), α = 1, λ = 0.5: c = (2, 1), p = (1, 0);
    # VᵀC_uV + λ = 2·1 + 1·4 + 0.5 = 6.5 and VᵀC_u p = 2·1 = 2, so u = 2 / 6.5
    X = sp.csr_array(np.array([[1.0, 0.0]], dtype=np.float32))
    u = exact_solve(confidence(X, 1.0), np.array([[1.0], [2.0]]), 0.5)
    np.testing.assert_allclose(u, [[2 / 6.5]], rtol=1e-12)


def test_exact_solve_is_the_dense_closed_form():
    X = _counts()
    V = np.random.default_rng(1).normal(size=(X.shape[1], 4))
    expected = _dense_wmf_user(X, V, alpha=2.5, lam=0.3)
    np.testing.assert_allclose(exact_solve(confidence(X, 2.5), V, 0.3), expected, rtol=1e-10)
    # a user with no interaction gets (VᵀV + λI)⁻¹ 0 = 0
    empty = sp.csr_array((1, X.shape[1]), dtype=np.float32)
    np.testing.assert_array_equal(exact_solve(confidence(empty, 2.5), V, 0.3), 0.0)


def test_one_cg_step_is_the_exact_line_search_along_the_residual():
    X = _counts(3, 5)
    C = confidence(X, 2.0)
    rng = np.random.default_rng(0)
    V, U0 = rng.normal(size=(5, 2)), rng.normal(size=(3, 2))
    U = U0.copy()
    cg_solve(C, _rows(C), U, V, 0.1, steps=1)
    for u in range(3):
        c = C.toarray()[u]
        w = np.where(c > 0, c, 1.0)
        p = (c > 0).astype(float)
        A = V.T @ (w[:, None] * V) + 0.1 * np.eye(2)
        r = V.T @ (w * p) - A @ U0[u]
        np.testing.assert_allclose(U[u], U0[u] + (r @ r) / (r @ A @ r) * r, rtol=1e-10)


def test_cg_with_k_steps_reaches_the_exact_solution():
    X = _counts()
    C = confidence(X, 1.0)
    rng = np.random.default_rng(2)
    V = rng.normal(size=(X.shape[1], 4))
    U = rng.normal(size=(X.shape[0], 4))
    cg_solve(C, _rows(C), U, V, 0.2, steps=6)  # k = 4 steps suffice in exact arithmetic
    np.testing.assert_allclose(U, exact_solve(C, V, 0.2), rtol=1e-8, atol=1e-10)
    again = U.copy()
    cg_solve(C, _rows(C), again, V, 0.2, steps=3)  # at the solution: the residual stops it
    np.testing.assert_allclose(again, U, rtol=1e-12, atol=1e-12)


def test_objective_is_the_dense_sum_over_all_pairs():
    X = _counts()
    rng = np.random.default_rng(3)
    U, V = rng.normal(size=(X.shape[0], 3)), rng.normal(size=(X.shape[1], 3))
    D = X.toarray()
    dense = np.sum((1 + 2.0 * D) * ((D > 0) - U @ V.T) ** 2) + 0.7 * (np.sum(U**2) + np.sum(V**2))
    assert wmf_objective(confidence(X, 2.0), U, V, 0.7) == pytest.approx(dense, rel=1e-10)


@pytest.mark.parametrize("use_cg", [True, False])
def test_als_objective_never_increases(use_cg):
    X = make_interactions(120, 60, density=0.1, random_state=0)
    model = WMF(n_components=6, alpha=5.0, l2_reg=0.1, epochs=12, use_cg=use_cg, device="cpu")
    losses = np.array([h["train_loss"] for h in model.set_params(random_state=0).fit(X).history_])
    assert np.all(np.diff(losses) <= 1e-6 * losses[:-1]), losses
    assert losses[-1] < 0.9 * losses[0]


def test_float64_epochs_are_monotone_to_rounding():
    X = make_interactions(80, 40, density=0.15, random_state=1)
    rng = np.random.default_rng(0)
    U, V = rng.random((80, 5)) * 0.01, rng.random((40, 5)) * 0.01
    epochs = als_epochs(confidence(X, 3.0), U, V, l2_reg=0.05, use_cg=True, cg_steps=2)
    losses = np.array([next(epochs) for _ in range(20)])
    assert np.all(np.diff(losses) <= 1e-12 * losses[:-1]), losses


def test_fold_in_is_the_closed_form_and_scores_are_its_products():
    X = make_interactions(150, 50, density=0.1, random_state=0)
    model = WMF(n_components=5, alpha=3.0, l2_reg=0.2, epochs=5, device="cpu", random_state=0)
    model.fit(X[:120])
    V = model.item_factors_.astype(np.float64)
    U_new = _dense_wmf_user(X[120:], V, alpha=3.0, lam=0.2)
    np.testing.assert_allclose(model.decision_function(X[120:]), U_new @ V.T, rtol=1e-5, atol=1e-6)


def test_exact_training_users_fold_in_to_their_factors():
    """Each epoch ends with the users' exact solve, so folding in a training user's row
    gives back their fitted factors."""
    X = make_interactions(100, 40, density=0.1, random_state=0)
    model = WMF(n_components=4, epochs=3, use_cg=False, device="cpu", random_state=0).fit(X)
    np.testing.assert_allclose(model._fold_in(X), model.user_factors_, rtol=1e-4, atol=1e-6)


def test_same_seed_same_factors_other_seed_others():
    X = make_interactions(60, 30, density=0.15, random_state=0)
    a = WMF(n_components=3, epochs=2, device="cpu", random_state=0).fit(X)
    b = WMF(n_components=3, epochs=2, device="cpu", random_state=0).fit(X)
    c = WMF(n_components=3, epochs=2, device="cpu", random_state=1).fit(X)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert not np.allclose(a.item_factors_, c.item_factors_)
    assert a.device_ == "cpu" and a.user_factors_.dtype == np.float32


@pytest.mark.parametrize("use_cg", [True, False])
def test_torch_backend_equals_numpy(use_cg):
    """The accelerator code path, run by torch on the CPU, does the numpy computation."""
    X = make_interactions(70, 30, density=0.15, random_state=0)
    C = confidence(X, 2.0)
    rng = np.random.default_rng(0)
    U0, V0 = rng.random((70, 4)) * 0.01, rng.random((30, 4)) * 0.01
    runs = []
    for device in (None, torch.device("cpu")):
        U, V = U0.copy(), V0.copy()
        epochs = als_epochs(C, U, V, l2_reg=0.1, use_cg=use_cg, cg_steps=3, device=device)
        runs.append(([next(epochs) for _ in range(3)], U, V))
    (loss_np, U_np, V_np), (loss_t, U_t, V_t) = runs
    np.testing.assert_allclose(loss_t, loss_np, rtol=1e-10)
    np.testing.assert_allclose(U_t, U_np, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(V_t, V_np, rtol=1e-7, atol=1e-9)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_asked_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="CUDA"):
        WMF(n_components=2, epochs=1, device="cuda").fit(_counts())
    assert WMF(n_components=2, epochs=1, device="auto").fit(_counts()).device_ == "cpu"


def test_verbose_two_prints_a_line_per_epoch(capsys):
    WMF(n_components=2, epochs=3, device="cpu", random_state=0, verbose=2).fit(_counts())
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch=1 train_loss=")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("use_cg", [True, False])
def test_cuda_fit_matches_cpu_and_loads_without_cuda(use_cg, tmp_path):
    X = make_interactions(300, 120, density=0.05, random_state=0)
    kw = dict(n_components=8, alpha=4.0, epochs=4, use_cg=use_cg, random_state=0)
    cpu = WMF(device="cpu", **kw).fit(X)
    gpu = WMF(device="cuda", **kw).fit(X)
    assert gpu.device_.startswith("cuda") and isinstance(gpu.item_factors_, np.ndarray)
    assert gpu.history_[-1]["train_loss"] == pytest.approx(cpu.history_[-1]["train_loss"], 1e-3)
    np.testing.assert_allclose(gpu.decision_function(X), cpu.decision_function(X), atol=2e-3)
    path = tmp_path / "wmf.pkl"
    path.write_bytes(pickle.dumps((gpu, X, gpu.decision_function(X))))
    code = (
        "import pickle, numpy as np;"
        f"m, X, s = pickle.loads(open({str(path)!r}, 'rb').read());"
        "np.testing.assert_allclose(m.decision_function(X), s, rtol=1e-6)"
    )
    subprocess.run(
        [sys.executable, "-c", code], env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""}, check=True
    )


def test_fold_in_agrees_with_implicits_recalculate_user():
    """implicit's confidence is its alpha times the stored value: alpha = 1 + a on binary
    data is WMF(alpha=a)."""
    implicit_als = pytest.importorskip("implicit.cpu.als")
    X = make_interactions(80, 40, density=0.1, random_state=0)
    V = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # implicit's BLAS threading advice
        ref = implicit_als.AlternatingLeastSquares(factors=6, regularization=0.1, alpha=4.0)
    ref.item_factors = V
    expected = ref.recalculate_user(np.arange(80), sp.csr_matrix(X))
    np.testing.assert_allclose(exact_solve(confidence(X, 3.0), V, 0.1), expected, atol=2e-4)


# -- EALS ------------------------------------------------------------------------------------
def test_missing_weights_hand_computed():
    # item counts (3, 1, 0, 0): shares f = (3/4, 1/4, 0, 0)
    X = sp.csr_array(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], dtype=np.float32))
    root = np.sqrt([0.75, 0.25])
    np.testing.assert_allclose(
        missing_weights(X, 2.0, 0.5), [*(2.0 * root / root.sum()), 0.0, 0.0], rtol=1e-12
    )
    np.testing.assert_allclose(missing_weights(X, 2.0, 1.0), [1.5, 0.5, 0.0, 0.0])
    np.testing.assert_allclose(missing_weights(X, 2.0, 0.0), [0.5] * 4)


def _dense_eals(X, P, Q, c, w, lam):
    """The weights W (w observed, c_i missing) and binary targets R of the eALS objective."""
    R = (X.toarray() > 0).astype(np.float64)
    W = np.where(R > 0, w, c[None, :])
    return R, W


def _dense_coordinate_pass(A, B, R, W, lam):
    """Coordinate descent on Σ W (R − A Bᵀ)² + λ‖A‖², row by row, coordinate by coordinate,
    every pair weighted explicitly (the reference for the cached eALS update)."""
    A = A.copy()
    for u in range(A.shape[0]):
        for f in range(A.shape[1]):
            partial = A[u] @ B.T - A[u, f] * B[:, f]
            A[u, f] = np.sum(W[u] * (R[u] - partial) * B[:, f]) / (
                np.sum(W[u] * B[:, f] ** 2) + lam
            )
    return A


def _eals_state(seed=0):
    X = _counts(7, 6, density=0.4, seed=seed)
    rng = np.random.default_rng(seed)
    P, Q = rng.normal(size=(7, 3)) * 0.5, rng.normal(size=(6, 3)) * 0.5
    users = np.repeat(np.arange(7), np.diff(X.indptr))
    items = X.indices.astype(np.int64)
    c = missing_weights(X, 3.0, 0.5)
    return X, P, Q, users, items, c


def test_fast_sweep_equals_the_dense_reference_update():
    X, P, Q, users, items, c = _eals_state()
    w, lam = 2.0, 0.1
    R, W = _dense_eals(X, P, Q, c, w, lam)
    pred = np.einsum("ij,ij->i", P[users], Q[items])
    fast_P, fast_Q = P.copy(), Q.copy()
    coordinate_sweep(fast_P, fast_Q, users, items, pred, w - c[items], (Q.T * c) @ Q, 1.0, w, lam)
    dense_P = _dense_coordinate_pass(P, Q, R, W, lam)
    np.testing.assert_allclose(fast_P, dense_P, rtol=1e-10, atol=1e-12)
    S_p = fast_P.T @ fast_P
    coordinate_sweep(fast_Q, fast_P, items, users, pred, w - c[items], S_p, c, w, lam)
    dense_Q = _dense_coordinate_pass(Q, dense_P, R.T, W.T, lam)
    np.testing.assert_allclose(fast_Q, dense_Q, rtol=1e-10, atol=1e-12)
    # the prediction cache follows the factors
    np.testing.assert_allclose(pred, np.einsum("ij,ij->i", fast_P[users], fast_Q[items]))


def test_objective_is_the_dense_weighted_sum():
    X, P, Q, users, items, c = _eals_state(1)
    R, W = _dense_eals(X, P, Q, c, 1.5, 0.2)
    dense = np.sum(W * (R - P @ Q.T) ** 2) + 0.2 * (np.sum(P**2) + np.sum(Q**2))
    assert eals_objective(users, items, P, Q, c, 1.5, 0.2) == pytest.approx(dense, rel=1e-12)


def test_one_sweep_decreases_the_objective_and_leaves_each_coordinate_at_its_minimum():
    X, P, Q, users, items, c = _eals_state(2)
    w, lam = 1.0, 0.05
    pred = np.einsum("ij,ij->i", P[users], Q[items])
    before = eals_objective(users, items, P, Q, c, w, lam)
    coordinate_sweep(P, Q, users, items, pred, w - c[items], (Q.T * c) @ Q, 1.0, w, lam)
    after_users = eals_objective(users, items, P, Q, c, w, lam)
    coordinate_sweep(Q, P, items, users, pred, w - c[items], P.T @ P, c, w, lam)
    after_items = eals_objective(users, items, P, Q, c, w, lam)
    assert after_items <= after_users < before
    # the last coordinate updated is the exact minimiser along its axis
    for delta in (-1e-3, 1e-3):
        moved = Q.copy()
        moved[:, -1] += delta
        assert eals_objective(users, items, P, moved, c, w, lam) > after_items


def test_eals_objective_never_increases():
    X = make_interactions(120, 60, density=0.1, random_state=0)
    model = EALS(n_components=6, c0=20.0, epochs=15, random_state=0).fit(X)
    losses = np.array([h["train_loss"] for h in model.history_])
    assert np.all(np.diff(losses) <= 1e-10 * losses[:-1]), losses
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(model.missing_weights_.sum(), 20.0)


def test_eals_fold_in_converges_to_the_weighted_least_squares_solution():
    X = make_interactions(150, 50, density=0.1, random_state=0)
    model = EALS(n_components=5, c0=10.0, l2_reg=0.1, epochs=60, random_state=0).fit(X[:120])
    Q, c = model.item_factors_, model.missing_weights_
    R = (X[120:].toarray() > 0).astype(np.float64)
    expected = []
    for r in R:
        weights = np.where(r > 0, 1.0, c)
        A = Q.T @ (weights[:, None] * Q) + 0.1 * np.eye(5)
        expected.append(np.linalg.solve(A, Q.T @ (weights * r)))
    np.testing.assert_allclose(model._fold_in(sp.csr_array(X[120:])), expected, atol=1e-6)
    np.testing.assert_allclose(
        model.decision_function(X[120:]), np.array(expected) @ Q.T, atol=1e-5
    )


# -- both ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "model",
    [
        WMF(n_components=3, epochs=2, device="cpu", random_state=0),
        EALS(n_components=3, epochs=2, random_state=0),
    ],
    ids=["WMF", "EALS"],
)
def test_save_and_load_round_trip(model, tmp_path):
    X = make_interactions(60, 30, density=0.15, random_state=0)
    model.fit(X)
    skcfae.save(model, tmp_path / "m.skcfae")
    again = skcfae.load(tmp_path / "m.skcfae")
    np.testing.assert_array_equal(again.decision_function(X), model.decision_function(X))
    assert again.history_ == model.history_
