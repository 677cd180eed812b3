"""Sw-dae, Fc-dae and relatives: sparse layers against dense references, the estimators."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone

from skcfae.datasets import make_interactions
from skcfae.models import FCDAE, SparseWideDAE, matching_width, weight_diagnostics
from skcfae.nn import SparseRows, _native
from skcfae.nn._sparse import SparseDecoder, SparseEncoder, _item_major

FAST = dict(epochs=40, batch_size=100, learning_rate=1e-2, random_state=0, device="cpu")


def _pattern(n_items=13, n_hidden=7, density=0.4, seed=0):
    return sp.csr_array(
        (sp.random(n_items, n_hidden, density=density, random_state=seed) > 0).astype(np.float32)
    )


def _dense(layer, pattern):
    W = torch.zeros(pattern.shape)
    rows, cols = pattern.nonzero()
    W[torch.from_numpy(rows), torch.from_numpy(cols)] = layer.values
    return W


def _uniform_pattern(n_items=13, n_hidden=7, R=3, seed=0):
    rng = np.random.RandomState(seed)
    cols = np.sort(np.stack([rng.choice(n_hidden, R, replace=False) for _ in range(n_items)]), 1)
    return sp.csr_array(
        (np.ones(n_items * R, np.float32), cols.ravel(), np.arange(0, n_items * R + 1, R)),
        shape=(n_items, n_hidden),
    )


@pytest.fixture(params=["torch", "compiled"])
def kernels(request, monkeypatch):
    """Run a test on the torch kernels and on the compiled ones, the latter split over three
    threads however small the product (uneven item ranges, one accumulator each)."""
    if request.param == "torch":
        monkeypatch.setenv("SKCFAE_NATIVE", "0")
        yield request.param
        return
    monkeypatch.delenv("SKCFAE_NATIVE", raising=False)
    if _native.library() is None:
        pytest.skip("no C compiler here: the compiled kernels are unavailable")
    monkeypatch.setattr(_native, "_MIN_WORK", 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    yield request.param
    torch.set_num_threads(threads)


@pytest.mark.parametrize("uniform", [False, True], ids=["irregular", "R-per-item"])
@pytest.mark.parametrize("dense_input_above", [1.0, 0.0], ids=["scatter", "dense-input"])
@pytest.mark.parametrize("n_users", [4, 70])  # 70: two tiles of 32 users and a partial one
def test_sparse_encoder_equals_masked_dense(dense_input_above, uniform, n_users, kernels):
    pattern = _uniform_pattern() if uniform else _pattern()
    assert not uniform or np.all(np.diff(pattern.indptr) == 3)
    X = sp.csr_array(sp.random(80, 13, density=0.4, random_state=1, dtype=np.float32))
    rows = torch.randperm(80, generator=torch.Generator().manual_seed(0))[:n_users]
    batch = SparseRows(X, torch.device("cpu")).batch(rows)
    batch = batch.with_values(batch.vals * (torch.arange(len(batch.vals)) % 3 > 0))  # dropped
    layer = SparseEncoder(
        pattern, torch.Generator().manual_seed(0), dense_input_above=dense_input_above
    )
    out = layer(batch)
    ref = batch.dense() @ _dense(layer, pattern) + layer.bias
    torch.testing.assert_close(out, ref)
    G = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    got = torch.autograd.grad((out * G).sum(), [layer.values, layer.bias])
    want = torch.autograd.grad((ref * G).sum(), [layer.values, layer.bias])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_sparse_encoder_counts_kept_entries_on_the_compiled_kernels(kernels):
    # 6% of the cells stored, 1/3 of them kept by dropout: above the torch kernels' 2% of
    # stored entries, below the compiled kernels' 12% of nonzero ones
    X = sp.csr_array(sp.random(50, 100, density=0.06, random_state=0, dtype=np.float32))
    batch = SparseRows(X, torch.device("cpu")).batch(torch.arange(50))
    batch = batch.with_values(batch.vals * (torch.arange(len(batch.vals)) % 3 == 0))
    layer = SparseEncoder(_uniform_pattern(100, 20, 2), torch.Generator().manual_seed(0))
    assert layer._dense_input(batch) is (kernels == "torch")
    X = sp.csr_array(sp.random(50, 100, density=0.2, random_state=0, dtype=np.float32))
    dense = SparseRows(X, torch.device("cpu")).batch(torch.arange(50))
    assert layer._dense_input(dense)
    assert not SparseEncoder(
        _uniform_pattern(100, 20, 2), torch.Generator(), dense_input_above=0.5
    )._dense_input(dense)


@pytest.mark.parametrize("n_users", [6, 64, 160])  # 64: whole tiles; 160: 128 + 32
def test_sparse_encoder_on_dense_input_has_input_gradient(n_users, kernels):
    pattern = _pattern(seed=4)
    layer = SparseEncoder(pattern, torch.Generator().manual_seed(0))
    x = torch.rand(n_users, 13, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = layer(x)
    ref = x @ _dense(layer, pattern) + layer.bias
    torch.testing.assert_close(out, ref)
    G = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    got = torch.autograd.grad((out * G).sum(), [x, layer.values])
    want = torch.autograd.grad((ref * G).sum(), [x, layer.values])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("n_users", [5, 300])  # 300: several user slices and tiles
def test_sparse_decoder_equals_masked_dense(n_users, kernels):
    pattern = _pattern(seed=3)
    layer = SparseDecoder(pattern, torch.Generator().manual_seed(0))
    H = torch.randn(n_users, 7, generator=torch.Generator().manual_seed(1), requires_grad=True)
    out = layer(H)
    ref = H @ _dense(layer, pattern).T + layer.bias
    torch.testing.assert_close(out, ref)
    # the bias is added last, as by a separate addition: the same to the bit
    assert torch.equal(out, _item_major(layer.pattern, layer.values, H) + layer.bias)
    G = torch.randn(out.shape, generator=torch.Generator().manual_seed(2))
    got = torch.autograd.grad((out * G).sum(), [H, layer.values, layer.bias])
    want = torch.autograd.grad((ref * G).sum(), [H, layer.values, layer.bias])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("native", ["0", "1"])
def test_sparse_gradients_accumulate_and_copies_leave_the_buffers_behind(native, monkeypatch):
    """The SDDMM writes into a cached buffer (torch kernels; the compiled ones cache their
    thread ranges): two backward passes still add up (no aliasing), and a deep copy or a
    pickle of a trained layer does not carry the cache."""
    import copy

    monkeypatch.setenv("SKCFAE_NATIVE", native)
    cache = "_ranges" if native == "1" and _native.library() is not None else "_sddmm"

    pattern = _pattern(seed=3)
    layer = SparseDecoder(pattern, torch.Generator().manual_seed(0))
    H = torch.randn(5, 7, generator=torch.Generator().manual_seed(1))
    layer(H).sum().backward()
    once = layer.values.grad.clone()
    layer(H).sum().backward()
    torch.testing.assert_close(layer.values.grad, 2 * once)
    assert cache in layer.pattern.__dict__
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert cache not in other.pattern.__dict__
        other.zero_grad()
        other(H).sum().backward()
        torch.testing.assert_close(other.values.grad, once)


def test_sparse_layer_memory_scales_with_connections():
    """The parameters are the connections: n_items x R, not n_items x K."""
    n_items, K, R = 2000, 500, 5
    rng = np.random.RandomState(0)
    cols = np.sort(np.stack([rng.choice(K, R, replace=False) for _ in range(n_items)]), axis=1)
    pattern = sp.csr_array(
        (np.ones(n_items * R, np.float32), cols.ravel(), np.arange(0, n_items * R + 1, R)),
        shape=(n_items, K),
    )
    layer = SparseDecoder(pattern, torch.Generator().manual_seed(0))
    assert layer.values.numel() == n_items * R
    assert all(b.numel() <= n_items * R + n_items + K + 1 for b in layer.buffers())


@pytest.fixture(scope="module")
def grouped():
    """Planted data carrying its planted groups, as an ItemGrouper would pass them on."""
    X, item_groups, _ = make_interactions(
        n_users=600,
        n_items=150,
        n_groups=15,
        density=0.06,
        noise=0.05,
        popularity_exponent=0.7,
        random_state=0,
        return_groups=True,
    )

    class Carrying(sp.csr_array):
        pass

    train = Carrying(X[:500])
    train.membership = item_groups
    return train, item_groups, X[500:]


def test_membership_from_x_becomes_the_connectivity(grouped):
    train, item_groups, _ = grouped
    model = SparseWideDAE(epochs=1, random_state=0, device="cpu").fit(train)
    assert model.grouper_ is None
    assert (model.membership_ != item_groups).nnz == 0
    n_items, K = item_groups.shape
    # encoder + decoder connections + biases
    assert model.n_parameters_ == 2 * item_groups.nnz + K + n_items


def test_swdae_learns_and_pickles(grouped):
    from skcfae import Popularity
    from skcfae.metrics import ndcg_at_k
    from skcfae.model_selection import fold_in_split

    train, _, test = grouped
    fold_in, holdout = fold_in_split(test, random_state=0)
    model = SparseWideDAE(**{**FAST, "epochs": 60}).fit(train)
    masked = model.decision_function(fold_in) - 1e9 * fold_in.toarray()
    pop = Popularity().fit(train).decision_function(fold_in) - 1e9 * fold_in.toarray()
    assert ndcg_at_k(holdout, masked, k=20) > ndcg_at_k(holdout, pop, k=20) + 0.05
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        again.decision_function(fold_in), model.decision_function(fold_in)
    )
    a = clone(model).fit(train).decision_function(fold_in)
    np.testing.assert_array_equal(a, model.decision_function(fold_in))


@pytest.mark.parametrize("loss", ["multinomial", "logistic"])
def test_both_likelihoods_train(grouped, loss):
    train, _, _ = grouped
    model = SparseWideDAE(loss=loss, **{**FAST, "epochs": 5}).fit(train)
    losses = [h["train_loss"] for h in model.history_]
    assert losses[-1] < losses[0]


def test_membership_item_count_checked(grouped):
    train, _, _ = grouped
    bad = type(train)(train[:, :100])
    bad.membership = train.membership
    with pytest.raises(ValueError, match="membership carried by X has 150 items"):
        SparseWideDAE(epochs=1).fit(bad)


def test_fcdae_prune_keeps_fraction_and_retrains(grouped):
    train, _, test = grouped
    model = FCDAE(K=10, prune=0.9, prune_epochs=3, **{**FAST, "epochs": 3}).fit(train)
    n_items = train.shape[1]
    for pattern in (model.encoder_pattern_, model.decoder_pattern_):
        assert pattern.shape == (n_items, 10)
        assert abs(pattern.nnz - 0.1 * n_items * 10) <= 2
    assert [h["phase"] for h in model.history_] == ["dense"] * 3 + ["retrain"] * 3
    assert (
        model.n_parameters_
        == model.encoder_pattern_.nnz + model.decoder_pattern_.nnz + 10 + n_items
    )
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.decision_function(test), model.decision_function(test))


def test_fcdae_prune_starts_from_trained_weights(grouped):
    """Right after pruning, the kept connections hold the dense network's trained values."""
    train, _, _ = grouped
    dense = FCDAE(K=10, **{**FAST, "epochs": 3}).fit(train)
    pruned = FCDAE(K=10, prune=0.5, **{**FAST, "epochs": 3})
    pruned.n_items_in_ = train.shape[1]
    sparse = pruned._pruned(dense.module_)
    W = dense.module_.encoders[0].weight.detach()
    rows, cols = pruned.encoder_pattern_.nonzero()
    np.testing.assert_array_equal(sparse.encoders[0].values.detach().numpy(), W[rows, cols].numpy())
    kept = np.abs(W[rows, cols].numpy())
    assert kept.min() >= np.median(np.abs(W.numpy())) - 1e-7


