"""The generic job: one progressed per yield (throttled), result, errors, cancel."""

from __future__ import annotations

import threading
import time

import pytest

from tilesapp.core.errors import Cancelled, ImageError
from tilesapp.core.progress import Progress
from tilesapp.gui.workers import Job, JobRunner, one_step


def counting(n: int, cancel: threading.Event, delay: float = 0.0):
    for i in range(n):
        if cancel.is_set():
            return "stopped"
        if delay:
            time.sleep(delay)
        yield Progress(i + 1, n)
    return "done"


def test_job_reports_progress_and_result(qtbot):
    runner = JobRunner()
    job = Job(lambda cancel: counting(5, cancel, 0.01), interval=0.0)
    seen = []
    job.signals.progressed.connect(lambda p: seen.append(p.done))
    with qtbot.waitSignal(job.signals.finished, timeout=5000) as blocker:
        runner.start("a", job)
    assert blocker.args == ["done"]
    qtbot.waitUntil(lambda: seen == [1, 2, 3, 4, 5])
    qtbot.waitUntil(lambda: not runner.busy("a"))


def test_progress_is_throttled_but_last_record_arrives(qtbot):
    runner = JobRunner()
    job = Job(lambda cancel: counting(10_000, cancel), interval=10.0)
    seen = []
    job.signals.progressed.connect(lambda p: seen.append(p.done))
    with qtbot.waitSignal(job.signals.finished, timeout=5000):
        runner.start("a", job)
    qtbot.waitUntil(lambda: bool(seen) and seen[-1] == 10_000)
    assert len(seen) <= 3


def test_error_reaches_errored_signal(qtbot):
    def failing(cancel):
        yield Progress(0, 1)
        raise ImageError("broken.tif: cannot be read as an image.")

    runner = JobRunner()
    job = Job(failing, name="testing")
    with qtbot.waitSignal(job.signals.errored, timeout=5000) as blocker:
        runner.start("a", job)
    assert isinstance(blocker.args[0], ImageError)
    assert "broken.tif" in str(blocker.args[0])


def test_cancel_ends_with_cancelled_and_the_generator_result(qtbot):
    runner = JobRunner()
    started = threading.Event()

    def slow(cancel):
        started.set()
        return (yield from counting(1000, cancel, 0.005))

    job = Job(slow)
    with qtbot.waitSignal(job.signals.cancelled, timeout=5000) as blocker:
        runner.start("a", job)
        assert started.wait(2)
        runner.cancel("a")
    assert blocker.args == ["stopped"]


def test_cancelled_exception_means_cancelled(qtbot):
    def stopping(cancel):
        yield Progress(0, 1)
        raise Cancelled("stop")

    runner = JobRunner()
    job = Job(stopping)
    with qtbot.waitSignal(job.signals.cancelled, timeout=5000) as blocker:
        runner.start("a", job)
    assert blocker.args == [None]


def test_one_step_wraps_a_plain_function(qtbot):
    runner = JobRunner()
    job = Job(one_step(sum, [1, 2, 3]))
    with qtbot.waitSignal(job.signals.finished, timeout=5000) as blocker:
        runner.start("a", job)
    assert blocker.args == [6]


def test_new_job_in_a_slot_supersedes_the_old_one(qtbot):
    runner = JobRunner()
    first = Job(lambda cancel: counting(10_000, cancel, 0.001))
    second = Job(one_step(lambda: "second"))
    runner.start("view", first)
    with qtbot.waitSignal(second.signals.finished, timeout=5000):
        runner.start("view", second)
    assert first.is_cancelled
    assert not runner.is_current(first.signals)
    assert runner.shutdown(timeout=5)


@pytest.mark.parametrize("delay", [0.0, 0.002])
def test_shutdown_waits_for_jobs(qtbot, delay):
    runner = JobRunner()
    job = Job(lambda cancel: counting(100_000, cancel, delay))
    runner.start("export", job)
    assert runner.shutdown(timeout=5)
    assert job.done.is_set()


def test_a_result_queued_before_its_job_was_superseded_never_reaches_the_window(qtbot):
    """The worker emits, then (before the event loop runs) a new job takes the slot: Qt still
    delivers the queued call, without a sender; the window's slots must drop it."""
    from PySide6.QtCore import QObject

    from tilesapp.gui.workers import Controller, from_current_job

    class Window(QObject):
        closing = False

        def __init__(self):
            super().__init__()
            self.jobs = JobRunner(self)

    class Results(Controller):
        def __init__(self, window):
            super().__init__(window)
            self.seen = []

        @from_current_job
        def on_finished(self, value):
            self.seen.append(value)

    window = Window()
    results = Results(window)
    old = Job(lambda cancel: "old")
    old.signals.finished.connect(results.on_finished)
    window.jobs.start("view", old)
    assert old.done.wait(5)  # its result is queued, not yet delivered
    new = Job(lambda cancel: counting(3, cancel, 0.05))
    new.signals.finished.connect(results.on_finished)
    with qtbot.waitSignal(new.signals.finished, timeout=5000):
        window.jobs.start("view", new)
    qtbot.waitUntil(lambda: results.seen == ["done"], timeout=5000)
    qtbot.wait(50)
    assert results.seen == ["done"]


def shows(label, text: str):
    """A condition for ``qtbot.waitUntil``: ``label`` shows ``text``."""
    return lambda: text in label.text()


def test_a_closed_window_leaves_nothing_to_the_cycle_collector(qtbot, make_folder, load, dialogs):
    """Errors the window caught or was sent (a settings error, a preview that failed in a worker)
    keep no frame of it: a window freed only by Python's cycle collector may be destroyed in a
    worker thread, which deadlocked Qt (seen once in the suite)."""
    import gc

    from PySide6.QtCore import QCoreApplication, QEvent, QObject

    from person import click_row, type_in
    from tilesapp.gui import MainWindow

    gc.collect()
    window = MainWindow()
    window.show()
    load(window, make_folder("bare", [((40, 40), None), ((40, 40), 0.325)]))
    type_in(qtbot, window, "patchSizeSpin", "100000")  # a SettingsError, shown next to the field
    assert window.settings_errors
    type_in(qtbot, window, "patchSizeSpin", "32")
    click_row(qtbot, window, "cell_01.tif")  # no pixel size: the worker's error comes back
    # A condition that holds the label, not a closure over ``window``: the name is deleted below
    # (a closure would make it a cell that pyflakes, reading the lambda after the del, calls undefined).
    qtbot.waitUntil(shows(window.viewer.placeholder, "carries no pixel size"), timeout=10_000)
    window.show_predict_dialog().close()
    window.close()
    window.deleteLater()
    del window
    for _ in range(5):
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        qtbot.wait(10)
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        left = [type(o).__name__ for o in gc.garbage if isinstance(o, QObject)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert not left, left[:10]
