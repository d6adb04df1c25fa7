import json

import cv2
import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

from tilesapp.core.errors import OutputError, SettingsError, TilesError
from tilesapp.core.executors import ThreadExecutor
from tilesapp.core.export import run_export
from tilesapp.core.merge import blend_window, run_merge
from tilesapp.core.preview import preview_image
from tilesapp.core.readers import inspect_image
from tilesapp.core.settings import Settings


def cut_and_merge(tmp_path, image_path, settings, **merge_kwargs):
    drain(run_export([image_path], tmp_path / "tiles", settings))
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged", **merge_kwargs))
    return summary


@pytest.mark.parametrize(
    "tile_size, overlap",
    [(64, 0), (64, 16), (64, 32), (64, 48), (100, 70), (128, 120), (512, 128)],
)
@pytest.mark.parametrize("blend", ["flat", "gradient"])
def test_round_trip_returns_the_recalibrated_image(tmp_path, tile_size, overlap, blend):
    src = tmp_path / "in"
    src.mkdir()
    path = write_imagej(src / "wide.tif", microscopy((90, 131)), 0.5)  # non-square, rescaled 90→138, 131→202
    settings = Settings(tile_size=tile_size, overlap=overlap, norm="none", dtype="float32")
    summary = cut_and_merge(tmp_path, path, settings, blend=blend)
    assert summary.exit_code == 0 and [p.name for p in summary.written] == ["wide.tif"]
    merged = tifffile.imread(summary.written[0])
    expected = preview_image(path, settings).image
    assert merged.shape == expected.shape[:2] == (138, 202)
    np.testing.assert_allclose(merged, expected[..., 0], rtol=1e-6, atol=1e-3)
    assert inspect_image(summary.written[0]).pixel_size_um == pytest.approx((0.325, 0.325))


