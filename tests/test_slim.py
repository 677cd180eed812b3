"""SLIM: each column of W is the paper's non-negative elastic net of one item."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet

import skcfae.models._slim as slim_module
from skcfae import SLIM
from skcfae.datasets import make_interactions


@pytest.fixture(scope="module")
def X():
    return make_interactions(60, 14, n_groups=3, density=0.3, random_state=0)


def _exact(**params):
    return SLIM(tol=1e-12, max_iter=100_000, **params)


def test_w_is_sparse_non_negative_with_zero_diagonal(X):
    W = _exact(l1_reg=0.3, l2_reg=0.7).fit(X).coef_
    assert sp.issparse(W) and W.format == "csr" and W.shape == (14, 14)
    assert np.all(W.diagonal() == 0)
    assert W.data.size and W.data.min() > 0  # only positive weights are stored
    assert W.nnz < 14 * 13  # the L1 penalty zeroes some weights


def test_each_column_is_a_direct_elastic_net_fit(X):
    """Column j = ElasticNet on the dense X with column j zeroed, alpha = (λ+β)/n_users,
    l1_ratio = λ/(λ+β)."""
    l1, l2 = 0.3, 0.7
    W = _exact(l1_reg=l1, l2_reg=l2).fit(X).coef_.toarray()
    A = X.toarray().astype(np.float64)
    n_users = A.shape[0]
    for j in range(A.shape[1]):
        A_j = A.copy()
        A_j[:, j] = 0.0
        direct = ElasticNet(
            alpha=(l1 + l2) / n_users,
            l1_ratio=l1 / (l1 + l2),
            positive=True,
            fit_intercept=False,
            tol=1e-12,
            max_iter=100_000,
        ).fit(A_j, A[:, j])
        np.testing.assert_allclose(W[:, j], direct.coef_, atol=1e-5, err_msg=f"item {j}")


def test_columns_satisfy_the_papers_optimality_conditions(X):
    """KKT of min_w 1/2 ||a - A w||² + β/2 ||w||² + λ ||w||₁, w ≥ 0, w_j = 0 (Ning & Karypis
    Eq. 3, unnormalised): with g = -Aᵀ(a - A w) + β w, g_i = -λ where w_i > 0 and g_i ≥ -λ
    where w_i = 0. Checks the λ, β scale independently of scikit-learn's."""
    l1, l2 = 2.0, 3.0
    W = _exact(l1_reg=l1, l2_reg=l2).fit(X).coef_.toarray().astype(np.float64)
    A = X.toarray().astype(np.float64)
    for j in range(A.shape[1]):
        A_j = A.copy()
        A_j[:, j] = 0.0
        w = W[:, j]
        g = -A_j.T @ (A[:, j] - A_j @ w) + l2 * w
        others = np.arange(A.shape[1]) != j
        active = (w > 0) & others
        np.testing.assert_allclose(g[active], -l1, atol=1e-3)
        assert np.all(g[~active & others] >= -l1 - 1e-3)


def test_l1_above_the_largest_correlation_gives_zero_weights(X):
    """w = 0 is optimal once λ ≥ max_i A_iᵀ a_j (the gradient at 0): hand-computed bound."""
    A = X.toarray().astype(np.float64)
    C = A.T @ A
    np.fill_diagonal(C, 0.0)
    bound = C.max()
    assert SLIM(l1_reg=bound + 1e-3, l2_reg=1.0).fit(X).coef_.nnz == 0
    assert SLIM(l1_reg=bound * 0.5, l2_reg=1.0).fit(X).coef_.nnz > 0


def test_n_jobs_gives_the_same_w(X, monkeypatch):
    monkeypatch.setattr(slim_module, "_ITEM_BLOCK", 4)  # 4 blocks of items
    one = SLIM(l1_reg=0.5, l2_reg=0.5, n_jobs=1).fit(X).coef_
    two = SLIM(l1_reg=0.5, l2_reg=0.5, n_jobs=2).fit(X).coef_
    assert one.nnz > 0
    np.testing.assert_array_equal(one.indptr, two.indptr)
    np.testing.assert_array_equal(one.indices, two.indices)
    np.testing.assert_array_equal(one.data, two.data)


def test_warm_start_blocks_agree_with_single_items(X, monkeypatch):
    """Warm starts change W by no more than the solver's tolerance."""
    monkeypatch.setattr(slim_module, "_ITEM_BLOCK", 1)  # every item from zero
    cold = _exact(l1_reg=0.5, l2_reg=0.5).fit(X).coef_.toarray()
    monkeypatch.setattr(slim_module, "_ITEM_BLOCK", 64)
    warm = _exact(l1_reg=0.5, l2_reg=0.5).fit(X).coef_.toarray()
    np.testing.assert_allclose(warm, cold, atol=1e-5)


def test_scores_are_x_w_for_any_user(X):
    model = SLIM(l1_reg=0.5, l2_reg=0.5).fit(X)
    new = sp.csr_array(np.array([[1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.0], [0.0] * 14]))
    expected = new.toarray() @ model.coef_.toarray()
    np.testing.assert_allclose(model.decision_function(new), expected, rtol=1e-6)
    assert np.all(model.decision_function(new)[1] == 0)


def test_stored_values_are_used():
    """Counts are not binarised: X and 2 X give different W (the penalties do not scale
    with the data)."""
    X = make_interactions(60, 14, n_groups=3, density=0.3, random_state=1)
    a = SLIM().fit(X).coef_.toarray()
    b = SLIM().fit(2 * X).coef_.toarray()
    assert not np.allclose(a, b)


def test_zero_regularisation_is_an_error(X):
    with pytest.raises(ValueError, match="l1_reg \\+ l2_reg > 0"):
        SLIM(l1_reg=0.0, l2_reg=0.0).fit(X)
    assert SLIM(l1_reg=0.0, l2_reg=1.0).fit(X).coef_.nnz > 0  # ridge with W ≥ 0 works


def test_not_converged_items_are_reported_once(X):
    with pytest.warns(ConvergenceWarning, match="reached max_iter=1") as record:
        model = SLIM(l1_reg=0.01, l2_reg=0.01, max_iter=1, tol=1e-12).fit(X)
    assert len(record) == 1
    assert 0 < model.n_not_converged_ <= X.shape[1]
