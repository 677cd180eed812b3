"""skcfae.preprocessing: ids in (InteractionEncoder), ids out (inverse maps, recommend_ids),
and the clear error for a long table passed straight to a model's fit."""

import importlib.util
import pickle
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.pipeline import Pipeline

import skcfae
from skcfae import EASE, Popularity
from skcfae._compat import InvalidParameterError
from skcfae.datasets import make_interactions
from skcfae.exceptions import NotFittedError
from skcfae.metrics import ndcg_scorer
from skcfae.model_selection import fold_in_split, leave_one_out_split
from skcfae.preprocessing import InteractionEncoder, UnknownItemWarning, recommend_ids

HAS_PANDAS = importlib.util.find_spec("pandas") is not None
needs_pandas = pytest.mark.skipif(not HAS_PANDAS, reason="pandas is not installed")

# a small log: 3 users, 4 items, one repeated pair (ann, 20)
LOG = {
    "user": ["bob", "ann", "ann", "cy", "ann", "bob"],
    "item": [20, 30, 20, 10, 20, 40],
    "rating": [4.0, 5.0, 2.0, 3.0, 1.0, 5.0],
    "time": [5, 1, 7, 3, 2, 4],
}


def _dense(X):
    return X.toarray().tolist()


def _frame(n_users=120, n_items=60, random_state=0):
    """The planted-groups data as a long pandas table with string user ids and int item ids."""
    import pandas as pd

    X = make_interactions(n_users=n_users, n_items=n_items, density=0.1, random_state=random_state)
    X = sp.csr_array(X)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    perm = np.random.RandomState(1).permutation(rows.size)  # a log comes in any order
    return X, pd.DataFrame(
        {"userId": [f"u{r:03d}" for r in rows[perm]], "movieId": 1000 + 7 * X.indices[perm]}
    )


# -- fit / transform ------------------------------------------------------------------------
def test_fit_learns_sorted_ids_and_the_matrix():
    enc = InteractionEncoder(value_col="rating")
    X = enc.fit_transform(LOG)
    assert enc.users_.tolist() == ["ann", "bob", "cy"]
    assert enc.items_.tolist() == [10, 20, 30, 40]
    assert (enc.n_users_, enc.n_items_) == (3, 4)
    assert X.dtype == np.float32 and X.format == "csr" and X.has_canonical_format
    # ann rated 20 twice (2 + 1, summed), 30 once
    assert _dense(X) == [[0, 3, 5, 0], [0, 4, 0, 5], [3, 0, 0, 0]]
    assert enc.timestamps_ is None
    assert _dense(enc.interactions_) == _dense(X)
    X[0, 1] = 99  # a copy: the stored training matrix is not changed through it
    assert enc.interactions_[0, 1] == 3


def test_without_value_col_each_row_counts_one():
    X = InteractionEncoder().fit_transform(LOG)
    assert _dense(X) == [[0, 2, 1, 0], [0, 1, 0, 1], [1, 0, 0, 0]]


def test_row_order_of_the_table_does_not_matter():
    perm = [3, 5, 0, 4, 1, 2]
    shuffled = {k: [v[i] for i in perm] for k, v in LOG.items()}
    enc = InteractionEncoder(value_col="rating", duplicates="last", timestamp_col="time")
    a = enc.fit_transform(LOG)
    b = clone(enc).fit_transform(shuffled)
    assert _dense(a) == _dense(b)


def test_duplicates_last_by_time_and_by_row_order():
    # (ann, 20): rating 2.0 at time 7, rating 1.0 at time 2 -> latest is 2.0 at time 7
    enc = InteractionEncoder(value_col="rating", timestamp_col="time", duplicates="last")
    X, T = enc.fit_transform(LOG, return_timestamps=True)
    assert X[0, 1] == 2.0
    assert T.dtype == np.float64
    assert np.array_equal(T.indptr, X.indptr) and np.array_equal(T.indices, X.indices)
    assert _dense(T) == [[0, 7, 1, 0], [0, 5, 0, 4], [3, 0, 0, 0]]
    # without timestamps "last" is the last row of the table: rating 1.0
    X = InteractionEncoder(value_col="rating", duplicates="last").fit_transform(LOG)
    assert X[0, 1] == 1.0
    # the time of a summed pair is its latest one too
    _, T = InteractionEncoder(timestamp_col="time").fit_transform(LOG, return_timestamps=True)
    assert T[0, 1] == 7


