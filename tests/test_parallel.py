"""Searches and chunked scoring on a cluster: Dask (a 2-worker LocalCluster) and Ray.

A search on the cluster must give exactly what the default backend gives (same best_params_,
same scores, bit for bit: every fit is seeded and single-threaded on both sides), the big X
must travel once, not with every task, and the workers must not oversubscribe their cores.
Skipped, with the reason, when Dask or Ray is not installed (the dev extra has both).
"""

import contextlib
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from skcfae import EASE, ItemGrouper, SparseWideDAE, recommend, recommend_chunked
from skcfae.datasets import make_interactions
from skcfae.model_selection import UserSplit
from skcfae.parallel import set_threads, thread_counts

NO_DASK = "dask.distributed is not installed: pip install 'skcfae[dask]' (the dev extra has it)"
NO_RAY = (
    "ray is not installed: pip install 'skcfae[ray]' (not in the dev extra: starting its "
    "runtime costs 1-3 minutes)"
)

_NN = dict(epochs=2, batch_size=50, early_stopping=False, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason=NO_DASK)
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    try:
        with distributed.Client(cluster) as c:
            yield c
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def X():
    return make_interactions(n_users=200, n_items=60, n_groups=6, density=0.1, random_state=0)


def _pipeline(**group):
    grouper = ItemGrouper(K=6, R=2, F=6, random_state=0, **group)
    return Pipeline([("group", grouper), ("dae", SparseWideDAE(**_NN))])


@contextlib.contextmanager
def _one_thread():
    """The reference run, single-threaded as the workers are (torch and BLAS)."""
    before = thread_counts()["torch"]
    import torch

    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(before)


def _cv():
    return UserSplit(n_splits=2, random_state=0)


def _run(kind, estimator, X):
    """The search of ``kind`` under the current joblib backend; its comparable results."""
    if kind == "cross_validate":
        out = cross_validate(estimator, X, cv=_cv(), n_jobs=-1)
        return None, out["test_score"]
    pipe = isinstance(estimator, Pipeline)
    grid = (
        {"group__R": [1, 2], "dae__learning_rate": [1e-2, 3e-2]}
        if pipe
        else {"lam": [1.0, 10.0, 100.0]}
    )
    if kind == "grid":
        search = GridSearchCV(estimator, grid, cv=_cv(), n_jobs=-1)
    else:
        search = RandomizedSearchCV(estimator, grid, n_iter=3, cv=_cv(), n_jobs=-1, random_state=0)
    search.fit(X)
    return search.best_params_, search.cv_results_["mean_test_score"]


# ---------------------------------------------------------------------------------------------
# Dask: the search
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["grid", "randomized", "cross_validate"])
@pytest.mark.parametrize("name", ["Pipeline", "EASE"])
def test_dask_search_equals_the_default_backend(client, X, kind, name):
    estimator = _pipeline() if name == "Pipeline" else EASE(random_state=0)
    with _one_thread(), joblib.parallel_backend("sequential"):
        best, scores = _run(kind, estimator, X)
    with joblib.parallel_backend("dask", scatter=[X]):
        best_dask, scores_dask = _run(kind, estimator, X)
    assert best_dask == best
    assert np.all(np.isfinite(scores))
    np.testing.assert_array_equal(scores_dask, scores)  # exact: seeded, one thread each


class _CountingCSR(sp.csr_array):
    """Counts its pickles in this (the client's) process; arrives as a plain csr_array."""

    pickles = 0

    def __reduce__(self):
        type(self).pickles += 1
        return (sp.csr_array, ((self.data, self.indices, self.indptr), self.shape))


