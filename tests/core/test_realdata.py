"""Files from real instruments (../shared/realdata, see its SOURCES.md): listed with the pixel size
their metadata gives, cut with the UNet and YOLO presets, merged back — through the command
line, as a user runs it. Skipped where the folder or a format's library is missing."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tilesapp.core.geometry import axis_starts

REPO = Path(__file__).resolve().parents[2]
REALDATA = next((p for p in (REPO.parent / "shared" / "realdata", Path("/work/shared/realdata")) if p.is_dir()), None)
pytestmark = pytest.mark.skipif(REALDATA is None, reason="the shared real-data folder is absent")

LIBRARIES = {".czi": "pylibCZIrw", ".nd2": "nd2", ".lif": "liffile", ".dv": "mrc", ".sif": "sif_parser"}

# file: (pixel size µm from SOURCES.md or None, scenes, Z, T, channels, axes)
FILES = {
    "czi_2d_1ch_aicsimageio_s_1_t_1_c_1_z_1.czi": (1.0833, 1, 1, 1, 1, "YX"),
    "czi_2d_3ch_pycziutils_phase-egfp-cy3.czi": (3.632, 1, 1, 1, 3, "CYX"),
    "czi_2scenes_z2_neubias_xyz__multiple_images.czi": (0.19564, 2, 2, 1, 1, "YX"),
    "czi_linescan_xt_lsm980.czi": (0.20716, 1, 1, 1, 1, "YX"),
    "nd2_tzc_pims_cluster.nd2": (0.1678, 1, 10, 3, 2, "CYX"),
    "nd2_2d_4ch_arcadia_example-multichannel.nd2": (0.32339, 1, 1, 1, 4, "CYX"),
    "nd2_2d_2ch_arcadia_example-cerevisiae.nd2": (0.10833, 1, 1, 1, 2, "CYX"),
    "nd2_z11_arcadia_example-zstack.nd2": (0.32339, 1, 11, 1, 1, "YX"),
    "nd2_t53_arcadia_example-timelapse.nd2": (0.325, 1, 1, 53, 1, "YX"),
    "lif_tmzc_PR2729_frameOrderCombinedScanTypes.lif": (3.968, 4, 3, 2, 2, "CYX"),
    "lsm_3ch_032113-18.lsm": (1.0378, 1, 1, 1, 3, "CYX"),
    "dv_c2z17_toxo.dv": (0.13262, 1, 17, 1, 2, "CYX"),
    "svs_CMU-1-Small-Region.svs": (0.499, 1, 1, 1, 3, "YXS"),
    "ndpi_test3-DAPI-2-387.ndpi": (0.22818, 1, 1, 1, 3, "YXS"),
    "sif_andor_ixon_image.sif": (None, 1, 1, 1, 1, "YX"),
    "omezarr_v04_bf2raw_fake-series-2.zarr": (None, 2, 1, 1, 1, "YX"),
}
# What a user adds to cut each: a plane choice for stacks, a pixel size where there is none.
CHOICES = ["--z", "max", "--t", "0", "--pixel-size", "0.5", "--pixel-size-for", "uncalibrated"]
# YOLO tiles are PNG: 2- and 4-channel fluorescence must choose 1 or 3 channels
YOLO_CHANNELS = {"nd2_tzc_pims_cluster.nd2": "0", "nd2_2d_4ch_arcadia_example-multichannel.nd2": "1,2,3",
                 "nd2_2d_2ch_arcadia_example-cerevisiae.nd2": "FITC BP", "lif_tmzc_PR2729_frameOrderCombinedScanTypes.lif": "0",
                 "dv_c2z17_toxo.dv": "1"}


def tilesapp(*args, check=True):
    result = subprocess.run([sys.executable, "-m", "tilesapp", *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert "Traceback" not in result.stderr, result.stderr
    if check:
        assert result.returncode == 0, result.stderr
    return result


def available(name: str) -> bool:
    library = LIBRARIES.get(Path(name).suffix)
    return library is None or importlib.util.find_spec(library) is not None


def single(tmp_path: Path, name: str) -> Path:
    """A folder holding one real file (a link: the shared folder is read-only and never copied)."""
    if not available(name):
        pytest.skip(f"{LIBRARIES[Path(name).suffix]} is not installed")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / name).symlink_to(REALDATA / name, target_is_directory=(REALDATA / name).is_dir())
    return folder


def tiles_along(length: int, tile: int = 512, overlap: int = 128) -> int:
    return len(axis_starts(length, tile, overlap))


def test_info_lists_every_file_with_its_pixel_size_scenes_planes_and_channels():
    result = tilesapp("info", REALDATA, "--json")
    rows = json.loads(result.stdout)["images"]
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(row["file"], []).append(row)
    assert set(by_file) == {name for name in FILES if available(name)}
    for name, scenes in by_file.items():
        size, n_scenes, n_z, n_t, channels, axes = FILES[name]
        assert [r["scene"] for r in scenes] == list(range(n_scenes)), name  # every scene its own entry, 0-based
        for row in scenes:
            assert (row["z"], row["t"], row["channels"], row["axes"]) == (n_z, n_t, channels, axes), name
            if size is None:  # said, with where to find it; never guessed
                assert row["pixel_size_um"] is None and "carries no pixel size" in row["error"], name
                assert row["calibration_hint"] and f"({row['calibration_hint']})" in row["error"], name
            else:
                assert row["pixel_size_um"] == pytest.approx([size, size], rel=0.01), name
                assert row["calibration"], name
    channels = by_file["nd2_2d_4ch_arcadia_example-multichannel.nd2"][0]["channel_names"]
    assert channels == ["Mono", "DAPI", "FITC BP", "TRITC BP"]


@pytest.mark.parametrize("name", sorted(FILES))
@pytest.mark.parametrize("preset", ["unet", "yolo"])
def test_every_real_file_is_cut_and_merged_back(tmp_path, name, preset):
    folder = single(tmp_path, name)
    size, n_scenes, n_z, n_t, channels, axes = FILES[name]
    extra = ["--channels", YOLO_CHANNELS[name]] if preset == "yolo" and name in YOLO_CHANNELS else []
    out = tmp_path / "tiles"
    tilesapp("cut", folder, out, "--preset", preset, *CHOICES, *extra, "-q")
    manifest = json.loads((out / "manifest.json").read_text())
    sources = manifest["sources"]
    assert len(sources) == n_scenes and all(s["status"] == "ok" for s in sources), sources
    for source in sources:
        rows, cols = source["scaled_shape"]
        pixel = size if size is not None else 0.5
        y, x = source["shape"][source["axes"].index("Y")], source["shape"][source["axes"].index("X")]
        assert (rows, cols) == (math.floor(y * pixel / 0.325 + 0.5), math.floor(x * pixel / 0.325 + 0.5))
        tiles = [t for t in manifest["tiles"] if t["source"] == source.get("name", source["file"])]
        assert len(tiles) == tiles_along(rows) * tiles_along(cols) == source["tiles"]
        if n_z > 1:
            assert source["z"] == "max"
        first = out / tiles[0]["file"]
        kept = len(YOLO_CHANNELS[name].split(",")) if extra else channels
        if preset == "unet":
            tile = tifffile.imread(first)
            assert tile.dtype == np.float32 and 0.0 <= tile.min() and tile.max() <= 1.0
        else:
            import cv2

            tile = cv2.imread(str(first), cv2.IMREAD_UNCHANGED)
            assert first.suffix == ".png" and tile.dtype == np.uint8
        assert (tile.shape[2] if tile.ndim == 3 and axes == "YXS" or (preset == "yolo" and tile.ndim == 3)
                else (tile.shape[0] if tile.ndim == 3 else 1)) == kept
    if size is None:  # typed: nothing left telling to enter it
        assert all(s["calibration"] == "manual (no metadata)" and not s.get("warnings") for s in sources), sources
    merged = tmp_path / "merged"
    result = tilesapp("merge", out, merged, "--restore-scale", "-q")
    assert result.returncode == 0
    assert len(list(merged.glob("*.tif"))) == n_scenes


def test_stacks_without_a_choice_fail_alone_naming_the_option(tmp_path):
    folder = single(tmp_path, "nd2_z11_arcadia_example-zstack.nd2")
    result = tilesapp("cut", folder, tmp_path / "tiles", "-q", check=False)
    assert result.returncode == 1
    assert "Z stack of 11 planes" in result.stderr and "--z max|mean|each|N" in result.stderr


def test_every_plane_is_its_own_image_named_by_plane(tmp_path):
    folder = single(tmp_path, "nd2_z11_arcadia_example-zstack.nd2")
    out = tmp_path / "tiles"
    tilesapp("cut", folder, out, "--z", "each", "--no-calibration", "--patch-size", "64", "--overlap", "0", "-q")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [s["z"] for s in manifest["sources"]] == list(range(11))
    assert manifest["sources"][3]["name"] == "nd2_z11_arcadia_example-zstack.nd2 [z03]"
    assert (out / "nd2_z11_arcadia_example-zstack_z03_003.tif").is_file()  # 2 × 2 tiles of 64 per plane


def test_projections_equal_numpy_on_the_planes(tmp_path):
    import nd2 as nd2lib

    folder = single(tmp_path, "nd2_z11_arcadia_example-zstack.nd2")
    stack = np.asarray(nd2lib.imread(REALDATA / "nd2_z11_arcadia_example-zstack.nd2"))  # (11, 128, 128)
    for how, expected in (("max", stack.max(axis=0)), ("mean", stack.mean(axis=0, dtype=np.float64))):
        out = tmp_path / how
        tilesapp("cut", folder, out, "--z", how, "--no-calibration", "--norm", "none", "--patch-size", "128",
                 "--overlap", "0", "-q")
        tile = tifffile.imread(out / "nd2_z11_arcadia_example-zstack_000.tif")
        np.testing.assert_allclose(tile, expected, rtol=1e-6)


def test_scenes_are_chosen_and_named(tmp_path):
    folder = single(tmp_path, "czi_2scenes_z2_neubias_xyz__multiple_images.czi")
    out = tmp_path / "tiles"
    tilesapp("cut", folder, out, "--scenes", "1", "--z", "0", "--patch-size", "64", "--overlap", "0", "-q")
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(s["scene"], s["name"]) for s in manifest["sources"]] == [
        (1, "czi_2scenes_z2_neubias_xyz__multiple_images.czi [s1]")]
    assert all(t["file"].startswith("czi_2scenes_z2_neubias_xyz__multiple_images_s1_") for t in manifest["tiles"])


def test_brightfield_colour_is_stretched_jointly(tmp_path):
    folder = single(tmp_path, "svs_CMU-1-Small-Region.svs")
    joint, each = tmp_path / "joint", tmp_path / "each"
    args = ("--norm", "global", "--percentiles", "1", "99", "--no-calibration", "--patch-size", "1024",
            "--overlap", "0", "-q")
    tilesapp("cut", folder, joint, *args)
    tilesapp("cut", folder, each, *args, "--channel-stretch", "each")
    record = json.loads((joint / "manifest.json").read_text())["sources"][0]["normalization"]
    assert record["joint"] is True and len(set(record["low"])) == 1 and len(set(record["high"])) == 1
    per_channel = json.loads((each / "manifest.json").read_text())["sources"][0]["normalization"]
    assert len(set(per_channel["low"])) == 3  # the stain's colours differ: each would shift them apart
    slide = tifffile.imread(REALDATA / "svs_CMU-1-Small-Region.svs").astype(np.float64)
    low, high = np.percentile(slide, [1, 99])  # over all three colours at once
    assert record["low"][0] == pytest.approx(low) and record["high"][0] == pytest.approx(high)
    tile = tifffile.imread(joint / "svs_CMU-1-Small-Region_000.tif")
    expected = np.clip((slide[:1024, :1024] - low) / (high - low), 0, 1)
    np.testing.assert_allclose(tile, expected, atol=1e-5)


def test_four_fluorescence_channels_are_never_written_as_rgba(tmp_path):
    folder = single(tmp_path, "nd2_2d_4ch_arcadia_example-multichannel.nd2")
    result = tilesapp("cut", folder, tmp_path / "tiles", "--preset", "yolo", check=False)
    assert result.returncode == 1 and "RGBA" in result.stderr and "--channels" in result.stderr
