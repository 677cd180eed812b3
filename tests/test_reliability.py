"""Reliability: bad arguments are clear errors before any work, non-finite training stops
with a cause, and a failed or interrupted fit leaves the estimator as it was."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from skcfae import EASE, ItemGrouper, MultDAE, MultVAE, Popularity, SparseWideDAE
from skcfae.datasets import make_interactions
from skcfae.grouping import GroupedInteractions
from skcfae.models import _ease, _neural


@pytest.fixture(scope="module")
def X():
    return make_interactions(200, 50, random_state=0)


@pytest.mark.parametrize("flag", ["no", 0, 1, None, "False"])
@pytest.mark.parametrize("model", [Popularity(), EASE(lam=10.0)], ids=["Popularity", "EASE"])
def test_recommend_flags_must_be_booleans(X, model, flag):
    model = model.fit(X)
    with pytest.raises(TypeError, match="exclude_seen must be True or False"):
        model.recommend(X[:2], n=3, exclude_seen=flag)
    with pytest.raises(TypeError, match="return_scores must be True or False"):
        model.recommend(X[:2], n=3, return_scores=flag)
    np.testing.assert_array_equal(
        model.recommend(X[:2], n=3, exclude_seen=np.bool_(True)), model.recommend(X[:2], n=3)
    )


@pytest.mark.parametrize("sizes", [(0,), (-5,), ("a",), (2.5,), (True,), 3])
@pytest.mark.parametrize("model", [MultDAE(epochs=1), SparseWideDAE(K=5, epochs=1)])
def test_layer_sizes_are_checked_before_any_training(X, monkeypatch, model, sizes):
    def no_training(plan):
        raise AssertionError("training started")

    monkeypatch.setattr(_neural, "train", no_training)
    name = "stacked_sizes" if isinstance(model, SparseWideDAE) else "hidden_layer_sizes"
    with pytest.raises((ValueError, TypeError), match=name):
        model.set_params(**{name: sizes}).fit(X)


def test_non_finite_loss_names_the_learning_rate(X):
    with pytest.raises(ValueError, match="learning rate"):
        MultVAE(learning_rate=1e6, epochs=5, random_state=0, device="cpu").fit(X)


def test_interrupted_refit_keeps_the_previous_model(X, monkeypatch):
    model = MultDAE(n_components=8, epochs=2, random_state=0, device="cpu").fit(X)
    before = {k: v for k, v in vars(model).items() if k.endswith("_")}
    scores = model.decision_function(X[:3])

    def interrupted(plan):
        raise KeyboardInterrupt

    monkeypatch.setattr(_neural, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.fit(make_interactions(100, 80, random_state=1))
    assert {k: v for k, v in vars(model).items() if k.endswith("_")}.keys() == before.keys()
    assert model.n_items_in_ == 50 and model.module_ is before["module_"]
    np.testing.assert_array_equal(model.decision_function(X[:3]), scores)


def test_interrupted_first_fit_leaves_an_unfitted_estimator(X, monkeypatch):
    def interrupted(plan):
        raise KeyboardInterrupt

    monkeypatch.setattr(_neural, "train", interrupted)
    model = MultDAE(epochs=1, device="cpu")
    with pytest.raises(KeyboardInterrupt):
        model.fit(X)
    assert not any(k.endswith("_") for k in vars(model))
    with pytest.raises(NotFittedError):
        model.recommend(X[:1], n=2)


def test_failed_grouper_refit_keeps_the_old_membership(X):
    grouper = ItemGrouper(K=5, R=1, random_state=0).fit(X)
    membership = grouper.membership_.copy()
    with pytest.raises(ValueError):
        grouper.set_params(K=500).fit(X)  # more groups than items
    assert grouper.K == 500  # parameters are the user's; fitted state is the old one
    assert (grouper.transform(X).membership != membership).nnz == 0


def test_ease_refuses_a_catalogue_larger_than_memory_before_allocating(X, monkeypatch):
    monkeypatch.setattr(_ease.os, "sysconf", lambda name: 1024 if name == "SC_PAGE_SIZE" else 10)
    monkeypatch.setattr(_ease, "gram_matrix", lambda X: pytest.fail("allocated"))
    with pytest.raises(MemoryError, match="GiB.*SLIM"):
        EASE(lam=10.0).fit(X)


def test_ease_overflowing_values_are_an_error(X):
    with pytest.raises(ValueError, match="overflows"):
        EASE(lam=10.0).fit(sp.csr_array(X * np.float32(1e30)))


def test_membership_without_connections_is_refused(X):
    empty = sp.csr_array((X.shape[1], 4), dtype=np.float32)
    with pytest.raises(ValueError, match="no connections"):
        SparseWideDAE(epochs=1, device="cpu").fit(GroupedInteractions(X, membership=empty))
