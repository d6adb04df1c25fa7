"""Big images: region reads, band-by-band recalibration, streaming statistics, streamed export
and merge — each compared with the whole-image result."""

from __future__ import annotations

import json
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

from tilesapp.core.export import run_export
from tilesapp.core.merge import run_merge
import contextlib
import dataclasses

from tilesapp.core.bands import ChannelStats, histogram_range, plan_bands
from tilesapp.core.geometry import TileGrid
from tilesapp.core.memory import MemoryGate
from tilesapp.core.readers import open_image, read_image
from tilesapp.core.resample import axis_weights, resample, resample_band, source_rows
from tilesapp.core.settings import Settings


@contextlib.contextmanager
def first_scene(path):
    """The first scene of an image file (the region reader of the engine)."""
    with open_image(path) as file:
        yield file.scenes[0]

LIMIT = 64 << 20  # the smallest memory limit: with 2 workers, images above 32 MB stream


def calibrated_tiff(path, image, pixel_size_um=0.5, **kwargs):
    """A TIFF with resolution tags in cm (BigTIFF can carry no ImageJ metadata)."""
    res = 1e4 / pixel_size_um
    tifffile.imwrite(path, image, resolution=(res, res), resolutionunit="CENTIMETER", **kwargs)
    return path


# --- region reads ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind, kwargs",
    [
        ("tiled-zlib-bigtiff", dict(tile=(128, 128), compression="zlib", bigtiff=True)),
        ("strips-lzw", dict(compression="lzw", rowsperstrip=37)),
        ("contiguous", dict()),
        ("tiled-zstd", dict(tile=(64, 64), compression="zstd")),
    ],
)
def test_regions_equal_the_whole_image(tmp_path, kind, kwargs):
    image = microscopy((500, 430), seed=1)
    path = calibrated_tiff(tmp_path / f"{kind}.tif", image, **kwargs)
    with first_scene(path) as reader:
        assert reader.info.shape_yx == (500, 430) and reader.info.channels == 1 and reader.info.dtype == "uint16"
        assert reader.info.pixel_size_um == (0.5, 0.5)
        for y0, y1, x0, x1 in [(0, 500, 0, 430), (17, 300, 5, 6), (499, 500, 100, 430), (128, 256, 128, 256)]:
            region = reader.read(y0, y1, x0, x1)
            assert region.shape == (y1 - y0, x1 - x0, 1) and region.dtype == np.uint16
            np.testing.assert_array_equal(region[..., 0], image[y0:y1, x0:x1])
        with pytest.raises(ValueError):
            reader.read(0, 501, 0, 10)


def test_regions_of_channels_rgb_and_planar_rgb(tmp_path):
    cyx = microscopy((200, 150), channels=3, seed=2)
    calibrated_tiff(tmp_path / "cyx.tif", cyx, tile=(64, 64), photometric="minisblack", metadata={"axes": "CYX"})
    rgb = np.moveaxis(microscopy((200, 150), channels=3, dtype=np.uint8, seed=3), 0, -1).copy()
    calibrated_tiff(tmp_path / "rgb.tif", rgb, tile=(64, 64), photometric="rgb")
    calibrated_tiff(tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0).copy(), photometric="rgb", planarconfig="separate",
                    compression="zlib", rowsperstrip=16)
    for name in ("cyx.tif", "rgb.tif", "planar.tif"):
        whole, info = read_image(tmp_path / name)
        with first_scene(tmp_path / name) as reader:
            assert reader.info.axes == info.axes and reader.info.channels == 3
            np.testing.assert_array_equal(reader.read(30, 170, 20, 121), whole[30:170, 20:121])


def test_an_ome_pyramid_is_read_at_full_resolution_and_its_level_serves_the_overview(tmp_path):
    image = microscopy((1024, 768), seed=4)
    path = tmp_path / "pyramid.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(image, tile=(256, 256), subifds=2, metadata={"axes": "YX", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25})
        tif.write(image[::2, ::2], tile=(256, 256), subfiletype=1)
        tif.write(image[::4, ::4], tile=(256, 256), subfiletype=1)
    with first_scene(path) as reader:
        assert reader.info.shape_yx == (1024, 768) and reader.info.pixel_size_um == (0.25, 0.25)
        np.testing.assert_array_equal(reader.read(500, 900, 300, 700)[..., 0], image[500:900, 300:700])
        small = reader.overview(300)  # needs a reduction of 4: the last level
        assert small.shape == (256, 192, 1)
        np.testing.assert_array_equal(small[..., 0], image[::4, ::4])


