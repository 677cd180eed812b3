"""skcfae.save / skcfae.load: identical round trips, no pickle, refusal of foreign files."""

import json
import pathlib
import pickle
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import skcfae
from skcfae import _persist
from skcfae.datasets import make_interactions
from skcfae.exceptions import DeviceWarning
from skcfae.utils import all_estimators

from .estimators import TINY, ids, instances

ESTIMATORS = instances(TINY)
RATING = {name for name, _ in all_estimators("rating")}
DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "persistence.md"


@pytest.fixture(scope="module")
def X():
    return sp.csr_array(make_interactions(64, 40, n_groups=4, density=0.3, random_state=0))


@pytest.fixture(scope="module")
def R(X):
    """Ratings 1-5 on X's pattern."""
    R = X.copy()
    R.data = np.random.RandomState(0).randint(1, 6, R.nnz).astype(np.float32)
    return R


def _assert_same_params(a, b):
    assert type(a) is type(b)
    pa, pb = a.get_params(deep=False), b.get_params(deep=False)
    assert pa.keys() == pb.keys()
    for key in pa:
        _assert_same_value(pa[key], pb[key])


def _assert_same_value(x, y):
    assert type(x) is type(y)
    if hasattr(x, "get_params"):
        _assert_same_params(x, y)
    elif isinstance(x, list | tuple):
        assert len(x) == len(y)
        for u, v in zip(x, y, strict=True):
            _assert_same_value(u, v)
    else:
        assert x == y


def _fitted_names(est):
    return sorted(k for k in vars(est) if k.endswith("_") and not k.startswith("_"))


@pytest.mark.parametrize("est", ESTIMATORS, ids=ids(ESTIMATORS))
def test_round_trip_is_identical(est, X, R, tmp_path):
    data = R if type(est).__name__ in RATING else X
    est.fit(data)
    skcfae.save(est, tmp_path / "model.skcfae")
    again = skcfae.load(tmp_path / "model.skcfae")

    _assert_same_params(est, again)
    assert again.get_params() == est.get_params()
    assert _fitted_names(again) == _fitted_names(est)
    if hasattr(est, "decision_function"):
        np.testing.assert_array_equal(again.decision_function(data), est.decision_function(data))
        np.testing.assert_array_equal(again.recommend(data, n=5), est.recommend(data, n=5))
    if hasattr(est, "predict"):
        np.testing.assert_array_equal(again.predict(data).toarray(), est.predict(data).toarray())
    if hasattr(est, "transform"):
        Xt, expected = again.transform(data), est.transform(data)
        np.testing.assert_array_equal(Xt.toarray(), expected.toarray())
        assert (Xt.membership != expected.membership).nnz == 0


def test_pipeline_round_trip(X, tmp_path):
    dae = {k: v for k, v in TINY["SparseWideDAE"].items() if k not in ("K", "R", "F")}
    pipe = Pipeline(
        [("group", skcfae.ItemGrouper(**TINY["ItemGrouper"])), ("dae", skcfae.SparseWideDAE(**dae))]
    ).fit(X)
    skcfae.save(pipe, tmp_path / "pipe.skcfae")
    again = skcfae.load(tmp_path / "pipe.skcfae")

    assert [name for name, _ in again.steps] == ["group", "dae"]
    _assert_same_params(pipe, again)
    np.testing.assert_array_equal(again.decision_function(X), pipe.decision_function(X))
    np.testing.assert_array_equal(skcfae.recommend(again, X, n=5), skcfae.recommend(pipe, X, n=5))


def test_unfitted_estimator_keeps_parameter_types(tmp_path):
    est = skcfae.MultVAE(
        n_components=np.int64(4), hidden_layer_sizes=(8,), learning_rate=np.float32(1e-3)
    )
    skcfae.save(est, tmp_path / "m.skcfae")
    again = skcfae.load(tmp_path / "m.skcfae")
    _assert_same_params(est, again)
    assert not hasattr(again, "module_")


def test_loading_uses_no_pickle(X, tmp_path, monkeypatch):
    import torch

    est = skcfae.MultDAE(**TINY["MultDAE"]).fit(X)
    skcfae.save(est, tmp_path / "m.skcfae")
    with zipfile.ZipFile(tmp_path / "m.skcfae") as zf:
        assert all(
            re.fullmatch(r"(manifest|model)\.json|arrays/\d+\.npy", n) for n in zf.namelist()
        )

    def refuse(*args, **kwargs):
        raise AssertionError("load unpickled something")

    for module, name in [
        (pickle, "load"),
        (pickle, "loads"),
        (pickle, "Unpickler"),
        (torch, "load"),
    ]:
        monkeypatch.setattr(module, name, refuse)
    again = skcfae.load(tmp_path / "m.skcfae")
    np.testing.assert_array_equal(again.decision_function(X), est.decision_function(X))


def test_model_from_missing_gpu_loads_on_cpu(X, tmp_path):
    import torch

    est = skcfae.MultDAE(**TINY["MultDAE"]).fit(X)
    est.device_ = torch.device("cuda:7")  # as if trained on a GPU absent here
    skcfae.save(est, tmp_path / "m.skcfae")
    with pytest.warns(DeviceWarning, match="MultDAE trained on cuda:7.*loaded on the CPU"):
        again = skcfae.load(tmp_path / "m.skcfae")
    assert again.device_ == torch.device("cpu")
    assert {p.device.type for p in again.module_.parameters()} == {"cpu"}
    np.testing.assert_array_equal(again.decision_function(X), est.decision_function(X))


