"""Compiled CPU kernels for the sparse layers, built on first use and called through ctypes.

``_kernels.c`` (shipped with the package) is compiled once per machine with the C compiler
found on the ``PATH`` (``$CC``, ``cc``, ``gcc`` or ``clang``; ``-O3 -march=native -fopenmp``,
retried without ``-march=native``), into a cache folder: ``$SKCFAE_CACHE_DIR``, else
``$XDG_CACHE_HOME/skcfae`` or ``~/.cache/skcfae``, else the temporary folder. The library's
name holds a hash of the source, the compiler, the flags and the CPU's feature flags, so that
a cache shared between machines (a cluster's home folder) never loads a build for another
CPU. Compiling takes about 0.2 s; nothing is needed at install time.

The kernels run on ``torch.get_num_threads()`` OpenMP threads, each on a disjoint range of
items (balanced by connections) or of batch rows, in the OpenMP runtime torch has loaded:
the library is linked against ``libgomp.so.1``, the name under which torch's Linux builds
load theirs, so the dynamic loader binds it to torch's copy and the kernels reuse torch's
threads. Threads of their own (a Python pool, or a second OpenMP runtime) would compete for
the cores with torch's, which spin for a while after each parallel operation: one of two
threads then ran 2x slower and the pair no faster than one thread.

Whenever no library can be built or loaded, or it would load a second OpenMP runtime (no
compiler, no OpenMP, a read-only disk, macOS or Windows builds of torch with another
runtime, ``SKCFAE_NATIVE=0`` in the environment), :func:`library` returns None and the layers
use their torch kernels: the results are the same up to float rounding, only slower.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shlex
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "available",
    "from_tiles",
    "item_major",
    "library",
    "neuron_side",
    "sparse_rows",
    "sparse_rows_grad",
    "to_tiles",
]

_SOURCE = Path(__file__).with_name("_kernels.c")
_VERSION = 2
TILE = 32  #: users per tile, as in _kernels.c
_lock = threading.Lock()
_state: dict[str, Any] = {}
_INT = ctypes.c_int
_I64 = ctypes.c_int64
_PTR = ctypes.c_void_p
_SIGNATURES = {
    "skcfae_item_major": [_INT, _PTR, _I64, _I64, _I64] + [_PTR] * 6,
    "skcfae_neuron_side": [_INT, _PTR, _I64, _I64, _I64] + [_PTR] * 6 + [_I64, _PTR],
    "skcfae_sparse_rows": [_INT, _PTR, _I64] + [_PTR] * 8,
    "skcfae_sparse_rows_grad": [_INT, _PTR, _I64, _I64] + [_PTR] * 8,
    "skcfae_logistic": [_INT, _PTR, _PTR, ctypes.c_float, _PTR, _PTR],
}


def _cache_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("SKCFAE_CACHE_DIR"):
        dirs.append(Path(os.environ["SKCFAE_CACHE_DIR"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dirs.append(Path(base) / "skcfae")
    dirs.append(
        Path(tempfile.gettempdir()) / f"skcfae-{os.getuid() if hasattr(os, 'getuid') else 0}"
    )
    return dirs


def _cpu_signature() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() + platform.machine()


def _compile(cc: str, flags: list[str], target: Path) -> bool:
    """Compile into ``target``; False when the compiler fails (OSError: the folder is not
    writable)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [*shlex.split(cc), *flags, "-shared", "-fPIC", "-o", tmp, str(_SOURCE)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError):
            return False  # no such program, or it hung
        if done.returncode != 0:
            return False
        os.replace(tmp, target)  # atomic: concurrent processes never load a half-written file
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _build() -> ctypes.CDLL | None:
    cc = os.environ.get("CC") or next((c for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if cc is None or not _SOURCE.exists():
        return None
    source = _SOURCE.read_bytes()
    for flags in (["-O3", "-march=native", "-fopenmp"], ["-O3", "-fopenmp"]):
        key = hashlib.sha256(
            b"\0".join([source, cc.encode(), " ".join(flags).encode(), _cpu_signature().encode()])
        ).hexdigest()[:16]
        for folder in _cache_dirs():
            path = folder / f"kernels-{key}.so"
            try:
                if not path.exists() and not _compile(cc, flags, path):
                    break  # these flags do not compile here: try the next ones
                runtimes = _openmp_runtimes()
                lib = ctypes.CDLL(str(path))
                if lib.skcfae_kernels_version() != _VERSION or _openmp_runtimes() - runtimes:
                    return None  # loading it mapped an OpenMP runtime torch does not use
                for name, args in _SIGNATURES.items():
                    getattr(lib, name).argtypes = args
                    getattr(lib, name).restype = None
                return lib
            except OSError:
                continue  # this folder is not writable or the file not loadable: next folder
    return None


def _openmp_runtimes() -> set[str]:
    """The OpenMP runtimes this process has mapped (Linux; elsewhere the question cannot be
    asked: an empty set, and the build is kept)."""
    try:
        with open("/proc/self/maps") as f:
            names = {line.split()[-1] for line in f if "gomp" in line or "libomp" in line}
    except OSError:
        return set()
    return {os.path.realpath(n) for n in names}


def library() -> ctypes.CDLL | None:
    """The compiled kernels, built on the first call; None where they are unavailable."""
    if os.environ.get("SKCFAE_NATIVE", "1") == "0":
        return None
    with _lock:
        if "lib" not in _state:
            _state["lib"] = _build()
        return _state["lib"]


def available(*tensors: Tensor) -> bool:
    """Whether the compiled kernels apply to these operands: float32 tensors on the CPU."""
    return all(t.device.type == "cpu" and t.dtype == torch.float32 for t in tensors) and (
        library() is not None
    )


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _cuts(bounds: list[int]) -> tuple[int, Tensor]:
    """(number of ranges, the range boundaries as the kernels take them)."""
    return len(bounds) - 1, torch.tensor(bounds, dtype=torch.int64)


def _item_ranges(p: Any, n_threads: int) -> tuple[int, Tensor]:
    """``n_threads`` contiguous item ranges holding about the same number of connections,
    as :func:`_cuts`, cached on the pattern."""
    cache = p.__dict__.setdefault("_ranges", {})
    if n_threads not in cache:
        targets = torch.linspace(0, p.nnz, n_threads + 1, dtype=torch.float64)
        bounds = torch.searchsorted(p.indptr.cpu().double(), targets).tolist()
        bounds[0], bounds[-1] = 0, p.n_items
        cache[n_threads] = _cuts(sorted(set(bounds)))
    return cache[n_threads]


#: Multiply-adds per extra thread: below it starting the thread would cost more than it saves.
_MIN_WORK = 1 << 18


def _threads(work: int) -> int:
    """Threads for a call doing ``work`` multiply-adds, at most ``torch.get_num_threads()``."""
    return max(1, min(torch.get_num_threads(), work // _MIN_WORK))


def to_tiles(x: Tensor) -> Tensor:
    """(b, K) -> the kernels' neuron-side layout (b_pad / 32, K, 32), zero-padded."""
    b, K = x.shape
    b_pad = -(-b // TILE) * TILE
    if b_pad != b:
        x = torch.cat([x, x.new_zeros(b_pad - b, K)])
    return x.view(b_pad // TILE, TILE, K).transpose(1, 2).contiguous()


def from_tiles(tiles: Tensor, b: int) -> Tensor:
    """The inverse of :func:`to_tiles`: (b, K)."""
    nt, K, _ = tiles.shape
    return tiles.transpose(1, 2).reshape(nt * TILE, K)[:b]


def _rows(x: Tensor) -> Tensor:
    """Item-side operand: the (n_items, b) transpose of x (b, n_items), row-contiguous."""
    xt = x.t()
    return xt if xt.stride(1) == 1 else xt.contiguous()


def item_major(p: Any, w: Tensor, h: Tensor, bias: Tensor | None = None) -> Tensor:
    """``h Wᵀ`` (b, n_items) for dense h (b, K), plus ``bias`` (n_items,) when given: item i
    sums w[c] h[:, cols[c]]. The result is the transpose of a row-major (n_items, b) tensor
    (the layout of ``_sparse._bags``)."""
    b = h.shape[0]
    src = to_tiles(h)
    out = torch.empty(p.n_items, b, dtype=h.dtype)
    n, cuts = _item_ranges(p, _threads(p.nnz * b))
    library().skcfae_item_major(  # type: ignore[union-attr]
        n,
        cuts.data_ptr(),
        b,
        p.n_hidden,
        b,
        _ptr(p.indptr),
        _ptr(p.cols),
        _ptr(w),
        _ptr(bias),
        _ptr(src),
        _ptr(out),
    )
    return out.t()


def neuron_side(
    p: Any, w: Tensor, x: Tensor, dense: Tensor | None, accumulate: bool
) -> tuple[Tensor | None, Tensor | None]:
    """For x (b, n_items): ``x W`` (b, K) when ``accumulate``, and the connection values of
    ``xᵀ dense`` (nnz,) for dense (b, K) when given (the SDDMM). Both in one sweep."""
    b = x.shape[0]
    items = _rows(x)
    tiles = None if dense is None else to_tiles(dense)
    n, cuts = _item_ranges(p, _threads(p.nnz * b))
    nt = -(-b // TILE)
    accs = torch.zeros(n, nt, p.n_hidden, TILE) if accumulate else None
    dots = torch.empty(p.nnz) if dense is not None else None
    library().skcfae_neuron_side(  # type: ignore[union-attr]
        n,
        cuts.data_ptr(),
        b,
        p.n_hidden,
        items.stride(0),
        _ptr(p.indptr),
        _ptr(p.cols),
        _ptr(w),
        _ptr(items),
        _ptr(tiles),
        _ptr(accs),
        nt * p.n_hidden * TILE,
        _ptr(dots),
    )
    acc = None if accs is None else from_tiles(accs[0] if n == 1 else accs.sum(0), b)
    return acc, dots


def _scatter_work(p: Any, items: Tensor) -> int:
    """Multiply-adds of a sparse batch's scatter: its entries times the connections per item."""
    return int(len(items) * p.nnz / max(p.n_items, 1))


def sparse_rows(
    p: Any, w: Tensor, offsets: Tensor, counts: Tensor, items: Tensor, vals: Tensor
) -> Tensor:
    """``out[r] = sum over row r's entries (i, x) of x W[i]``: (n_rows, K)."""
    n_rows = int(counts.shape[0])
    out = torch.zeros(n_rows, p.n_hidden)
    n_threads = min(_threads(_scatter_work(p, items)), max(n_rows, 1))
    n, cuts = _cuts([n_rows * t // n_threads for t in range(n_threads + 1)])
    library().skcfae_sparse_rows(  # type: ignore[union-attr]
        n,
        cuts.data_ptr(),
        p.n_hidden,
        _ptr(p.indptr),
        _ptr(p.cols),
        _ptr(w),
        _ptr(offsets),
        _ptr(counts),
        _ptr(items),
        _ptr(vals),
        _ptr(out),
    )
    return out


def sparse_rows_grad(
    p: Any, offsets: Tensor, counts: Tensor, items: Tensor, vals: Tensor, grad_h: Tensor
) -> Tensor:
    """The connection gradient of :func:`sparse_rows` for the output gradient grad_h."""
    grad = torch.empty(p.nnz)  # zeroed by the kernel, range by range
    n, cuts = _item_ranges(p, _threads(_scatter_work(p, items)))
    library().skcfae_sparse_rows_grad(  # type: ignore[union-attr]
        n,
        cuts.data_ptr(),
        int(counts.shape[0]),
        p.n_hidden,
        _ptr(p.indptr),
        _ptr(p.cols),
        _ptr(offsets),
        _ptr(counts),
        _ptr(items),
        _ptr(vals),
        _ptr(grad_h),
        _ptr(grad),
    )
    return grad


def logistic(z: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor] | None:
    """``(sigmoid(z) * scale, Σ softplus(z))`` in one pass (the sum a float64 scalar tensor),
    for z whose elements lie contiguously in row- or column-major order; None for other
    layouts. The product is rounded once, as ``torch.sigmoid(z).mul_(scale)`` for a float32
    scale."""
    flat = z if z.is_contiguous() else z.t()
    if not flat.is_contiguous():
        return None
    sig = torch.empty_like(flat)
    size = flat.numel()
    n_threads = _threads(16 * size)  # ~16 multiply-adds an element
    n, cuts = _cuts([size * t // n_threads // 8 * 8 for t in range(n_threads)] + [size])
    sums = torch.zeros(n, dtype=torch.float64)
    library().skcfae_logistic(  # type: ignore[union-attr]
        n, cuts.data_ptr(), _ptr(flat), scale, _ptr(sig), _ptr(sums)
    )
    return (sig if flat is z else sig.t()), sums.sum()
