"""Model files without pickle: :func:`save` and :func:`load`.

A model file is a zip archive of three kinds of members:

- ``manifest.json``: the format name and version, the skcfae version that wrote it, the
  estimator's class name, the names of the arrays and the sha256 digest of the other members;
- ``model.json``: the estimator as a tree of JSON nodes: its class name (from an allow-list),
  ``get_params(deep=False)`` and its fitted attributes (names ending in ``_``). Values are
  plain JSON or tagged nodes (``{"type": "tuple" | "dict" | "scalar" | "path" | "ndarray" |
  "sparse" | "device" | "module" | "estimator", ...}``), nested estimators included;
- ``arrays/<key>.npy``: the numpy arrays the tree points to (fitted arrays, the components of
  scipy sparse matrices, the CPU state dict tensors of torch modules), written and read with
  ``allow_pickle=False``.

Loading parses JSON and ``.npy`` data only, and constructs only allow-listed classes, so a
file cannot run code. Torch modules are rebuilt by their estimator's ``_build_module`` and
filled with ``load_state_dict``, on the CPU when the device they were trained on is missing
(as unpickling does, see :mod:`skcfae.nn._state`).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pathlib
import sys
import warnings
import zipfile
from typing import Any

import numpy as np
import scipy.sparse as sp

from .exceptions import DeviceWarning

__all__ = ["load", "save"]

FORMAT = "skcfae-model"
FORMAT_VERSION = 1
_MANIFEST, _MODEL = "manifest.json", "model.json"
_SPARSE: dict[str, type] = {
    "csr_array": sp.csr_array,
    "csr_matrix": sp.csr_matrix,
    "csc_array": sp.csc_array,
    "csc_matrix": sp.csc_matrix,
}
_COMPONENTS = ("data", "indices", "indptr")
_JSON_TYPES = (bool, int, float, str)


def _allowed() -> dict[str, Any]:
    """The classes a model file may name: skcfae's public estimators and sklearn's Pipeline."""
    from sklearn.pipeline import Pipeline

    from .utils import all_estimators

    return {**dict(all_estimators()), "Pipeline": Pipeline}


def _is_fitted_name(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and name.endswith("_") and name[0] != "_"


def _digest(members: dict[str, bytes]) -> str:
    """sha256 of the members (names, sizes and bytes) other than the manifest."""
    h = hashlib.sha256()
    for name in sorted(members):
        data = members[name]
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


class _Writer:
    """Turns an estimator into a JSON tree, collecting its arrays in ``arrays``."""

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.names = {cls: name for name, cls in _allowed().items()}

    def array(self, a: np.ndarray, where: str) -> dict[str, Any]:
        node: dict[str, Any] = {"type": "ndarray", "key": str(len(self.arrays))}
        if a.dtype.hasobject:
            if not all(isinstance(x, str) for x in a.flat):
                raise TypeError(f"skcfae.save cannot store {where}: an object array.")
            a, node["strings"] = a.astype(str), True  # e.g. feature_names_in_
        self.arrays.append(a)
        return node

    def value(self, v: Any, where: str, *, data: bool) -> Any:
        """The node of ``v``; ``data=False`` (parameters) allows JSON values and estimators."""
        if v is None or type(v) in _JSON_TYPES:
            return v
        if isinstance(v, np.generic) and v.dtype.kind in "biuf":
            return {"type": "scalar", "dtype": v.dtype.str, "value": v.item()}
        if type(v) is list:
            return [self.value(x, f"{where}[{i}]", data=data) for i, x in enumerate(v)]
        if type(v) is tuple:
            return {"type": "tuple", "items": self.value(list(v), where, data=data)}
        if type(v) is dict and all(isinstance(k, str) for k in v):
            items = {k: self.value(x, f"{where}[{k!r}]", data=data) for k, x in v.items()}
            return {"type": "dict", "items": items}
        if isinstance(v, pathlib.PurePath):
            return {"type": "path", "value": str(v)}
        if type(v) in self.names:
            return self.estimator(v)
        torch = sys.modules.get("torch")  # a torch object means torch is imported already
        if data and type(v) is np.ndarray:
            return self.array(v, where)
        if data and type(v) in _SPARSE.values():
            parts = {k: self.array(getattr(v, k), f"{where}.{k}") for k in _COMPONENTS}
            return {"type": "sparse", "class": type(v).__name__, "shape": list(v.shape), **parts}
        if data and torch is not None and isinstance(v, torch.device):
            return {"type": "device", "value": str(v)}
        kind = "a parameter must be" if not data else "a fitted attribute may be"
        raise TypeError(
            f"skcfae.save cannot store {where} of type {type(v).__qualname__}: {kind} None, "
            "a bool, number, string, path, list, tuple, dict with string keys or a skcfae "
            "estimator" + (", or a numpy array, CSR/CSC matrix or torch device." if data else ".")
        )

    def estimator(self, est: Any) -> dict[str, Any]:
        name = self.names[type(est)]
        params = {
            k: self.value(v, f"{name} parameter {k!r}", data=False)
            for k, v in est.get_params(deep=False).items()
        }
        torch = sys.modules.get("torch")
        fitted = {}
        for k, v in vars(est).items():
            if not _is_fitted_name(k):
                continue
            if torch is not None and isinstance(v, torch.nn.Module) and k == "module_":
                state = v.state_dict()
                fitted[k] = {
                    "type": "module",
                    "state": {
                        p: self.array(t.detach().cpu().numpy(), f"{name}.{k}[{p!r}]")
                        for p, t in state.items()
                    },
                }
            else:
                fitted[k] = self.value(v, f"{name}.{k}", data=True)
        return {"type": "estimator", "class": name, "params": params, "fitted": fitted}


class _Reader:
    """Rebuilds an estimator from its JSON tree and arrays (data only: no code runs)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.used: set[str] = set()
        self.allowed = _allowed()
        self.moved: list[str] = []  # "<class> trained on <device>" loaded on the CPU instead

    def array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise ValueError(f"the model refers to array {key!r}, which the file does not hold")
        self.used.add(key)
        return self.arrays[key]

    def ndarray(self, node: Any) -> np.ndarray:
        a = self.value(node)
        if type(a) is not np.ndarray:
            raise ValueError(f"the model holds {type(a).__name__} where an array belongs")
        return a

    def value(self, node: Any) -> Any:
        if node is None or type(node) in _JSON_TYPES:
            return node
        if type(node) is list:
            return [self.value(x) for x in node]
        kind = node.get("type") if type(node) is dict else None
        if kind == "tuple":
            return tuple(self.value(x) for x in node["items"])
        if kind == "dict":
            return {str(k): self.value(x) for k, x in node["items"].items()}
        if kind == "scalar":
            dtype = np.dtype(node["dtype"])
            if dtype.kind not in "biuf":
                raise ValueError(f"scalar of dtype {dtype} in the model")
            return dtype.type(node["value"])
        if kind == "path":
            return pathlib.Path(node["value"])
        if kind == "ndarray":
            a = self.array(node["key"])
            return a.astype(object) if node.get("strings") else a
        if kind == "sparse":
            cls = _SPARSE[node["class"]]
            parts = [self.ndarray(node[k]) for k in _COMPONENTS]
            return cls(tuple(parts), shape=tuple(node["shape"]))
        if kind == "device":
            import torch

            return torch.device(node["value"])
        if kind == "estimator":
            return self.estimator(node)
        raise ValueError(f"unknown node {kind!r} in the model")

    def estimator(self, node: dict[str, Any]) -> Any:
        name = node["class"]
        cls = self.allowed.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(
                f"the model names the class {name!r}, which is not one of the estimators a "
                f"model file may hold: {sorted(self.allowed)}"
            )
        params = {k: self.value(v) for k, v in node["params"].items()}
        unknown = sorted(set(params) - set(cls._get_param_names()))
        if unknown:
            raise ValueError(f"{name} has no parameters {unknown}")
        est = cls(**params)
        modules = {}
        for k, v in node["fitted"].items():
            if not _is_fitted_name(k):
                raise ValueError(f"{k!r} is not a fitted attribute name (ending in '_')")
            if type(v) is dict and v.get("type") == "module":
                modules[k] = v  # built last, from the other fitted attributes
            else:
                setattr(est, k, self.value(v))
        for k, v in modules.items():
            setattr(est, k, self.module(est, v["state"]))
        return est

    def module(self, est: Any, state: dict[str, Any]) -> Any:
        import torch

        from .nn._state import _usable

        if not hasattr(est, "_build_module"):
            raise ValueError(f"{type(est).__name__} holds no torch module")
        device = getattr(est, "device_", torch.device("cpu"))
        if not _usable(device):
            self.moved.append(f"{type(est).__name__} trained on {device}")
            est.device_ = device = torch.device("cpu")
        module = est._build_module(torch.Generator())
        module.load_state_dict({k: torch.from_numpy(self.ndarray(a)) for k, a in state.items()})
        return module.to(device).eval()


