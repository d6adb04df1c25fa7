"""Images and bands on a Dask cluster: the executor seam (:mod:`tilesapp.core.executors`) over
``dask.distributed`` (the ``[dask]`` extra; this module is imported only for a cluster run).

How the work is spread: each image is one task (:meth:`DaskExecutor.submit`). An image cut in
bands hands its bands back to the cluster from inside its own task (:class:`ClusterBands`, with
``worker_client``: the image's thread leaves its worker's pool while it waits, so it never
holds a slot its bands need), one pass after the other — statistics, filter, writing — exactly
as on one machine: :func:`tilesapp.core.cut.cut_image` is the same code wherever it runs, only
``map`` differs. Bands are given a higher priority than images, so a slide that has started is
finished before new images start. The client holds no pixels: tasks read the images and write
the tiles on a file system every machine shares, and send back only their records.

An argument given to every image's task (the run: settings, sink, cancel flag, tile counter)
travels once per worker process (:class:`PerProcess`): its tasks share it as threads here do,
with what it caches (the TIFF frame of the tile writer, built once instead of once per image).

The band plan depends on the memory limit and ``workers`` (the pieces of work that share one
worker's memory limit) — never on the cluster's size — so a cluster run writes the same bytes
as a local run with the same two settings (the defaults are the same: this computer's cores).

Progress, cancel and lost workers:

- tile counts are sent from the workers as Dask events (at most five a second per process and
  image, :class:`ClusterTiles`) and counted until their image's task ends (:meth:`in_flight`);
- cancel (:meth:`stop`) raises a :class:`ClusterFlag` in every worker process (and in a
  ``distributed.Event``, for workers that miss the broadcast), which tasks read between two
  tiles; it then drops the tasks that have not started (a task that starts later would write
  nothing anyway) and lets the running ones end with what they wrote;
- a worker that dies is noticed by the scheduler, which runs its tasks again elsewhere (up to
  ``distributed.scheduler.allowed-failures`` times); the scheduler's ``remove-worker`` events
  name the tasks it was running, and each image's future says how often it was retried
  (``retries``), so the export can remove what the lost attempt left on disk.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import logging
import os
import pickle
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import distributed

from tilesapp import __version__
from tilesapp.core.errors import OutputError, TilesError
from tilesapp.core.executors import results_in_order
from tilesapp.core.settings import cpu_count
from tilesapp.core.writers import PARTIAL_SUFFIX

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Bands of an image that has started go before images that have not.
BAND_PRIORITY = 10
#: Seconds to wait for a first worker of a scheduler that has none yet, and to reach a scheduler.
WORKER_WAIT = 60.0
CONNECT_TIMEOUT = 20.0
#: Keys of our tasks: an image's, and its bands' (``<image key>-band-...``).
_IMAGE_KEY = re.compile(r"^tilesapp-[0-9a-f]+-\d+")


class ClusterError(TilesError):
    """The cluster cannot be reached or used."""


def open_cluster(spec: str, workers: int | None = None) -> DaskExecutor:
    """An executor on ``spec``: ``local:N`` (a ``LocalCluster`` of N worker processes on this
    computer) or the address of a running scheduler (``tcp://host:8786``).

    ``workers`` is how many pieces of work share one worker's memory limit (default: this
    computer's cores, as a local run); bands are sized by it.
    """
    spec = str(spec).strip()
    local = re.fullmatch(r"local:(\d+)", spec)
    if local:
        n = int(local[1])
        if not 1 <= n <= 256:
            raise ClusterError(f"local:{n}: the number of worker processes must be between 1 and 256.")
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=max(1, cpu_count() // n), processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        return DaskExecutor(distributed.Client(cluster, set_as_default=False), workers, cluster)
    if not re.match(r"^[a-z]+://", spec) and ":" not in spec:
        raise ClusterError(f"{spec!r} is not a scheduler address; give one such as tcp://host:8786, or local:N for "
                           f"N worker processes on this computer.")
    try:
        client = distributed.Client(spec, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(f"Cannot reach the Dask scheduler at {spec} ({exc}); start it ('dask scheduler') or check "
                           f"the address.") from None
    return DaskExecutor(client, workers)


class DaskExecutor:
    """Runs a run's images as tasks of a Dask cluster (see the module's docstring)."""

    local = False

    def __init__(self, client: distributed.Client, workers: int | None = None, cluster: Any = None):
        self.client, self._cluster = client, cluster
        self.workers = max(1, int(workers or cpu_count()))
        self.run_id = uuid.uuid4().hex[:12]
        self._numbers = itertools.count()
        self._last_args: dict[int, list] = {}  # position → [the previous task's argument, its PerProcess]
        self._lock = threading.Lock()
        self._pending: dict[str, ClusterFuture] = {}
        self._retries: dict[str, int] = defaultdict(int)  # image key → workers lost while it (or a band) ran
        self._tiles: dict[str, int] = defaultdict(int)  # image key → tiles reported, image not ended
        self._flag: ClusterFlag | None = None
        self.stopping = False
        # results are fetched from the workers a few at a time (distributed calls back in one thread)
        self.fetching = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="tilesapp-dask-result")
        self._topic = f"tilesapp-tiles-{self.run_id}"
        client.subscribe_topic("all", self._scheduler_event)
        client.subscribe_topic(self._topic, self._tiles_event)

    # --- the executor seam ---------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], *args: Any) -> ClusterFuture:
        """Run ``fn(*args)`` as a task; this executor in ``args`` travels as :class:`ClusterBands`."""
        key = f"tilesapp-{self.run_id}-{next(self._numbers)}"
        args = tuple(self._travelling(i, arg) for i, arg in enumerate(args))
        future = ClusterFuture(self, key)
        with self._lock:
            self._pending[key] = future
        future.attach(self.client.submit(run_task, fn, *args, key=key, pure=False))
        return future

    def _travelling(self, position: int, arg: Any) -> Any:
        """How an argument travels: this executor as :class:`ClusterBands`; the object given at
        this position to the previous task too (the run) once per worker process."""
        if arg is self:
            return ClusterBands(self.workers)
        last = self._last_args.get(position)
        if last is None or last[0] is not arg:
            self._last_args[position] = [arg, None]
            return arg
        if last[1] is None:
            last[1] = PerProcess(arg)
        return last[1]

    def map(self, fn: Callable[[Any], T], items: list) -> list[T]:
        return map_on(self.client, fn, list(items), f"tilesapp-{self.run_id}-map-{uuid.uuid4().hex[:8]}")

    def close(self) -> None:
        try:
            self.fetching.shutdown(wait=True, cancel_futures=True)
            for topic in ("all", self._topic):  # before closing: the scheduler would tell us it closed
                self.client.unsubscribe_topic(topic)
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- what a run shares with its tasks -------------------------------------------------------
    def shared_cancel(self) -> ClusterFlag:
        """A new cancel flag for a run, read by every task; :meth:`stop` raises it."""
        self.stopping = False
        self._flag = ClusterFlag(f"tilesapp-cancel-{uuid.uuid4().hex}", self.client)
        return self._flag

    def tile_counter(self) -> ClusterTiles:
        """A ``report`` callback for tasks: the tiles they write, counted here (:meth:`in_flight`)."""
        return ClusterTiles(self._topic)

    def in_flight(self) -> int:
        """Tiles reported by images whose tasks have not ended."""
        with self._lock:
            return sum(self._tiles.values())

    def stop(self) -> None:
        """Cancel: every task stops at its next tile (the flag), tasks not started are dropped."""
        with self._lock:
            if self.stopping:
                return
            self.stopping = True
        if self._flag is not None:
            self._flag.set()  # once set, a task that starts ends at once, writing nothing
        try:
            # Not started: neither running (first question) nor ended since (second question).
            # A task that ended is kept even before its result arrives: it may have written tiles.
            running = {key for keys in self.client.processing().values() for key in keys}
            with self._lock:
                candidates = [f for f in self._pending.values()
                              if f.key not in running and f.task is not None and f.task.status == "pending"]
            ended = self.client.who_has([f.task for f in candidates])
            queued = [f for f in candidates if not ended.get(f.key)]
            if queued:
                self.client.cancel([f.task for f in queued])
        except Exception:  # the scheduler is gone: nothing runs any more
            log.exception("could not ask the scheduler what runs")
            return
        for future in queued:
            future.drop()

    # --- the checks of a run ----------------------------------------------------------------------
    def check_shared(self, readable: Sequence[Path], writable: Path) -> None:
        """Refuse (:class:`OutputError`) a cluster whose workers do not all see ``readable`` (the
        same files) and cannot write in ``writable`` (the same folder; or, when it does not exist
        yet, the folder it will be made in), or run another version (the scheduler too: it
        unpickles the tasks it is given). Nothing is left behind."""
        try:
            version = self.client.run_on_scheduler(tilesapp_version)
        except Exception as exc:  # noqa: BLE001 - whatever the scheduler could not do
            version = f"none ({type(exc).__name__}: {exc})"
        if version != __version__:
            raise ClusterError(f"The Dask scheduler at {self.client.scheduler.address} runs Tiles Creator {version}, "
                               f"this computer {__version__}; the scheduler and its workers need the same environment "
                               f"(pip install \"tilesapp[dask]\" there).")
        workers = self._workers()
        token = uuid.uuid4().hex
        writable = next(p for p in [Path(writable), *Path(writable).parents] if p.is_dir())
        fd, probe = tempfile.mkstemp(prefix=".tilesapp-probe-", suffix=PARTIAL_SUFFIX, dir=writable)
        try:
            os.write(fd, token.encode())
            os.close(fd)
            files = [(str(p), p.stat().st_size if p.is_file() else None) for p in readable]
            answers = self.client.run(what_a_worker_sees, files, probe, token, __version__, on_error="return")
        finally:
            os.unlink(probe)
        problems = []
        for worker in sorted(set(workers) | set(answers)):
            answer = answers.get(worker, ["did not answer"])
            if isinstance(answer, BaseException):
                answer = [f"cannot run Tiles Creator ({type(answer).__name__}: {answer}); install it there "
                          f"(pip install \"tilesapp[dask]\")"]
            problems += [f"{worker} {problem}" for problem in answer]
        if problems:
            shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
            raise OutputError(f"Not every Dask worker sees the files of this run as this computer does: {shown}. "
                              f"The input, masks, labels and export folders must be on a file system every machine "
                              f"shares, at the same paths; nothing was written.")

    def _workers(self) -> list[str]:
        workers = list(self.client.scheduler_info().get("workers", {}))
        if not workers:
            try:
                self.client.wait_for_workers(1, timeout=WORKER_WAIT)
            except (TimeoutError, OSError):
                raise ClusterError(f"The Dask scheduler at {self.client.scheduler.address} has no workers (waited "
                                   f"{WORKER_WAIT:.0f} s); start some ('dask worker ADDRESS').") from None
            workers = list(self.client.scheduler_info().get("workers", {}))
        return workers

    # --- events from the scheduler ------------------------------------------------------------------
    def _scheduler_event(self, event) -> None:
        msg = event[1] if isinstance(event, (tuple, list)) else event
        if not isinstance(msg, dict) or msg.get("action") != "remove-worker" or msg.get("expected"):
            return
        lost = {_image_of(key) for key in msg.get("processing-tasks", ())}
        with self._lock:
            for key in lost & set(self._pending):
                self._retries[key] += 1
                self._tiles[key] = 0  # it starts again
        if lost & set(self._pending):
            log.warning("worker %s lost while cutting %s: the scheduler runs that work again", msg.get("worker"),
                        sorted(lost & set(self._pending)))

    def _tiles_event(self, event) -> None:
        with self._lock:
            for key, n in event[1]:
                if key in self._pending:
                    self._tiles[key] += n

    def ended(self, key: str) -> int:
        """Forget a task that ended; returns how often it was retried."""
        with self._lock:
            self._pending.pop(key, None)
            self._tiles.pop(key, None)
            return self._retries.pop(key, 0)


class ClusterFuture(concurrent.futures.Future):
    """The future of one image's task, as the export knows futures (``concurrent.futures``).

    ``cancel`` drops a task that has not started (a running one ends by the cancel flag, with
    what it wrote); ``retries`` says how often a lost worker made the cluster run it again.
    """

    def __init__(self, executor: DaskExecutor, key: str):
        super().__init__()
        self.executor, self.key = executor, key
        self.task: distributed.Future | None = None
        self.retries = 0

    def attach(self, task: distributed.Future) -> None:
        self.task = task
        task.add_done_callback(self._fetch)

    def _fetch(self, task: distributed.Future) -> None:
        # distributed calls back in one thread of its own: the result is fetched in one of ours
        try:
            self.executor.fetching.submit(self._task_ended, task)
        except RuntimeError:  # the executor was closed: nobody waits for this result any more
            pass

    def cancel(self) -> bool:
        if not self.done():
            self.executor.stop()
        return self.cancelled()

    def drop(self) -> None:
        self.executor.ended(self.key)
        concurrent.futures.Future.cancel(self)

    def _task_ended(self, task: distributed.Future) -> None:
        self.retries = self.executor.ended(self.key)  # the scheduler told of lost workers before the end
        outcome: Any = None
        error: BaseException | None = None
        try:
            if task.status == "cancelled" and self.executor.stopping:
                error = concurrent.futures.CancelledError()
            else:
                outcome = task.result()
        except distributed.KilledWorker:
            lost = max(1, self.retries)
            error = TilesError(f"the worker cutting it was lost {lost} time{'s' * (lost > 1)} (it ended while it ran: "
                               f"out of memory, or killed?); see the workers' logs")
        except (concurrent.futures.CancelledError, distributed.client.FutureCancelledError):
            error = TilesError("the Dask cluster dropped it (the connection to the scheduler was lost?)")
        except BaseException as exc:  # noqa: BLE001 - the future carries it
            error = exc
        self.task = None
        try:
            if isinstance(error, concurrent.futures.CancelledError):
                concurrent.futures.Future.cancel(self)
            elif error is not None:
                self.set_exception(error)
            else:
                self.set_result(outcome)
        except concurrent.futures.InvalidStateError:  # dropped meanwhile
            pass


# --- what travels to the workers ----------------------------------------------------------------------
class ClusterBands:
    """The executor an image's task sees on a worker: its bands go back to the cluster, as tasks
    of a higher priority named after the image's task (several bands), or run here (one)."""

    local = False

    def __init__(self, workers: int):
        self.workers = workers

    def submit(self, fn, *args):  # pragma: no cover - images are submitted by the client only
        raise RuntimeError("images are submitted by the client")

    def map(self, fn: Callable[[Any], T], items: list) -> list[T]:
        items = list(items)
        if len(items) <= 1:
            return [fn(item) for item in items]  # a single band stays with its image (held between passes)
        parent = distributed.get_worker().get_current_task()
        with distributed.worker_client() as client:  # leaves the worker's pool while the bands run
            return map_on(client, fn, items, f"{parent}-band-{uuid.uuid4().hex[:8]}")

    def close(self) -> None:
        pass


