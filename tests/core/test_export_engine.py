import errno
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

import dataclasses

from tilesapp.core import writers
from tilesapp.core.errors import OutputError, SettingsError
from tilesapp.core.export import run_export
from tilesapp.core.folders import clear_export, count_files, export_contents
from tilesapp.core.geometry import TileGrid
from tilesapp.core.preview import preview_image
from tilesapp.core.readers import inspect_image
from tilesapp.core.settings import Settings
from tilesapp.core.sinks import tile_stems

SMALL = Settings(tile_size=128, overlap=32)


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()}


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_unet_export_tiles_values_and_manifest(folder, tmp_path):
    before = snapshot(folder)
    out = tmp_path / "out"
    records, summary = drain(run_export(folder, out, SMALL))
    assert snapshot(folder) == before  # the input folder is never written
    expected = {}
    for name in ("a.tif", "b.tif", "c.tif"):
        plan = preview_image(folder / name, SMALL).plan
        expected[name] = len(plan.grid)
    assert summary.tiles_written == sum(expected.values()) and summary.exit_code == 0
    assert summary.skipped == ["notes.txt"] and summary.failed == []
    assert records[-1].done == records[-1].total == summary.tiles_written
    m = manifest(out)
    assert m["status"] == "complete" and m["tile_size"] == 128 and m["overlap"] == 32
    assert [s["file"] for s in m["sources"]] == ["a.tif", "b.tif", "c.tif"]
    a = m["sources"][0]
    assert a["scale_factor"] == pytest.approx([2.0, 2.0]) and a["scaled_shape"] == [600, 800]
    assert a["pixel_size_um"] == pytest.approx([0.65, 0.65]) and a["calibration"] == "ImageJ"
    assert a["output_pixel_size_um"] == pytest.approx([0.325, 0.325])
    assert a["grid"] == [len(TileGrid.for_shape((600, 800), 128, 32).row_starts), 8] and a["tiles"] == expected["a.tif"]
    files = sorted(p.name for p in out.iterdir() if p.suffix == ".tif")
    assert files == sorted(t["file"] for t in m["tiles"])
    assert files[0] == "a_000.tif" and not list(out.glob(".*partial"))
    # every tile: float32, 128 × 128, inside [0, 1], with its new pixel size in the metadata
    lows, highs = [], []
    for t in m["tiles"]:
        data = tifffile.imread(out / t["file"])
        assert data.dtype == np.float32 and data.shape == (128, 128)
        lows.append(data.min())
        highs.append(data.max())
        if t["source"] == "a.tif":
            assert t["y1"] - t["y0"] == 128 and t["x1"] - t["x0"] == 128
    assert min(lows) >= 0.0 and max(highs) <= 1.0
    info = inspect_image(out / "b_000.tif")
    assert info.pixel_size_um == pytest.approx((0.325, 0.325))
    # global normalization: the image's own min and max reach the bounds
    a_tiles = [tifffile.imread(out / t["file"]) for t in m["tiles"] if t["source"] == "a.tif"]
    assert min(t.min() for t in a_tiles) == 0.0 and max(t.max() for t in a_tiles) == 1.0


def test_tile_content_matches_the_recalibrated_image(folder, tmp_path):
    settings = Settings(tile_size=128, overlap=32, norm="none", dtype="float32")
    drain(run_export(folder, tmp_path / "out", settings))
    scaled = preview_image(folder / "a.tif", settings).image
    for t in manifest(tmp_path / "out")["tiles"]:
        if t["source"] == "a.tif":
            tile = tifffile.imread(tmp_path / "out" / t["file"])
            assert np.array_equal(tile, scaled[t["y0"] : t["y1"], t["x0"] : t["x1"], 0])