def test_duplicates_error():
    with pytest.raises(ValueError, match="1 repeated \\(user, item\\) rows.*drop_duplicates"):
        InteractionEncoder(duplicates="error").fit(LOG)
    once = {k: v[:4] for k, v in LOG.items()}  # no repeated pair
    assert InteractionEncoder(duplicates="error").fit_transform(once).nnz == 4


def test_threshold_is_strict_and_binarizes_after_aggregation():
    # pairs: ann-20: 2+1=3, ann-30: 5, bob-20: 4, bob-40: 5, cy-10: 3
    enc = InteractionEncoder(value_col="rating", threshold=3.0)
    X = enc.fit_transform(LOG)
    # cy's only pair (3.0) is not > 3: cy and item 10 are gone
    assert enc.users_.tolist() == ["ann", "bob"]
    assert enc.items_.tolist() == [20, 30, 40]
    assert _dense(X) == [[0, 1, 0], [1, 0, 1]]
    # with "last", ann-20 is 1.0 (the last row), also dropped
    X = InteractionEncoder(value_col="rating", threshold=0.5, duplicates="last").fit_transform(LOG)
    assert set(X.data.tolist()) == {1.0}


def test_min_counts_filter_items_then_users_once():
    log = {"user": ["a", "a", "b", "c", "c"], "item": [1, 2, 1, 3, 1]}
    # item users: 1 -> {a, b, c}, 2 -> {a}, 3 -> {c}
    enc = InteractionEncoder(min_item_count=2).fit(log)
    assert enc.items_.tolist() == [1] and enc.users_.tolist() == ["a", "b", "c"]
    # a and c have 2 items each, but 1 left after the item filter: nobody is kept
    with pytest.raises(ValueError, match="no interaction is left.*lower them"):
        InteractionEncoder(min_item_count=2, min_user_count=2).fit(log)
    # items 1 and 4 have 2 users, item 2 one; then only a keeps 2 items
    log2 = {"user": ["a", "a", "a", "b", "c"], "item": [1, 2, 4, 1, 4]}
    enc = InteractionEncoder(min_item_count=2, min_user_count=2).fit(log2)
    assert enc.items_.tolist() == [1, 4] and enc.users_.tolist() == ["a"]
    assert _dense(enc.interactions_) == [[1, 1]]
    # one pass: after b and c leave, items 1 and 4 have a single user but are kept
    assert np.bincount(enc.interactions_.indices).tolist() == [1, 1]


