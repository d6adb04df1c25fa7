"""GUI test fixtures: offscreen Qt, isolated QSettings and logs, captured dialogs, test images."""

from __future__ import annotations

import os

# Before Qt is imported anywhere: no display needed.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))  # person.py: what a person does to the window

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tifffile  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Every test gets its own settings file and log folder, never the user's."""
    monkeypatch.setenv("TILESAPP_SETTINGS_FILE", str(tmp_path / "settings" / "tilesapp.ini"))
    monkeypatch.setenv("TILESAPP_LOG_DIR", str(tmp_path / "logs"))


@dataclass
class Dialogs:
    """What the window said or asked instead of blocking on a dialog."""

    shown: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, title, text)
    asked: list[tuple[str, str]] = field(default_factory=list)  # (title, text)
    opened: list[Path] = field(default_factory=list)  # folders shown in the file manager
    answer: bool = True
    answers: list[bool] = field(default_factory=list)  # given in turn before ``answer``
    folder: Path | None = None
    file: Path | None = None

    @property
    def texts(self) -> list[str]:
        return [text for _, _, text in self.shown]


@pytest.fixture(autouse=True)
def dialogs(monkeypatch) -> Dialogs:
    """Replace every modal dialog of the window by a recorder (a blocking dialog hangs a test)."""
    from tilesapp.gui import dialogs as module

    record = Dialogs()

    def inform(parent, title, text, details="", kind="information"):
        record.shown.append((kind, title, text + (f"\n{details}" if details else "")))

    def ask(parent, title, text, confirm="OK", details="", cancel="Cancel"):
        record.asked.append((title, text))
        return record.answers.pop(0) if record.answers else record.answer

    def about(parent, title, html, pixmap):
        record.shown.append(("about", title, html))

    monkeypatch.setattr(module, "inform", inform)
    monkeypatch.setattr(module, "ask", ask)
    monkeypatch.setattr(module, "about", about)
    monkeypatch.setattr(module, "open_folder", record.opened.append)
    monkeypatch.setattr(module, "choose_folder", lambda *args: record.folder)
    monkeypatch.setattr(module, "choose_open_file", lambda *args: record.file)
    monkeypatch.setattr(module, "choose_save_file", lambda *args: record.file)
    return record


def fluorescence(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A 16-bit image with a few bright blobs on a noisy background."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    image = 500 + rng.normal(0, 40, shape)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, rows), rng.uniform(0, cols), rng.uniform(4, 12)
        image += 20000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    return np.clip(image, 0, 65535).astype(np.uint16)


def write_calibrated(path: Path, image: np.ndarray, pixel_size_um: float | None) -> Path:
    """An ImageJ TIFF with its pixel size in µm (no calibration when None)."""
    if pixel_size_um is None:
        tifffile.imwrite(path, image)
    else:
        tifffile.imwrite(
            path, image, imagej=True, resolution=(1 / pixel_size_um, 1 / pixel_size_um), metadata={"unit": "um"}
        )
    return path


@pytest.fixture
def make_folder(tmp_path):
    """``make_folder(name, [(shape, pixel_size_um), ...])`` writes a folder of images."""

    def make(name: str, specs, extra_files=()) -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True)
        for i, (shape, size) in enumerate(specs):
            write_calibrated(folder / f"cell_{i + 1:02d}.tif", fluorescence(shape, seed=i), size)
        for extra in extra_files:
            (folder / extra).write_text("not an image")
        return folder

    return make


@pytest.fixture
def window(qtbot):
    """The main window, shown; closed and deleted after the test."""
    from tilesapp.gui import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()


@pytest.fixture
def load(qtbot):
    """``load(window, path)`` opens a folder and waits until it is read."""

    def load_(window, path, timeout=10_000):
        with qtbot.waitSignal(window.sourcesLoaded, timeout=timeout):
            window.open_folder(path)
        return window.sources

    return load_