def test_round_trip_multichannel_and_restore_scale(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = microscopy((120, 90), channels=3)
    path = write_imagej(src / "c.tif", img, 0.65, axes="CYX")
    settings = Settings(tile_size=64, overlap=24, norm="none", dtype="float32")
    summary = cut_and_merge(tmp_path, path, settings, blend="gradient", restore_scale=True)
    merged = tifffile.imread(summary.written[0])
    assert merged.shape == (3, 120, 90) and merged.dtype == np.float32
    info = inspect_image(summary.written[0])
    assert info.axes == "CYX" and info.pixel_size_um == pytest.approx((0.65, 0.65))
    # 2× up then 2× down (area) returns the source up to cubic interpolation error
    assert np.abs(merged - img).mean() < 0.01 * img.mean()


def test_model_outputs_of_another_type_and_channels(tmp_path):
    """Tiles replaced by a model's predictions: uint8 masks, one channel, even PNG-in-TIF names."""
    src = tmp_path / "in"
    src.mkdir()
    img = microscopy((200, 230))
    path = write_imagej(src / "a.tif", img, 0.325)
    drain(run_export([path], tmp_path / "tiles", Settings(tile_size=64, overlap=16)))
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    threshold = 0.5
    for t in manifest["tiles"]:  # the "model": a threshold, written as uint8 0/255
        tile = tifffile.imread(tmp_path / "tiles" / t["file"])
        tifffile.imwrite(tmp_path / "tiles" / t["file"], ((tile > threshold) * 255).astype(np.uint8))
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged", blend="flat"))
    merged = tifffile.imread(summary.written[0])
    assert merged.dtype == np.uint8 and merged.shape == (200, 230)
    low, high = img.min(), img.max()
    expected = ((img - low) / (high - low) > threshold) * 255
    assert np.mean(merged == expected) > 0.999


def test_predictions_with_two_channels_last_and_smaller_size(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    path = write_imagej(src / "a.tif", microscopy((128, 128)), 0.325)
    drain(run_export([path], tmp_path / "tiles", Settings(tile_size=64, overlap=0)))
    for f in (tmp_path / "tiles").glob("*.tif"):
        tifffile.imwrite(f, np.full((32, 32, 2), (0.25, 0.75), np.float32))  # half-resolution model output
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged"))
    merged = tifffile.imread(summary.written[0])
    assert merged.shape == (2, 128, 128)
    assert np.allclose(merged[0], 0.25) and np.allclose(merged[1], 0.75)


def test_gradient_blend_is_smoother_at_seams(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    path = write_imagej(src / "a.tif", microscopy((64, 112)), 0.325)
    drain(run_export([path], tmp_path / "tiles", Settings(tile_size=64, overlap=32, norm="none")))
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    for t in manifest["tiles"]:  # each "prediction" is a constant: the tile's index
        tifffile.imwrite(tmp_path / "tiles" / t["file"], np.full((64, 64), float(t["index"]), np.float32))
    flat = tifffile.imread(drain(run_merge(tmp_path / "tiles", tmp_path / "f", blend="flat"))[1].written[0])
    grad = tifffile.imread(drain(run_merge(tmp_path / "tiles", tmp_path / "g", blend="gradient"))[1].written[0])
    assert np.abs(np.diff(flat[0])).max() == pytest.approx(0.5)  # a step at each tile edge
    assert np.abs(np.diff(grad[0])).max() < 0.1  # a ramp instead
    assert grad[0, 0] == 0 and grad[0, -1] == 2


def test_blend_window_values():
    w = blend_window(8, 3, "gradient")
    assert w.shape == (8, 8) and w.min() > 0 and w.max() == 1
    assert w[3].tolist() == pytest.approx([0.25, 0.5, 0.75, 1, 1, 0.75, 0.5, 0.25])  # a middle row
    assert w[0, 0] == pytest.approx(0.25 * 0.25)
    assert np.all(blend_window(8, 0, "gradient") == 1) and np.all(blend_window(8, 3, "flat") == 1)
    with pytest.raises(SettingsError, match="blend"):
        blend_window(8, 3, "median")


def test_missing_tile_fails_that_source_only(tmp_path, folder):
    drain(run_export(folder, tmp_path / "tiles", Settings(tile_size=128, overlap=32)))
    (tmp_path / "tiles" / "b_001.tif").unlink()
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged"))
    assert sorted(p.name for p in summary.written) == ["a.tif", "c.tif"]
    assert summary.failed[0][0] == "b.tif" and "b_001.tif is missing" in summary.failed[0][1]
    assert summary.failed[0][1].endswith("is needed to merge the image: put it back (or write that prediction again).")
    assert summary.exit_code == 1


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_a_manifest_resaved_by_an_editor_still_merges(tmp_path, folder, encoding):
    """A person who opened manifest.json in Notepad and saved it (with a byte order mark, or as
    UTF-16) can still merge: the same images as from the manifest as written."""
    drain(run_export(folder, tmp_path / "tiles", Settings(tile_size=128, overlap=32)))
    _, before = drain(run_merge(tmp_path / "tiles", tmp_path / "before"))
    manifest = tmp_path / "tiles" / "manifest.json"
    manifest.write_text(manifest.read_text(encoding="utf-8"), encoding=encoding)
    _, after = drain(run_merge(tmp_path / "tiles", tmp_path / "after"))
    assert after.exit_code == 0 and [p.name for p in after.written] == [p.name for p in before.written]
    for a, b in zip(before.written, after.written):
        assert a.read_bytes() == b.read_bytes(), b.name


def test_merge_refuses_unsafe_output_and_missing_manifest(tmp_path, folder):
    drain(run_export(folder, tmp_path / "tiles", Settings(tile_size=128, overlap=32)))
    with pytest.raises(OutputError):
        drain(run_merge(tmp_path / "tiles", tmp_path / "tiles" / "merged"))
    with pytest.raises(TilesError, match="manifest.json"):
        drain(run_merge(folder, tmp_path / "merged"))


def test_png_tiles_merge(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    rgb = np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8)
    cv2.imwrite(str(src / "rgb.png"), rgb[..., ::-1])
    settings = Settings(tile_size=64, overlap=16, calibrate=False, norm="none", dtype="uint8", format="png")
    drain(run_export(src, tmp_path / "tiles", settings))
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged", blend="gradient"))
    merged = tifffile.imread(summary.written[0])
    assert merged.shape == (100, 140, 3) and np.array_equal(merged, rgb)


def test_a_wide_image_whose_one_tile_row_fits_the_limit_is_merged_in_bands(tmp_path):
    """Merging in bands holds one tile row: 512-px tiles of a 4000-px wide image fit 64 MB, two
    tile rows would not — the merge must not be refused for a band it never holds."""
    src = tmp_path / "in"
    src.mkdir()
    image = (microscopy((1200, 4000), seed=5) // 256).astype(np.uint8)
    tifffile.imwrite(src / "wide.tif", image)
    settings = Settings(tile_size=512, overlap=128, calibrate=False, norm="none", dtype="uint8")
    drain(run_export(src, tmp_path / "tiles", settings))
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged", memory_limit=64 << 20))
    assert summary.exit_code == 0 and not summary.failed
    np.testing.assert_array_equal(tifffile.imread(summary.written[0]), image)


def test_a_flat_blend_is_the_float64_mean_of_the_tiles_rounded_once(tmp_path):
    """Overlaps are averaged in float64 and rounded to float32 once: a float32 running sum
    (or a cast before the division) gives other numbers for values like these."""
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "img.tif", np.zeros((300, 700), np.float32))
    settings = Settings(tile_size=128, overlap=48, calibrate=False, norm="none", dtype="float32")
    drain(run_export(src, tmp_path / "tiles", settings))
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    rng = np.random.default_rng(3)
    sums, counts = np.zeros((300, 700)), np.zeros((300, 700))
    for tile in manifest["tiles"]:  # predictions: a model's float32 output near 1
        values = (1 + rng.random((128, 128)) * 1e-3).astype(np.float32)
        tifffile.imwrite(tmp_path / "tiles" / tile["file"], values)
        y0, x0, y1, x1 = tile["y0"], tile["x0"], tile["y1"], tile["x1"]
        sums[y0:y1, x0:x1] += values[: y1 - y0, : x1 - x0]
        counts[y0:y1, x0:x1] += 1
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged"))
    merged = tifffile.imread(summary.written[0])
    expected = (sums / counts).astype(np.float32)
    assert merged.dtype == np.float32 and counts.min() == 1 and counts.max() >= 4
    np.testing.assert_array_equal(merged, expected)


class _CancelOnceWritten:
    """A cancel flag that goes up the moment a merged image lands (a user pressing Cancel
    just as a file is renamed into place)."""

    def __init__(self, folder):
        self.folder = folder

    def is_set(self) -> bool:
        return self.folder.is_dir() and any(p.suffix == ".tif" and not p.name.startswith(".")
                                            for p in self.folder.iterdir())

    def set(self) -> None:
        pass


@pytest.mark.parametrize("restore_scale", [False, True])
def test_an_image_that_lands_as_the_run_is_cancelled_is_reported_written(tmp_path, restore_scale):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        write_imagej(src / f"{name}.tif", microscopy((90, 131)), 0.5)
    settings = Settings(tile_size=64, overlap=16, norm="none", dtype="float32")
    drain(run_export(sorted(src.iterdir()), tmp_path / "tiles", settings))
    out = tmp_path / "merged"
    _, summary = drain(run_merge(tmp_path / "tiles", out, cancel=_CancelOnceWritten(out), restore_scale=restore_scale,
                                 executor=ThreadExecutor(1)))
    on_disk = sorted(p.name for p in out.iterdir())
    assert summary.cancelled and len(on_disk) == 1
    assert [p.name for p in summary.written] == on_disk
