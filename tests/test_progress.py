"""Progress output: the engine's bars and end-of-training lines, ItemGrouper's timed phase lines,
the bar over recommend batches, and silence at verbose=0 (STYLE.md §9)."""

import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from skcfae import EASE, ItemGrouper, MultDAE, SparseWideDAE
from skcfae.datasets import make_interactions
from skcfae.nn import Phase, Plan, TrainConfig, Validation, train, user_rows
from skcfae.nn._losses import multinomial_nll
from skcfae.nn._modules import MultiLayerAE

CPU = torch.device("cpu")


def _X(n_rows=64, n_cols=20, seed=0):
    X = sp.random(n_rows, n_cols, density=0.3, format="csr", random_state=seed)
    return sp.csr_array((X > 0).astype(np.float32))


def _loss(module, batch, state):
    logits, _, _ = module(batch, state.generator)
    return multinomial_nll(logits, batch)


def _phase(name="train", **kw):
    gen = torch.Generator().manual_seed(0)
    module = MultiLayerAE(20, (), 4, variational=True, dropout=0.0, generator=gen)
    return Phase(name, module, user_rows(_X(), CPU), _loss, **kw)


def _plan(scores, *, epochs, patience, verbose=1, phases=None, label=None):
    config = TrainConfig(
        epochs=epochs,
        batch_size=32,
        learning_rate=1e-2,
        device=CPU,
        seed=0,
        n_iter_no_change=patience,
        verbose=verbose,
        desc="Model",
    )
    scores = iter(scores)
    validation = Validation("ndcg", lambda m: next(scores), label=label)
    return Plan(config, phases or [_phase()], validation)


def _bar_final_states(err, desc):
    """The last state drawn of each bar labelled ``desc:`` (tqdm redraws a bar after '\\r')."""
    finals = []
    for line in err.split("\n"):
        drawn = [part for part in line.split("\r") if part.strip()]
        if drawn and drawn[-1].startswith(f"{desc}:") and "|" in drawn[-1]:
            finals.append(drawn[-1])
    return finals


# -- the engine ----------------------------------------------------------------------------
def test_early_stop_line_names_the_stop_and_the_best_epoch(capsys):
    # best at epoch 2, then 2 epochs without improvement: stops at 4 of 10
    result = train(_plan([0.1, 0.4, 0.3, 0.2, 0.9], epochs=10, patience=2, label="NDCG@100"))
    assert len(result.history) == 4 and result.best_epoch == 2
    err = capsys.readouterr().err
    assert (
        "Model: stopped at epoch 4 (no improvement for 2 epochs), best epoch 2 "
        "(validation NDCG@100 0.4)" in err
    )


def test_a_run_to_the_cap_says_so_and_names_the_best_epoch(capsys):
    train(_plan([0.1, 0.3, 0.2], epochs=3, patience=5))
    err = capsys.readouterr().err
    # no label: the validation's name
    assert "Model: reached its last epoch, 3, without an early stop; best epoch 2" in err
    assert "(validation ndcg 0.3)" in err


def test_the_epoch_bar_stays_on_screen_at_verbose_1(capsys):
    train(_plan([0.1, 0.2, 0.3], epochs=3, patience=None))
    finals = _bar_final_states(capsys.readouterr().err, "Model")
    assert len(finals) == 1
    assert "100%" in finals[0] and "3/3" in finals[0]
    assert "valid_ndcg=0.3" in finals[0]  # the latest metrics stay with it


def test_the_bar_records_where_early_stopping_stopped(capsys):
    train(_plan([0.5, 0.4, 0.3, 0.2], epochs=10, patience=2))
    (final,) = _bar_final_states(capsys.readouterr().err, "Model")
    assert "3/10" in final


def test_one_bar_per_phase_named_by_the_phase(capsys):
    # phases without a desc of their own: the config's desc and the phase's name
    phases = [_phase("pretrain", validate=False), _phase("finetune")]
    result = train(_plan([0.1, 0.3, 0.2], epochs=3, patience=None, phases=phases))
    err = capsys.readouterr().err
    assert len(_bar_final_states(err, "Model pretrain")) == 1
    assert len(_bar_final_states(err, "Model finetune")) == 1
    # the line numbers the epochs as history_ does: the plan's numbering
    assert result.best_epoch == 5 and [r["epoch"] for r in result.history] == list(range(1, 7))
    assert "Model finetune: reached its last epoch, 6, without an early stop; best epoch 5" in err
    assert "Model pretrain: reached" not in err  # not validated: no best epoch to report


def test_a_phase_desc_names_its_bar(capsys):
    phases = [_phase("a", validate=False, desc="Custom stage"), _phase("b")]
    train(_plan([0.1, 0.2, 0.3], epochs=2, patience=None, phases=phases))
    err = capsys.readouterr().err
    assert _bar_final_states(err, "Custom stage") and _bar_final_states(err, "Model b")


def test_verbose_2_prints_epoch_lines_and_the_stop_line_but_no_bar(capsys):
    train(_plan([0.5, 0.4, 0.3], epochs=10, patience=2, verbose=2))
    captured = capsys.readouterr()
    assert len([ln for ln in captured.out.splitlines() if ln.startswith("epoch")]) == 3
    assert "Model: stopped at epoch 3 (no improvement for 2 epochs), best epoch 1" in captured.err
    assert "|" not in captured.err  # no bar