def test_fcdae_l1_shrinks_activations(grouped):
    train, _, test = grouped
    plain = FCDAE(K=10, **FAST).fit(train)
    sparse = FCDAE(K=10, l1_activation=5.0, **FAST).fit(train)
    from skcfae.nn import SparseRows as Rows

    batch = Rows(test, torch.device("cpu")).batch(torch.arange(test.shape[0]))
    with torch.no_grad():
        h_plain = plain.module_.encode(batch).abs().mean()
        h_sparse = sparse.module_.encode(batch).abs().mean()
    assert h_sparse < 0.5 * h_plain


def test_diagnostics_recorded_per_epoch(grouped):
    train, _, _ = grouped
    model = SparseWideDAE(record_diagnostics=True, **{**FAST, "epochs": 2}).fit(train)
    for record in model.history_:
        for key in ("spectral_norm_enc0", "stable_rank_dec0", "generalization_bound"):
            assert np.isfinite(record[key]) and record[key] > 0


def test_weight_diagnostics_hand_computed():
    W = np.diag([3.0, 1.0, 1.0])
    sigma, srank = weight_diagnostics(W)
    assert sigma == pytest.approx(3.0)
    assert srank == pytest.approx(11.0 / 9.0)
    big = sp.random(600, 500, density=0.01, random_state=0, format="csr")
    sigma_sparse, srank_sparse = weight_diagnostics(big)
    assert sigma_sparse == pytest.approx(np.linalg.norm(big.toarray(), 2), rel=1e-3)
    assert 1.0 <= srank_sparse <= 500


