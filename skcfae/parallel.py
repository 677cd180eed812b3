"""Threads of the processes that fit and score models: one place to set them, one to read them.

A search on a cluster is scikit-learn's own: ``GridSearchCV(..., n_jobs=-1).fit(X)`` inside
``joblib.parallel_backend("dask", scatter=[X])`` (Dask) or ``joblib.parallel_backend("ray")``
after ``ray.util.joblib.register_ray()`` (Ray); see the "Scale" page of the documentation.
What such a search needs from skcfae is that each worker process runs the fits it is given
without oversubscribing its cores: torch's intra-op thread pool and the BLAS/OpenMP pools of
numpy and scipy must together use what the worker was given, not every core of the machine.

Dask's nanny starts its worker processes with ``OMP_NUM_THREADS=1`` (and ``MKL_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``; the ``distributed.nanny.pre-spawn-environ`` setting, unless the
environment already sets them), which torch reads when it starts, and Ray sets
``OMP_NUM_THREADS`` to the CPUs a task holds (1 for the joblib pool) when it is unset, so one
thread per fit is the default on both. :func:`set_threads` changes it in a
running process (``client.run(set_threads, 4)`` on every Dask worker, e.g. for one worker per
machine that fits one large model at a time) and :func:`thread_counts` reports it
(``client.run(thread_counts)``).

This module imports torch only when its functions are called.
"""

from __future__ import annotations

from numbers import Integral

__all__ = ["set_threads", "thread_counts"]


def thread_counts() -> dict[str, int]:
    """The threads that the numerical libraries of this process use.

    Meant to be run where the work happens, e.g. on every worker of a Dask cluster with
    ``client.run(thread_counts)``, to check that a worker does not oversubscribe its cores.

    Returns
    -------
    counts : dict of str to int
        ``"torch"``: torch's intra-op threads (:func:`torch.get_num_threads`); ``"blas"`` and
        ``"openmp"``: the largest thread count among the BLAS and OpenMP libraries loaded in
        the process, as :func:`threadpoolctl.threadpool_info` reports them (0 when none of
        that kind is loaded).

    Examples
    --------
    >>> from skcfae.parallel import set_threads, thread_counts
    >>> sorted(thread_counts())
    ['blas', 'openmp', 'torch']
    """
    import torch
    from threadpoolctl import threadpool_info

    counts = {"torch": int(torch.get_num_threads()), "blas": 0, "openmp": 0}
    for pool in threadpool_info():
        api = pool.get("user_api")
        if api in ("blas", "openmp"):
            counts[api] = max(counts[api], int(pool.get("num_threads") or 0))
    return counts


def set_threads(n_threads: int) -> dict[str, int]:
    """Set the threads of torch, BLAS and OpenMP in this process, for good.

    ``torch.set_num_threads(n_threads)`` plus :func:`threadpoolctl.threadpool_limits` on every
    BLAS and OpenMP library loaded so far, left in place (not a context manager): what a
    worker process of a cluster needs once, before it fits models. Run it on every Dask worker
    with ``client.run(set_threads, n_threads)``; for the workers that a cluster starts later,
    set ``OMP_NUM_THREADS`` in their environment instead (Dask's
    ``distributed.nanny.pre-spawn-environ`` setting, Ray's ``runtime_env={"env_vars": ...}``),
    which torch reads when it starts.

    Parameters
    ----------
    n_threads : int
        Threads per library, at least 1: the cores a worker process may use divided by the
        number of fits it runs at once (``threads_per_worker`` of a Dask worker).

    Returns
    -------
    counts : dict of str to int
        :func:`thread_counts` after the change.

    Examples
    --------
    >>> import torch
    >>> from skcfae.parallel import set_threads
    >>> before = torch.get_num_threads()
    >>> set_threads(1)["torch"]
    1
    >>> _ = set_threads(before)
    """
    if isinstance(n_threads, bool) or not isinstance(n_threads, Integral) or n_threads < 1:
        raise ValueError(
            "The 'n_threads' parameter of set_threads must be an int in the range [1, inf). "
            f"Got {n_threads!r} instead."
        )
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(int(n_threads))
    threadpool_limits(limits=int(n_threads))
    return thread_counts()
