"""The built program (``bash packaging/build.sh``) run the way a user runs it.

Skipped when there is no build: CI does not build the bundle (it takes minutes). Run it with

    bash packaging/build.sh && python -m pytest tests/test_bundle.py

The executable is ``$TILESAPP_BUNDLE`` when set, else the first of ``dist/TilesCreator`` (Linux
one file), ``dist/TilesCreator/tilesapp.exe`` (Windows console executable),
``dist/TilesCreator.app/Contents/MacOS/TilesCreator`` (macOS). Every run has an empty HOME, nothing on PATH (so no Python) and the
offscreen Qt platform; expected values are computed here from the inputs, not taken from the
package, so a stale or broken bundle fails. The ``predict`` tests build their tiny ONNX models
with the onnx package (skipped without it; ``packaging/smoke_test.sh`` installs it).
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (
    "dist/TilesCreator",
    "dist/TilesCreator/tilesapp.exe",
    "dist/TilesCreator.app/Contents/MacOS/TilesCreator",
    "dist/TilesCreator/TilesCreator",  # TILESAPP_ONEDIR=1 on Linux
)


def _bundle() -> Path | None:
    if os.environ.get("TILESAPP_BUNDLE"):
        return Path(os.environ["TILESAPP_BUNDLE"]).resolve()
    for name in CANDIDATES:
        path = ROOT / name
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


BUNDLE = _bundle()
pytestmark = pytest.mark.skipif(
    BUNDLE is None, reason="no built program: run `bash packaging/build.sh` (or set TILESAPP_BUNDLE)"
)
# The version the bundle must report: the project's single source, read (not imported, since
# the installed tilesapp may come from another checkout).
VERSION = re.search(r'__version__ = "([^"]+)"', (ROOT / "tilesapp" / "__init__.py").read_text("utf-8")).group(1)
TILE, OVERLAP = 128, 32


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> dict:
    """An empty HOME and an environment without Python, like a user's double-click."""
    assert BUNDLE.is_file(), f"TILESAPP_BUNDLE={BUNDLE} is not a file"
    home = tmp_path_factory.mktemp("home")
    empty_bin = tmp_path_factory.mktemp("bin")  # nothing on PATH at all
    env = {"HOME": str(home), "PATH": str(empty_bin), "QT_QPA_PLATFORM": "offscreen", "LANG": "C.UTF-8"}
    if sys.platform == "win32":  # Windows cannot start a process without these
        env.update({k: os.environ[k] for k in ("SYSTEMROOT", "WINDIR", "TEMP", "TMP") if k in os.environ})
        env.update(USERPROFILE=str(home), APPDATA=str(home / "Roaming"), LOCALAPPDATA=str(home / "Local"))
        env["PATH"] = os.path.join(os.environ.get("SYSTEMROOT", r"C:\Windows"), "System32")
    return {"home": home, "env": env}


def run(sandbox, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BUNDLE), *map(str, args)], env=sandbox["env"], cwd=sandbox["home"],
        capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=timeout,
    )


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict:
    """A folder of compressed, calibrated TIFFs: LZW with ImageJ metadata, zstd with OME-XML."""
    import tifffile
    from helpers import microscopy

    folder = tmp_path_factory.mktemp("input")
    lzw = microscopy((300, 400), seed=1)
    zstd = microscopy((256, 320), seed=2)
    tifffile.imwrite(folder / "lzw.tif", lzw, imagej=True, compression="lzw",
                     metadata={"axes": "YX", "unit": "um"}, resolution=(1 / 0.65, 1 / 0.65))
    tifffile.imwrite(folder / "zstd.tif", zstd, ome=True, compression="zstd",
                     metadata={"axes": "YX", "PhysicalSizeX": 325, "PhysicalSizeY": 325,
                               "PhysicalSizeXUnit": "nm", "PhysicalSizeYUnit": "nm"})
    for name, compression in (("lzw.tif", 5), ("zstd.tif", 50000)):  # the files really are compressed
        with tifffile.TiffFile(folder / name) as tif:
            assert tif.pages[0].compression == compression
    return {"folder": folder, "lzw.tif": lzw, "zstd.tif": zstd}


