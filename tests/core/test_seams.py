"""The engine's three seams, each proven by a toy plugged in from outside the engine:
a reader of ``.npy`` files, a sink writing every tile into one ``.npz``, an executor of our own."""

from __future__ import annotations

import io
import json
import pickle
import threading
import zipfile
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

from tilesapp.core import readers, sinks
from tilesapp.core.export import run_export
from tilesapp.core.merge import run_merge
from tilesapp.core.preview import preview_image
from tilesapp.core.readers import BaseFile, SceneInfo, thin_overview
from tilesapp.core.settings import Settings
from tilesapp.core.sinks.base import Layout, TileFiles


# --- a reader: .npy arrays, 2D or (rows, cols, channels), at 0.65 µm ----------------------------------
class NpyScene:
    def __init__(self, path: Path):
        self.array = np.load(path, mmap_mode="r")
        axes = "YX" if self.array.ndim == 2 else "YXS"
        self.info = SceneInfo(path, self.array.shape, axes, self.array.dtype.name, (0.65, 0.65), "npy", reader="npy")

    def read(self, y0, y1, x0, x1, *, z=0, t=0):
        region = np.array(self.array[y0:y1, x0:x1])
        return region[..., np.newaxis] if region.ndim == 2 else region

    def overview(self, max_side, *, z=0, t=0):
        return thin_overview(self, max_side)

    def chunk_rows(self):
        return 1


class NpyReader:
    name, suffixes = "npy", (".npy",)

    def sniff(self, head: bytes) -> bool:
        return head.startswith(b"\x93NUMPY")

    def open(self, path: Path) -> BaseFile:
        return BaseFile([NpyScene(Path(path))])


@pytest.fixture
def npy_reader():
    reader = NpyReader()
    readers.register(reader)
    yield reader
    readers.unregister(reader)


def test_a_reader_plugged_in_from_outside_is_cut_like_any_image(npy_reader, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = microscopy((300, 200), seed=1)
    np.save(folder / "cells.npy", image)
    (folder / "notes.txt").write_text("not an image")
    assert readers.is_image(folder / "cells.npy") and ".npy" in readers.image_suffixes()
    settings = Settings(tile_size=128, overlap=32, norm="none", dtype="float32")
    _, summary = drain(run_export(folder, tmp_path / "out", settings))
    assert summary.images_ok == 1 and summary.skipped == ["notes.txt"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    source = manifest["sources"][0]
    assert source["calibration"] == "npy" and source["scaled_shape"] == [600, 400]  # 0.65 → 0.325 µm
    expected = preview_image(folder / "cells.npy", settings).image[..., 0]
    for tile in manifest["tiles"]:
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / tile["file"]),
                                      expected[tile["y0"]: tile["y1"], tile["x0"]: tile["x1"]])


def test_content_decides_over_the_name(npy_reader, tmp_path):
    np.save(tmp_path / "really_npy.npy", np.zeros((4, 4)))
    (tmp_path / "really_npy.npy").rename(tmp_path / "named.tif")
    assert readers.reader_for(tmp_path / "named.tif") is npy_reader


# --- a sink: every tile into one archive ------------------------------------------------------------------
class NpzSink(Layout):
    """Tiles kept in memory by name and written as one tiles.npz when the run ends."""

    layout = "npz"

    def __init__(self, run, folder=None, manifest=None):
        super().__init__(run, folder, manifest)
        self.arrays: dict[str, np.ndarray] = {}
        self.lock = threading.Lock()

    def names(self, stem, index, width, split, mask_format) -> TileFiles:
        return TileFiles(file=f"tiles.npz/{stem}_{index:0{width}d}")

    def write(self, name, array, axes, pixel_size_um) -> None:
        with self.lock:
            self.arrays[name.split("/", 1)[1]] = np.array(array)

    def discard(self, names) -> None:
        with self.lock:
            for name in names:
                self.arrays.pop(name.split("/", 1)[1], None)

    def finish(self, manifest) -> list[str]:
        buffer = io.BytesIO()
        np.savez(buffer, **self.arrays)
        (self.folder / "tiles.npz").write_bytes(buffer.getvalue())
        return ["tiles.npz"]

    def read(self, name: str) -> np.ndarray:
        if not hasattr(self, "_archive"):
            self._archive = np.load(self.folder / "tiles.npz")
        return self._archive[name.split("/", 1)[1]]