def save(estimator: Any, path: str | os.PathLike[str]) -> None:
    """Save an estimator to a model file that :func:`load` reads without running code.

    The file holds the estimator's parameters, its fitted attributes and the weights of its
    torch network as JSON and numpy arrays, never as a pickle. It is written to a temporary
    file first and then renamed, so that ``path`` is never left half-written.

    .. versionadded:: 0.1

    Parameters
    ----------
    estimator : estimator
        A public skcfae estimator, fitted or not, or a ``sklearn.pipeline.Pipeline`` of them.
    path : str or path-like
        The file to write (replaced if it exists).

    Raises
    ------
    TypeError
        When the estimator, a parameter or a fitted attribute is of a type the format does not
        store; the message names it.

    See Also
    --------
    load : Read the file back.

    Examples
    --------
    >>> import os, tempfile
    >>> import skcfae
    >>> from skcfae.datasets import make_interactions
    >>> X = make_interactions(50, 20, n_groups=2, random_state=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "popularity.skcfae")
    >>> skcfae.save(skcfae.Popularity().fit(X), path)
    >>> skcfae.load(path).recommend(X[:2], n=3).shape
    (2, 3)
    """
    writer = _Writer()
    if type(estimator) not in writer.names:
        raise TypeError(
            f"skcfae.save saves skcfae estimators and Pipelines of them; got "
            f"{type(estimator).__qualname__}. Allowed: {sorted(writer.names.values())}."
        )
    tree = writer.estimator(estimator)
    members = {_MODEL: json.dumps(tree).encode()}
    for key, a in enumerate(writer.arrays):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, a, allow_pickle=False)
        members[f"arrays/{key}.npy"] = buf.getvalue()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skcfae_version": importlib.import_module(__package__ or "skcfae").__version__,
        "estimator": tree["class"],
        "arrays": [str(key) for key in range(len(writer.arrays))],
        "sha256": _digest(members),
    }
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(_MANIFEST, json.dumps(manifest, indent=1))
            for name, data in members.items():
                zf.writestr(name, data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _json(data: bytes, name: str, where: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{where}: member {name} is not JSON: {exc}") from exc


def _read_array(data: bytes, name: str) -> np.ndarray:
    try:
        a = np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except ValueError as exc:  # object arrays (pickles) included
        raise ValueError(f"member {name} is not a plain numpy array: {exc}") from exc
    return a if a.flags.writeable else a.copy()


def load(path: str | os.PathLike[str]) -> Any:
    """Load an estimator saved by :func:`save`, without running code from the file.

    The file is checked before anything is built: its format and version, that its members
    are those its manifest lists, and their sha256 digest. Only skcfae's public estimators
    and ``sklearn.pipeline.Pipeline`` are constructed; arrays are read with
    ``allow_pickle=False``. A model trained on a device missing here (a GPU) is loaded on the
    CPU with a :class:`~skcfae.exceptions.DeviceWarning`.

    .. versionadded:: 0.1

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : estimator
        The estimator, fitted if it was when saved.

    Raises
    ------
    ValueError
        When the file is not a skcfae model file, has another format version, was modified
        or damaged, or names a class outside the allow-list.

    See Also
    --------
    save : Write a model file.
    """
    where = f"skcfae.load({os.fspath(path)!r})"
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            members = {name: zf.read(name) for name in names}
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{where}: not a skcfae model file (not a zip archive).") from exc
    if len(members) != len(names) or _MANIFEST not in members:
        raise ValueError(f"{where}: not a skcfae model file (no single {_MANIFEST}).")
    manifest = _json(members.pop(_MANIFEST), _MANIFEST, where)
    if type(manifest) is not dict or manifest.get("format") != FORMAT:
        raise ValueError(f"{where}: not a skcfae model file (its manifest is not skcfae's).")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{where}: format version {manifest.get('format_version')!r}, written by skcfae "
            f"{manifest.get('skcfae_version')!r}; this skcfae reads version {FORMAT_VERSION}."
        )
    keys = manifest.get("arrays")
    if type(keys) is not list or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"{where}: the manifest's array list is malformed.")
    expected = {_MODEL, *(f"arrays/{k}.npy" for k in keys)}
    if set(members) != expected or len(keys) != len(set(keys)):
        raise ValueError(
            f"{where}: the members do not match the manifest: missing "
            f"{sorted(expected - set(members))}, unexpected {sorted(set(members) - expected)}."
        )
    if manifest.get("sha256") != _digest(members):
        raise ValueError(f"{where}: digest mismatch; the file was modified or is damaged.")
    tree = _json(members[_MODEL], _MODEL, where)
    if type(tree) is not dict or tree.get("type") != "estimator":
        raise ValueError(f"{where}: the model is not an estimator node.")
    if tree.get("class") != manifest.get("estimator"):
        raise ValueError(f"{where}: the manifest and the model name different classes.")
    arrays = {k: _read_array(members[f"arrays/{k}.npy"], f"arrays/{k}.npy") for k in keys}
    reader = _Reader(arrays)
    try:
        estimator = reader.value(tree)
    except (KeyError, TypeError, AttributeError, RuntimeError, ValueError) as exc:
        raise ValueError(f"{where}: invalid model: {exc}") from exc
    if reader.used != set(keys):
        raise ValueError(f"{where}: arrays {sorted(set(keys) - reader.used)} are not used.")
    if reader.moved:
        warnings.warn(
            f"{', '.join(reader.moved)}, which is not available here: loaded on the CPU.",
            DeviceWarning,
            stacklevel=2,
        )
    return estimator