def test_norm_none_keeps_integer_values_exactly(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = microscopy((256, 300))
    write_imagej(src / "a.tif", img, 0.5)
    drain(run_export(src, tmp_path / "out", Settings(tile_size=128, overlap=0, norm="none", dtype="uint16", calibrate=False)))
    m = manifest(tmp_path / "out")
    for t in m["tiles"]:
        tile = tifffile.imread(tmp_path / "out" / t["file"])
        assert tile.dtype == np.uint16
        assert np.array_equal(tile[: t["y1"] - t["y0"], : t["x1"] - t["x0"]], img[t["y0"] : t["y1"], t["x0"] : t["x1"]])
    # without calibration the tiles keep the source's pixel size
    assert inspect_image(tmp_path / "out" / m["tiles"][0]["file"]).pixel_size_um == pytest.approx((0.5, 0.5))


def test_norm_none_values_that_do_not_fit_fail_that_image_only(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_imagej(src / "bright.tif", microscopy((128, 128)) + 1000, 0.325)
    write_imagej(src / "dim.tif", (microscopy((128, 128)) // 20).astype(np.uint16), 0.325)
    settings = Settings(tile_size=128, overlap=0, norm="none", dtype="uint8", format="png")
    _, summary = drain(run_export(src, tmp_path / "out", settings))
    assert summary.exit_code == 1 and [n for n, _ in summary.failed] == ["bright.tif"]
    assert "which uint8 (0–255) cannot hold" in summary.failed[0][1]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["dim_000.png", "manifest.json"]


def test_local_normalization_per_tile_and_channel(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_imagej(src / "c.tif", microscopy((200, 260), channels=2), 0.325, axes="CYX")
    settings = Settings(tile_size=128, overlap=16, norm="local", bounds=(0, 255), dtype="uint8", format="tif")
    drain(run_export(src, tmp_path / "out", settings))
    m = manifest(tmp_path / "out")
    assert m["sources"][0]["normalization"] == {"mode": "local"}
    for t in m["tiles"]:
        tile = tifffile.imread(tmp_path / "out" / t["file"])
        assert tile.shape == (2, 128, 128) and tile.dtype == np.uint8  # CYX carried through
        assert tile.min(axis=(1, 2)).tolist() == [0, 0] and tile.max(axis=(1, 2)).tolist() == [255, 255]
        assert len(t["low"]) == 2 and t["low"][0] < t["high"][0]


def test_percentiles_and_bounds(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_imagej(src / "a.tif", microscopy((128, 128)), 0.325)
    settings = Settings(tile_size=128, overlap=0, percentiles=(2, 98), bounds=(-1, 1))
    drain(run_export(src, tmp_path / "out", settings))
    tile = tifffile.imread(tmp_path / "out" / "a_000.tif")
    assert tile.min() == -1 and tile.max() == 1
    assert 0.02 * tile.size <= np.sum(tile == 1) <= 0.03 * tile.size  # the top 2 % are clipped


def test_yolo_preset_rgb_png(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rgb = np.random.default_rng(1).integers(0, 4000, (150, 170, 3)).astype(np.uint16)
    tifffile.imwrite(src / "rgb.tif", rgb, photometric="rgb", resolution=(1e4 / 0.325, 1e4 / 0.325), resolutionunit="CENTIMETER")
    drain(run_export(src, tmp_path / "out", Settings(tile_size=128, overlap=32).with_preset("yolo")))
    tiles = sorted((tmp_path / "out").glob("*.png"))
    assert [p.name for p in tiles] == ["rgb_000.png", "rgb_001.png", "rgb_002.png", "rgb_003.png"]
    tile = cv2.imread(str(tiles[0]), cv2.IMREAD_UNCHANGED)[..., ::-1]
    assert tile.shape == (128, 128, 3) and tile.dtype == np.uint8
    # colours stay in their channels: red is the red channel of the source
    low, high = rgb[..., 0].min(), rgb[..., 0].max()
    assert np.allclose(tile[..., 0], (rgb[:128, :128, 0] - low) / (high - low) * 255, atol=1)


def test_small_image_is_padded_and_recorded(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_imagej(src / "s.tif", microscopy((50, 70)), 0.325)
    drain(run_export(src, tmp_path / "out", Settings(tile_size=64, overlap=16)))
    m = manifest(tmp_path / "out")
    assert len(m["tiles"]) == 2 and m["sources"][0]["padding"] == [14, 0]
    t = m["tiles"][0]
    assert (t["y1"], t["pad_y"]) == (50, 14)
    tile = tifffile.imread(tmp_path / "out" / t["file"])
    assert tile.shape == (64, 64) and np.all(tile[50:] == 0) and tile[:50].max() > 0


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_modes(tmp_path, mode):
    src = tmp_path / "in"
    src.mkdir()
    write_imagej(src / "s.tif", microscopy((40, 64)), 0.325)
    drain(run_export(src, tmp_path / "out", Settings(tile_size=64, overlap=0, pad_mode=mode)))
    tile = tifffile.imread(tmp_path / "out" / "s_000.tif")
    expected = tile[39] if mode == "edge" else tile[38]
    assert np.array_equal(tile[40], expected)


def test_same_stem_never_writes_one_name(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_imagej(src / "a.tif", microscopy((128, 128), seed=1), 0.325)
    cv2.imwrite(str(src / "a.png"), microscopy((128, 128), seed=2))
    drain(run_export(src, tmp_path / "out", Settings(tile_size=128, overlap=0, pixel_size=0.325)))
    m = manifest(tmp_path / "out")
    assert [(s["file"], s["tile_stem"]) for s in m["sources"]] == [("a.tif", "a"), ("a.png", "a-png")]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["a-png_000.tif", "a_000.tif"]
    assert tile_stems(["x.tif", "X.TIF", "x.png"]) == ["x", "X-tif", "x-png"]


def test_corrupt_and_uncalibrated_images_fail_alone(folder, tmp_path):
    (folder / "broken.tif").write_bytes(b"II*\x00\x08\x00\x00\x00garbage")
    tifffile.imwrite(folder / "nocal.tif", microscopy((64, 64)))
    _, summary = drain(run_export(folder, tmp_path / "out", SMALL))
    reasons = dict(summary.failed)
    assert sorted(reasons) == ["broken.tif", "nocal.tif"] and summary.exit_code == 1
    assert "carries no pixel size" in reasons["nocal.tif"] and "turn calibration off" in reasons["nocal.tif"]
    assert summary.settings_failures == {"nocal.tif": ("pixel_size",)}  # each front end names the setting its way
    assert summary.images_ok == 3 and summary.tiles_written > 0
    m = manifest(tmp_path / "out")
    status = {s["file"]: (s["status"], s["error"]) for s in m["sources"]}
    assert status["broken.tif"][0] == "failed" and "broken.tif" in status["broken.tif"][1]
    assert status["a.tif"] == ("ok", None)


def test_manual_pixel_size_overrides_metadata(folder, tmp_path):
    settings = Settings(tile_size=128, overlap=32, pixel_size=1.3, unit="um")
    drain(run_export(folder, tmp_path / "out", settings))
    a = manifest(tmp_path / "out")["sources"][0]
    assert a["calibration"] == "manual" and a["scaled_shape"] == [1200, 1600]


def test_anisotropic_pixels(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_imagej(src / "a.tif", microscopy((100, 100)), (0.65, 0.325))
    drain(run_export(src, tmp_path / "out", Settings(tile_size=64, overlap=0)))
    assert manifest(tmp_path / "out")["sources"][0]["scaled_shape"] == [200, 100]


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_in_input_is_refused_before_any_write(folder, where):
    out = folder if where == "same" else folder / "tiles"
    before = snapshot(folder)
    with pytest.raises(OutputError, match="input folder"):
        drain(run_export(folder, out, SMALL))
    assert snapshot(folder) == before and not (folder / "tiles").exists()


def test_non_empty_output_needs_overwrite(folder, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not empty"):
        drain(run_export(folder, out, SMALL))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    # overwriting replaces an earlier export, never files it did not write
    with pytest.raises(OutputError, match="no earlier export wrote"):
        drain(run_export(folder, out, SMALL, overwrite=True))
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    drain(run_export(folder, out, SMALL))
    _, summary = drain(run_export(folder, out, dataclasses.replace(SMALL, tile_size=256), overwrite=True))
    assert summary.tiles_written > 0
    on_disk = sorted(p.name for p in out.iterdir())
    assert on_disk == sorted(["manifest.json"] + [t["file"] for t in manifest(out)["tiles"]])


def test_empty_input_folder_is_a_settings_error(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.md").write_text("x")
    with pytest.raises(SettingsError, match="holds no images"):
        drain(run_export(tmp_path / "in", tmp_path / "out", SMALL))
    assert not (tmp_path / "out").exists()


def test_image_files_instead_of_a_folder(folder, tmp_path):
    _, summary = drain(run_export([folder / "b.tif", folder / "c.tif"], tmp_path / "out", SMALL))
    assert summary.images_ok == 2
    assert {s["file"] for s in manifest(tmp_path / "out")["sources"]} == {"b.tif", "c.tif"}


def test_cancel_leaves_consistent_folder(folder, tmp_path):
    out = tmp_path / "out"
    cancel = threading.Event()
    # thousands of tiny tiles: far too many to be written before the first progress record
    gen = run_export(folder, out, Settings(tile_size=16, overlap=0, format="png", dtype="uint8", bounds=(0, 255), workers=1),
                     cancel=cancel)
    for progress in gen:
        if progress.done >= 5:
            cancel.set()
            break
    else:
        pytest.fail("the export ended before it could be cancelled")
    _, summary = drain(gen)  # the generator winds down and returns its summary
    assert summary.cancelled and summary.exit_code == 1
    m = manifest(out)
    on_disk = sorted(p.name for p in out.glob("*.png"))
    assert m["status"] == "cancelled"
    assert on_disk == sorted(t["file"] for t in m["tiles"]) and 5 <= len(on_disk) < progress.total
    assert not list(out.glob(".*"))  # no partial file
    assert "cancelled" in {s["status"] for s in m["sources"]}


def test_a_run_ends_with_its_last_image_not_at_the_next_progress_tick(folder, tmp_path, monkeypatch):
    # Finished images are taken in at each progress tick (a wake-up per image handed the GIL
    # around on folders of small images), but the last one ends the wait at once.
    from tilesapp.core import progress

    monkeypatch.setattr(progress.Throttle, "INTERVAL", 30.0)
    start = time.monotonic()
    _, summary = drain(run_export(folder, tmp_path / "out", SMALL))
    assert summary.images_ok == 3 and summary.tiles_written == len(manifest(tmp_path / "out")["tiles"]) > 0
    assert time.monotonic() - start < 10


def test_closing_the_generator_writes_the_manifest(folder, tmp_path):
    out = tmp_path / "out"
    gen = run_export(folder, out, Settings(tile_size=16, overlap=0, format="png", dtype="uint8", bounds=(0, 255), workers=2))
    for progress in gen:
        if progress.done > 3:
            break
    gen.close()
    m = manifest(out)
    assert m["status"] == "cancelled" and len(m["tiles"]) < progress.total
    assert sorted(p.name for p in out.glob("*.png")) == sorted(t["file"] for t in m["tiles"])


def test_full_disk_stops_the_run_with_a_clear_message(folder, tmp_path, monkeypatch):
    real_write = writers.TileWriter.write
    calls = {"n": 0}

    def failing_write(self, path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, path, *args, **kwargs)

    monkeypatch.setattr(writers.TileWriter, "write", failing_write)
    out = tmp_path / "out"
    _, summary = drain(run_export(folder, out, dataclasses.replace(SMALL, workers=1)))
    assert summary.stopped_by and "disk" in summary.stopped_by and "full" in summary.stopped_by
    assert summary.exit_code == 1
    m = manifest(out)
    assert m["status"] == "stopped"
    assert sorted(p.name for p in out.glob("*.tif")) == sorted(t["file"] for t in m["tiles"])


def test_two_workers_give_the_same_result_as_one(folder, tmp_path):
    drain(run_export(folder, tmp_path / "one", dataclasses.replace(SMALL, workers=1)))
    drain(run_export(folder, tmp_path / "two", dataclasses.replace(SMALL, workers=2)))
    one, two = manifest(tmp_path / "one"), manifest(tmp_path / "two")
    assert one["tiles"] == two["tiles"] and one["sources"] == two["sources"]
    for t in one["tiles"]:
        assert np.array_equal(tifffile.imread(tmp_path / "one" / t["file"]), tifffile.imread(tmp_path / "two" / t["file"]))


def test_jpg_output(folder, tmp_path):
    settings = Settings(tile_size=128, overlap=32, bounds=(0, 255), dtype="uint8", format="jpg")
    _, summary = drain(run_export(folder, tmp_path / "out", settings))
    tile = cv2.imread(str(tmp_path / "out" / "a_000.jpg"), cv2.IMREAD_UNCHANGED)
    assert tile.shape == (128, 128) and tile.dtype == np.uint8 and summary.exit_code == 0


def test_export_contents_tell_what_an_export_wrote(folder, tmp_path):
    out = tmp_path / "out"
    drain(run_export(folder, out, dataclasses.replace(SMALL, val_fraction=0.4, seed=3)))
    (out / "mine.txt").write_text("not the export's")
    contents = export_contents(out)
    listed = {out / t["file"] for t in manifest(out)["tiles"]} | {out / "manifest.json"}
    assert set(contents.written) == listed and contents.other == [out / "mine.txt"]
    assert count_files(out) == len(listed) + 1
    assert clear_export(contents) == len(listed)
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # the export's folders went with its files


def test_a_recalibration_larger_than_memory_fails_that_image_with_a_reason(folder, tmp_path, monkeypatch):
    import tifffile as tf

    from tilesapp.core import memory

    # 300 dpi written by a scanner or an editor: 84.7 µm pixels, a ×260 enlargement at 0.325 µm
    tf.imwrite(folder / "dpi.tif", microscopy((300, 400)), resolution=(300, 300), resolutionunit="INCH")
    monkeypatch.setattr(memory, "recalibration_budget", lambda: 2**30)
    _, summary = drain(run_export(folder, tmp_path / "out", SMALL))
    reasons = dict(summary.failed)
    assert list(reasons) == ["dpi.tif"]
    assert "dpi.tif would be 78154 × 104205 px after recalibration (×261" in reasons["dpi.tif"]
    assert "84.6667 µm read from TIFF tags" in reasons["dpi.tif"] and "check the pixel size" in reasons["dpi.tif"]
    assert summary.images_ok == 3