def test_matching_width_equal_parameters():
    n_items = 3000
    target = 1201 * n_items + 361_600  # the paper's Mult-VAE [I-600-200-600-I]
    K = matching_width(n_items, target)
    R = round(0.1 * K)
    n_params = 2 * n_items * R + K + n_items
    assert abs(n_params - target) / target < 0.01


def test_k_larger_than_items_is_a_clear_error():
    X = make_interactions(100, 30, n_groups=3, random_state=0)
    with pytest.raises(ValueError, match="k-means cannot place more centroids than items"):
        SparseWideDAE(K=31, epochs=1).fit(X)


def test_pipeline_grid_search_over_K_and_R_in_parallel():
    """The design card: Pipeline(ItemGrouper, SparseWideDAE) tuned by GridSearchCV over the
    grouper's K and R with UserSplit and ndcg_scorer, n_jobs=2."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from skcfae import ItemGrouper, recommend
    from skcfae.metrics import ndcg_scorer
    from skcfae.model_selection import UserSplit

    X = make_interactions(
        n_users=400, n_items=120, n_groups=12, density=0.06, noise=0.05, random_state=1
    )
    pipe = Pipeline(
        [
            ("group", ItemGrouper(K=20, F=10, random_state=0)),
            (
                "dae",
                SparseWideDAE(
                    epochs=5, batch_size=100, learning_rate=1e-2, device="cpu", random_state=0
                ),
            ),
        ]
    )
    search = GridSearchCV(
        pipe,
        {"group__K": [20, 40], "group__R": [2, 4]},
        cv=UserSplit(n_splits=2, random_state=0),
        scoring=ndcg_scorer(k=20),
        n_jobs=2,
    ).fit(X)
    assert set(search.cv_results_["param_group__K"]) == {20, 40}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    best = search.best_estimator_
    K, R = search.best_params_["group__K"], search.best_params_["group__R"]
    assert best[-1].membership_.shape == (120, K)
    assert np.all(np.diff(best[-1].membership_.indptr) == R)
    top = recommend(best, X[:7], n=5)
    assert top.shape == (7, 5)
    np.testing.assert_array_equal(top, best[-1].recommend(X[:7], n=5))


def test_standalone_builds_its_own_groups():
    X = make_interactions(n_users=300, n_items=80, n_groups=8, random_state=0)
    model = SparseWideDAE(K=16, R=3, F=8, epochs=2, random_state=0, device="cpu").fit(X)
    assert model.grouper_ is not None and model.grouper_.K == 16
    assert model.membership_.shape == (80, 16)
    assert np.all(np.diff(model.membership_.indptr) == 3)


def test_stacked_swdae_greedy_then_finetuned(grouped):
    """§3.4: a second Sw-dae layer grouped on the first layer's codes, stacked, fine-tuned."""
    train, _, test = grouped
    model = SparseWideDAE(stacked_sizes=(6,), **{**FAST, "epochs": 3}).fit(train)
    K = train.membership.shape[1]
    (M2,) = model.stacked_memberships_
    assert M2.shape == (K, 6) and np.all(np.diff(M2.indptr) == 1)  # R = 10% of 6, at least 1
    assert [len(model.module_.encoders), len(model.module_.decoders)] == [2, 2]
    phases = ["pretrain"] * 3 + ["pretrain_layer2"] * 3 + ["finetune"] * 3
    assert [h["phase"] for h in model.history_] == phases
    assert [h["epoch"] for h in model.history_] == list(range(1, 10))
    assert model.n_parameters_ == 2 * (train.membership.nnz + M2.nnz) + K + 6 + K + 150
    assert not hasattr(model, "_X_train")
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.decision_function(test), model.decision_function(test))


