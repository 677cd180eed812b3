"""recommend_chunked: a stream of row blocks in, the same top-n as recommend out, lazily.

The runs on a Dask cluster are in tests/test_parallel.py, next to the cluster they share.
"""

import gc
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from skcfae import (
    EASE,
    ItemGrouper,
    MultDAE,
    Popularity,
    SparseWideDAE,
    recommend,
    recommend_chunked,
)
from skcfae.datasets import make_interactions

NO_DASK = "dask is not installed: pip install 'skcfae[dask]' (the dev extra has it)"


@pytest.fixture(scope="module")
def data():
    X = make_interactions(n_users=330, n_items=60, n_groups=6, density=0.1, random_state=0)
    return X[:200], X[200:]


@pytest.fixture(scope="module")
def models(data):
    train, _ = data
    nn = dict(epochs=2, batch_size=32, early_stopping=False, device="cpu", random_state=0)
    return {
        "EASE": EASE(lam=10.0).fit(train),
        "MultDAE": MultDAE(n_components=8, **nn).fit(train),
        "Pipeline": Pipeline(
            [
                ("group", ItemGrouper(K=6, R=2, F=6, random_state=0)),
                ("dae", SparseWideDAE(**nn)),
            ]
        ).fit(train),
    }


def _blocks(X, size):
    return [X[i : i + size] for i in range(0, X.shape[0], size)]


@pytest.mark.parametrize("name", ["EASE", "MultDAE", "Pipeline"])
@pytest.mark.parametrize("exclude_seen", [True, False])
def test_blocks_give_the_recommendations_of_the_whole_matrix(models, data, name, exclude_seen):
    model, (_, users) = models[name], data
    expected = recommend(model, users, n=7, exclude_seen=exclude_seen)
    # uneven blocks, one of a single user, and not the estimators' own batch size
    blocks = [users[:1], users[1:50], users[50:51], users[51:]]
    got = list(recommend_chunked(model, iter(blocks), n=7, exclude_seen=exclude_seen))
    assert [top.shape for top in got] == [(1, 7), (49, 7), (1, 7), (79, 7)]
    assert all(top.dtype == np.int64 for top in got)
    np.testing.assert_array_equal(np.vstack(got), expected)


def test_candidates_and_scores_pass_through(models, data):
    model, (_, users) = models["EASE"], data
    items = [3, 10, 11, 40, 59, 0]
    top, scores = recommend(model, users, n=4, items=items, return_scores=True)
    got = list(recommend_chunked(model, _blocks(users, 33), n=4, items=items, return_scores=True))
    assert all(isinstance(pair, tuple) and len(pair) == 2 for pair in got)
    np.testing.assert_array_equal(np.vstack([t for t, _ in got]), top)
    np.testing.assert_array_equal(np.vstack([s for _, s in got]), scores)
    assert np.all(np.isin(np.vstack([t for t, _ in got]), items + [-1]))


def test_a_generator_is_read_one_block_ahead_of_nothing(models, data):
    """A block is pulled only when the caller asks for its result."""
    model, (_, users) = models["EASE"], data
    pulled = []

    def reader():
        for i, block in enumerate(_blocks(users, 20)):
            pulled.append(i)
            yield block

    stream = recommend_chunked(model, reader(), n=5)
    assert pulled == []  # calling it reads nothing
    first = next(stream)
    assert pulled == [0]
    np.testing.assert_array_equal(first, recommend(model, users[:20], n=5))
    next(stream)
    assert pulled == [0, 1]
    rest = list(stream)
    assert pulled == list(range(7)) and len(rest) == 5


def test_empty_blocks_give_empty_results(models, data):
    model, (_, users) = models["EASE"], data
    empty = sp.csr_array((0, users.shape[1]), dtype=np.float32)
    got = list(recommend_chunked(model, [users[:3], empty, users[3:5]], n=2))
    assert [top.shape for top in got] == [(3, 2), (0, 2), (2, 2)]
    pair = next(recommend_chunked(model, [empty], n=2, return_scores=True))
    assert pair[0].dtype == np.int64 and pair[1].dtype == np.float32 and pair[1].shape == (0, 2)


