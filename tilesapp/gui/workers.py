"""Run the engine's slow work in a thread pool without freezing the window.

The engine's long operations are generators that yield :class:`~tilesapp.core.progress.Progress`
records, return their result (``StopIteration.value``) and stop when a ``threading.Event`` is
set. :class:`Job` runs any such generator in a ``QThreadPool`` and reports through the signals
of :class:`JobSignals`; a plain function becomes a one-step generator with :func:`one_step`.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import time
import warnings
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from tilesapp.core.errors import Cancelled, TilesError

log = logging.getLogger(__name__)

#: A callable that receives the cancel event and returns a generator (or a plain result).
JobFactory = Callable[[threading.Event], Any]


class JobSignals(QObject):
    """Signals of a :class:`Job`.

    They live on their own QObject, created in the GUI thread, so that connected slots run
    in the GUI thread whatever thread emits them.
    """

    progressed = Signal(object)  # a Progress record (or whatever the generator yields)
    finished = Signal(object)  # the generator's return value
    errored = Signal(object)  # the exception that ended the job
    cancelled = Signal(object)  # the return value of a cancelled generator, or None
    ended = Signal()  # after any of the three above: the job is over

    def __init__(self, name: str = ""):
        super().__init__()
        self.name = name  # what the job does, for messages ("exporting tiles")
        self.over = False  # the outcome reached the GUI thread
        # Connected first, so this runs before any slot a caller connects afterwards.
        for signal in (self.finished, self.errored, self.cancelled):
            signal.connect(self._mark_over)

    def _mark_over(self, *args) -> None:
        self.over = True


class Job(QRunnable):
    """Iterate a generator in a pool thread, one ``progressed`` signal per yield (throttled).

    Parameters
    ----------
    factory : callable
        ``factory(cancel)`` returns the generator to run; ``cancel`` is the job's
        ``threading.Event``, to pass to the engine. A factory returning a non-generator value
        is a one-step job.
    name : str
        What the job does, in words, for the log and error messages ("exporting tiles").
    interval : float
        Minimum seconds between two ``progressed`` signals, so a fast generator does not
        flood the event loop; the last record is always delivered.
    """

    def __init__(self, factory: JobFactory, name: str = "working", interval: float = 0.05):
        super().__init__()
        # Python keeps the job alive through the JobRunner; Qt must not delete it behind us.
        self.setAutoDelete(False)
        self.factory = factory
        self.name = name
        self.interval = interval
        self.cancel_event = threading.Event()
        self.signals = JobSignals(name)
        self.done = threading.Event()

    def cancel(self) -> None:
        """Ask the generator to stop; it ends at its next check of the event."""
        self.cancel_event.set()

    @property
    def is_cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def run(self) -> None:  # runs in a pool thread
        try:
            result = self._iterate()
        except Cancelled:
            self.signals.cancelled.emit(None)
        except BaseException as exc:  # every failure must reach the window, never vanish
            # Errors a user can cause are expected: a warning; anything else is a bug.
            level = logging.WARNING if isinstance(exc, TilesError) else logging.ERROR
            log.log(level, "Error while %s", self.name, exc_info=exc)
            self.signals.errored.emit(untangle(exc))  # logged: the window needs its words only
        else:
            if self.cancel_event.is_set():
                self.signals.cancelled.emit(result)
            else:
                self.signals.finished.emit(result)
        finally:
            self.done.set()
            self.signals.ended.emit()

    def _iterate(self) -> Any:
        gen = self.factory(self.cancel_event)
        if not inspect.isgenerator(gen):
            return gen
        last_time, pending = 0.0, None
        while True:
            try:
                item = next(gen)
            except StopIteration as stop:
                if pending is not None:
                    self.signals.progressed.emit(pending)
                return stop.value
            now = time.monotonic()
            if now - last_time >= self.interval:
                last_time, pending = now, None
                self.signals.progressed.emit(item)
            else:
                pending = item


def untangle(exc: BaseException) -> BaseException:
    """``exc`` without its traceback (and those of the exceptions it carries), once it is logged
    or said: a traceback holds every frame of the call that raised it — the window among them in
    the GUI thread — and an exception that refers to itself (a ``SettingsError`` lists itself in
    its ``errors``) keeps them in a cycle that only Python's garbage collector frees, which may
    run in a worker thread and deadlock Qt there (seen: a worker's allocation collected a window).
    """
    for error in (exc, *getattr(exc, "errors", ())):
        error.__traceback__ = error.__context__ = error.__cause__ = None
    return exc


def one_step(func: Callable[..., Any], *args: Any, **kwargs: Any) -> JobFactory:
    """A job factory that calls ``func(*args, **kwargs)`` once (not cancellable midway).

    >>> factory = one_step(sum, [1, 2, 3])
    >>> gen = factory(threading.Event())
    >>> next(gen, None) is None
    True
    """

    def factory(cancel: threading.Event) -> Generator[None, None, Any]:
        if cancel.is_set():
            raise Cancelled("cancelled before it started")
        result = func(*args, **kwargs)
        yield from ()
        return result

    return factory


class JobRunner(QObject):
    """Start jobs in a thread pool, keep them alive while they run, cancel them all on exit.

    Jobs are started by *slot* ("export", "view", ...): starting a job in a busy slot cancels
    the previous one, whose late signals are then disconnected so they cannot reach the window.
    """

    #: A job is over and forgotten (its slot is free): the slot's name.
    ended = Signal(str)

    def __init__(self, parent: QObject | None = None, max_threads: int | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        if max_threads:
            self.pool.setMaxThreadCount(max_threads)
        self._slots: dict[str, Job] = {}
        self._running: dict[JobSignals, tuple[str, Job]] = {}

    def start(self, slot: str, job: Job) -> Job:
        """Run ``job`` in ``slot``, superseding the job that was running there."""
        old = self._slots.get(slot)
        if old is not None:
            self._silence(old)
            old.cancel()
        self._slots[slot] = job
        self._running[job.signals] = (slot, job)
        # A bound method of a QObject of the GUI thread: Qt queues the call to this thread.
        job.signals.ended.connect(self._on_ended)
        self.pool.start(job)
        return job

    def job(self, slot: str) -> Job | None:
        """The running job of ``slot``, or None."""
        return self._slots.get(slot)

    def busy(self, slot: str) -> bool:
        """True while the job of ``slot`` runs (False from the moment its outcome is delivered)."""
        job = self._slots.get(slot)
        return job is not None and not job.signals.over

    def cancel(self, slot: str) -> None:
        """Ask the job of ``slot`` to stop; its ``cancelled`` signal still arrives."""
        job = self._slots.get(slot)
        if job is not None:
            job.cancel()

    def cancel_all(self, timeout: float = 10.0) -> bool:
        """Cancel every job and wait for them to stop (True when they all did in time)."""
        for _, job in list(self._running.values()):
            job.cancel()
        ok = self.pool.waitForDone(int(timeout * 1000))
        if not ok:
            log.warning("Some background work did not stop within %.0f s", timeout)
        return ok

    def shutdown(self, timeout: float = 30.0) -> bool:
        """On exit: disconnect every job, cancel them and wait for them to stop."""
        for _, job in list(self._running.values()):
            self._silence(job)
        return self.cancel_all(timeout)

    def is_current(self, signals: QObject | None) -> bool:
        """True when ``signals`` belong to the job now running in a slot (not a superseded one).

        Signals already queued when a job was superseded may still arrive; slots check this.
        """
        return any(job.signals is signals for job in self._slots.values())

    def _silence(self, job: Job) -> None:
        for signal in (job.signals.progressed, job.signals.finished, job.signals.errored, job.signals.cancelled):
            with warnings.catch_warnings():  # PySide warns when nothing was connected
                warnings.simplefilter("ignore", RuntimeWarning)
                try:
                    signal.disconnect()
                except (RuntimeError, TypeError):
                    pass
                signal.connect(job.signals._mark_over)

    def _on_ended(self) -> None:
        slot, job = self._running.pop(self.sender(), (None, None))
        if slot is not None and self._slots.get(slot) is job:
            del self._slots[slot]
            self.ended.emit(slot)


def from_current_job(method):
    """Ignore a job's signal that arrives after the job was superseded, or while the window
    closes (the object's ``window.closing``).

    A signal a worker emitted before its job was superseded is still delivered once the job's
    connections are cut (Qt keeps the queued call), with no sender (PySide6 then gives None):
    such a call is stale too. The decorated methods are job slots only, never called directly.
    """

    @functools.wraps(method)
    def slot(self, *args, **kwargs):
        sender = self.sender()
        if self.window.closing or sender is None or (isinstance(sender, JobSignals) and not self.jobs.is_current(sender)):
            return None
        return method(self, *args, **kwargs)

    return slot


class Controller(QObject):
    """One job of the main window (sources, previews, export, settings files): it acts on the
    window's widgets and runs its slow work through the window's :class:`JobRunner`."""

    def __init__(self, window):
        super().__init__(window)
        self.jobs: JobRunner = window.jobs

    @property
    def window(self):
        """The main window: this controller's Qt parent. Not kept in an attribute, so that the
        window and its controllers form no reference cycle: a cycle would leave the window to
        Python's garbage collector, which may run in a worker thread and deadlock Qt there."""
        return self.parent()

    def status(self, text: str, seconds: float = 8.0) -> None:
        """A passing message in the status bar (it goes away by itself)."""
        self.window.show_status(text, seconds)