def test_transform_new_users_sorted_with_unknown_items():
    enc = InteractionEncoder().fit(LOG)
    new = {"user": ["zed", "dan", "zed", "eve"], "item": [10, 99, 40, 98]}
    with pytest.warns(UnknownItemWarning, match="2 interactions with 2 items not in items_"):
        X, users = enc.transform(new, return_users=True)
    assert users.tolist() == ["dan", "eve", "zed"]
    assert _dense(X) == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 1]]  # dan, eve: empty rows
    enc.set_params(handle_unknown="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _dense(enc.transform(new)) == _dense(X)
    enc.set_params(handle_unknown="error")
    with pytest.raises(ValueError, match=re.escape("e.g. [98, 99]")):
        enc.transform(new)


def test_fit_transform_equals_fit_then_transform():
    enc = InteractionEncoder(value_col="rating", timestamp_col="time")
    X, users, T = enc.fit_transform(LOG, return_users=True, return_timestamps=True)
    X2, users2, T2 = clone(enc).fit(LOG).transform(LOG, return_users=True, return_timestamps=True)
    assert _dense(X) == _dense(X2) and _dense(T) == _dense(T2)
    assert users.tolist() == users2.tolist() == enc.users_.tolist()


def test_transform_histories_lists_and_mapping():
    enc = InteractionEncoder().fit(LOG)
    X = enc.transform_histories([[40, 10, 40], [], [30]])
    assert _dense(X) == [[1, 0, 0, 2], [0, 0, 0, 0], [0, 0, 1, 0]]
    X = enc.transform_histories({"p": [20], "q": np.array([30, 10])})
    assert _dense(X) == [[0, 1, 0, 0], [1, 0, 1, 0]]
    with pytest.warns(UnknownItemWarning):
        assert enc.transform_histories([[7]]).nnz == 0
    with pytest.raises(TypeError, match="1-D sequence of item ids"):
        enc.transform_histories([10, 20])
    with pytest.raises(TypeError, match="1-D sequence of item ids"):
        enc.transform_histories(["abc"])


def test_user_rows_by_id():
    enc = InteractionEncoder(timestamp_col="time").fit(LOG)
    X, T = enc.user_rows(["cy", "ann", "cy"], return_timestamps=True)
    full = _dense(enc.interactions_)
    assert _dense(X) == [full[2], full[0], full[2]]
    assert _dense(T) == [_dense(enc.timestamps_)[i] for i in (2, 0, 2)]
    assert _dense(enc.user_rows("bob")) == [full[1]]
    with pytest.raises(ValueError, match="1 user ids are not in.*'zed'.*transform_histories"):
        enc.user_rows(["ann", "zed"])
    assert enc.user_index(["cy", "ann"]).tolist() == [2, 0]
    assert enc.item_index([40, 10]).tolist() == [3, 0]
    with pytest.raises(ValueError, match="item ids are not in"):
        enc.item_index([11])


def test_inverse_transform_items_padding():
    enc = InteractionEncoder().fit(LOG)
    out = enc.inverse_transform_items([[3, 0, -1], [1, -1, -1]])
    assert out.dtype == object and out.tolist() == [[40, 10, None], [20, None, None]]
    out = enc.inverse_transform_items(np.array([[2, -1]]), fill_value=-1)
    assert out.dtype == enc.items_.dtype and out.tolist() == [[30, -1]]
    str_enc = InteractionEncoder("item", item_col="user").fit(LOG)  # items are names here
    out = str_enc.inverse_transform_items([1, -1], fill_value="")
    assert out.tolist() == ["bob", ""]
    with pytest.raises(ValueError, match="in \\[0, 3\\].*Got 4"):
        enc.inverse_transform_items([4])
    with pytest.raises(ValueError, match="Got -2"):
        enc.inverse_transform_items([-2])
    with pytest.raises(TypeError, match="integer column positions"):
        enc.inverse_transform_items([1.0])


def test_rows_of_a_2d_array_and_datetimes():
    rows = [("ann", 20, 4.0), ("bob", 10, 3.0), ("ann", 10, 1.0)]
    enc = InteractionEncoder(value_col="rating")  # by position: user, item, value
    X = enc.fit_transform(rows)
    assert enc.users_.tolist() == ["ann", "bob"] and enc.items_.tolist() == [10, 20]
    assert enc.items_.dtype.kind == "i"
    assert _dense(X) == [[1, 4], [3, 0]]
    arr = np.array([[5, 7], [5, 8], [6, 7]])
    assert _dense(InteractionEncoder().fit_transform(arr)) == [[1, 1], [1, 0]]
    with pytest.raises(ValueError, match="must have 3 columns"):
        enc.fit(arr)
    times = np.array(["2020-01-01", "2020-01-02"], dtype="datetime64[s]")
    enc = InteractionEncoder(timestamp_col="t")
    _, T = enc.fit_transform({"user": [1, 1], "item": [1, 2], "t": times}, return_timestamps=True)
    assert T.toarray().tolist() == [[1577836800e9, 1577923200e9]]  # nanoseconds


def test_bad_tables_get_clear_errors():
    enc = InteractionEncoder("userId", item_col="movieId")
    with pytest.raises(ValueError, match="no column 'userId'.*InteractionEncoder\\(user_col="):
        enc.fit(LOG)
    with pytest.raises(TypeError, match="got a sparse matrix"):
        InteractionEncoder().fit(sp.csr_array(np.eye(2)))
    with pytest.raises(ValueError, match="1 rows have no id in column 'item'"):
        InteractionEncoder().fit({"user": [1, 2], "item": [3.0, np.nan]})
    with pytest.raises(ValueError, match="1 rows have no id in column 'user'"):
        InteractionEncoder().fit({"user": ["a", None], "item": [3, 4]})
    with pytest.raises(TypeError, match="mix types"):
        InteractionEncoder().fit({"user": np.array([1, "a"], dtype=object), "item": [3, 4]})
    with pytest.raises(TypeError, match="must hold numbers"):
        InteractionEncoder(value_col="v").fit({"user": [1], "item": [2], "v": ["x"]})
    with pytest.raises(ValueError, match="NaN or infinite"):
        InteractionEncoder(value_col="v").fit({"user": [1], "item": [2], "v": [np.inf]})
    with pytest.raises(ValueError, match="0 rows"):
        InteractionEncoder().fit({"user": [], "item": []})
    with pytest.raises(ValueError, match="same length"):
        InteractionEncoder().fit({"user": [1, 2], "item": [2]})
    with pytest.raises(ValueError, match="user_col and item_col are both"):
        InteractionEncoder(item_col="user").fit(LOG)
    with pytest.raises(InvalidParameterError, match="'duplicates' parameter"):
        InteractionEncoder(duplicates="mean").fit(LOG)
    with pytest.raises(ValueError, match="return_timestamps=True needs"):
        InteractionEncoder().fit_transform(LOG, return_timestamps=True)
    fitted = InteractionEncoder().fit(LOG)
    with pytest.raises(TypeError, match="cannot be compared"):
        fitted.transform_histories([["ten"]])
    with pytest.raises(NotFittedError):
        InteractionEncoder().transform(LOG)


def test_clone_and_pickle():
    enc = InteractionEncoder(value_col="rating", timestamp_col="time").fit(LOG)
    again = pickle.loads(pickle.dumps(enc))
    assert again.users_.tolist() == enc.users_.tolist()
    assert _dense(again.transform(LOG)) == _dense(enc.transform(LOG))
    assert clone(enc).get_params() == enc.get_params()
    assert not hasattr(clone(enc), "users_")


# -- ids out --------------------------------------------------------------------------------
def test_round_trip_ids_matrix_recommend_ids():
    # items bought by 3, 2 and 1 users: Popularity ranks 'x', 'y', 'z'
    log = {"user": [7, 7, 8, 9, 9, 9], "item": ["x", "y", "x", "x", "y", "z"]}
    enc = InteractionEncoder()
    model = Popularity().fit(enc.fit_transform(log))
    top = model.recommend(enc.user_rows([8, 7]), n=2)
    assert top.tolist() == [[1, 2], [2, -1]]
    assert enc.inverse_transform_items(top).tolist() == [["y", "z"], ["z", None]]
    recs = recommend_ids(model, enc, users=[8, 7], n=2, as_frame=False)
    assert recs["user"].tolist() == [8, 8, 7]  # 7 has one unseen item: no padding row
    assert recs["rank"].tolist() == [1, 2, 1]
    assert recs["item"].tolist() == ["y", "z", "z"]
    assert recs["score"].tolist() == [2.0, 1.0, 1.0]
    recs = recommend_ids(model, enc, histories={"new": ["z"]}, n=2, as_frame=False)
    assert recs["user"].tolist() == ["new", "new"] and recs["item"].tolist() == ["x", "y"]
    recs = recommend_ids(model, enc, histories=[["x"], []], n=1, as_frame=False)
    assert recs["user"].tolist() == [0, 1] and recs["item"].tolist() == ["y", "x"]
    recs = recommend_ids(model, enc, users=[8], n=1, items=["z", "x"], as_frame=False)
    assert recs["item"].tolist() == ["z"]
    recs = recommend_ids(
        model, enc, interactions={"user": [5, 3], "item": ["y", "x"]}, n=1, as_frame=False
    )
    assert recs["user"].tolist() == [3, 5] and recs["item"].tolist() == ["y", "x"]


def test_recommend_ids_argument_errors():
    enc = InteractionEncoder().fit(LOG)
    model = Popularity().fit(enc.interactions_)
    with pytest.raises(ValueError, match="exactly one of users"):
        recommend_ids(model, enc, n=1)
    with pytest.raises(ValueError, match="exactly one of users"):
        recommend_ids(model, enc, users=["ann"], histories=[[10]])
    with pytest.raises(TypeError, match="needs the fitted InteractionEncoder"):
        recommend_ids(model, users=["ann"])
    with pytest.raises(ValueError, match="not in the encoder's users_"):
        recommend_ids(model, enc, users=["nobody"])
    pipe = Pipeline([("ids", enc), ("pop", model)])
    with pytest.raises(ValueError, match="another encoder"):
        recommend_ids(pipe, InteractionEncoder().fit(LOG), users=["ann"])


@needs_pandas
def test_recommend_ids_frame_columns_follow_the_encoder():
    import pandas as pd

    df = pd.DataFrame({"userId": [1, 1, 2], "movieId": [10, 20, 10]})
    enc = InteractionEncoder("userId", item_col="movieId")
    model = Popularity().fit(enc.fit_transform(df))
    recs = recommend_ids(model, enc, users=[2], n=1)
    assert isinstance(recs, pd.DataFrame)
    assert list(recs.columns) == ["userId", "rank", "movieId", "score"]
    assert recs.to_dict("records") == [{"userId": 2, "rank": 1, "movieId": 20, "score": 1.0}]


@needs_pandas
def test_pandas_columns_strings_nullable_and_time_zones():
    import pandas as pd

    df = pd.DataFrame(
        {
            "u": pd.Series(["b", "a", "b"], dtype="string"),
            "i": pd.array([3, 1, 3], dtype="Int64"),
            "t": pd.to_datetime([0, 2, 1], unit="s", utc=True),
        }
    )
    enc = InteractionEncoder("u", item_col="i", timestamp_col="t")
    X, T = enc.fit_transform(df, return_timestamps=True)
    assert enc.users_.tolist() == ["a", "b"] and enc.items_.tolist() == [1, 3]
    assert _dense(X) == [[1, 0], [0, 2]] and _dense(T) == [[2e9, 0], [0, 1e9]]
    bad = df.astype({"i": "Int64"})
    bad.loc[1, "i"] = pd.NA
    with pytest.raises(ValueError, match="1 rows have no id in column 'i'"):
        enc.fit(bad)


# -- the long-format error ------------------------------------------------------------------
@needs_pandas
@pytest.mark.parametrize(
    "columns",
    [
        ["userId", "movieId", "rating", "timestamp"],
        ["user_id", "item_id"],
        ["user", "item", "count"],
        ["uid", "iid", "ts"],
        ["rating", "customer_id", "product_id"],
    ],
)
def test_long_frame_passed_to_fit_is_an_error_naming_the_fix(columns):
    import pandas as pd

    rng = np.random.RandomState(0)
    df = pd.DataFrame(rng.randint(1, 50, size=(300, len(columns))), columns=columns)
    with pytest.raises(ValueError, match="skcfae.preprocessing.InteractionEncoder") as info:
        EASE(lam=10.0).fit(df)
    message = str(info.value)
    assert f"shape (300, {len(columns)})" in message and "long table" in message
    # the fix it shows runs as written and builds a matrix over the ids
    fix = re.search(r"^    (X = InteractionEncoder\(.*\)\.fit_transform\(df\))$", message, re.M)
    namespace = {"InteractionEncoder": InteractionEncoder, "df": df}
    exec(fix.group(1), namespace)
    user = next(c for c in columns if "u" in c or "customer" in c)
    assert namespace["X"].shape[0] == df[user].nunique()


@needs_pandas
def test_long_frame_without_names_is_recognised_by_its_ids():
    import pandas as pd

    rng = np.random.RandomState(0)
    ids = pd.DataFrame({0: rng.randint(1, 600, 1000), 1: rng.randint(1, 9000, 1000)})
    with pytest.raises(ValueError, match=re.escape("InteractionEncoder(0, item_col=1)")):
        Popularity().fit(ids)
    strings = pd.DataFrame({"a": ["u1", "u2"] * 20, "b": ["i1", "i2", "i3", "i4"] * 10})
    with pytest.raises(ValueError, match="InteractionEncoder\\('a', item_col='b'\\)"):
        Popularity().fit(strings)
    # every check_interactions caller gets it, e.g. a splitter
    with pytest.raises(ValueError, match="long table"):
        fold_in_split(ids)


@needs_pandas
def test_wide_frames_still_work():
    import pandas as pd

    rng = np.random.RandomState(0)
    binary = (rng.rand(200, 4) < 0.4).astype(np.int64)
    counts = binary * rng.randint(1, 30, size=binary.shape)
    for columns in (["item_1", "item_2", "item_3", "item_4"], [10, 20, 30, 40]):
        for values in (binary, counts):
            wide = pd.DataFrame(values, columns=columns)
            model = Popularity().fit(wide)
            ref = Popularity().fit(values)
            assert np.array_equal(model.recommend(wide, n=2), ref.recommend(values, n=2))
    # mostly nonzero ratings-like counts (fewer than 10 distinct values): still a matrix
    dense = pd.DataFrame(rng.randint(1, 9, size=(100, 3)), columns=["a", "b", "c"])
    assert Popularity().fit(dense).n_items_in_ == 3
    # dense play counts of 3 items look like ids: the message gives the way out
    plays = pd.DataFrame(rng.randint(1, 500, size=(100, 3)), columns=["a", "b", "c"])
    with pytest.raises(ValueError, match=re.escape("pass df.to_numpy()")):
        Popularity().fit(plays)
    assert Popularity().fit(plays.to_numpy()).n_items_in_ == 3


# -- properties -----------------------------------------------------------------------------
ids_strategy = st.one_of(
    st.lists(st.integers(-5, 40), min_size=1, max_size=40),
    st.lists(st.text("abcxyz", min_size=1, max_size=3), min_size=1, max_size=40),
)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_round_trip_of_random_ids(data):
    users = data.draw(ids_strategy)
    items = data.draw(st.lists(st.integers(0, 10**9), min_size=len(users), max_size=len(users)))
    enc = InteractionEncoder()
    X = enc.fit_transform({"user": users, "item": items})
    # the vocabularies are the distinct ids, sorted
    assert enc.users_.tolist() == sorted(set(users))
    assert enc.items_.tolist() == sorted(set(items))
    # every stored entry is a pair of the log, counted as often as it occurs, and back
    coo = X.tocoo()
    pairs = {}
    for u, i in zip(users, items, strict=True):
        pairs[(u, i)] = pairs.get((u, i), 0) + 1
    got = {
        (enc.users_[r].item(), enc.items_[c].item()): v
        for r, c, v in zip(coo.row, coo.col, coo.data, strict=True)
    }
    assert got == pairs
    # ids -> positions -> ids
    assert enc.inverse_transform_items(enc.item_index(items)).tolist() == items
    assert enc.users_[enc.user_index(users)].tolist() == users
    # a new user's history lands in the columns of its items
    history = data.draw(st.lists(st.sampled_from(sorted(set(items))), max_size=5))
    row = enc.transform_histories([history])
    assert enc.inverse_transform_items(row.indices).tolist() == sorted(set(history))
    # the same matrix whatever the order of the log
    perm = data.draw(st.permutations(range(len(users))))
    shuffled = {"user": [users[p] for p in perm], "item": [items[p] for p in perm]}
    assert (clone(enc).fit_transform(shuffled) != X).nnz == 0


# -- end to end -----------------------------------------------------------------------------
@needs_pandas
def test_pipeline_end_to_end_with_ease():
    X_ref, df = _frame()
    pipe = Pipeline(
        [("ids", InteractionEncoder("userId", item_col="movieId")), ("ease", EASE(lam=10.0))]
    )
    pipe.fit(df)
    enc, model = pipe[0], pipe[-1]
    assert model.n_items_in_ == enc.n_items_
    # the encoder's matrix is the planted matrix, rows and columns renumbered by sorted ids
    users = np.array([int(u[1:]) for u in enc.users_])
    items = (enc.items_ - 1000) // 7
    assert (enc.interactions_ != X_ref[users][:, items]).nnz == 0
    # known users by id: the model's own recommendations, mapped to ids
    asked = ["u007", "u042", "u000"]
    recs = recommend_ids(pipe, users=asked, n=5)
    assert recs.equals(recommend_ids(model, enc, users=asked, n=5))
    top, scores = model.recommend(enc.user_rows(asked), n=5, return_scores=True)
    assert recs["userId"].tolist() == [u for u in asked for _ in range(5)]
    assert recs["movieId"].tolist() == enc.inverse_transform_items(top).ravel().tolist()
    assert np.allclose(recs["score"], scores.ravel())
    # never an item the user has already
    seen = set(df.loc[df.userId == "u007", "movieId"])
    assert not seen & set(recs.loc[recs.userId == "u007", "movieId"])
    # new users through the Pipeline: transform + recommend (skcfae.recommend works on it)
    new = df[df.userId.isin(["u010", "u011"])].assign(userId=lambda d: "new_" + d.userId)
    via_pipe = skcfae.recommend(pipe, new, n=5)
    assert np.array_equal(via_pipe, model.recommend(enc.user_rows(["u010", "u011"]), n=5))
    recs = recommend_ids(pipe, interactions=new, n=5)
    assert sorted(set(recs.userId)) == ["new_u010", "new_u011"]


@needs_pandas
def test_encoded_data_trains_a_model_that_beats_popularity():
    X_ref, df = _frame(n_users=300, n_items=80, random_state=3)
    enc = InteractionEncoder("userId", item_col="movieId")
    X = enc.fit_transform(df)
    train, test = X[:240], X[240:]
    scorer = ndcg_scorer(k=20)
    ndcg = {type(m).__name__: scorer(m.fit(train), test) for m in (EASE(lam=10.0), Popularity())}
    assert ndcg["EASE"] > ndcg["Popularity"] + 0.05


@needs_pandas
@pytest.mark.realdata
def test_ratings_csv_gives_the_loaders_matrix(shared_data):
    """The user's case: ml-latest-small's ratings.csv (100,836 rows) is refused by fit with the
    fix in the message, and the encoder builds exactly the matrix of load_movielens."""
    import pandas as pd

    from skcfae.datasets import load_movielens

    folder = shared_data / "ml-latest-small"
    if not (folder / "ratings.csv").is_file():
        pytest.skip("ml-latest-small/ratings.csv not found")
    df = pd.read_csv(folder / "ratings.csv")
    with pytest.raises(ValueError, match="InteractionEncoder\\('userId', item_col='movieId'\\)"):
        Popularity().fit(df)
    enc = InteractionEncoder(
        "userId", item_col="movieId", value_col="rating", timestamp_col="timestamp"
    )
    R, T = enc.fit_transform(df, return_timestamps=True)
    ml = load_movielens("latest-small", path=folder)
    assert np.array_equal(enc.users_, ml.user_ids) and np.array_equal(enc.items_, ml.item_ids)
    assert (R != ml.data).nnz == 0 and (T != ml.timestamps).nnz == 0
    recs = recommend_ids(Popularity().fit(R), enc, users=[1, 610], n=10)
    assert recs.shape == (20, 4) and not set(recs.movieId[:10]) & set(df.movieId[df.userId == 1])


def test_timestamps_feed_leave_one_out_split():
    log = {"user": [1, 1, 1, 2, 2], "item": ["a", "b", "c", "a", "c"], "t": [3, 9, 5, 2, 1]}
    enc = InteractionEncoder(timestamp_col="t")
    X, T = enc.fit_transform(log, return_timestamps=True)
    train, test = leave_one_out_split(X, T)
    held = enc.inverse_transform_items(test.indices).tolist()
    assert held == ["b", "a"]  # each user's latest item


# -- module hygiene -------------------------------------------------------------------------
def test_all_is_sorted():
    import skcfae.preprocessing as module

    assert module.__all__ == sorted(module.__all__)


def test_import_and_dict_input_need_neither_torch_nor_pandas():
    # sys.modules["pandas"] = None makes every `import pandas` fail, as without pandas
    code = (
        "import sys; sys.modules['pandas'] = None;"
        "from skcfae import Popularity;"
        "from skcfae.preprocessing import InteractionEncoder, recommend_ids;"
        "enc = InteractionEncoder(); X = enc.fit_transform({'user': [1, 2], 'item': [3, 4]});"
        "out = recommend_ids(Popularity().fit(X), enc, users=[1], n=1, as_frame=False);"
        "assert out['item'].tolist() == [4], out;"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "try:\n recommend_ids(Popularity().fit(X), enc, users=[1], n=1)\n"
        "except ImportError as err:\n assert 'as_frame=False' in str(err), err\n"
        "else:\n raise AssertionError('no ImportError')"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