def test_dask_scatter_sends_X_once_not_with_every_task(client, X):
    """joblib's dask backend scatters a large argument by itself only when dask can size it,
    and dask's sizeof does not know scipy's sparse arrays: without ``scatter=[X]`` every
    batch of tasks carries X. With it, X is pickled a fixed number of times (the scatter,
    and dask's hashing of it) whatever the number of tasks."""
    data = _CountingCSR(X)

    def pickles(scatter, n_candidates):
        _CountingCSR.pickles = 0
        grid = {"lam": [10.0**p for p in range(n_candidates)]}
        with joblib.parallel_backend("dask", scatter=[data] if scatter else None):
            GridSearchCV(EASE(), grid, cv=_cv(), n_jobs=-1, refit=False).fit(data)
        return _CountingCSR.pickles

    assert pickles(True, 1) == pickles(True, 4) <= 4
    assert pickles(False, 4) > pickles(False, 1) >= 2


def test_dask_workers_run_one_thread_per_fit(client):
    """Dask's nanny starts workers with OMP_NUM_THREADS=1, which torch follows; set_threads
    changes it on every worker, thread_counts reads it."""
    counts = client.run(thread_counts)
    assert len(counts) == 2
    assert all(c["torch"] == 1 for c in counts.values()), counts
    assert all(c["blas"] <= 1 for c in counts.values()), counts
    try:
        changed = client.run(set_threads, 2)
        assert all(c["torch"] == 2 for c in changed.values()), changed
    finally:
        client.run(set_threads, 1)
    assert all(c["torch"] == 1 for c in client.run(thread_counts).values())


def test_dask_workers_share_the_item_grouper_cache_and_send_models_back(client, X, tmp_path):
    """ItemGrouper(memory=PATH) on one machine: the embeddings that the workers computed in a
    first cross_validate are loaded by the second one and by the client; and the fitted
    pipelines (torch modules inside) come back from the workers whole."""
    pipe = _pipeline(memory=str(tmp_path / "cache"))
    with joblib.parallel_backend("dask", scatter=[X]):
        first = cross_validate(pipe, X, cv=_cv(), n_jobs=-1, return_estimator=True)
        second = cross_validate(pipe, X, cv=_cv(), n_jobs=-1, return_estimator=True)
    assert [est[0].embedding_cached_ for est in first["estimator"]] == [False, False]
    assert [est[0].embedding_cached_ for est in second["estimator"]] == [True, True]
    np.testing.assert_array_equal(second["test_score"], first["test_score"])

    train, _ = next(_cv().split(X))
    with _one_thread():
        here = clone(pipe).fit(X[train])
    assert here[0].embedding_cached_  # written by a worker process, read here
    back = first["estimator"][0]
    np.testing.assert_array_equal(back[0].membership_.toarray(), here[0].membership_.toarray())
    np.testing.assert_array_equal(recommend(back, X, n=5), recommend(here, X, n=5))


# ---------------------------------------------------------------------------------------------
# Dask: chunked scoring on the cluster
# ---------------------------------------------------------------------------------------------


class _CountingEASE(EASE):
    """Counts its pickles in the client; a worker receives a plain EASE."""

    pickles = 0

    def __reduce__(self):
        type(self).pickles += 1
        plain = EASE(**self.get_params())
        plain.__dict__.update(self.__dict__)
        return (pickle.loads, (pickle.dumps(plain),))


def test_dask_chunked_scoring_on_the_cluster(client, X):
    da = pytest.importorskip("dask.array", reason=NO_DASK)
    db = pytest.importorskip("dask.bag", reason=NO_DASK)
    model = _CountingEASE(lam=10.0).fit(X[:100])
    users = X[100:]
    expected = recommend(model, users, n=5)

    for rows in (50, 10):  # 2 and 10 blocks: the model is sent once either way
        _CountingEASE.pickles = 0
        array = da.from_array(users, chunks=(rows, -1), asarray=False)
        got = list(recommend_chunked(model, array, n=5))
        assert [top.shape[0] for top in got] == list(array.chunks[0])
        np.testing.assert_array_equal(np.vstack(got), expected)
        assert _CountingEASE.pickles == 1

    blocks = [users[i : i + 15] for i in range(0, users.shape[0], 15)]
    bag = db.from_sequence(blocks, npartitions=3)
    got = list(recommend_chunked(model, bag, n=5, return_scores=True))
    assert len(got) == len(blocks)
    np.testing.assert_array_equal(np.vstack([top for top, _ in got]), expected)