def map_on(client: distributed.Client, fn: Callable[[Any], T], items: list, prefix: str) -> list[T]:
    """``[fn(item) for item in items]`` as tasks ``<prefix>-<i>`` of ``client``'s cluster, in order;
    the first error is raised once every task has ended."""
    futures = client.map(fn, items, key=[f"{prefix}-{i}" for i in range(len(items))], pure=False,
                         priority=BAND_PRIORITY)
    distributed.wait(futures)
    return results_in_order(futures)


#: Cancel flags raised in this process (by :meth:`ClusterFlag.set`'s broadcast, on a worker).
_RAISED: set[str] = set()


def raise_flag(name: str) -> None:
    """Run on every worker when a run is cancelled."""
    _RAISED.add(name)


class ClusterFlag:
    """A cancel flag every process of the cluster reads. :meth:`set` raises it in every worker
    process at once (``Client.run``) and in a ``distributed.Event``, which a worker that missed
    the broadcast (one that joined later) asks at most every ``INTERVAL`` seconds. Pickles as
    its name."""

    INTERVAL = 0.25

    def __init__(self, name: str, client: distributed.Client | None = None):
        self.name, self._client = name, client
        self._event: distributed.Event | None = None
        self._asked = -float("inf")

    def _get(self) -> distributed.Event:
        if self._event is None:  # on a worker: its own client
            self._event = distributed.Event(self.name, client=self._client)
        return self._event

    def is_set(self) -> bool:
        if self.name in _RAISED:
            return True
        if time.monotonic() - self._asked >= self.INTERVAL:
            self._asked = time.monotonic()
            if self._get().is_set():
                _RAISED.add(self.name)
                return True
        return False

    def set(self) -> None:
        """Raise the flag; returns once every worker that answers has it raised."""
        _RAISED.add(self.name)
        self._get().set()
        self._client.run(raise_flag, self.name, on_error="ignore")

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"])