def test_overview_without_pyramid_takes_every_nth_pixel(tmp_path):
    image = microscopy((1000, 600), seed=5)
    path = calibrated_tiff(tmp_path / "a.tif", image, tile=(128, 128), compression="zlib")
    with first_scene(path) as reader:
        small = reader.overview(250)
    assert small.shape == (250, 150, 1)
    np.testing.assert_array_equal(small[..., 0], image[::4, ::4])


def test_png_regions_come_from_one_whole_read(tmp_path):
    import cv2

    image = (microscopy((120, 90), dtype=np.uint8, seed=6))
    cv2.imwrite(str(tmp_path / "a.png"), image)
    with first_scene(tmp_path / "a.png") as reader:
        np.testing.assert_array_equal(reader.read(10, 20, 30, 40)[..., 0], image[10:20, 30:40])


# --- band-by-band recalibration --------------------------------------------------------------------
@pytest.mark.parametrize(
    "shape_in, shape_out",
    [((300, 200), (600, 400)), ((300, 200), (173, 91)), ((301, 207), (463, 150)), ((97, 131), (61, 300)),
     ((250, 250), (125, 125)), ((123, 77), (123, 200)), ((1000, 999), (333, 998))],
)
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_bands_equal_the_whole_image_recalibration(shape_in, shape_out, dtype):
    image = microscopy(shape_in, channels=2, seed=7).transpose(1, 2, 0).astype(dtype)
    whole = resample(image, shape_out)
    weights = axis_weights(shape_in[0], shape_out[0])
    rebuilt = np.empty_like(whole)
    for y0 in range(0, shape_out[0], 37):  # bands that start anywhere, not on a simple ratio
        y1 = min(shape_out[0], y0 + 37)
        s0, s1 = source_rows(weights, y0, y1)
        rebuilt[y0:y1] = resample_band(image[s0:s1], s0, weights, y0, y1, shape_out[1])
    assert rebuilt.dtype == whole.dtype
    # equal up to float32 rounding (sums of four taps with negative weights)
    np.testing.assert_allclose(rebuilt, whole, rtol=1e-5, atol=1e-3)


def test_a_band_needs_only_its_source_rows():
    weights = axis_weights(12000, 24000)
    s0, s1 = source_rows(weights, 12000, 12512)
    assert (s0, s1) == (5998, 6258)  # 256 rows and the cubic kernel's margin: 1 above, 2 below


# --- statistics ------------------------------------------------------------------------------------
def test_streamed_statistics_match_numpy_on_the_whole_image():
    image = microscopy((900, 700), channels=2, seed=8).transpose(1, 2, 0).astype(np.float32)
    image[5, 5, 0] = np.nan
    stats = ChannelStats(2, histogram_range(np.float32, (float(np.nanmin(image)), float(np.nanmax(image)))))
    grid = TileGrid.for_shape(image.shape[:2], 128, 32)
    for band in plan_bands(grid, 2):
        stats.add(image[band.y0 : band.own_y1])  # each row once
    low, high = stats.percentiles(0.0, 100.0)
    np.testing.assert_array_equal(low, np.nanmin(image, axis=(0, 1)))
    np.testing.assert_array_equal(high, np.nanmax(image, axis=(0, 1)))
    span = stats.range[1] - stats.range[0]
    low, high = stats.percentiles(1.0, 99.5)
    expected = np.nanpercentile(image.reshape(-1, 2), [1.0, 99.5], axis=0)
    np.testing.assert_allclose(low, expected[0], atol=span / 65536)
    np.testing.assert_allclose(high, expected[1], atol=span / 65536)
    assert stats.count.tolist() == [900 * 700 - 1, 900 * 700]