def n_tiles(length: int) -> int:
    step = TILE - OVERLAP
    return max(1, math.ceil((length - OVERLAP) / step))


@pytest.fixture(scope="module")
def raw_cut(sandbox, images, tmp_path_factory) -> Path:
    """Tiles of the pixels as they are (no calibration, no normalization): comparable to the source."""
    out = tmp_path_factory.mktemp("raw") / "tiles"
    result = run(sandbox, "cut", images["folder"], out, "--no-calibration", "--norm", "none", "--dtype", "uint16",
                 "--patch-size", TILE, "--overlap", OVERLAP, "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def test_version(sandbox):
    result = run(sandbox, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"tilesapp {VERSION}"


def test_info_reads_compressed_calibrated_tiffs(sandbox, images):
    result = run(sandbox, "info", images["folder"], "--json", "--patch-size", TILE, "--overlap", OVERLAP)
    assert result.returncode == 0, result.stderr
    found = {entry["file"]: entry for entry in json.loads(result.stdout)["images"]}
    assert set(found) == {"lzw.tif", "zstd.tif"}
    lzw, zstd = found["lzw.tif"], found["zstd.tif"]
    assert (lzw["shape"], lzw["axes"], lzw["dtype"], lzw["calibration"]) == ([300, 400], "YX", "uint16", "ImageJ")
    assert lzw["pixel_size_um"] == pytest.approx([0.65, 0.65])
    assert lzw["scaled_shape"] == [600, 800]  # 0.65 µm -> 0.325 µm doubles each side
    assert lzw["tiles"] == n_tiles(600) * n_tiles(800)
    assert (zstd["shape"], zstd["dtype"]) == ([256, 320], "uint16")
    assert zstd["pixel_size_um"] == pytest.approx([0.325, 0.325])  # 325 nm from OME-XML
    assert zstd["scaled_shape"] == [256, 320]


def test_cut_tiles_are_the_source_pixels(images, raw_cut):
    import tifffile

    manifest = json.loads((raw_cut / "manifest.json").read_text("utf-8"))
    assert manifest["status"] == "complete"
    assert [s["status"] for s in manifest["sources"]] == ["ok", "ok"]
    for name in ("lzw.tif", "zstd.tif"):
        source = images[name]
        tiles = [t for t in manifest["tiles"] if t["source"] == name]
        assert len(tiles) == n_tiles(source.shape[0]) * n_tiles(source.shape[1])
        assert [t["index"] for t in tiles] == list(range(len(tiles)))
        for t in tiles:
            tile = tifffile.imread(raw_cut / t["file"])
            assert tile.shape == (TILE, TILE) and tile.dtype == source.dtype
            assert (tile == source[t["y0"]:t["y1"], t["x0"]:t["x1"]]).all(), t["file"]
    files = {p.name for p in raw_cut.glob("*.tif")}
    assert files == {t["file"] for t in manifest["tiles"]}


def test_cut_calibrated_unet_tiles(sandbox, images, tmp_path):
    import numpy as np
    import tifffile

    out = tmp_path / "unet"
    result = run(sandbox, "cut", images["folder"], out, "--preset", "unet", "--patch-size", TILE,
                 "--overlap", OVERLAP, "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    lzw = next(s for s in manifest["sources"] if s["file"] == "lzw.tif")
    assert lzw["scale_factor"] == pytest.approx([2.0, 2.0])
    assert lzw["scaled_shape"] == [600, 800]
    assert lzw["output_pixel_size_um"] == pytest.approx([0.325, 0.325])
    tiles = [t for t in manifest["tiles"] if t["source"] == "lzw.tif"]
    assert len(tiles) == n_tiles(600) * n_tiles(800)
    stack = np.stack([tifffile.imread(out / t["file"]) for t in tiles])
    assert stack.dtype == np.float32 and stack.shape[1:] == (TILE, TILE)
    assert stack.min() >= 0.0 and stack.max() <= 1.0 and stack.max() > 0.5  # global 0–1 stretch
    with tifffile.TiffFile(out / tiles[0]["file"]) as tif:  # the tile carries its pixel size
        assert tif.imagej_metadata["unit"] in ("um", "µm", "micron")
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(0.325, rel=1e-4)


def test_merge_rebuilds_the_sources(sandbox, images, raw_cut, tmp_path):
    import numpy as np
    import tifffile

    out = tmp_path / "merged"
    result = run(sandbox, "merge", raw_cut, out, "--blend", "gradient", "--quiet")
    assert result.returncode == 0, result.stderr
    for name in ("lzw.tif", "zstd.tif"):
        merged = tifffile.imread(out / name)
        assert merged.shape == images[name].shape
        assert np.abs(merged.astype(np.float64) - images[name]).max() < 1e-3


def test_min_foreground_uses_otsu_inside_the_bundle(sandbox, images, tmp_path):
    """The empty-tile filter's Otsu threshold: OpenCV's, on 65 536 levels between min and max."""
    import cv2
    import numpy as np

    source = images["lzw.tif"]
    lo, hi = float(source.min()), float(source.max())
    levels = np.rint((source - lo) * (65535 / (hi - lo))).astype(np.uint16)
    level, _ = cv2.threshold(levels, 0, 65535, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    foreground = levels > level
    rows, cols = (math.ceil(n / TILE) for n in source.shape)  # no overlap: last tile shifted back
    shares = {}
    for index in range(rows * cols):
        row, col = divmod(index, cols)
        y1, x1 = min((row + 1) * TILE, source.shape[0]), min((col + 1) * TILE, source.shape[1])
        shares[index] = float(foreground[y1 - TILE:y1, x1 - TILE:x1].mean())
    ordered = sorted(set(shares.values()))
    assert len(ordered) >= 2, "test image too uniform"
    limit = round((ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2, 6)  # splits the tiles

    out = tmp_path / "filtered"
    result = run(sandbox, "cut", images["folder"], out, "--no-calibration", "--norm", "none", "--dtype", "uint16",
                 "--patch-size", TILE, "--overlap", 0, "--min-foreground", limit, "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    kept = {t["index"] for t in manifest["tiles"] if t["source"] == "lzw.tif"}
    dropped = {t["index"]: t["foreground"] for t in manifest["dropped"] if t["source"] == "lzw.tif"}
    assert kept == {i for i, share in shares.items() if share >= limit}
    assert set(dropped) == {i for i, share in shares.items() if share < limit}
    assert kept and dropped
    for index, share in dropped.items():
        assert share == pytest.approx(shares[index], abs=1e-5)


def test_sample_writes_a_png_mosaic(sandbox, images, tmp_path):
    import cv2

    out = tmp_path / "mosaic.png"
    result = run(sandbox, "sample", images["folder"], out, "--size", 256, "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    mosaic = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert mosaic.ndim == 3 and mosaic.shape[2] == 3 and mosaic.dtype.name == "uint8"
    assert 256 <= mosaic.shape[1] <= 3 * 256 and 0 < mosaic.shape[0] <= 2 * 256 + 64
    assert mosaic.std() > 5  # images were drawn, not a blank canvas


def test_bad_arguments_exit_2_with_a_sentence(sandbox, tmp_path):
    result = run(sandbox, "cut", tmp_path / "missing", tmp_path / "out", "--quiet")
    assert result.returncode == 2
    assert "missing" in result.stderr and "Traceback" not in result.stderr


def _log_file(home: Path) -> Path:
    if sys.platform == "win32":
        return home / "Local" / "TilesCreator" / "Logs" / "tilesapp.log"
    if sys.platform == "darwin":
        return home / "Library" / "Logs" / "TilesCreator" / "tilesapp.log"
    return home / ".local" / "state" / "tilesapp" / "tilesapp.log"


def test_window_opens_on_a_folder_and_quits(sandbox, images):
    result = run(sandbox, "gui", images["folder"], "--quit-after", 2, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    log = _log_file(sandbox["home"]).read_text("utf-8")
    assert f"Tiles Creator {VERSION} started" in log
    assert "ERROR" not in log


def test_big_tiled_bigtiff_is_cut_and_merged_in_bands(sandbox, tmp_path):
    """Region reads (zarr) and the progressive BigTIFF merge work inside the bundle."""
    import numpy as np
    import tifffile
    from helpers import microscopy

    folder = tmp_path / "big"
    folder.mkdir()
    image = microscopy((2100, 2100), seed=3)  # 53 MB to cut whole, 71 MB of merge canvas: both banded
    tifffile.imwrite(folder / "slide.tif", image, tile=(256, 256), compression="zlib", bigtiff=True)
    out = tmp_path / "tiles"
    result = run(sandbox, "cut", folder, out, "--no-calibration", "--norm", "none", "--dtype", "uint16",
                 "--patch-size", 256, "--overlap", 64, "--memory-limit", "64MB", "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["tiles"]) == 11 * 11
    for record in manifest["tiles"][::7]:
        tile = tifffile.imread(out / record["file"])
        np.testing.assert_array_equal(tile, image[record["y0"]:record["y1"], record["x0"]:record["x1"]])
    merged = tmp_path / "merged"
    result = run(sandbox, "merge", out, merged, "--memory-limit", "64MB", "--quiet")
    assert result.returncode == 0, result.stderr
    with tifffile.TiffFile(merged / "slide.tif") as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled
        np.testing.assert_array_equal(tif.asarray(), image)


# --- predict: onnxruntime inside the bundle (its import, its native library, a session) -------------
def _identity_model(path: Path, size) -> Path:
    """An ONNX Identity model, (N, 1, size, size) in and out; ``size`` a name (any size) or a number."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def tensor(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", 1, size, size])

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], path.stem, [tensor("x")], [tensor("y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # read by any onnxruntime of the last years
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Models built here with the onnx package (skipped without it): any tile size, and 64 px only."""
    folder = tmp_path_factory.mktemp("models")
    return {"identity": _identity_model(folder / "identity.onnx", "H"),
            "fixed64": _identity_model(folder / "fixed64.onnx", 64)}


@pytest.fixture(scope="module")
def cells(tmp_path_factory) -> dict:
    """One 16-bit image at 0.65 µm: recalibrated to 0.325 µm it doubles each side."""
    from helpers import microscopy, write_imagej

    folder = tmp_path_factory.mktemp("cells")
    image = microscopy((150, 200), seed=4)
    write_imagej(folder / "cells.tif", image, 0.65)
    return {"folder": folder, "cells.tif": image}


def test_predict_runs_an_onnx_model_inside_the_bundle(sandbox, models, cells, tmp_path):
    """An identity model gives the recalibrated image back, through the cut, onnxruntime and the blend."""
    import cv2
    import numpy as np
    import tifffile

    out = tmp_path / "predicted"
    result = run(sandbox, "predict", cells["folder"], out, "--model", models["identity"], "--patch-size", TILE,
                 "--overlap", OVERLAP, "--norm", "none", "--no-restore-scale")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "CPUExecutionProvider" in result.stdout  # the bundle's onnxruntime ran the model
    assert sorted(p.name for p in out.iterdir()) == ["cells.tif"]  # results only
    source = cells["cells.tif"]
    rows, cols = 2 * source.shape[0], 2 * source.shape[1]
    # recalibration 0.65 -> 0.325 µm: cubic upscaling in float32, clipped to the source type's range
    expected = np.clip(cv2.resize(source.astype(np.float32), (cols, rows), interpolation=cv2.INTER_CUBIC), 0, 65535)
    with tifffile.TiffFile(out / "cells.tif") as tif:
        got = tif.asarray()
        num, den = tif.pages[0].tags["XResolution"].value
    assert got.shape == (rows, cols) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)
    assert den / num == pytest.approx(0.325, rel=1e-4)  # the result carries its pixel size
    # telemetry stays off (packaging/entry.py): onnxruntime left no device id in the empty HOME
    assert not [p for p in sandbox["home"].rglob("*") if p.name in (".onnxruntime", "deviceid")]


def test_predict_with_a_model_of_another_tile_size_exits_2_with_a_sentence(sandbox, models, cells, tmp_path):
    result = run(sandbox, "predict", cells["folder"], tmp_path / "out", "--model", models["fixed64"],
                 "--patch-size", TILE, "--overlap", OVERLAP, "--quiet")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()  # one sentence
    assert re.search(rf"fixed64\.onnx takes 64 \S 64 px tiles .* cut {TILE} px tiles", line), line
    assert line.startswith("tilesapp: error:") and line.endswith(".")


# Real files of the vendor formats (../shared/realdata beside the repository; origins, licences and
# the values below in its SOURCES.md): their libraries are imported by name only when a file is
# opened, so only opening one inside the bundle shows that the bundle carries them.
_REALDATA_CANDIDATES = (ROOT.parent / "shared" / "realdata", Path("/work/shared/realdata"))
REALDATA = next((p for p in _REALDATA_CANDIDATES if (p / "SOURCES.md").is_file()), None)
# one file of each format: scenes, (rows, cols), channels, Z and T planes, (y = x) pixel size in µm
VENDOR = {
    "czi_2scenes_z2_neubias_xyz__multiple_images.czi": dict(scenes=2, yx=(251, 251), channels=1, z=2, t=1, px=0.19564),
    "nd2_2d_4ch_arcadia_example-multichannel.nd2": dict(scenes=1, yx=(256, 256), channels=4, z=1, t=1, px=0.32339),
    # one TileScan element of 4 tiles: a scene per tile
    "lif_tmzc_PR2729_frameOrderCombinedScanTypes.lif": dict(scenes=4, yx=(64, 64), channels=2, z=3, t=2, px=3.968),
    "dv_c2z17_toxo.dv": dict(scenes=1, yx=(128, 128), channels=2, z=17, t=1, px=0.13262),
    "sif_andor_ixon_image.sif": dict(scenes=1, yx=(512, 512), channels=1, z=1, t=1, px=None),
    "omezarr_v04_bf2raw_fake-series-2.zarr": dict(scenes=2, yx=(512, 512), channels=1, z=1, t=1, px=None),
}
ND2_4CH = "nd2_2d_4ch_arcadia_example-multichannel.nd2"


@pytest.fixture(scope="module")
def vendor_folder(tmp_path_factory) -> Path:
    """A copy of one real file of each vendor format (CZI, ND2, LIF, DeltaVision, Andor SIF, OME-Zarr)."""
    import shutil

    if REALDATA is None:
        pytest.skip("../shared/realdata is not there")
    folder = tmp_path_factory.mktemp("vendor")
    for name in VENDOR:
        source = REALDATA / name
        if not source.exists():
            pytest.skip(f"{name} is not in {REALDATA}")
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, folder / name)
    return folder


def test_info_opens_each_vendor_format(sandbox, vendor_folder, tmp_path):
    # the Z stacks and time series say which plane to cut, else info reports the missing choice
    planes = tmp_path / "planes.json"
    planes.write_text('{"z": "max", "t": 0}', "utf-8")
    result = run(sandbox, "info", vendor_folder, "--json", "--config", planes)
    assert result.returncode == 0, result.stderr
    found = {entry["file"]: entry for entry in json.loads(result.stdout)["images"]}
    assert set(found) == set(VENDOR)
    for name, expected in VENDOR.items():
        entry = found[name]
        assert "shape" in entry, entry["error"]  # the file could not be opened
        shape = [*expected["yx"]] if expected["channels"] == 1 else [expected["channels"], *expected["yx"]]
        assert entry["shape"] == shape, name
        if expected["px"] is None:  # uncalibrated: opened, and the missing pixel size is said
            assert entry["pixel_size_um"] is None and "no pixel size" in entry["error"], name
        else:
            assert "error" not in entry, entry["error"]
            assert entry["pixel_size_um"] == pytest.approx([expected["px"]] * 2, rel=1e-4), name


def test_cut_reads_every_scene_of_each_vendor_format(sandbox, vendor_folder, tmp_path):
    """Pixels of every scene (Z max projection, first T frame) come out of the bundle's readers."""
    import numpy as np
    import tifffile
    import zarr

    planes = tmp_path / "planes.json"
    planes.write_text('{"z": "max", "t": 0}', "utf-8")
    out = tmp_path / "tiles"
    result = run(sandbox, "cut", vendor_folder, out, "--config", planes, "--no-calibration", "--norm", "none",
                 "--dtype", "float32", "--patch-size", TILE, "--overlap", OVERLAP, "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["status"] == "complete"
    for name, expected in VENDOR.items():
        sources = [s for s in manifest["sources"] if s["file"] == name]
        assert len(sources) == expected["scenes"], name
        for source in sources:
            assert source["status"] == "ok", source["error"]
            assert source["tiles"] == n_tiles(expected["yx"][0]) * n_tiles(expected["yx"][1]), name
            if expected["px"] is not None:
                assert source["pixel_size_um"] == pytest.approx([expected["px"]] * 2, rel=1e-4), name
    # the OME-Zarr tiles are its full-resolution pixels (zarr is read here too)
    name = "omezarr_v04_bf2raw_fake-series-2.zarr"
    series = zarr.open_group(str(vendor_folder / name), mode="r")
    for scene in (0, 1):
        level0 = np.asarray(series[f"{scene}/0"])[0, 0, 0]  # TCZYX
        tiles = [t for t in manifest["tiles"] if t["source"] == f"{name} [s{scene}]"]
        assert len(tiles) == n_tiles(512) ** 2
        for t in tiles:
            tile = tifffile.imread(out / t["file"])
            np.testing.assert_array_equal(tile, level0[t["y0"]:t["y1"], t["x0"]:t["x1"]])


def test_cut_four_channel_nd2_for_unet(sandbox, vendor_folder, tmp_path):
    import numpy as np
    import tifffile

    folder = tmp_path / "nd2"
    folder.mkdir()
    (folder / ND2_4CH).write_bytes((vendor_folder / ND2_4CH).read_bytes())
    out = tmp_path / "unet"
    result = run(sandbox, "cut", folder, out, "--preset", "unet", "--patch-size", TILE, "--overlap", OVERLAP, "--quiet")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    (source,) = manifest["sources"]
    px, side = VENDOR[ND2_4CH]["px"], VENDOR[ND2_4CH]["yx"][0]
    assert source["pixel_size_um"] == pytest.approx([px, px], rel=1e-4)
    assert source["calibration"] == "ND2"
    assert source["channel_names"] == ["Mono", "DAPI", "FITC BP", "TRITC BP"]  # from SOURCES.md
    assert source["scale_factor"] == pytest.approx([px / 0.325] * 2, rel=1e-4)
    scaled = round(side * px / 0.325)
    assert source["scaled_shape"] == [scaled, scaled]
    assert len(manifest["tiles"]) == n_tiles(scaled) ** 2
    stack = np.stack([tifffile.imread(out / t["file"]) for t in manifest["tiles"]])
    assert stack.dtype == np.float32 and stack.shape[1:] == (4, TILE, TILE)
    # the tiles cover the image: each fluorescence channel is stretched to 0–1 on its own
    assert stack.min(axis=(0, 2, 3)).tolist() == [0.0] * 4
    assert stack.max(axis=(0, 2, 3)).tolist() == [1.0] * 4
    with tifffile.TiffFile(out / manifest["tiles"][0]["file"]) as tif:
        num, den = tif.pages[0].tags["XResolution"].value
        assert den / num == pytest.approx(0.325, rel=1e-4)