class ClusterTiles:
    """Counts the tiles a worker's tasks write and sends the counts to the client as events,
    by image, at most every ``INTERVAL`` seconds (what is not sent yet is counted when the
    image's task ends). Pickles as its topic."""

    INTERVAL = 0.2

    def __init__(self, topic: str):
        self.topic = topic
        self._counts: dict[str, int] = defaultdict(int)
        self._sent = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, n: int) -> None:
        worker = distributed.get_worker()
        key = _image_of(worker.get_current_task())
        with self._lock:
            self._counts[key] += n
            if time.monotonic() - self._sent < self.INTERVAL:
                return
            counts, self._counts, self._sent = [[k, v] for k, v in self._counts.items()], defaultdict(int), time.monotonic()
        worker.log_event(self.topic, counts)

    def __getstate__(self) -> dict[str, Any]:
        return {"topic": self.topic}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["topic"])


#: Objects several tasks were given, once per worker process (the last few runs' only).
_PER_PROCESS: OrderedDict[str, Any] = OrderedDict()
_PER_PROCESS_LOCK = threading.Lock()


class PerProcess:
    """An object given to many tasks, made once per worker process and shared there: it travels
    as a token and its bytes (pickled once, here; the scheduler, which unpickles task graphs,
    sees only these), and :meth:`get` in a task returns the process's object for the token."""

    KEEP = 8

    def __init__(self, obj: Any):
        self.token, self.payload = uuid.uuid4().hex, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def get(self) -> Any:
        with _PER_PROCESS_LOCK:
            obj = _PER_PROCESS.get(self.token)
            if obj is None:
                obj = _PER_PROCESS[self.token] = pickle.loads(self.payload)
                while len(_PER_PROCESS) > self.KEEP:
                    _PER_PROCESS.popitem(last=False)
            _PER_PROCESS.move_to_end(self.token)
            return obj


