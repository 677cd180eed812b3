"""Checks every public estimator goes through: scikit-learn's estimator checks, the registry,
and one training step of every neural model."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks

import skcfae.models._neural as neural
from skcfae.datasets import make_interactions
from skcfae.utils import all_estimators

from .estimators import CONTRACT, TINY, ids, instances

# Checks that cannot apply to a recommender, each with its reason.
_NO_HOLDOUT = (
    "score() is NDCG@100 on a held-out 20% of each row and needs rows with >= 5 interactions; "
    "the check's data has at most 3 items per row, so nothing can be held out"
)
EXPECTED_FAILURES: dict[str, str] = {
    "check_dtype_object": (
        "object arrays are rejected with a TypeError instead of being coerced, so that labels "
        "or mixed types never enter a model silently"
    ),
    "check_fit_score_takes_y": _NO_HOLDOUT,
    "check_pipeline_consistency": _NO_HOLDOUT,
}
_ROUNDING = (
    "float32 GEMM and embedding-bag kernels may round a row differently by its position in "
    "the batch (1 ulp, above the check's rtol=1e-7); batch == row-by-row is tested with "
    "rtol=1e-5 in tests/test_recommenders.py"
)


_SPARSE_PREDICT = (
    "a rating model's predict returns a sparse matrix with exactly X's pattern (one "
    "prediction per stored entry, the rating contract), not one value per row"
)
_TRAINING_ROWS = (
    "an item-based rating model (kind='item') predicts for its training users, by row: "
    "reordered rows are other users, and X with other rows is refused with a clear error "
    "(it cannot fold in new users)"
)
RATING_FAILURES = {
    "check_estimator_sparse_array": _SPARSE_PREDICT,
    "check_estimator_sparse_matrix": _SPARSE_PREDICT,
    "check_methods_subset_invariance": _TRAINING_ROWS,
    "check_fit_idempotent": _TRAINING_ROWS,
    "check_methods_sample_order_invariance": _TRAINING_ROWS,
}


def _expected(est):
    if getattr(est, "_implicit", True) is False:
        return {"check_dtype_object": EXPECTED_FAILURES["check_dtype_object"], **RATING_FAILURES}
    if hasattr(est, "epochs"):  # torch models
        return {**EXPECTED_FAILURES, "check_methods_sample_order_invariance": _ROUNDING}
    if not hasattr(est, "recommend"):  # transformers have no score
        return {"check_dtype_object": EXPECTED_FAILURES["check_dtype_object"]}
    return EXPECTED_FAILURES


@parametrize_with_checks(instances(TINY), expected_failed_checks=_expected)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_every_estimator_has_its_test_configurations():
    names = {name for name, _ in all_estimators()}
    assert names == set(TINY) == set(CONTRACT)


def test_all_estimators_filters_by_type():
    ranking = {n for n, _ in all_estimators("ranking")}
    assert {"EASE", "MultVAE", "Popularity", "SparseWideDAE"} <= ranking
    assert "ItemGrouper" not in ranking
    assert {n for n, _ in all_estimators("transformer")} == {"ItemGrouper"}
    assert {n for n, _ in all_estimators("neural")} <= ranking | {
        n for n, _ in all_estimators("rating")
    }
    with pytest.raises(ValueError, match="type_filter"):
        all_estimators("classifier")


NEURAL = instances(CONTRACT, "neural")


@pytest.mark.parametrize("estimator", NEURAL, ids=ids(NEURAL))
def test_one_training_step_changes_every_trainable_parameter(estimator, monkeypatch):
    """One update on one batch holding every row moves every parameter of the first phase
    (a parameter outside the graph, or one its loss never reaches, would stay put)."""
    X = sp.csr_array(make_interactions(64, 40, n_groups=4, density=0.5, random_state=0))
    X.data[:] = 1.0
    before = {}
    real_train = neural.train

    def spy(plan):
        first = plan.phases[0]
        before.update({k: v.detach().clone() for k, v in first.module.named_parameters()})
        result = real_train(plan)
        spy.first = result.trained[first.name]
        return result

    monkeypatch.setattr(neural, "train", spy)
    est = clone(estimator).set_params(epochs=1, batch_size=X.shape[0], learning_rate=1e-2)
    for name in ("K", "R", "F"):  # a small structure for the small data
        if name in est.get_params():
            est.set_params(**{name: {"K": 8, "R": 2, "F": 4}[name]})
    est.fit(X)
    after = dict(spy.first.named_parameters())
    assert before and set(before) == set(after)
    for name, value in before.items():
        assert after[name].requires_grad, name
        assert not torch.equal(value, after[name].detach()), f"{name} did not change"
    assert np.isfinite(est.history_[0]["train_loss"])


@pytest.mark.parametrize("estimator", instances(TINY), ids=ids(instances(TINY)))
def test_parameters_are_validated_in_fit(estimator):
    """Every parameter's constraint is enforced by fit (sklearn's check_param_validation)."""
    from sklearn.utils.estimator_checks import check_param_validation

    check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", instances(TINY), ids=ids(instances(TINY)))
def test_malformed_sparse_input_is_refused_by_every_estimator(estimator):
    """An index beyond n_items never reaches torch or the grouping as a crash or wrong data."""
    bad = sp.csr_array(
        (np.ones(3, np.float32), np.array([0, 1, 9]), np.array([0, 2, 3])), shape=(2, 4)
    )
    with pytest.raises(ValueError, match="not a valid sparse matrix"):
        clone(estimator).fit(bad)


@pytest.mark.parametrize("estimator", instances(TINY), ids=ids(instances(TINY)))
def test_no_interaction_at_all_is_an_error(estimator):
    """Nothing to learn is an error. Implicit: all zeros, stored or not; ratings: nothing
    observed (a stored 0 is a rating)."""
    if getattr(estimator, "_implicit", True):
        stored_zeros = sp.csr_array((np.zeros(2, np.float32), [0, 1], [0, 1, 2]), shape=(2, 3))
        empty, match = [np.zeros((3, 4)), stored_zeros], "no interaction"
    else:
        empty, match = [np.full((3, 4), np.nan), sp.csr_array((3, 4))], "no observed rating"
    for X in empty:
        with pytest.raises(ValueError, match=match):
            clone(estimator).fit(X)