@pytest.mark.gpu
def test_gpu_model_loads_in_cpu_only_process(X, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    est = skcfae.MultDAE(**{**TINY["MultDAE"], "device": "cuda"}).fit(X)
    skcfae.save(est, tmp_path / "m.skcfae")
    sp.save_npz(tmp_path / "X.npz", X)
    np.save(tmp_path / "scores.npy", est.decision_function(X))
    code = (
        "import sys, warnings, numpy as np, scipy.sparse as sp, skcfae;"
        "warnings.simplefilter('ignore'); d = sys.argv[1];"
        "m = skcfae.load(d + '/m.skcfae'); X = sp.load_npz(d + '/X.npz');"
        "np.testing.assert_allclose(m.decision_function(X), np.load(d + '/scores.npy'),"
        " rtol=1e-4, atol=1e-4); print(m.device_)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": ""},
        check=True,
    )
    assert out.stdout.strip() == "cpu"


def test_save_refuses_what_it_cannot_store(X, tmp_path):
    path = tmp_path / "m.skcfae"
    with pytest.raises(TypeError, match="skcfae estimators and Pipelines.*StandardScaler"):
        skcfae.save(StandardScaler(), path)
    with pytest.raises(TypeError, match="EASE parameter 'random_state' of type RandomState"):
        skcfae.save(skcfae.EASE(random_state=np.random.RandomState(0)), path)
    for value, match in [
        (object(), r"Popularity\.extra_ of type object"),
        ({1: 2.0}, r"Popularity\.extra_ of type dict"),
        (np.array([None, 1]), r"Popularity\.extra_: an object array"),
    ]:
        est = skcfae.Popularity().fit(X)
        est.extra_ = value
        with pytest.raises(TypeError, match=match):
            skcfae.save(est, path)
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


class _Touch:
    """Unpickling this creates ``path``: the stand-in for a malicious payload."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


@pytest.fixture
def saved(X, tmp_path):
    path = tmp_path / "m.skcfae"
    skcfae.save(skcfae.Popularity().fit(X), path)
    return path


def _forge(path, edit, *, redigest=True):
    """Rewrite a model file after ``edit(manifest, tree, members)``, with a valid digest."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    manifest = json.loads(members.pop("manifest.json"))
    tree = json.loads(members["model.json"])
    edit(manifest, tree, members)
    members["model.json"] = json.dumps(tree).encode()
    if redigest:
        manifest["sha256"] = _persist._digest(members)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)


def _npy(a, allow_pickle=False):
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def _set(mapping, key, value):
    mapping[key] = value


def _name_class(name):
    def edit(manifest, tree, members):
        manifest["estimator"] = tree["class"] = name

    return edit


TAMPERED = {
    "os.system": (_name_class("os.system"), "class 'os.system', which is not one of"),
    "outside-allow-list": (_name_class("StandardScaler"), "class 'StandardScaler', which is not"),
    "foreign-format": (lambda m, t, s: _set(m, "format", "npz"), "not a skcfae model file"),
    "format-version": (lambda m, t, s: _set(m, "format_version", 2), "format version 2"),
    "missing-array": (lambda m, t, s: s.pop("arrays/0.npy"), "do not match the manifest"),
    "extra-member": (lambda m, t, s: _set(s, "x.pkl", b""), r"unexpected \['x.pkl'\]"),
    "unlisted-array": (lambda m, t, s: _set(m, "arrays", []), "do not match the manifest"),
    "dangling-key": (
        lambda m, t, s: _set(t["fitted"]["item_counts_"], "key", "7"),
        "refers to array '7'",
    ),
    "unused-array": (
        lambda m, t, s: t["fitted"].pop("item_counts_"),
        r"arrays \['0'\] are not used",
    ),
    "manifest-vs-model": (lambda m, t, s: _set(m, "estimator", "EASE"), "different classes"),
    "private-attribute": (
        lambda m, t, s: _set(t["fitted"], "__class__", 1),
        "not a fitted attribute name",
    ),
    "unknown-parameter": (lambda m, t, s: _set(t["params"], "evil", 1), "has no parameters"),
    "unknown-node": (
        lambda m, t, s: _set(t["fitted"], "n_items_in_", {"type": "eval"}),
        "unknown node 'eval'",
    ),
}


@pytest.mark.parametrize("case", TAMPERED)
def test_load_refuses_a_tampered_file(saved, case):
    edit, match = TAMPERED[case]
    _forge(saved, edit)
    with pytest.raises(ValueError, match=match):
        skcfae.load(saved)


def test_load_refuses_a_digest_mismatch(saved):
    edit = lambda m, t, s: _set(s, "arrays/0.npy", _npy(np.zeros(40)))  # noqa: E731
    _forge(saved, edit, redigest=False)
    with pytest.raises(ValueError, match="digest mismatch"):
        skcfae.load(saved)


def test_load_never_unpickles(saved, tmp_path):
    payload = pickle.dumps(_Touch(tmp_path / "control"))
    pickle.loads(payload)  # the payload is live: unpickling it creates a file
    assert (tmp_path / "control").exists()
    marker = tmp_path / "pwned"

    raw = tmp_path / "raw.skcfae"  # a plain pickle file
    raw.write_bytes(pickle.dumps(_Touch(marker)))
    with pytest.raises(ValueError, match="not a zip archive"):
        skcfae.load(raw)

    # an object array (a pickle inside the .npy member), with a digest that matches
    evil = _npy(np.array([_Touch(marker)], dtype=object), allow_pickle=True)
    _forge(saved, lambda m, t, s: _set(s, "arrays/0.npy", evil))
    with pytest.raises(ValueError, match="not a plain numpy array"):
        skcfae.load(saved)
    assert not marker.exists()


def test_docs_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for code in re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S):
        exec(compile(code, str(DOCS), "exec"), namespace)
    assert namespace["top"].shape == (50, 10)