@pytest.fixture
def npz_sink():
    sinks.register(NpzSink)
    yield NpzSink
    sinks.unregister(NpzSink)


def test_a_sink_plugged_in_from_outside_receives_the_tiles_and_merge_reads_them_back(npz_sink, folder, tmp_path):
    settings = Settings(tile_size=96, overlap=24, norm="none", dtype="float32")
    _, summary = drain(run_export(folder, tmp_path / "out", settings, layout="npz"))
    assert summary.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "tiles.npz"]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["layout"] == "npz" and manifest["files"] == ["tiles.npz"]
    with zipfile.ZipFile(tmp_path / "out" / "tiles.npz") as archive:
        assert len(archive.namelist()) == len(manifest["tiles"]) == summary.tiles_written
    _, merged = drain(run_merge(tmp_path / "out", tmp_path / "merged"))
    assert not merged.failed and [p.name for p in merged.written] == ["a.tif", "b.tif", "c.tif"]
    for path in merged.written:
        expected = preview_image(folder / path.name, settings).image[..., 0]
        np.testing.assert_allclose(tifffile.imread(path), expected, rtol=1e-6, atol=1e-3)


# --- an executor: everything inline, recorded ----------------------------------------------------------------
class InlineExecutor:
    """Runs each image at once in the calling thread; records what it was given."""

    workers, local = 1, True

    def __init__(self):
        self.images, self.band_maps = [], []

    def submit(self, fn, *args):
        self.images.append(args[0].name)
        future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - the future carries it
            future.set_exception(exc)
        return future

    def map(self, fn, items):
        self.band_maps.append(len(items))
        return [fn(item) for item in items]

    def close(self):
        pass


def test_the_export_runs_on_the_executor_it_is_given(folder, tmp_path):
    executor = InlineExecutor()
    settings = Settings(tile_size=128, overlap=32, memory_limit=64 << 20)
    _, summary = drain(run_export(folder, tmp_path / "inline", settings, executor=executor))
    _, reference = drain(run_export(folder, tmp_path / "threads", settings))
    assert executor.images == ["a.tif", "b.tif", "c.tif"] and executor.band_maps
    assert summary.tiles_written == reference.tiles_written
    inline = json.loads((tmp_path / "inline" / "manifest.json").read_text())
    threads = json.loads((tmp_path / "threads" / "manifest.json").read_text())
    assert inline["tiles"] == threads["tiles"]
    for tile in inline["tiles"]:
        assert (tmp_path / "inline" / tile["file"]).read_bytes() == (tmp_path / "threads" / tile["file"]).read_bytes()


def test_what_an_image_task_is_given_can_travel_to_another_process(folder, tmp_path):
    """An executor of other processes ships each image's job and the run's sink: both pickle."""
    from tilesapp.core.cut import ImageJob
    from tilesapp.core.plan import plan_image
    from tilesapp.core.sources import SourcePixels, SourceRef
    from tilesapp.core.readers import inspect_image
    from tilesapp.core.sinks.base import RunInfo
    from tilesapp.core.sinks.folder import FolderSink

    path = write_imagej(folder / "d.tif", microscopy((64, 64)), 0.5)
    plan = plan_image(inspect_image(path), Settings(), "d.tif")
    job = ImageJob(0, SourceRef(path), "d.tif", "d", plan)
    sink = FolderSink(RunInfo(tmp_path, Settings()))
    assert pickle.loads(pickle.dumps(job)) == job
    assert pickle.loads(pickle.dumps(sink)).folder == tmp_path
    pixels = SourcePixels(SourceRef(path))
    assert pixels.info.shape_yx == (64, 64)  # opened here ...
    copy = pickle.loads(pickle.dumps(pixels))  # ... and reopened wherever it is read
    np.testing.assert_array_equal(copy.read(0, 8, 0, 8), pixels.read(0, 8, 0, 8))
    pixels.close()
    copy.close()