def test_band_rows_of_their_own_partition_the_image():
    grid = TileGrid.for_shape((5000, 100), 512, 128)
    for rows in (1, 2, 3, 20):
        bands = plan_bands(grid, rows)
        assert bands[0].y0 == 0 and bands[-1].y1 == bands[-1].own_y1 == 5000
        assert all(a.own_y1 == b.y0 for a, b in zip(bands, bands[1:]))
        assert [i for b in bands for i in b.tiles(grid)] == list(range(len(grid)))


def test_memory_gate_waits_for_free_bytes_and_serves_an_oversized_request_alone():
    gate = MemoryGate(100)
    first = gate.acquire(80)
    got = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire(50)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not got  # 80 + 50 > 100
    gate.release(first)
    waiter.join(2)
    assert got == [50]
    gate.release(50)
    assert gate.acquire(1000) == 100  # capped at the capacity
    cancel = threading.Event()
    cancel.set()
    assert gate.acquire(1, cancel) == 0


# --- the streamed export equals the whole-image export -------------------------------------------------
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """An image that streams under LIMIT: 2600 × 2200 uint16 at 0.5 µm → 4194 × 3548 at 0.31 µm."""
    folder = tmp_path_factory.mktemp("big") / "in"
    folder.mkdir()
    image = microscopy((2600, 2200), seed=9)
    calibrated_tiff(folder / "slide.tif", image, tile=(256, 256), compression="zlib", bigtiff=True)
    return folder


def _export(folder, out, settings, limit, **kwargs):
    settings = dataclasses.replace(settings, memory_limit=limit, workers=2)
    _, summary = drain(run_export(folder, out, settings, **kwargs))
    assert not summary.failed, summary.failed
    return summary, json.loads((out / "manifest.json").read_text())


def _compare(out_a, manifest_a, out_b, manifest_b, max_diff, max_share):
    assert [t["file"] for t in manifest_a["tiles"]] == [t["file"] for t in manifest_b["tiles"]]
    strip = lambda t: {k: v for k, v in t.items() if k not in ("low", "high")}  # noqa: E731
    assert [strip(t) for t in manifest_a["tiles"]] == [strip(t) for t in manifest_b["tiles"]]
    differing = total = 0
    for record in manifest_a["tiles"]:
        a = tifffile.imread(out_a / record["file"])
        b = tifffile.imread(out_b / record["file"])
        assert a.dtype == b.dtype and a.shape == b.shape
        diff = np.abs(a.astype(np.float64) - b)
        assert diff.max() <= max_diff, record["file"]
        differing += int((diff > 0).sum())
        total += diff.size
    assert differing <= max_share * total


@pytest.mark.parametrize(
    "norm, percentiles, dtype, max_diff, max_share",
    [
        # min/max are exact, but bands are resampled with other float rounding than the whole
        # image (see README "Big images"): a value on a .5 boundary may round either way
        ("global", (0.0, 100.0), "uint8", 1, 1e-4),
        ("global", (1.0, 99.0), "uint8", 1, 1e-3),  # histogram percentiles: a rounding apart
        ("local", (0.0, 100.0), "float32", 1e-5, 1.0),
        ("none", (0.0, 100.0), "uint16", 1, 1e-4),  # .5 values may round either way
    ],
)
def test_streamed_export_equals_the_whole_image_export(big, tmp_path, norm, percentiles, dtype, max_diff, max_share):
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.31, norm=norm, percentiles=percentiles, dtype=dtype)
    whole, m_whole = _export(big, tmp_path / "whole", settings, None)
    streamed, m_streamed = _export(big, tmp_path / "streamed", settings, LIMIT)
    assert whole.tiles_written == streamed.tiles_written == 22 * 19
    assert m_whole["sources"][0]["scaled_shape"] == m_streamed["sources"][0]["scaled_shape"] == [4194, 3548]
    norm_w, norm_s = m_whole["sources"][0]["normalization"], m_streamed["sources"][0]["normalization"]
    assert norm_w["mode"] == norm_s["mode"] == norm
    if norm == "global":
        np.testing.assert_allclose(norm_s["low"], norm_w["low"], atol=0.02)
        np.testing.assert_allclose(norm_s["high"], norm_w["high"], atol=0.02)
    _compare(tmp_path / "whole", m_whole, tmp_path / "streamed", m_streamed, max_diff, max_share)


