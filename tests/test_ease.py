"""EASE's built-in choice of λ (``lam="auto"``)."""

import numpy as np
import pytest
import scipy.sparse as sp

from skcfae import EASE
from skcfae._ranking import ndcg_from_topk, topk_masked
from skcfae.datasets import make_interactions
from skcfae.model_selection import fold_in_split


@pytest.fixture(scope="module")
def X():
    return make_interactions(300, 120, random_state=0)


def test_single_candidate_is_the_fixed_fit(X):
    auto = EASE(lams=(70.0,), random_state=0).fit(X)
    fixed = EASE(lam=70.0).fit(X)
    assert auto.lam_ == fixed.lam_ == 70.0
    np.testing.assert_array_equal(auto.coef_, fixed.coef_)
    assert list(auto.lam_scores_) == [70.0]


def test_chosen_lambda_is_the_best_validation_score(X):
    model = EASE(lams=(1e-3, 30.0, 300.0, 1e6), random_state=0).fit(X)
    assert set(model.lam_scores_) == {1e-3, 30.0, 300.0, 1e6}
    assert model.lam_ == max(model.lam_scores_, key=model.lam_scores_.get)
    np.testing.assert_array_equal(model.coef_, EASE(lam=model.lam_).fit(X).coef_)


def test_validation_scores_by_hand(X):
    """Each score is the NDCG@100 of an EASE fitted without the validation users, on their
    hold-out items, from their fold-in items: replay the draw of ``random_state``."""
    rng = np.random.RandomState(0)
    eligible = np.flatnonzero(np.diff(X.indptr) >= 5)
    valid = np.sort(rng.choice(eligible, 30, replace=False))
    fold_in, holdout = fold_in_split(X[valid], random_state=rng)
    rest = np.setdiff1d(np.arange(X.shape[0]), valid)
    model = EASE(lams=(40.0, 400.0), random_state=0).fit(X)
    for lam, score in model.lam_scores_.items():
        B = EASE(lam=lam).fit(X[rest]).coef_
        top = topk_masked(fold_in @ B, fold_in, 100, True)
        assert score == pytest.approx(np.nanmean(ndcg_from_topk(top, holdout, 100)), abs=1e-6)


def test_same_random_state_same_choice(X):
    a, b = EASE(random_state=3).fit(X), EASE(random_state=3).fit(X)
    assert a.lam_scores_ == b.lam_scores_


def test_no_validation_user_is_a_clear_error():
    X = sp.csr_array(np.eye(40, 10, dtype=np.float32))  # every user has one interaction
    with pytest.raises(ValueError, match="pass a float lam"):
        EASE().fit(X)
    EASE(lam=10.0).fit(X)


@pytest.mark.parametrize("lams", [(), (0.0, 1.0), (np.inf,), (-1.0,)])
def test_bad_candidates_rejected(X, lams):
    with pytest.raises(ValueError, match="lams"):
        EASE(lams=lams).fit(X)
