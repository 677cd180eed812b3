"""The compiled CPU kernels of the sparse layers: built on first use, cached, and replaced by
the torch kernels whenever they cannot be built (the layers' results are checked against
masked dense products on both kernels in tests/test_swdae.py)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skcfae.datasets import make_interactions
from skcfae.models import SparseWideDAE
from skcfae.nn import _native

needs_compiler = pytest.mark.skipif(
    _native.library() is None, reason="no C compiler with OpenMP here"
)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """An empty build cache in tmp_path and no library loaded yet in this process."""
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setenv("SKCFAE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SKCFAE_NATIVE", raising=False)
    return tmp_path


def test_without_a_compiler_the_layers_fall_back_to_torch(fresh, monkeypatch):
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    monkeypatch.setattr(_native, "_cache_dirs", lambda: [fresh])
    assert _native.library() is None
    assert not _native.available(torch.zeros(1))
    assert list(fresh.iterdir()) == []  # no half-written library left behind
    X = make_interactions(60, 40, density=0.2, random_state=0)
    model = SparseWideDAE(K=8, R=3, epochs=2, random_state=0).fit(X)
    assert np.isfinite(model.history_[-1]["train_loss"])


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("SKCFAE_NATIVE", "0")
    assert _native.library() is None


@needs_compiler
def test_built_once_then_loaded_from_the_cache(fresh):
    assert _native.library() is not None
    built = sorted(fresh.glob("kernels-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    _native._state.clear()  # as in a new process
    assert _native.library() is not None
    assert [p.stat().st_mtime_ns for p in fresh.glob("kernels-*.so")] == [stamp]


@needs_compiler
def test_other_dtypes_and_devices_take_the_torch_kernels():
    assert _native.available(torch.zeros(2), torch.zeros(3))
    assert not _native.available(torch.zeros(2), torch.zeros(3, dtype=torch.float64))
    assert not _native.available(torch.zeros(2, device="meta"))


@needs_compiler
def test_item_ranges_balance_connections_and_cover_every_item():
    from skcfae.nn._sparse import _Pattern

    counts = np.array([50, 1, 1, 1, 1, 1, 1, 44])  # one heavy item at each end
    indptr = np.concatenate([[0], np.cumsum(counts)])
    cols = np.concatenate([np.arange(c) for c in counts])
    p = _Pattern(sp.csr_array((np.ones(indptr[-1]), cols, indptr), shape=(8, 50)))
    n, cuts = _native._item_ranges(p, 2)
    assert n == 2 and cuts.tolist() == [0, 1, 8]
    n, cuts = _native._item_ranges(p, 20)  # more threads than items: no empty range
    assert cuts[0] == 0 and cuts[-1] == 8 and bool(torch.all(torch.diff(cuts) > 0))


@needs_compiler
def test_a_fit_is_the_same_on_both_kernels(monkeypatch):
    """Same seed, same data: the compiled and the torch kernels train the same model (up to
    float rounding: sums run in another order)."""
    X = make_interactions(300, 120, density=0.05, random_state=0)
    fits = {}
    for native in ("1", "0"):
        monkeypatch.setenv("SKCFAE_NATIVE", native)
        model = SparseWideDAE(K=40, R=4, epochs=3, batch_size=64, random_state=0)
        fits[native] = model.fit(X)
    a, b = (np.array([h["train_loss"] for h in m.history_]) for m in fits.values())
    np.testing.assert_allclose(a, b, rtol=1e-4)
    np.testing.assert_allclose(
        fits["1"].decision_function(X[:20]), fits["0"].decision_function(X[:20]), atol=1e-4
    )


@needs_compiler
@pytest.mark.parametrize("shape", [(1, 3), (7, 13), (40, 515)])  # sizes off multiples of 8
@pytest.mark.parametrize("column_major", [False, True])  # the sparse decoders' logits
def test_logistic_pass_matches_torch_in_float64(shape, column_major, monkeypatch):
    monkeypatch.setattr(_native, "_MIN_WORK", 1)  # split over 3 threads however small
    threads = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        g = torch.Generator().manual_seed(0)
        z = torch.randn(shape, generator=g) * 20
        z.view(-1)[:3] = torch.tensor([0.0, 1e-9, -85.0])[: z.numel()]
        if column_major:
            z = z.t().contiguous().t()
        sig, total = _native.logistic(z)
        # scaled (the loss's 1 / b): rounded once, as a float32 multiplication of the sigmoid
        scaled, again = _native.logistic(z, 1 / 3)
    finally:
        torch.set_num_threads(threads)
    assert sig.stride() == z.stride()
    z64 = z.double()
    torch.testing.assert_close(sig.double(), torch.sigmoid(z64), rtol=3e-7, atol=1e-30)
    torch.testing.assert_close(total, torch.nn.functional.softplus(z64).sum(), rtol=1e-7, atol=0)
    assert torch.equal(scaled, sig * torch.tensor(1 / 3)) and torch.equal(again, total)


@needs_compiler
def test_logistic_pass_propagates_nan_and_inf():
    sig, total = _native.logistic(torch.tensor([[1.0, float("inf"), -float("inf"), 2.0]]))
    assert total.item() == float("inf")
    assert sig[0, 1].item() == 1.0 and 0.0 <= sig[0, 2].item() < 1e-37
    sig, total = _native.logistic(torch.tensor([[1.0, float("nan"), 2.0]]))
    assert torch.isnan(total) and torch.isnan(sig[0, 1]) and not torch.isnan(sig[0, 0])
    assert _native.logistic(torch.zeros(4, 6)[:, ::2]) is None  # strided: torch's kernels