def test_streamed_export_with_mask_boxes_and_filter_equals_the_whole_image_export(big, tmp_path):
    masks, labels = tmp_path / "masks", tmp_path / "labels"
    masks.mkdir()
    labels.mkdir()
    image = tifffile.imread(big / "slide.tif")
    mask = (image > np.percentile(image, 97)).astype(np.uint8) * 3
    tifffile.imwrite(masks / "slide.tif", mask, tile=(256, 256), compression="zlib")
    (labels / "slide.txt").write_text("0 0.5 0.5 0.1 0.1\n1 0.2 0.8 0.05 0.3\n")
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.31, dtype="uint8", min_foreground=0.01,
                        keep_empty=0.1, seed=4)
    whole, m_whole = _export(big, tmp_path / "whole", settings, None, masks=masks, labels=labels)
    streamed, m_streamed = _export(big, tmp_path / "streamed", settings, LIMIT, masks=masks, labels=labels)
    assert 0 < whole.tiles_written < 22 * 19 and whole.tiles_dropped == streamed.tiles_dropped
    assert m_whole["dropped"] == m_streamed["dropped"]
    _compare(tmp_path / "whole", m_whole, tmp_path / "streamed", m_streamed, 1, 1e-4)
    for record in m_whole["tiles"]:
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "whole" / record["mask"]),
                                      tifffile.imread(tmp_path / "streamed" / record["mask"]))
        assert (tmp_path / "whole" / record["label"]).read_text() == (tmp_path / "streamed" / record["label"]).read_text()


def test_streamed_export_with_the_automatic_threshold_keeps_the_same_tiles(big, tmp_path):
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.31, dtype="uint8", min_foreground=0.02)
    _, m_whole = _export(big, tmp_path / "whole", settings, None)
    _, m_streamed = _export(big, tmp_path / "streamed", settings, LIMIT)
    # the threshold comes from the same rows and columns, taken band by band
    assert m_whole["dropped"] == m_streamed["dropped"] and 0 < len(m_whole["dropped"]) < 22 * 19
    _compare(tmp_path / "whole", m_whole, tmp_path / "streamed", m_streamed, 1, 1e-4)


def test_streaming_bounds_the_memory_the_export_allocates(big, tmp_path):
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.31, dtype="uint8")
    peaks = {}
    for name, limit in (("whole", None), ("streamed", LIMIT)):
        tracemalloc.start()
        try:
            _export(big, tmp_path / name, settings, limit)
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # whole: the source, its float copy, the 4194 × 3548 float image and its cast (> 80 MB)
    assert peaks["whole"] > 80e6
    assert peaks["streamed"] < LIMIT < peaks["whole"]


def test_cancelling_a_streamed_export_lists_exactly_the_tiles_on_disk(big, tmp_path):
    settings = Settings(tile_size=64, overlap=16, target_pixel_size=0.31, dtype="uint8")
    cancel = threading.Event()
    gen = run_export(big, tmp_path / "out", dataclasses.replace(settings, memory_limit=LIMIT, workers=2), cancel=cancel)
    for progress in gen:
        if progress.done > 200:
            cancel.set()
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "cancelled" and manifest["sources"][0]["status"] == "cancelled"
    listed = {t["file"] for t in manifest["tiles"]}
    on_disk = {p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".tif"}
    assert listed == on_disk and 0 < len(listed) < 88 * 74
    assert not list((tmp_path / "out").glob(".*partial"))


