"""SVAE: order as data, the loss by hand, scores of a user's own sequence, routing of the
timestamps through Pipelines and searches, and the temporal split and scorer."""

import math
import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
import torch
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import skcfae
from skcfae import SVAE, MultVAE, Popularity
from skcfae.datasets import make_interactions
from skcfae.metrics import ndcg_at_k, ndcg_scorer, temporal_scorer
from skcfae.model_selection import UserSplit, temporal_split
from skcfae.models._svae import _next_items, _ranks, _sequences, svae_loss
from skcfae.nn import TrainState, fold_in_rows

SMALL = dict(
    n_components=4,
    embedding_size=8,
    gru_size=8,
    hidden_layer_sizes=(8,),
    epochs=3,
    batch_size=16,
    learning_rate=1e-2,
    device="cpu",
    random_state=0,
)


@pytest.fixture(scope="module")
def data():
    X = sp.csr_array(make_interactions(80, 30, n_groups=4, density=0.25, random_state=0))
    T = X.copy()
    T.data = np.random.RandomState(0).rand(T.nnz) * 1e9  # seconds, say
    return X, T


@pytest.fixture(scope="module")
def fitted(data):
    X, T = data
    return SVAE(**SMALL).fit(X, timestamps=T)


def permuted_within_rows(T, seed):
    """T with its times shuffled inside each row: same items, another order."""
    rng = np.random.RandomState(seed)
    rows = np.repeat(np.arange(T.shape[0]), np.diff(T.indptr))
    out = T.copy()
    out.data = T.data[np.lexsort((rng.random_sample(T.nnz), rows))]
    return out


# -- timestamps are required ----------------------------------------------------------------


def test_no_timestamps_is_a_clear_error(data, fitted):
    X, T = data
    with pytest.raises(ValueError, match="SVAE orders each user's items by time: pass timestamps"):
        SVAE(**SMALL).fit(X)
    for method in (fitted.decision_function, fitted.score, lambda X: fitted.recommend(X, n=3)):
        with pytest.raises(ValueError, match="pass timestamps="):
            method(X)
    with pytest.raises(ValueError, match="pass timestamps="):  # the random-split scorer too
        ndcg_scorer(k=10)(fitted, X)
    with pytest.raises(ValueError, match="timestamps_valid"):
        SVAE(**SMALL).fit(X, timestamps=T, X_valid=X)
    with pytest.raises(ValueError, match="without timestamps"):
        SVAE(**SMALL, missing_timestamps="shuffle").fit(X, timestamps_valid=T)


def test_timestamps_are_checked(data, fitted):
    X, T = data
    with pytest.raises(ValueError, match="same sparsity pattern"):
        fitted.decision_function(X[:5], timestamps=T[5:10])
    bad = T[:5].copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match=r"no time \(NaN\) at 1 stored entries"):
        fitted.decision_function(X[:5], timestamps=bad)
    with pytest.raises(ValueError, match="shape"):
        fitted.recommend(X[:5], n=3, timestamps=np.zeros((5, 2)))


# -- order matters, and only order ----------------------------------------------------------


def test_shuffled_timestamps_change_the_output(data, fitted):
    X, T = data
    shuffled = permuted_within_rows(T, 1)
    a = fitted.decision_function(X, timestamps=T)
    b = fitted.decision_function(X, timestamps=shuffled)
    assert np.abs(a - b).max() > 1e-2
    # the same users, items and seed, trained on another order, make another model
    other = SVAE(**SMALL).fit(X, timestamps=shuffled)
    assert np.abs(other.decision_function(X, timestamps=T) - a).max() > 1e-2


def test_only_the_order_of_the_times_counts(data, fitted):
    X, T = data
    monotone = T.copy()
    monotone.data = np.log1p(T.data) - 7.0  # another scale, the same order
    np.testing.assert_array_equal(
        fitted.decision_function(X, timestamps=T), fitted.decision_function(X, timestamps=monotone)
    )
    dense = T.toarray()  # a dense array read at X's entries
    np.testing.assert_array_equal(
        fitted.recommend(X, n=5, timestamps=T), fitted.recommend(X, n=5, timestamps=dense)
    )


def test_equal_times_are_ordered_by_item_index(data, fitted):
    X, T = data
    ties = T.copy()
    ties.data[:] = 5.0
    index_order = T.copy()
    index_order.data = X.indices.astype(float)  # canonical CSR: increasing within a row
    np.testing.assert_array_equal(
        fitted.decision_function(X, timestamps=ties),
        fitted.decision_function(X, timestamps=index_order),
    )
    # which is also the order the model reads without timestamps under "shuffle"
    fitted_shuffle = pickle.loads(pickle.dumps(fitted)).set_params(missing_timestamps="shuffle")
    np.testing.assert_array_equal(
        fitted_shuffle.decision_function(X), fitted.decision_function(X, timestamps=ties)
    )