def test_model_fit_reports_its_early_stop(planted, capsys):
    model = MultDAE(
        n_components=8,
        epochs=60,
        early_stopping=True,
        n_iter_no_change=3,
        verbose=1,
        random_state=0,
        device="cpu",
    ).fit(planted[0])
    err = capsys.readouterr().err
    last, best = model.history_[-1]["epoch"], model.best_epoch_
    score = model.history_[best - 1]["valid_ndcg"]
    assert last < 60  # it did stop early on this data
    assert (
        f"MultDAE: stopped at epoch {last} (no improvement for 3 epochs), best epoch {best} "
        f"(validation NDCG@100 {score:.4g})" in err
    )
    (final,) = _bar_final_states(err, "MultDAE")
    assert f"{last}/60" in final


def test_stacked_sw_dae_shows_a_bar_per_phase(capsys):
    X = make_interactions(200, 60, n_groups=6, random_state=0)
    SparseWideDAE(
        K=12, R=2, F=6, stacked_sizes=(6,), epochs=2, verbose=1, random_state=0, device="cpu"
    ).fit(X)
    err = capsys.readouterr().err
    for desc in ("SparseWideDAE pretrain", "SparseWideDAE layer 2", "SparseWideDAE finetune"):
        (final,) = _bar_final_states(err, desc)
        assert "2/2" in final


# -- ItemGrouper -----------------------------------------------------------------------------
_TIMED = r" \(\d+\.\d\d s\)$"


def _grouper_lines(err):
    return [line for line in err.splitlines() if line.startswith("ItemGrouper: ")]


def test_item_grouper_reports_each_phase_with_its_time(capsys):
    X = make_interactions(400, 600, n_groups=10, random_state=0)  # > 500 items: ARPACK
    grouper = ItemGrouper(K=20, random_state=0, verbose=1).fit(X)
    lines = _grouper_lines(capsys.readouterr().err)
    assert len(lines) == 4 and all(re.search(_TIMED, line) for line in lines)
    cooc, eig, km, member = lines
    assert "co-occurrence Laplacian" in cooc and "600 items" in cooc
    assert f"{X.nnz:,} nonzeros" in cooc and "matrix-free" in cooc
    assert "ARPACK" in eig and "F=20" in eig
    assert "k-means (full" in km and "K=20" in km
    assert f"{grouper.n_iter_} iterations" in km and "inertia" in km
    assert "R=2 nearest of the K=20 groups" in member and "1,200 item-group links" in member


def test_item_grouper_names_the_dense_solver_and_the_cache(tmp_path, capsys):
    X = make_interactions(200, 60, n_groups=6, random_state=0)
    ItemGrouper(K=6, method="svd", random_state=0, verbose=1).fit(X)
    lines = _grouper_lines(capsys.readouterr().err)
    assert len(lines) == 5  # the dense matrix is formed in a step of its own
    assert "co-occurrence X^T X" in lines[0] and "60 x 60" in lines[1]
    assert "LAPACK eigh" in lines[2] and "F=6" in lines[2]
    memory = str(tmp_path / "cache")
    ItemGrouper(K=6, memory=memory, random_state=0, verbose=1).fit(X)
    capsys.readouterr()
    cached = ItemGrouper(K=6, memory=memory, random_state=0, verbose=1).fit(X)
    lines = _grouper_lines(capsys.readouterr().err)
    assert cached.embedding_cached_
    assert "loaded from memory" in lines[0] and len(lines) == 3


def test_item_grouper_verbose_is_a_parameter_that_changes_no_result():
    X = make_interactions(200, 60, n_groups=6, random_state=0)
    quiet = ItemGrouper(K=6, random_state=0).fit(X)
    loud = ItemGrouper(K=6, random_state=0, verbose=1).fit(X)
    assert quiet.get_params()["verbose"] == 0
    assert (quiet.membership_ != loud.membership_).nnz == 0
    with pytest.raises(ValueError, match="'verbose' parameter of ItemGrouper"):
        ItemGrouper(K=6, verbose=-1).fit(X)


# -- recommend ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_dae(planted):
    return MultDAE(n_components=4, epochs=1, batch_size=10, random_state=0, device="cpu").fit(
        planted[0]
    )


def test_recommend_shows_a_bar_over_batches_at_verbose_1(small_dae, planted, capsys):
    small_dae.set_params(verbose=1)
    try:
        capsys.readouterr()
        small_dae.recommend(planted[1][:35], n=5)  # 4 batches of 10
        err = capsys.readouterr().err
        assert "MultDAE.recommend:" in err and "/4 [" in err
        small_dae.decision_function(planted[1][:35])
        assert "MultDAE.decision_function:" in capsys.readouterr().err
        small_dae.recommend(planted[1][:10], n=5)  # one batch: no bar
        assert capsys.readouterr().err == ""
    finally:
        small_dae.set_params(verbose=0)


def test_estimators_without_verbose_stay_silent(planted, capsys):
    EASE(lam=10.0).fit(planted[0]).recommend(sp.vstack([planted[1]] * 5), n=5)  # 500 users
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# -- verbose=0 --------------------------------------------------------------------------------
def test_verbose_0_prints_nothing(planted, capsys):
    model = MultDAE(
        n_components=4,
        epochs=5,
        batch_size=10,
        early_stopping=True,
        n_iter_no_change=1,
        random_state=0,
        device="cpu",
    ).fit(planted[0])
    model.recommend(planted[1], n=5)
    ItemGrouper(K=20, random_state=0).fit(planted[0])
    train(_plan([0.1, 0.2], epochs=2, patience=None, verbose=0))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