def test_dask_chunked_scoring_stops_cleanly_when_the_caller_does(client, X):
    da = pytest.importorskip("dask.array", reason=NO_DASK)
    model = EASE(lam=10.0).fit(X[:100])
    array = da.from_array(X[100:], chunks=(10, -1), asarray=False)
    stream = recommend_chunked(model, array, n=5)
    first = next(stream)
    stream.close()  # cancels what is in flight and releases the scattered model
    np.testing.assert_array_equal(first, recommend(model, X[100:110], n=5))
    assert list(recommend_chunked(model, array[:20], n=5))[1].shape == (10, 5)


def test_scale_page_examples_run_on_the_cluster(client, monkeypatch):
    """docs/scale.md, block by block in one namespace, on this module's cluster: the blocks
    that start and close a cluster are the two left out (``text`` blocks, Ray and GPUs, are
    not Python blocks)."""
    import re
    import types
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "scale.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    own = [b for b in blocks if "LocalCluster(" in b or "cluster.close()" in b]
    assert len(own) == 2 and len(blocks) > 4
    module = types.ModuleType("docs_scale")  # a real module: pickled functions resolve
    monkeypatch.setitem(sys.modules, module.__name__, module)
    module.__dict__.update(client=client, cluster=client.cluster)
    for i, code in enumerate(blocks):
        if code not in own:
            exec(compile(code, f"scale.md[{i}]", "exec"), module.__dict__)
    assert module.search.best_params_["group__K"] in (20, 40)


# ---------------------------------------------------------------------------------------------
# Ray
# ---------------------------------------------------------------------------------------------


def test_ray_search_equals_the_default_backend(X, monkeypatch):
    """ray.util.joblib: the same best_params_ and scores. (Its pool actors run torch on one
    thread, OMP_NUM_THREADS=1 set by Ray, as docs/scale.md says; checked by hand, since each
    joblib call on Ray starts a new pool of actors, which costs seconds.)"""
    ray = pytest.importorskip("ray", reason=NO_RAY)
    from joblib.pool import PicklingPool
    from ray.util.joblib import register_ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # no token file written for a local test
    bases = PicklingPool.__bases__  # the Ray backend rebases it onto Ray's pool; undone below
    pipe = _pipeline()
    with _one_thread(), joblib.parallel_backend("sequential"):
        best, scores = _run("grid", pipe, X)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        register_ray()
        with joblib.parallel_backend("ray"):
            best_ray, scores_ray = _run("grid", pipe, X)
    finally:
        ray.shutdown()
        PicklingPool.__bases__ = bases
    assert best_ray == best
    np.testing.assert_array_equal(scores_ray, scores)


# ---------------------------------------------------------------------------------------------
# skcfae.parallel without a cluster
# ---------------------------------------------------------------------------------------------


def test_set_threads_sets_torch_and_blas_here():
    import torch

    before = torch.get_num_threads()
    # limits=None changes nothing and, on exit, puts every BLAS/OpenMP pool back as it was
    with threadpool_limits(limits=None):
        try:
            counts = set_threads(1)
            assert counts["torch"] == 1 == torch.get_num_threads()
            assert counts["blas"] <= 1 and counts["openmp"] <= 1
        finally:
            torch.set_num_threads(before)
    with pytest.raises(ValueError, match="'n_threads' parameter of set_threads.*Got 0"):
        set_threads(0)
    with pytest.raises(ValueError, match="Got True"):
        set_threads(True)


def test_parallel_module_imports_without_torch():
    code = "import sys, skcfae.parallel; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