def test_ranks_follow_time_then_item():
    X = sp.csr_array(np.array([[1, 1, 1, 0, 1], [0, 1, 0, 1, 0]], dtype=np.float32))
    times = np.array([30.0, 10.0, 30.0, 20.0, 7.0, 7.0])  # CSR order
    R = _ranks(X, times)
    np.testing.assert_array_equal(R.toarray(), [[3, 1, 4, 0, 2], [0, 1, 0, 2, 0]])
    np.testing.assert_array_equal(_ranks(X, None).data, [1, 2, 3, 4, 1, 2])


# -- the loss -------------------------------------------------------------------------------


def test_loss_hand_computed():
    """Two users: u0 with 2 steps, u1 with 1 step; 4 items; β = 0.2."""
    ln = math.log
    logits = torch.zeros(3, 4)
    logits[1, 0] = ln(3.0)  # softmax [1/2, 1/6, 1/6, 1/6]
    step_of = torch.tensor([0, 1, 2, 2])
    targets = torch.tensor([3, 0, 1, 2])  # step 2 predicts two items (next_k=2), 1/2 each
    weights = torch.tensor([1.0, 1.0, 0.5, 0.5])
    mu = torch.zeros(3, 2)
    mu[0, 0] = 1.0
    logvar = torch.zeros(3, 2)
    logvar[2] = ln(2.0)
    kl_weights = torch.tensor([0.5, 0.5, 1.0])  # 1 / (steps of the step's user)
    loss = svae_loss(logits, step_of, targets, weights, mu, logvar, kl_weights, 2, 0.2)
    nll = ln(4) + ln(2) + ln(4)  # -log 1/4, -log 1/2, -(1/2)(log 1/4 + log 1/4)
    kl_steps = [0.5, 0.0, 2 * 0.5 * (2 - 1 - ln(2))]  # Σ_d ½(σ² + μ² - 1 - log σ²)
    kl = 0.5 * kl_steps[0] + 0.5 * kl_steps[1] + 1.0 * kl_steps[2]
    assert float(loss) == pytest.approx((nll + 0.2 * kl) / 2, rel=1e-6)


def test_loss_gradient_is_autograd_of_the_formula():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 7, generator=gen, requires_grad=True)
    step_of = torch.tensor([0, 1, 2, 3, 4, 4])
    targets = torch.tensor([1, 2, 3, 4, 5, 6])
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    mu = torch.randn(5, 3, generator=gen, requires_grad=True)
    logvar = torch.randn(5, 3, generator=gen, requires_grad=True)
    kl_w = torch.tensor([0.5, 0.5, 1 / 3, 1 / 3, 1 / 3])
    svae_loss(logits, step_of, targets, weights, mu, logvar, kl_w, 2, 0.3).backward()
    fused = [t.grad.clone() for t in (logits, mu, logvar)]
    for t in (logits, mu, logvar):
        t.grad = None
    logp = torch.log_softmax(logits, dim=1)
    nll = -(weights * logp[step_of, targets]).sum()
    kl = (0.5 * (logvar.exp() + mu**2 - 1 - logvar)).sum(dim=1)
    ((nll + 0.3 * (kl * kl_w).sum()) / 2).backward()
    for got, t in zip(fused, (logits, mu, logvar), strict=True):
        torch.testing.assert_close(got, t.grad)


def test_each_step_predicts_the_next_items():
    # one user with items 7, 3, 5 in time order (stored in column order 3, 5, 7)
    batch = fold_in_rows(
        sp.csr_array(np.array([[0, 0, 0, 2, 0, 3, 0, 1.0]], dtype=np.float32)), torch.device("cpu")
    ).batch(torch.arange(1))
    items, lengths, row, position = _sequences(batch, batch.vals)
    assert items.tolist() == [[7, 3, 5]] and lengths.tolist() == [3]
    assert position.tolist() == [0, 1, 2]
    step_of, targets, weights = _next_items(items, lengths, row, position, 1)
    assert sorted(zip(step_of.tolist(), targets.tolist(), strict=True)) == [(0, 7), (1, 3), (2, 5)]
    step_of, targets, weights = _next_items(items, lengths, row, position, 2)
    pairs = sorted(zip(step_of.tolist(), targets.tolist(), weights.tolist(), strict=True))
    assert pairs == [(0, 3, 0.5), (0, 7, 0.5), (1, 3, 0.5), (1, 5, 0.5), (2, 5, 1.0)]