def test_stacked_starts_from_pretrained_weights(grouped):
    train, _, _ = grouped
    model = SparseWideDAE(stacked_sizes=(6,), **{**FAST, "epochs": 2})
    model.fit(train)
    first = SparseWideDAE(**{**FAST, "epochs": 2}).fit(train)
    # the greedy first layer is the one-layer model; fine-tuning then moves it
    assert model.history_[1]["train_loss"] == first.history_[1]["train_loss"]


@pytest.mark.parametrize(
    "n_users, batch_size, learning_rate, expected",
    [(24, 6, 0.2, 100), (24, 24, 0.2, 150), (24, 24, 0.3, 100), (24, 12, 0.1, 150)],
)
def test_auto_epochs_give_the_paper_epochs_or_a_minimum_of_updates(
    n_users, batch_size, learning_rate, expected
):
    # "auto" = max(100 epochs, ceil(30 / learning_rate updates / steps per epoch))
    X = make_interactions(n_users, 20, n_groups=2, density=0.3, random_state=0)
    model = SparseWideDAE(
        K=4,
        R=1,
        F=2,
        epochs="auto",
        batch_size=batch_size,
        learning_rate=learning_rate,
        early_stopping=False,
        random_state=0,
        device="cpu",
    ).fit(X)
    assert len(model.history_) == expected