# --- merge ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("blend", ["flat", "gradient"])
@pytest.mark.parametrize("restore", [False, True])
def test_streamed_merge_equals_the_whole_merge_and_writes_a_tiled_bigtiff(big, tmp_path, blend, restore):
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.31, dtype="uint8")
    _export(big, tmp_path / "tiles", settings, None)
    results = {}
    for name, limit in (("whole", None), ("streamed", LIMIT)):
        _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / name, blend=blend, restore_scale=restore, memory_limit=limit))
        assert not summary.failed and len(summary.written) == 1
        results[name] = summary.written[0]
    np.testing.assert_array_equal(tifffile.imread(results["streamed"]), tifffile.imread(results["whole"]))
    with tifffile.TiffFile(results["streamed"]) as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled
        assert tif.pages[0].shape == ((2600, 2200) if restore else (4194, 3548))
    with first_scene(results["streamed"]) as reader:  # the pixel size travels with the image
        assert reader.info.pixel_size_um == pytest.approx((0.5, 0.5) if restore else (0.31, 0.31))
    assert not list((tmp_path / "streamed").glob(".*"))  # no temporary file left


def test_streamed_merge_fills_dropped_tile_rows_with_zeros(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.zeros((2048, 2048), np.uint16)
    image[:700] = microscopy((700, 2048), seed=10)  # the lower part is empty: its tiles are dropped
    write_imagej(folder / "a.tif", image, 0.5)
    settings = Settings(tile_size=256, overlap=64, target_pixel_size=0.25, dtype="uint8", min_foreground=0.05)
    summary, manifest = _export(folder, tmp_path / "tiles", settings, None)
    assert summary.tiles_dropped > 0
    results = {}
    for name, limit in (("whole", None), ("streamed", LIMIT)):
        _, merged = drain(run_merge(tmp_path / "tiles", tmp_path / name, memory_limit=limit))
        assert not merged.failed
        results[name] = tifffile.imread(merged.written[0])
    np.testing.assert_array_equal(results["streamed"], results["whole"])
    assert results["streamed"][-300:].max() == 0


# --- command line ----------------------------------------------------------------------------------
def test_cli_memory_limit(big, tmp_path, capsys):
    from tilesapp.cli import main

    args = ["cut", str(big), None, "--patch-size", "256", "--overlap", "64", "--target-pixel-size", "0.31",
            "--dtype", "uint8", "-q"]
    assert main([str(tmp_path / "small") if a is None else a for a in args] + ["--memory-limit", "10MB"]) == 2
    assert "memory limit must be at least 64 MB" in capsys.readouterr().err
    assert not (tmp_path / "small").exists()  # refused before anything was written
    with pytest.raises(SystemExit) as exc:
        main([str(tmp_path / "bad") if a is None else a for a in args] + ["--memory-limit", "lots"])
    assert exc.value.code == 2 and "expected a size such as 2GB" in capsys.readouterr().err
    assert main([str(tmp_path / "streamed") if a is None else a for a in args] + ["--memory-limit", "64MB"]) == 0
    assert main([str(tmp_path / "whole") if a is None else a for a in args] + ["--memory-limit", "4GB"]) == 0
    manifests = [json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("streamed", "whole")]
    _compare(tmp_path / "streamed", manifests[0], tmp_path / "whole", manifests[1], 1, 1e-4)
    assert main(["merge", str(tmp_path / "streamed"), str(tmp_path / "merged"), "--memory-limit", "64MB", "-q"]) == 0
    with tifffile.TiffFile(tmp_path / "merged" / "slide.tif") as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled and tif.pages[0].shape == (4194, 3548)


def test_a_memory_mapped_region_outlives_its_reader_and_may_be_changed(tmp_path):
    image = microscopy((300, 200), dtype=np.float32, seed=11)
    path = calibrated_tiff(tmp_path / "f.tif", image)  # uncompressed, contiguous: memory-mapped
    with first_scene(path) as reader:
        region = reader.read(0, 100, 0, 200)
    region += 1  # the reader is closed; the region is the caller's own
    np.testing.assert_array_equal(region[..., 0], image[:100] + 1)
    with first_scene(path) as reader:
        np.testing.assert_array_equal(reader.read(0, 100, 0, 200)[..., 0], image[:100])


def test_streamed_export_of_a_float_image_kept_at_its_size(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    image = microscopy((2600, 2200), dtype=np.float32, seed=12)
    image[100:110, 100:110] = np.nan
    calibrated_tiff(folder / "float.tif", image)
    settings = Settings(tile_size=256, overlap=64, calibrate=False, dtype="uint8")
    _, m_whole = _export(folder, tmp_path / "whole", settings, None)
    _, m_streamed = _export(folder, tmp_path / "streamed", settings, LIMIT)
    assert m_streamed["sources"][0]["normalization"] == m_whole["sources"][0]["normalization"]
    _compare(tmp_path / "whole", m_whole, tmp_path / "streamed", m_streamed, 0, 0)


def test_the_thumbnail_of_a_big_tiff_comes_from_an_overview(tmp_path, monkeypatch):
    from tilesapp.core import mosaic

    image = microscopy((2000, 1000), seed=13)
    path = calibrated_tiff(tmp_path / "a.tif", image, tile=(256, 256), compression="zlib")
    from tilesapp.core import memory
    from tilesapp.core.readers.tiff import TiffScene

    whole = mosaic.thumbnail(path, 100)
    monkeypatch.setattr(memory, "WHOLE_READ_BYTES", 0)  # every image counts as big
    real_read = TiffScene.read

    def read(self, y0, y1, x0, x1, **kwargs):
        assert (y1 - y0, x1 - x0) != self.info.shape_yx, "a big image was read whole"
        return real_read(self, y0, y1, x0, x1, **kwargs)

    monkeypatch.setattr(TiffScene, "read", read)
    reduced = mosaic.thumbnail(path, 100)
    assert reduced.shape == whole.shape == (100, 50, 3) and reduced.dtype == np.uint8
    # every 5th pixel averaged down instead of all of them: the same picture, up to the noise
    assert np.abs(reduced.astype(int) - whole).mean() < 12


def test_cancelling_a_streamed_merge_leaves_no_file(big, tmp_path):
    settings = Settings(tile_size=128, overlap=32, target_pixel_size=0.31, dtype="uint8")
    _export(big, tmp_path / "tiles", settings, None)
    cancel = threading.Event()
    gen = run_merge(tmp_path / "tiles", tmp_path / "merged", memory_limit=LIMIT, cancel=cancel)
    progress, summary = [], None
    try:
        while True:
            record = next(gen)
            progress.append(record.done)
            if record.done > 300:
                cancel.set()
    except StopIteration as stop:
        summary = stop.value
    assert summary.cancelled and not summary.written and 300 < progress[-1] < 44 * 37
    assert list((tmp_path / "merged").iterdir()) == []  # neither the image nor a partial file


@pytest.mark.parametrize("kind, kwargs, colour", [
    ("tiled-zlib", dict(tile=(128, 128), compression="zlib"), False),
    ("strips-lzw", dict(compression="lzw", rowsperstrip=37), False),
    ("strips-predictor", dict(compression="zlib", predictor=True, rowsperstrip=16), False),
    ("tiled-jpeg-rgb", dict(tile=(128, 128), compression="jpeg", photometric="rgb"), True),
])
def test_regions_of_chunked_pages_are_decoded_by_the_reading_thread(tmp_path, kind, kwargs, colour):
    """Regions of one chunked page do not go through zarr (whose one event-loop thread decodes
    every chunk in line): the reading thread decodes just the chunks its region touches."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (500, 430, 3)).astype(np.uint8) if colour else \
        rng.integers(0, 60000, (500, 430)).astype(np.uint16)
    path = tmp_path / f"{kind}.tif"
    tifffile.imwrite(path, image, **kwargs)
    reference = tifffile.imread(path)
    reference = reference if reference.ndim == 3 else reference[..., np.newaxis]
    with first_scene(path) as scene:
        assert scene._segments is not None and scene.chunk_rows() in (37, 16, 128)
        regions = [(0, 500, 0, 430), (17, 300, 5, 6), (499, 500, 100, 430), (128, 256, 128, 256), (3, 497, 1, 429)]
        for y0, y1, x0, x1 in regions:
            np.testing.assert_array_equal(scene.read(y0, y1, x0, x1), reference[y0:y1, x0:x1])
        with ThreadPoolExecutor(4) as pool:  # threads at once: each its own chunks, the same pixels
            parts = list(pool.map(lambda r: scene.read(*r), regions * 4))
        for (y0, y1, x0, x1), part in zip(regions * 4, parts):
            np.testing.assert_array_equal(part, reference[y0:y1, x0:x1])