def _own_states(module, sequence):
    """GRU states of one sequence run alone, unpacked: [0, after 1 item, ..., after all]."""
    emb = module.embedding(torch.tensor([sequence]))
    out, _ = module.gru(emb)
    return torch.cat([torch.zeros(1, out.shape[2]), out[0]])


def test_training_loss_is_the_per_user_formula(data):
    """The batched, packed loss equals the per-user ELBO computed sequence by sequence."""
    X, T = data
    est = SVAE(**{**SMALL, "total_anneal_steps": 1})
    est.n_items_in_ = X.shape[1]
    module = est._build_module(torch.Generator().manual_seed(0))
    R = _ranks(X[:6], np.asarray(T[:6].data))
    batch = fold_in_rows(R, torch.device("cpu")).batch(torch.arange(6))
    state = TrainState(torch.Generator().manual_seed(3), step=1)  # β = min(0.2, 1/1)
    loss = est._loss(module, batch, state)

    eps = torch.randn(X[:6].nnz, 4, generator=torch.Generator().manual_seed(3))
    total, start = 0.0, 0
    for u in range(6):
        cols, ranks = R[[u]].indices, R[[u]].data
        sequence = cols[np.argsort(ranks)].tolist()
        n = len(sequence)
        mu, logvar = module.encode(_own_states(module, sequence)[:n])
        z = mu + eps[start : start + n] * torch.exp(0.5 * logvar)
        logp = torch.log_softmax(module.decode(z), dim=1)
        nll = -logp[torch.arange(n), torch.tensor(sequence)].sum()
        kl = (0.5 * (logvar.exp() + mu**2 - 1 - logvar)).sum(dim=1).mean()
        total += nll + 0.2 * kl
        start += n
    assert loss.item() == pytest.approx(total.item() / 6, rel=1e-5)


# -- scores ---------------------------------------------------------------------------------


def test_new_users_are_scored_from_their_own_sequence(fitted):
    dense = np.zeros((2, 30), dtype=np.float32)
    dense[0, [2, 4, 9]] = 1.0
    dense[1, 1] = 1.0
    new = sp.csr_array(dense)
    times = new.copy()
    times.data = np.array([2.0, 3.0, 1.0, 8.0])  # user 0 in time order: items 9, 2, 4
    scores = fitted.decision_function(new, timestamps=times)
    module = fitted.module_
    with torch.no_grad():
        for u, sequence in enumerate([[9, 2, 4], [1]]):
            mu, _ = module.encode(_own_states(module, sequence)[-1:])
            expected = module.decode(mu)[0].numpy()
            np.testing.assert_allclose(scores[u], expected, rtol=1e-5, atol=1e-6)
    # other users in the batch change nothing
    alone = fitted.decision_function(new[[0]], timestamps=times[[0]])
    np.testing.assert_allclose(alone[0], scores[0], rtol=1e-5, atol=1e-6)


def test_a_user_without_interactions_gets_the_learned_prior(fitted):
    empty = sp.csr_array((1, 30), dtype=np.float32)
    scores = fitted.decision_function(empty, timestamps=empty)
    with torch.no_grad():
        mu, _ = fitted.module_.encode(torch.zeros(1, SMALL["gru_size"]))
        expected = fitted.module_.decode(mu)[0].numpy()
    np.testing.assert_allclose(scores[0], expected, rtol=1e-6)


def test_same_random_state_same_model(data, fitted):
    X, T = data
    again = SVAE(**SMALL).fit(X, timestamps=T)
    np.testing.assert_array_equal(
        again.decision_function(X, timestamps=T), fitted.decision_function(X, timestamps=T)
    )
    np.testing.assert_array_equal(
        pickle.loads(pickle.dumps(fitted)).recommend(X, n=5, timestamps=T),
        fitted.recommend(X, n=5, timestamps=T),
    )


def test_shuffle_mode_is_deterministic_and_differs_from_a_time_order(data):
    X, T = data
    a = SVAE(**SMALL, missing_timestamps="shuffle").fit(X)
    b = SVAE(**SMALL, missing_timestamps="shuffle").fit(X)
    np.testing.assert_array_equal(a.decision_function(X), b.decision_function(X))
    timed = SVAE(**SMALL, missing_timestamps="shuffle").fit(X, timestamps=T)
    assert np.abs(timed.decision_function(X) - a.decision_function(X)).max() > 1e-2