def test_peak_memory_is_that_of_one_block_not_of_the_user_set():
    """tracemalloc sees numpy's buffers: ranking 8x as many blocks of the same size (made on
    the fly, results dropped as they come) needs no more memory. Holding the blocks, or the
    results, would add (8 - 1) x 40 x 80 kB (the blocks) or 40 x 80 kB (the top-100 lists)
    to a peak of about 2.5 MB (one block's dense score block and its top-k)."""
    n_items, rows = 2000, 100
    model = Popularity().fit(make_interactions(300, n_items, density=0.01, random_state=0))

    def blocks(count):
        for i in range(count):
            yield sp.random_array(
                (rows, n_items), density=0.05, format="csr", dtype=np.float32, rng=i
            )

    def peak(count):
        gc.collect()
        tracemalloc.start()
        try:
            for top in recommend_chunked(model, blocks(count), n=100):
                assert top.shape == (rows, 100)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(2)  # warm-up: lazy imports and caches outside the measurement
    small, large = peak(5), peak(40)
    assert large < 1.25 * small


def test_a_single_matrix_or_a_non_iterable_is_refused(models, data):
    model, (_, users) = models["EASE"], data
    with pytest.raises(TypeError, match="takes row blocks, not one matrix.*X\\[i : i"):
        recommend_chunked(model, users)
    with pytest.raises(TypeError, match="not one matrix"):
        recommend_chunked(model, users.toarray())
    with pytest.raises(TypeError, match="takes an iterable of row blocks"):
        recommend_chunked(model, 3)


def test_parameters_are_checked_before_any_block_is_read(models, data):
    model = models["EASE"]
    pulled = []

    def reader():
        pulled.append(0)
        yield data[1]

    with pytest.raises(ValueError, match="'n' parameter of recommend_chunked.*\\[1, 60\\]"):
        recommend_chunked(model, reader(), n=61)
    with pytest.raises(ValueError, match="items holds 2 items"):
        recommend_chunked(model, reader(), n=3, items=[0, 1])
    with pytest.raises(NotFittedError):
        recommend_chunked(EASE(), reader())
    with pytest.raises(TypeError, match="no recommend method"):
        recommend_chunked(ItemGrouper(K=2), reader())
    assert pulled == []


def test_a_bad_block_fails_when_it_is_reached(models, data):
    model, (_, users) = models["EASE"], data
    stream = recommend_chunked(model, [users[:5], users[:5, :30]], n=3)
    assert next(stream).shape == (5, 3)
    with pytest.raises(ValueError, match="30"):
        next(stream)


def test_dask_array_and_bag_without_a_cluster(models, data):
    da = pytest.importorskip("dask.array", reason=NO_DASK)
    db = pytest.importorskip("dask.bag", reason=NO_DASK)
    model, (_, users) = models["MultDAE"], data
    expected = recommend(model, users, n=5)

    array = da.from_array(users, chunks=(40, -1), asarray=False)
    got = list(recommend_chunked(model, array, n=5))
    assert [top.shape[0] for top in got] == list(array.chunks[0])
    np.testing.assert_array_equal(np.vstack(got), expected)

    bag = db.from_sequence(_blocks(users, 25), npartitions=3)
    got = list(recommend_chunked(model, bag, n=5))
    assert len(got) == 6
    np.testing.assert_array_equal(np.vstack(got), expected)


def test_dask_array_split_along_the_items_is_refused(models, data):
    da = pytest.importorskip("dask.array", reason=NO_DASK)
    model, (_, users) = models["EASE"], data
    array = da.from_array(users, chunks=(40, 30), asarray=False)
    with pytest.raises(ValueError, match=r"2 blocks along the items.*rechunk\(\{1: -1\}\)"):
        recommend_chunked(model, array)
