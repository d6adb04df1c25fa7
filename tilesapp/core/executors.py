"""The executor seam: where per-image and per-band work runs.

The export hands each image to :meth:`Executor.submit` and, inside an image's work, its bands
to :meth:`Executor.map`. :class:`ThreadExecutor` runs both on threads of this process (reading,
OpenCV, numpy, zlib and file writes release the GIL); a cluster executor runs them on other
machines (:mod:`tilesapp.core.executors_dask`, made by :func:`make_executor` from a scheduler's
address). Work functions receive picklable arguments, so any executor can ship them.

An executor that is not ``local`` may also offer what a run needs across processes:
``shared_cancel()`` (a picklable flag with ``is_set()``), ``tile_counter()`` (a picklable
``report`` callback) with ``in_flight()`` (tiles counted of unfinished work), and
``check_shared(readable, writable)`` (every worker sees the run's files). Its futures may say
``retries``: how often lost work was run again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from tilesapp.core.settings import cpu_count

T = TypeVar("T")


class Executor(Protocol):
    """Runs the work of a run. ``workers`` is how many pieces of work run at once."""

    workers: int
    #: Whether work runs in this process (then it may report progress through callbacks).
    local: bool

    def submit(self, fn: Callable[..., T], *args: Any) -> Future:
        """Run ``fn(*args)`` (one image's work); a future of its result."""

    def map(self, fn: Callable[[Any], T], items: list) -> list[T]:
        """``[fn(item) for item in items]`` in parallel (one image's bands), in order. The first
        error stops the items not yet started and is raised once the others have ended."""

    def close(self) -> None:
        """Wait for running work and release the workers."""


def make_executor(spec: Executor | str | None, workers: int | None = None) -> Executor:
    """The executor of a run: threads of this process (None), a Dask cluster (``local:N`` or a
    scheduler's address, see :func:`tilesapp.core.executors_dask.open_cluster`), or ``spec``
    itself. ``workers``: pieces of work sharing the memory limit (default: the cores)."""
    if spec is None:
        return ThreadExecutor(workers)
    if not isinstance(spec, str):
        return spec
    from tilesapp.core.errors import TilesError

    try:
        from tilesapp.core.executors_dask import open_cluster
    except ImportError:
        raise TilesError("Running on a Dask cluster needs Tiles Creator installed with Dask (pip install "
                         "\"tilesapp[dask]\"); the desktop program runs on this computer only.") from None
    return open_cluster(spec, workers)


def results_in_order(futures: list) -> list:
    """The results of ``futures`` in their order, once every one has ended; the first error
    (in that order) is raised then, so no task is still running when the caller sees it."""
    results, error = [], None
    for future in futures:
        try:
            results.append(future.result())
        except BaseException as exc:  # noqa: PERF203 - the first error wins, the rest end first
            error = error or exc
    if error is not None:
        raise error
    return results


class ThreadExecutor:
    """Images and bands on two pools of threads of this process (``workers`` each; an image's
    thread waits for its bands in the other pool, so neither can starve the other)."""

    local = True

    def __init__(self, workers: int | None = None):
        self.workers = max(1, int(workers or cpu_count()))
        self._images: ThreadPoolExecutor | None = None
        self._bands: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future:
        with self._lock:
            if self._images is None:
                self._images = ThreadPoolExecutor(self.workers, thread_name_prefix="tilesapp-image")
            pool = self._images
        return pool.submit(fn, *args)

    def map(self, fn: Callable[[Any], T], items: list) -> list[T]:
        items = list(items)
        if len(items) <= 1 or self.workers == 1:
            return [fn(item) for item in items]
        with self._lock:
            if self._bands is None:
                self._bands = ThreadPoolExecutor(self.workers, thread_name_prefix="tilesapp-band")
            pool = self._bands
        stop = threading.Event()
        skipped = object()

        def one(item):
            if stop.is_set():
                return skipped
            try:
                return fn(item)
            except BaseException:
                stop.set()
                raise

        return results_in_order([pool.submit(one, item) for item in items])

    def close(self) -> None:
        with self._lock:
            pools, self._images, self._bands = (self._images, self._bands), None, None
        for pool in pools:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ThreadExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