def test_warm_start_continues_the_same_training(data):
    X, T = data
    fixed = {**SMALL, "total_anneal_steps": 10}  # "auto" depends on epochs
    once = SVAE(**{**fixed, "epochs": 4}).fit(X, timestamps=T)
    twice = SVAE(**{**fixed, "epochs": 2}, warm_start=True).fit(X, timestamps=T)
    twice.fit(X, timestamps=T)
    np.testing.assert_array_equal(
        twice.decision_function(X, timestamps=T), once.decision_function(X, timestamps=T)
    )


def test_save_and_load_keep_the_model(data, fitted, tmp_path):
    X, T = data
    skcfae.save(fitted, tmp_path / "svae.skcfae")
    again = skcfae.load(tmp_path / "svae.skcfae")
    np.testing.assert_array_equal(
        again.decision_function(X, timestamps=T), fitted.decision_function(X, timestamps=T)
    )


# -- validation ------------------------------------------------------------------------------


def test_validation_users_are_split_by_time(data):
    X, T = data
    est = SVAE(**SMALL, early_stopping=True, validation_fraction=0.25)
    est._by_time = True
    R = _ranks(X, np.asarray(T.data))
    X_train, (fold_in, holdout) = est._validation_split(R, None, np.random.RandomState(0))
    assert X_train.shape[0] + fold_in.shape[0] == X.shape[0]
    for u in range(fold_in.shape[0]):
        if holdout[[u]].nnz:  # the held-out ranks are the row's latest
            assert fold_in[[u]].data.max() < holdout[[u]].data.min()
    assert holdout.nnz == int(sum(np.floor(0.2 * np.diff(fold_in.indptr + holdout.indptr))))


def test_x_valid_with_its_timestamps_is_split_by_time(data, monkeypatch):
    X, T = data
    seen = []
    real = SVAE._validation

    def spy(self, fold_in, holdout):
        seen.append((fold_in, holdout))
        return real(self, fold_in, holdout)

    monkeypatch.setattr(SVAE, "_validation", spy)
    model = SVAE(**SMALL).fit(X[:60], timestamps=T[:60], X_valid=X[60:], timestamps_valid=T[60:])
    assert 1 <= model.best_epoch_ <= SMALL["epochs"]
    assert all("valid_ndcg" in r for r in model.history_)
    fold_in, holdout, T_fold_in, _ = temporal_split(X[60:], T[60:], return_timestamps=True)
    SVAE(**SMALL).fit(
        X[:60], timestamps=T[:60], X_valid=(fold_in, holdout), timestamps_valid=T_fold_in
    )
    (a_in, a_out), (b_in, b_out) = seen
    for part in (a_out, b_out):
        np.testing.assert_array_equal(part.toarray() > 0, holdout.toarray() > 0)
    # both fold-in parts carry the same order (their ranks) to the scoring
    ranks = _ranks(fold_in, np.asarray(T_fold_in.data)).toarray()
    for part in (a_in, b_in):
        order_a = np.argsort(np.where(part.toarray() > 0, part.toarray(), np.inf), axis=1)
        order_b = np.argsort(np.where(ranks > 0, ranks, np.inf), axis=1)
        np.testing.assert_array_equal(order_a, order_b)


# -- Pipelines and searches route the timestamps -------------------------------------------------


def test_timestamps_are_requested_by_default():
    routing = SVAE().get_metadata_routing()
    for method in ("fit", "decision_function", "score"):
        assert getattr(routing, method).requests["timestamps"] is True


def test_pipeline_routes_the_timestamps(data, fitted):
    X, T = data
    with sklearn.config_context(enable_metadata_routing=True):
        pipe = Pipeline(
            [("identity", FunctionTransformer(accept_sparse=True)), ("svae", SVAE(**SMALL))]
        )
        pipe.fit(X, timestamps=T)
        expected = fitted.decision_function(X, timestamps=T)
        np.testing.assert_array_equal(pipe.decision_function(X, timestamps=T), expected)
        with pytest.raises(ValueError, match="pass timestamps="):
            pipe.fit(X)
    np.testing.assert_array_equal(
        skcfae.recommend(pipe, X, n=5, timestamps=T), fitted.recommend(X, n=5, timestamps=T)
    )
    legacy = Pipeline([("svae", SVAE(**SMALL))]).fit(X, svae__timestamps=T)  # no routing
    np.testing.assert_array_equal(legacy[-1].decision_function(X, timestamps=T), expected)