@pytest.mark.parametrize(("learning_rate", "updates"), [(1e-2, 3000), (3e-3, 10000), (1e-3, 30000)])
def test_auto_updates_scale_with_the_learning_rate(learning_rate, updates):
    assert SparseWideDAE(learning_rate=learning_rate)._auto_updates() == updates
    assert FCDAE(learning_rate=learning_rate)._auto_updates() == updates


def test_epochs_rejects_other_strings():
    X = make_interactions(30, 20, n_groups=2, density=0.3, random_state=0)
    with pytest.raises(ValueError, match="epochs"):
        SparseWideDAE(K=4, R=1, epochs="many").fit(X)


def test_grouping_parameters_unused_after_a_grouper_warn(grouped):
    from skcfae.exceptions import UnusedParameterWarning

    train, _, _ = grouped
    with pytest.warns(UnusedParameterWarning, match="K=7.*group__K"):
        SparseWideDAE(K=7, **{**FAST, "epochs": 1}).fit(train)
    # F and method still group the hidden units of a stacked Sw-dae: no warning for them
    SparseWideDAE(F=4, stacked_sizes=(4,), **{**FAST, "epochs": 1}).fit(train)
    with pytest.warns(UnusedParameterWarning, match="F=4"):
        SparseWideDAE(F=4, **{**FAST, "epochs": 1}).fit(train)


def test_auto_patience_is_at_least_200_updates_and_10_epochs():
    """n_iter_no_change="auto" (the default): max(10, ceil(200 / updates per epoch))."""
    model = SparseWideDAE(batch_size=128)
    assert model.n_iter_no_change == "auto"
    assert model._patience(4349) == 10  # ml-1m's training users: 34 updates per epoch
    assert model._patience(440) == 50  # ml-latest-small's: 4
    assert model._patience(1) == 200
    assert SparseWideDAE(n_iter_no_change=7)._patience(440) == 7
    assert SparseWideDAE(n_iter_no_change=None)._patience(440) is None


def test_bad_patience_is_refused():
    X = make_interactions(60, 30, random_state=0)
    with pytest.raises(ValueError, match="n_iter_no_change"):
        SparseWideDAE(K=5, n_iter_no_change="fast", device="cpu").fit(X)