def run_task(fn: Callable[..., T], *args: Any) -> T:
    """An image's task on a worker: ``fn(*args)``, each :class:`PerProcess` argument replaced by
    this process's object."""
    return fn(*(arg.get() if isinstance(arg, PerProcess) else arg for arg in args))


def _image_of(key: Any) -> str:
    """The image task a task key belongs to (itself, or the image whose band it is)."""
    match = _IMAGE_KEY.match(str(key))
    return match[0] if match else str(key)


def tilesapp_version() -> str:
    """Run on the scheduler: the version of Tiles Creator it can import."""
    return __version__


def what_a_worker_sees(files: list[tuple[str, int | None]], probe: str, token: str, version: str) -> list[str]:
    """Run on each worker: what differs from the client's view (``[]`` when nothing does)."""
    problems = []
    if __version__ != version:
        problems.append(f"runs Tiles Creator {__version__}, this computer {version}")
    for path, size in files:
        try:
            seen = os.stat(path).st_size
        except OSError as exc:
            problems.append(f"cannot see {path} ({exc.strerror or exc})")
            continue
        if size is not None and seen != size:
            problems.append(f"sees another file at {path} ({seen} bytes, here {size})")
    folder = os.path.dirname(probe)
    try:
        with open(probe, encoding="ascii") as fh:
            same = fh.read() == token
    except OSError:
        same = False
    if not same:
        problems.append(f"does not see the export folder {folder} of this computer")
        return problems
    try:
        fd, name = tempfile.mkstemp(prefix=".tilesapp-write-test-", suffix=PARTIAL_SUFFIX, dir=folder)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        problems.append(f"cannot write in {folder} ({exc.strerror or exc})")
    return problems