@pytest.mark.parametrize("scoring", [None, "temporal"])
def test_grid_search_slices_the_timestamps_with_the_users(data, scoring):
    X, T = data
    cv = UserSplit(n_splits=2, random_state=0)
    scorer = temporal_scorer(k=10) if scoring else None
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            SVAE(**SMALL), {"n_components": [2, 4]}, cv=cv, scoring=scorer, refit=False
        ).fit(X, timestamps=T)
    for split, (train, test) in enumerate(cv.split(X)):
        est = SVAE(**{**SMALL, "n_components": 2}).fit(X[train], timestamps=T[train])
        if scoring:
            expected = temporal_scorer(k=10)(est, X[test], timestamps=T[test])
        else:
            expected = est.score(X[test], timestamps=T[test])
        assert search.cv_results_[f"split{split}_test_score"][0] == pytest.approx(expected)


def test_temporal_scorer_without_routing_says_how(data):
    X, T = data
    with pytest.raises(ValueError, match="enable_metadata_routing"):
        GridSearchCV(
            SVAE(**SMALL),
            {"n_components": [2]},
            cv=UserSplit(2, random_state=0),
            scoring=temporal_scorer(),
            error_score="raise",
        ).fit(X, timestamps=T)


# -- the temporal split and scorer -------------------------------------------------------------


def test_temporal_split_holds_out_the_latest(data):
    X, T = data
    fold_in, holdout, T_fold_in, T_holdout = temporal_split(X, T, return_timestamps=True)
    np.testing.assert_array_equal((fold_in + holdout).toarray(), X.toarray())
    assert fold_in.multiply(holdout).nnz == 0
    counts = np.diff(X.indptr)
    np.testing.assert_array_equal(np.diff(holdout.indptr), np.where(counts >= 5, counts // 5, 0))
    for u in range(X.shape[0]):
        if holdout[[u]].nnz:
            assert T_fold_in[[u]].data.max() <= T_holdout[[u]].data.min()
    for part, times in ((fold_in, T_fold_in), (holdout, T_holdout)):
        np.testing.assert_array_equal(part.indptr, times.indptr)
        np.testing.assert_array_equal(part.indices, times.indices)
        assert times.dtype == np.float64
    assert len(temporal_split(X, T)) == 2


def test_temporal_split_ties_and_missing_times():
    X = np.ones((1, 5))
    fold_in, holdout = temporal_split(X, np.zeros((1, 5)))
    assert holdout.indices.tolist() == [4]  # all at once: the highest item index is "latest"
    times = np.array([[1.0, np.nan, 3.0, 4.0, 5.0]])
    with pytest.raises(ValueError, match=r"no time \(NaN\)"):
        temporal_split(X, times)
    with pytest.raises(ValueError, match="test_size"):
        temporal_split(X, np.zeros((1, 5)), test_size=1.5)


def test_temporal_scorer_by_hand(data):
    X, T = data
    model = Popularity().fit(X)
    fold_in, holdout = temporal_split(X, T)
    users = np.flatnonzero(np.diff(holdout.indptr) > 0)
    scores = model.decision_function(fold_in[users]) - 1e9 * fold_in[users].toarray()
    expected = ndcg_at_k(holdout[users], scores, k=10)
    assert temporal_scorer(k=10)(model, X, timestamps=T) == pytest.approx(expected)
    assert repr(temporal_scorer(k=10)) == (
        "temporal_scorer(metric='ndcg', k=10, holdout_fraction=0.2)"
    )
    with pytest.raises(ValueError, match="no timestamps"):
        temporal_scorer()(model, X)


def test_temporal_scorer_ranks_sequence_and_set_models_on_the_same_split(data, fitted):
    X, T = data
    scorer = temporal_scorer(k=10)
    fold_in, holdout, T_fold_in, _ = temporal_split(X, T, return_timestamps=True)
    users = np.flatnonzero(np.diff(holdout.indptr) > 0)
    top = fitted.recommend(fold_in[users], n=10, timestamps=T_fold_in[users])
    from skcfae._ranking import ndcg_from_topk

    assert scorer(fitted, X, timestamps=T) == pytest.approx(
        float(np.mean(ndcg_from_topk(top, holdout[users], 10)))
    )
    assert fitted.score(X, timestamps=T) == temporal_scorer(k=100)(fitted, X, timestamps=T)
    vae = MultVAE(n_components=4, hidden_layer_sizes=(8,), epochs=2, random_state=0).fit(X)
    assert 0.0 <= scorer(vae, X, timestamps=T) <= 1.0
