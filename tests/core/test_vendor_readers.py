"""Vendor-format readers (CZI, ND2, LIF, OME-Zarr, DeltaVision, Andor SIF) on real files and synthetic ones.

The real files live in ``../shared/realdata`` beside the repository (origins, licences, shapes and
pixel sizes in its SOURCES.md); the tests that need them skip when the folder is absent, and each
format's tests skip when its optional library (``pip install "tilesapp[formats]"``) is missing.
Every pixel comparison reads the same data through the library directly (or, for DeltaVision,
raw from the file), never through the reader under test.
"""

from __future__ import annotations

import importlib
import os
import struct
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tilesapp.core.errors import ImageError

_CANDIDATES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "realdata",
    Path("/work/shared/realdata"),
)
REALDATA = next((p for p in _CANDIDATES if (p / "SOURCES.md").is_file()), None)

# reader module → the third-party package it needs
LIBRARY = {"czi": "pylibCZIrw", "nd2": "nd2", "lif": "liffile", "omezarr": "zarr", "dv": "mrc", "sif": "sif_parser"}

# What SOURCES.md says about each file: scenes, (rows, cols), channels, axes, n_z, n_t, dtype,
# (y, x) pixel size in µm (None = uncalibrated) and channel names (None = SOURCES.md gives none).
EXPECTED = {
    "czi_2d_1ch_aicsimageio_s_1_t_1_c_1_z_1.czi": dict(
        reader="czi", scenes=1, yx=(325, 475), channels=1, axes="YX", z=1, t=1, dtype="uint16", px=1.0833, names=None),
    "czi_2d_3ch_pycziutils_phase-egfp-cy3.czi": dict(
        reader="czi", scenes=1, yx=(350, 400), channels=3, axes="CYX", z=1, t=1, dtype="uint16", px=3.632,
        names=("Phase", "EGFP", "Cy3")),
    "czi_2scenes_z2_neubias_xyz__multiple_images.czi": dict(
        reader="czi", scenes=2, yx=(251, 251), channels=1, axes="YX", z=2, t=1, dtype="uint16", px=0.19564, names=None),
    # an x-t line scan: 150 lines of 512 px, shown as a kymograph (rows = time)
    "czi_linescan_xt_lsm980.czi": dict(
        reader="czi", scenes=1, yx=(150, 512), channels=1, axes="YX", z=1, t=1, dtype="uint8", px=0.20716, names=None),
    "nd2_tzc_pims_cluster.nd2": dict(
        reader="nd2", scenes=1, yx=(31, 38), channels=2, axes="CYX", z=10, t=3, dtype="uint16", px=0.1678,
        names=("5-FAM/pH 9.0", "FM 4-64/2% CHAPS")),
    "nd2_2d_4ch_arcadia_example-multichannel.nd2": dict(
        reader="nd2", scenes=1, yx=(256, 256), channels=4, axes="CYX", z=1, t=1, dtype="uint16", px=0.32339,
        names=("Mono", "DAPI", "FITC BP", "TRITC BP")),
    "nd2_2d_2ch_arcadia_example-cerevisiae.nd2": dict(
        reader="nd2", scenes=1, yx=(256, 256), channels=2, axes="CYX", z=1, t=1, dtype="uint16", px=0.10833,
        names=("DIC", "FITC*")),
    "nd2_z11_arcadia_example-zstack.nd2": dict(
        reader="nd2", scenes=1, yx=(128, 128), channels=1, axes="YX", z=11, t=1, dtype="uint16", px=0.32339,
        names=("FITC BP",)),
    "nd2_t53_arcadia_example-timelapse.nd2": dict(
        reader="nd2", scenes=1, yx=(64, 64), channels=1, axes="YX", z=1, t=53, dtype="uint16", px=0.325,
        names=("GFP 488 nm",)),
    # one TileScan element of 4 tiles: one scene per tile
    "lif_tmzc_PR2729_frameOrderCombinedScanTypes.lif": dict(
        reader="lif", scenes=4, yx=(64, 64), channels=2, axes="CYX", z=3, t=2, dtype="uint8", px=3.968, names=None),
    "dv_c2z17_toxo.dv": dict(
        reader="dv", scenes=1, yx=(128, 128), channels=2, axes="CYX", z=17, t=1, dtype="uint16", px=0.13262, names=None),
    "sif_andor_ixon_image.sif": dict(
        reader="sif", scenes=1, yx=(512, 512), channels=1, axes="YX", z=1, t=1, dtype="float32", px=None, names=None),
    "omezarr_v04_bf2raw_fake-series-2.zarr": dict(
        reader="omezarr", scenes=2, yx=(512, 512), channels=1, axes="YX", z=1, t=1, dtype="uint8", px=None, names=None),
}
# files of other formats in realdata (TIFF family): no vendor reader may claim them
OTHERS = ("lsm_3ch_032113-18.lsm", "svs_CMU-1-Small-Region.svs", "ndpi_test3-DAPI-2-387.ndpi")
SUFFIX = {"czi": ".czi", "nd2": ".nd2", "lif": ".lif", "omezarr": ".zarr", "dv": ".dv", "sif": ".sif"}

needs_data = pytest.mark.skipif(REALDATA is None, reason="../shared/realdata is not there")
FILES = [pytest.param(name, id=name.split("_")[0] + "-" + name.split("_", 2)[-1][:24]) for name in EXPECTED]


def reader_of(module: str):
    pytest.importorskip(LIBRARY[module])
    return importlib.import_module(f"tilesapp.core.readers.{module}").READER


def real(name: str) -> tuple[Path, object, dict]:
    exp = EXPECTED[name]
    path = REALDATA / name
    if not path.exists():
        pytest.skip(f"{name} is not in {REALDATA}")
    return path, reader_of(exp["reader"]), exp


def head_of(path: Path) -> bytes:
    if path.is_dir():  # an OME-Zarr folder: the head of its root metadata
        path = next(p for p in (path / "zarr.json", path / ".zattrs", path / ".zgroup") if p.is_file())
    with open(path, "rb") as fh:
        return fh.read(64)


def full_region(scene):
    h, w = scene.info.shape_yx
    return 0, h, 0, w


def planes(info):
    return [(z, t) for t in range(info.n_t) for z in range(info.n_z)]


# --- the library itself, independent of the readers -----------------------------------------
def reference(path: Path, module: str, scene: int, z: int, t: int) -> np.ndarray:
    """The whole plane (rows, cols, channels) read through the format's library directly."""
    if module == "czi":
        from pylibCZIrw import czi as pyczi

        with pyczi.open_czi(str(path)) as d:
            rects = d.scenes_bounding_rectangle
            sid = sorted(rects)[scene] if rects else None
            r = rects[sid] if rects else d.total_bounding_rectangle
            box = d.total_bounding_box
            n_c = box["C"][1] - box["C"][0]
            if r.h == 1 and box["T"][1] - box["T"][0] > 1:  # line scan: one row per time point
                return np.stack([
                    np.concatenate([d.read(plane={"C": c, "T": k, "Z": z}, scene=sid)[0] for c in range(n_c)], axis=-1)
                    for k in range(box["T"][1] - box["T"][0])
                ])
            parts = [d.read(roi=(r.x, r.y, r.w, r.h), plane={"C": c, "Z": z, "T": t}, scene=sid) for c in range(n_c)]
            return np.concatenate(parts, axis=-1)
    if module == "nd2":
        import nd2

        with nd2.ND2File(str(path)) as f:
            data, dims = f.asarray(), list(f.sizes)
        index = tuple({"Z": z, "T": t, "P": scene}.get(d, slice(None)) for d in dims)
        plane = data[index]
        return np.moveaxis(plane, 0, -1) if "C" in dims else plane[..., None]
    if module == "lif":
        import liffile

        with liffile.LifFile(str(path)) as f:
            image = f.images[0]
            data, dims = image.asarray(), image.dims
        index = tuple({"Z": z, "T": t, "M": scene}.get(d, slice(None)) for d in dims)
        plane = data[index]
        return np.moveaxis(plane, 0, -1) if "C" in dims else plane[..., None]
    if module == "dv":  # raw from the file: 1024-byte header, sections Z fastest, then T, then C
        raw = path.read_bytes()
        nx, ny, ns, mode = np.frombuffer(raw[:16], "<i4")
        ext = int(np.frombuffer(raw[92:96], "<i4")[0])
        nt, seq = np.frombuffer(raw[180:184], "<i2")
        nc = int(np.frombuffer(raw[196:198], "<i2")[0])
        assert mode == 6 and seq == 0  # uint16, ZTW order: what this file is
        data = np.frombuffer(raw, "<u2", count=int(ns * ny * nx), offset=1024 + ext).reshape(nc, nt, ns // nc // nt, ny, nx)
        return np.moveaxis(data[:, t, z], 0, -1)
    if module == "sif":
        import sif_parser

        data, _ = sif_parser.np_open(str(path))
        return data[t][..., None]
    if module == "omezarr":
        import zarr

        array = zarr.open_array(str(path / str(scene) / "0"), mode="r")
        return np.moveaxis(array[t, :, z], 0, -1)
    raise AssertionError(module)


# --- real files -----------------------------------------------------------------------------
@needs_data
@pytest.mark.parametrize("name", FILES)
def test_metadata_matches_sources(name):
    path, reader, exp = real(name)
    with reader.open(path) as f:
        assert len(f.scenes) == exp["scenes"]
        for index, scene in enumerate(f.scenes):
            info = scene.info
            assert info.path == path and info.reader == reader.name
            assert (info.scene, info.n_scenes) == (index, exp["scenes"])
            assert info.shape_yx == exp["yx"]
            assert info.channels == exp["channels"] and info.axes == exp["axes"]
            assert (info.n_z, info.n_t) == (exp["z"], exp["t"])
            assert info.dtype == exp["dtype"]
            if exp["px"] is None:
                assert info.pixel_size_um is None and info.calibration is None
            else:
                assert info.pixel_size_um is not None
                for value in info.pixel_size_um:
                    assert value == pytest.approx(exp["px"], rel=0.01)
                assert info.calibration == {"czi": "CZI", "nd2": "ND2", "lif": "LIF", "dv": "DV"}[reader.name]
            if exp["names"] is not None:
                assert len(info.channel_names) == len(exp["names"])
                for got, want in zip(info.channel_names, exp["names"]):
                    assert got.startswith(want[:-1]) if want.endswith("*") else got == want
            if info.channel_names:
                assert len(info.channel_names) == info.channels


@needs_data
def test_odd_files_say_so():
    """The line scan and the LIF tile scan carry warnings; the uncalibrated SIF and unit-less
    OME-Zarr say where their pixel size is found (a hint, not a warning: once a pixel size is
    given, nothing tells to enter it)."""
    cases = {  # file: (a warning holds it, the calibration hint holds it)
        "czi_linescan_xt_lsm980.czi": ("line scan", None),
        "lif_tmzc_PR2729_frameOrderCombinedScanTypes.lif": ("tile scan", None),
        "sif_andor_ixon_image.sif": (None, "pixel size × binning ÷ magnification, here a DU897_BV at binning 1×1"),
        "omezarr_v04_bf2raw_fake-series-2.zarr": (None, "axes carry no unit"),
    }
    for name, (warning, hint) in cases.items():
        path, reader, _ = real(name)
        with reader.open(path) as f:
            for scene in f.scenes:
                info = scene.info
                if warning:
                    assert any(warning in w for w in info.warnings), (name, info.warnings)
                else:
                    assert info.pixel_size_um is None and hint in info.calibration_hint, (name, info)
                    assert not any("pixel size" in w for w in info.warnings), (name, info.warnings)
    path, reader, _ = real("lif_tmzc_PR2729_frameOrderCombinedScanTypes.lif")
    with reader.open(path) as f:
        names = [s.info.scene_name for s in f.scenes]
    assert len(set(names)) == 4 and all(n.startswith("TileScan_001 tile") for n in names)
    path, reader, _ = real("omezarr_v04_bf2raw_fake-series-2.zarr")
    with reader.open(path) as f:
        assert [s.info.scene_name for s in f.scenes] == ["series", "series 2"]


@needs_data
@pytest.mark.parametrize("name", FILES)
def test_read_equals_the_library(name):
    path, reader, exp = real(name)
    with reader.open(path) as f:
        for scene in f.scenes:
            info = scene.info
            h, w = info.shape_yx
            for z, t in {(0, 0), (info.n_z - 1, info.n_t - 1)}:
                want = reference(path, exp["reader"], info.scene, z, t)
                whole = scene.read(0, h, 0, w, z=z, t=t)
                assert whole.shape == (h, w, info.channels) and whole.dtype == np.dtype(info.dtype)
                assert whole.flags.c_contiguous and whole.flags.writeable
                np.testing.assert_array_equal(whole, want)
                y0, y1, x0, x1 = h // 5, h - h // 7, w // 3, w - w // 9
                region = scene.read(y0, y1, x0, x1, z=z, t=t)
                np.testing.assert_array_equal(region, want[y0:y1, x0:x1])
                region[...] = 0  # a copy: the next read is unchanged
                np.testing.assert_array_equal(scene.read(y0, y1, x0, x1, z=z, t=t), want[y0:y1, x0:x1])


@needs_data
def test_czi_equals_czifile():
    """A second, independent CZI decoder (czifile, BSD) gives the same pixels."""
    czifile = pytest.importorskip("czifile")
    for name in [n for n in EXPECTED if n.endswith(".czi")]:
        path, reader, _ = real(name)
        with czifile.CziFile(str(path)) as c:
            data, axes = c.asarray(), c.axes
        with reader.open(path) as f:
            for scene in f.scenes:
                info = scene.info
                line_scan = any("line scan" in w for w in info.warnings)
                keep = ("C", "Y", "X", "T") if line_scan else ("C", "Y", "X")
                for z in range(info.n_z):
                    index = tuple(slice(None) if a in keep else {"S": info.scene, "Z": z}.get(a, 0) for a in axes)
                    kept = [a for a in axes if a in keep]
                    want = data[index]
                    if line_scan:  # rows are the T lines of a 1-row image
                        want = want.transpose([kept.index(a) for a in ("T", "Y", "X", "C")])
                        want = want.reshape(info.shape_yx + (info.channels,))
                    else:
                        want = want.transpose([kept.index(a) for a in ("Y", "X", "C")])
                    np.testing.assert_array_equal(scene.read(*full_region(scene), z=z), want)


@needs_data
@pytest.mark.parametrize("name", FILES)
def test_overview_bounds(name):
    path, reader, _ = real(name)
    with reader.open(path) as f:
        for scene in f.scenes:
            info = scene.info
            long = max(info.shape_yx)
            for max_side in (16, 100, long, 4 * long):
                ov = scene.overview(max_side, z=info.n_z - 1, t=info.n_t - 1)
                assert ov.ndim == 3 and ov.shape[2] == info.channels and ov.dtype == np.dtype(info.dtype)
                assert max(ov.shape[:2]) <= max(max_side, 1)
                if max_side >= long:
                    assert ov.shape[:2] == info.shape_yx
                else:  # about max_side: no less than half of it
                    assert max(ov.shape[:2]) >= max_side / 2 - 1
                    # the aspect ratio is kept (to a pixel of rounding at each end)
                    ratio = info.shape_yx[0] / info.shape_yx[1]
                    assert ov.shape[0] == pytest.approx(ov.shape[1] * ratio, abs=2 + 0.05 * ov.shape[0])


@needs_data
@pytest.mark.parametrize("name", FILES)
def test_reads_from_four_threads(name):
    path, reader, _ = real(name)
    with reader.open(path) as f:
        jobs = []
        for scene in f.scenes:
            h, w = scene.info.shape_yx
            for z, t in planes(scene.info)[:6]:
                for k in range(3):
                    y0, x0 = (k * h) // 5, (k * w) // 7
                    jobs.append((scene, (y0, max(y0 + 1, h - k), x0, max(x0 + 1, w - 2 * k)), z, t))
        expected = [s.read(*r, z=z, t=t) for s, r, z, t in jobs]
        start = threading.Barrier(4)

        def work(offset):
            start.wait()
            order = jobs[offset:] + jobs[:offset]
            got = [s.read(*r, z=z, t=t) for s, r, z, t in order]
            return got[len(jobs) - offset:] + got[:len(jobs) - offset]

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(work, [0, len(jobs) // 4, len(jobs) // 2, (3 * len(jobs)) // 4]))
        for got in results:
            for a, b in zip(got, expected):
                np.testing.assert_array_equal(a, b)


@needs_data
@pytest.mark.parametrize("name", [n for n in FILES if not n.values[0].endswith(".zarr")])
def test_truncated_file_is_an_image_error(name, tmp_path):
    path, reader, _ = real(name)
    data = path.read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError) as err:
        with reader.open(bad) as f:
            for scene in f.scenes:
                for z, t in planes(scene.info):
                    scene.read(*full_region(scene), z=z, t=t)
    assert name in str(err.value)


@needs_data
def test_damaged_omezarr_is_an_image_error(tmp_path):
    import shutil

    path, reader, _ = real("omezarr_v04_bf2raw_fake-series-2.zarr")
    # a chunk cut in half: the pixels of series 0 cannot be decoded
    cut = tmp_path / "cut.zarr"
    shutil.copytree(path, cut)
    for p in cut.rglob("*"):
        p.chmod(0o644 if p.is_file() else 0o755)
    chunk = cut / "0" / "0" / "0" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    with reader.open(cut) as f, pytest.raises(ImageError, match="cut.zarr"):
        f.scenes[0].read(0, 512, 0, 512)
    # root metadata that is not JSON
    (cut / ".zattrs").write_bytes(b"\x00\xff not json")
    with pytest.raises(ImageError, match="cut.zarr"):
        reader.open(cut)
    # a plain file with the suffix, and a folder without zarr metadata
    (tmp_path / "file.zarr").write_bytes(os.urandom(100))
    (tmp_path / "empty.zarr").mkdir()
    for bad in ("file.zarr", "empty.zarr"):
        with pytest.raises(ImageError, match=bad):
            reader.open(tmp_path / bad)


@pytest.mark.parametrize("module", ["czi", "nd2", "lif", "dv", "sif"])
@pytest.mark.parametrize("size", [0, 40, 4096, 200_000])
def test_random_bytes_are_an_image_error(module, size, tmp_path):
    reader = reader_of(module)
    rng = np.random.default_rng(size)
    bad = tmp_path / f"noise{SUFFIX[module]}"
    bad.write_bytes(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="noise"):
        with reader.open(bad) as f:
            for scene in f.scenes:
                scene.read(*full_region(scene))


@pytest.mark.parametrize("module", ["czi", "nd2", "lif", "dv", "sif"])
def test_right_magic_then_noise_is_an_image_error(module, tmp_path):
    """A file with the format's magic and garbage after it fails alone, without hanging."""
    rng = np.random.default_rng(7)
    magic = {
        "czi": b"ZISRAWFILE" + bytes(22),
        "nd2": b"\xda\xce\xbe\x0a",
        "lif": b"\x70\x00\x00\x00\x10\x00\x00\x00\x2a",
        "dv": bytes(96) + b"\xa0\xc0",
        "sif": b"Andor Technology Multi-Channel File\n65538 ",
    }[module]
    reader = reader_of(module)
    bad = tmp_path / f"magic{SUFFIX[module]}"
    bad.write_bytes(magic + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(ImageError, match="magic"):
        with reader.open(bad) as f:
            for scene in f.scenes:
                scene.read(*full_region(scene))


@needs_data
def test_sniff_tells_the_formats_apart():
    modules = [m for m in LIBRARY]
    readers = {m: importlib.import_module(f"tilesapp.core.readers.{m}").READER for m in modules}
    for name, exp in EXPECTED.items():
        if not (REALDATA / name).exists():
            continue
        head = head_of(REALDATA / name)
        for module, reader in readers.items():
            assert reader.sniff(head) is (module == exp["reader"]), (module, name)
    for name in OTHERS:
        if (REALDATA / name).exists():
            head = head_of(REALDATA / name)
            assert not any(r.sniff(head) for r in readers.values()), name
    for reader in readers.values():
        assert not reader.sniff(b"")
        assert reader.suffixes and all(s.startswith(".") and s == s.lower() for s in reader.suffixes)


@needs_data
@pytest.mark.parametrize("name", FILES)
def test_plane_outside_the_stack_and_closed_file(name):
    path, reader, _ = real(name)
    f = reader.open(path)
    scene = f.scenes[-1]
    info = scene.info
    with pytest.raises(ImageError, match="plane"):
        scene.read(0, 1, 0, 1, z=info.n_z)
    with pytest.raises(ImageError, match="plane"):
        scene.read(0, 1, 0, 1, t=info.n_t)
    with pytest.raises(ValueError):
        scene.read(0, info.shape_yx[0] + 1, 0, 1)
    assert scene.chunk_rows() >= 1
    f.close()
    f.close()  # twice is harmless
    if info.reader in ("czi", "nd2", "dv", "sif"):  # these hold a handle: reading after close says so
        with pytest.raises(ImageError, match=name):
            scene.read(0, 1, 0, 1)


def test_modules_import_without_their_libraries():
    """The registry imports reader modules eagerly: the libraries must wait until open()."""
    code = (
        "import sys\n"
        "import tilesapp.core.readers.czi, tilesapp.core.readers.nd2, tilesapp.core.readers.lif, "
        "tilesapp.core.readers.omezarr, tilesapp.core.readers.dv, tilesapp.core.readers.sif\n"
        "heavy = ('pylibCZIrw', '_pylibCZIrw', 'nd2', 'liffile', 'zarr', 'mrc', 'sif_parser', 'dask', 'pandas')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))"
    )
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("module", list(LIBRARY))
def test_missing_library_is_one_sentence(module, monkeypatch, tmp_path):
    reader = importlib.import_module(f"tilesapp.core.readers.{module}").READER
    top = LIBRARY[module]
    for name in list(sys.modules):
        if name == top or name.startswith(top + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, top, None)  # import → ImportError
    target = tmp_path / f"x{SUFFIX[module]}"
    if module == "omezarr":
        target.mkdir()
    else:
        target.write_bytes(b"")
    with pytest.raises(ImageError) as err:
        reader.open(target)
    message = str(err.value)
    assert message.startswith(target.name + ":") and "pip install" in message and top in message


# --- synthetic files written by the libraries that can write ------------------------------
def _pattern(shape, seed, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    top = 255 if np.dtype(dtype) == np.uint8 else 60000
    return rng.integers(0, top, shape).astype(dtype)


def test_synthetic_czi_scenes_planes_channels_and_mosaic(tmp_path):
    pytest.importorskip("pylibCZIrw")
    from pylibCZIrw import czi as pyczi

    from tilesapp.core.readers.czi import READER

    path = tmp_path / "synthetic.czi"
    n_c, n_z, n_t = 2, 3, 2
    planes_ = {}
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        for s, (x, y) in enumerate([(0, 0), (1000, 50)]):
            for c in range(n_c):
                for z in range(n_z):
                    for t in range(n_t):
                        img = _pattern((60, 90), seed=s * 100 + c * 10 + z * 3 + t)
                        # scene 1 is a mosaic of two tiles side by side (90 + 90 px)
                        w.write(img[..., None], plane={"C": c, "Z": z, "T": t}, scene=s, location=(x, y))
                        if s == 1:
                            img2 = _pattern((60, 90), seed=7000 + c * 10 + z * 3 + t)
                            w.write(img2[..., None], plane={"C": c, "Z": z, "T": t}, scene=s, location=(x + 90, y))
                            img = np.concatenate([img, img2], axis=1)
                        planes_[s, c, z, t] = img
        w.write_metadata("synthetic", channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.5e-6, scale_y=0.25e-6)
    with READER.open(path) as f:
        assert len(f.scenes) == 2
        for s, scene in enumerate(f.scenes):
            info = scene.info
            assert info.axes == "CYX" and info.channel_names == ("DAPI", "GFP")
            assert (info.n_z, info.n_t) == (n_z, n_t) and info.dtype == "uint16"
            assert info.pixel_size_um == pytest.approx((0.25, 0.5))
            assert info.shape_yx == ((60, 90) if s == 0 else (60, 180))
            for z in range(n_z):
                for t in range(n_t):
                    want = np.stack([planes_[s, c, z, t] for c in range(n_c)], axis=-1)
                    np.testing.assert_array_equal(scene.read(*full_region(scene), z=z, t=t), want)
                    np.testing.assert_array_equal(scene.read(10, 50, 80, 100 if s else 90, z=z, t=t),
                                                  want[10:50, 80:100 if s else 90])
            ov = scene.overview(30)
            assert max(ov.shape[:2]) <= 30 and ov.shape[2] == 2


def test_synthetic_czi_rgb_is_yxs_in_rgb_order(tmp_path):
    pytest.importorskip("pylibCZIrw")
    from pylibCZIrw import czi as pyczi

    from tilesapp.core.readers.czi import READER

    path = tmp_path / "brightfield.czi"
    bgr = _pattern((40, 50, 3), seed=3, dtype=np.uint8)  # libCZI's Bgr24 stores blue first
    with pyczi.create_czi(str(path), exist_ok=True) as w:
        w.write(bgr, plane={"C": 0})
        w.write_metadata("rgb", scale_x=1e-6, scale_y=1e-6)
    with READER.open(path) as f:
        (scene,) = f.scenes
        assert scene.info.axes == "YXS" and scene.info.shape == (40, 50, 3) and scene.info.channels == 3
        np.testing.assert_array_equal(scene.read(0, 40, 0, 50), bgr[..., ::-1])
        assert scene.info.channel_names == ()


def test_synthetic_dv(tmp_path):
    mrc = pytest.importorskip("mrc")
    from tilesapp.core.readers.dv import READER

    stack = _pattern((3, 4, 20, 30), seed=11)  # channel, z, y, x
    path = tmp_path / "synthetic.dv"
    mrc.save(stack, str(path), ifExists="overwrite", zAxisOrder="w z",
             metadata={"d": (0.5, 0.25, 1.0), "wave": [450, 525, 630, 0, 0]})
    assert READER.sniff(path.read_bytes()[:64]) and READER.sniff(path.read_bytes()[:200])
    with READER.open(path) as f:
        (scene,) = f.scenes
        info = scene.info
        assert (info.axes, info.shape, info.n_z, info.n_t) == ("CYX", (3, 20, 30), 4, 1)
        assert info.pixel_size_um == pytest.approx((0.25, 0.5)) and info.calibration == "DV"
        assert info.channel_names == ("450", "525", "630")
        for z in range(4):
            np.testing.assert_array_equal(scene.read(2, 18, 5, 25, z=z), np.moveaxis(stack[:, z, 2:18, 5:25], 0, -1))
    time_series = _pattern((5, 2, 16, 16), seed=12).astype(np.float32)  # t, z
    path2 = tmp_path / "series.dv"
    mrc.save(time_series, str(path2), ifExists="overwrite", zAxisOrder="t z", metadata={"d": (0.1, 0.1, 1.0)})
    with READER.open(path2) as f:
        (scene,) = f.scenes
        assert (scene.info.axes, scene.info.n_z, scene.info.n_t, scene.info.dtype) == ("YX", 2, 5, "float32")
        np.testing.assert_array_equal(scene.read(0, 16, 0, 16, z=1, t=3)[..., 0], time_series[3, 1])


def _write_multiscale(group, data, axes, units, scale, levels=3, extra=None):
    """An NGFF image in `group`: `levels` pyramid levels halving y and x."""
    datasets = []
    yi, xi = axes.index("y"), axes.index("x")
    for level in range(levels):
        step = 2 ** level
        index = tuple(slice(None, None, step) if i in (yi, xi) else slice(None) for i in range(data.ndim))
        part = np.ascontiguousarray(data[index])
        chunks = tuple(min(n, 16) if i in (yi, xi) else 1 for i, n in enumerate(part.shape))
        array = group.create_array(str(level), shape=part.shape, chunks=chunks, dtype=part.dtype)
        array[...] = part
        s = [float(v) * (step if i in (yi, xi) else 1) for i, v in enumerate(scale)]
        datasets.append({"path": str(level), "coordinateTransformations": [{"type": "scale", "scale": s}]})
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    ax = []
    for a, u in zip(axes, units):
        entry = {"name": a, "type": kinds[a]}
        if u:
            entry["unit"] = u
        ax.append(entry)
    return {"multiscales": [{"version": "0.4", "axes": ax, "datasets": datasets}], **(extra or {})}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_synthetic_omezarr_image(tmp_path, zarr_format):
    zarr = pytest.importorskip("zarr")
    from tilesapp.core.readers.omezarr import READER

    data = _pattern((2, 3, 2, 70, 50), seed=5)  # t c z y x
    path = tmp_path / "image.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    meta = _write_multiscale(root, data, "tczyx", [None, None, "micrometer", "micrometer", "nanometer"],
                             [1, 1, 2.0, 0.4, 325.0],
                             extra={"omero": {"channels": [{"label": "DAPI"}, {"label": "GFP"}, {"label": "RFP"}]}})
    if zarr_format == 3:  # NGFF 0.5: everything under "ome"
        meta["multiscales"][0].pop("version")
        meta = {"ome": {"version": "0.5", **meta}}
    root.attrs.update(meta)
    assert READER.sniff(head_of(path))
    with READER.open(path) as f:
        (scene,) = f.scenes
        info = scene.info
        assert (info.axes, info.shape, info.n_z, info.n_t) == ("CYX", (3, 70, 50), 2, 2)
        assert info.channel_names == ("DAPI", "GFP", "RFP")
        assert info.pixel_size_um == pytest.approx((0.4, 0.325)) and info.calibration == "OME-Zarr"
        for z, t in [(0, 0), (1, 1), (0, 1)]:
            np.testing.assert_array_equal(scene.read(5, 66, 7, 44, z=z, t=t), np.moveaxis(data[t, :, z, 5:66, 7:44], 0, -1))
        assert scene.chunk_rows() == 16
        ov = scene.overview(20, z=1, t=1)  # from level 1 (35×25), every 2nd pixel
        np.testing.assert_array_equal(ov, np.moveaxis(data[1, :, 1, ::2, ::2][:, ::2, ::2], 0, -1))
        assert max(ov.shape[:2]) <= 20


def test_synthetic_omezarr_bf2raw_plate_and_bool(tmp_path):
    zarr = pytest.importorskip("zarr")
    from tilesapp.core.readers.omezarr import READER

    # bioformats2raw: two series, calibration only in the OME-XML, an RGB series
    path = tmp_path / "converted.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.attrs["bioformats2raw.layout"] = 3
    grey = _pattern((1, 1, 1, 40, 30), seed=1)
    rgb = _pattern((1, 3, 1, 20, 20), seed=2, dtype=np.uint8)
    for name, data in (("0", grey), ("1", rgb)):
        group = root.create_group(name)
        group.attrs.update(_write_multiscale(group, data, "tczyx", [None] * 5, [1] * 5, levels=2))
    ome = root.create_group("OME")
    ome.attrs["series"] = ["0", "1"]
    (path / "OME" / "METADATA.ome.xml").write_text(
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
        '<Image ID="Image:0" Name="grey"><Pixels PhysicalSizeX="650" PhysicalSizeXUnit="nm" PhysicalSizeY="0.65" '
        'SizeC="1" SizeT="1" SizeX="30" SizeY="40" SizeZ="1" Type="uint16" DimensionOrder="XYZCT">'
        '<Channel ID="Channel:0:0" Name="Hoechst" SamplesPerPixel="1"/></Pixels></Image>'
        '<Image ID="Image:1" Name="slide"><Pixels SizeC="3" SizeT="1" SizeX="20" SizeY="20" SizeZ="1" Type="uint8" '
        'DimensionOrder="XYCZT"><Channel ID="Channel:1:0" SamplesPerPixel="3"/></Pixels></Image></OME>'
    )
    with READER.open(path) as f:
        a, b = f.scenes
        assert (a.info.scene_name, b.info.scene_name) == ("grey", "slide")
        assert a.info.pixel_size_um == pytest.approx((0.65, 0.65)) and a.info.calibration == "OME"
        assert a.info.channel_names == ("Hoechst",) and a.info.axes == "YX"
        assert b.info.axes == "YXS" and b.info.shape == (20, 20, 3) and b.info.pixel_size_um is None
        np.testing.assert_array_equal(b.read(0, 20, 0, 20), np.moveaxis(rgb[0, :, 0], 0, -1))

    # an HCS plate: 2 wells × 2 fields, boolean masks (read as uint8)
    path = tmp_path / "plate.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    wells = []
    fields = {}
    for row, col in (("A", "1"), ("B", "3")):
        well = root.create_group(f"{row}/{col}")
        wells.append({"path": f"{row}/{col}", "rowIndex": 0, "columnIndex": 0})
        well.attrs["well"] = {"images": [{"path": "0"}, {"path": "1"}]}
        for fi in ("0", "1"):
            mask = _pattern((24, 32), seed=hash((row, col, fi)) % 1000, dtype=np.uint8) > 128
            fields[f"{row}/{col}/{fi}"] = mask
            image = well.create_group(fi)
            image.attrs.update(_write_multiscale(image, mask, "yx", ["micrometer"] * 2, [0.5, 0.5], levels=1))
    root.attrs["plate"] = {"wells": wells, "rows": [{"name": "A"}, {"name": "B"}], "columns": [{"name": "1"}, {"name": "3"}]}
    with READER.open(path) as f:
        assert [s.info.scene_name for s in f.scenes] == list(fields)
        for scene, mask in zip(f.scenes, fields.values()):
            assert scene.info.dtype == "uint8" and scene.info.pixel_size_um == pytest.approx((0.5, 0.5))
            got = scene.read(0, 24, 0, 32)
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got[..., 0], mask.astype(np.uint8))


def test_synthetic_omezarr_refuses_unknown_axes(tmp_path):
    zarr = pytest.importorskip("zarr")
    from tilesapp.core.readers.omezarr import READER

    path = tmp_path / "odd.zarr"
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    meta = _write_multiscale(root, _pattern((3, 10, 10), seed=1), "zyx", [None] * 3, [1, 1, 1], levels=1)
    meta["multiscales"][0]["axes"][0] = {"name": "angle", "type": "angle"}
    root.attrs.update(meta)
    with pytest.raises(ImageError, match="angle"):
        READER.open(path)


# --- LIF: liffile cannot write, so a minimal LIF writer (the container layout liffile reads) ---
_LIF_DIM_ID = {"X": 1, "Y": 2, "Z": 3, "T": 4, "M": 10}


def _lif_block(ident: str, data: bytes) -> bytes:
    head = struct.pack("<BqBi", 0x2A, len(data), 0x2A, len(ident)) + ident.encode("utf-16-le")
    return struct.pack("<ii", 0x70, len(head)) + head + data


def write_lif(path: Path, images, folder: str | None = None) -> None:
    """A LIF file of `images`: (name, array, axes slowest → fastest, µm per pixel).

    ``C`` is a channel axis (one ChannelDescription per channel), ``S`` three interleaved BGR
    samples (ChannelTag blue, green, red, as LAS X writes colour images).
    """
    elements, blocks = [], [_lif_block("MemBlock_0", b"")]
    for i, (name, arr, axes, um) in enumerate(images):
        arr = np.ascontiguousarray(arr)
        item = arr.dtype.itemsize
        if "C" in axes:
            k = axes.index("C")
            channels = [(c * arr.strides[k], 0) for c in range(arr.shape[k])]
        elif "S" in axes:
            channels = [(s * item, tag) for s, tag in zip(range(3), (3, 2, 1))]
        else:
            channels = [(0, 0)]
        ch_xml = "".join(
            f'<ChannelDescription DataType="{1 if arr.dtype.kind == "f" else 0}" ChannelTag="{tag}" '
            f'Resolution="{item * 8}" NameOfMeasuredQuantity="" Min="0" Max="1" Unit="" LUTName="Gray" '
            f'IsLUTInverted="0" BytesInc="{inc}" BitInc="0"/>'
            for inc, tag in channels
        )
        dims = []
        for k, a in enumerate(axes):
            if a in ("C", "S"):
                continue
            n = arr.shape[k]
            length, unit = ((n - 1) * um * 1e-6, "m") if a in "XYZ" else (0.0, "")
            dims.append((_LIF_DIM_ID[a], f'<DimensionDescription DimID="{_LIF_DIM_ID[a]}" NumberOfElements="{n}" '
                         f'Origin="0" Length="{length!r}" Unit="{unit}" BitInc="0" BytesInc="{arr.strides[k]}"/>'))
        ident = f"MemBlock_{i + 1}"
        elements.append(
            f'<Element Name="{name}" Visibility="1" CopyOption="1" UniqueID="u{i}"><Data><Image TextDescription="">'
            f"<ImageDescription><Channels>{ch_xml}</Channels><Dimensions>{''.join(d for _, d in sorted(dims))}"
            f'</Dimensions></ImageDescription></Image></Data><Memory Size="{arr.nbytes}" MemoryBlockID="{ident}"/>'
            "<Children/></Element>"
        )
        blocks.append(_lif_block(ident, arr.tobytes()))
    children = "".join(elements)
    if folder:
        children = (f'<Element Name="{folder}" Visibility="1" CopyOption="1" UniqueID="f"><Data><Collection/></Data>'
                    f'<Memory Size="0" MemoryBlockID="MemBlock_0"/><Children>{children}</Children></Element>')
    xml = ('<LMSDataContainerHeader Version="2"><Element Name="synthetic" Visibility="1" CopyOption="1" UniqueID="r">'
           '<Data><Experiment IsSavedFlag="1"/></Data><Memory Size="0" MemoryBlockID="MemBlock_0"/>'
           f"<Children>{children}</Children></Element></LMSDataContainerHeader>")
    head = struct.pack("<Bi", 0x2A, len(xml)) + xml.encode("utf-16-le")
    path.write_bytes(struct.pack("<ii", 0x70, len(head)) + head + b"".join(blocks))


def test_synthetic_lif_elements_colour_line_scans_and_tiles(tmp_path):
    pytest.importorskip("liffile")
    from tilesapp.core.readers.lif import READER

    stack = _pattern((2, 3, 2, 20, 30), seed=1)  # T Z C Y X, uint16
    bgr = _pattern((25, 40, 3), seed=2, dtype=np.uint8)
    xz = _pattern((12, 50), seed=3, dtype=np.uint8)
    tiles = np.random.default_rng(4).random((4, 2, 16, 16)).astype(np.float32)
    line = _pattern((64,), seed=5, dtype=np.uint8)
    path = tmp_path / "project.lif"
    write_lif(path, [("stack", stack, "TZCYX", 0.5), ("rgb", bgr, "YXS", 1.5), ("xz", xz, "ZX", 0.2),
                     ("tiles", tiles, "MCYX", 0.3), ("line", line, "X", 0.1)], folder="Folder")
    assert READER.sniff(path.read_bytes()[:64])
    with READER.open(path) as f:
        infos = [s.info for s in f.scenes]
        assert [i.scene_name for i in infos] == [
            "Folder/stack", "Folder/rgb", "Folder/xz", *[f"Folder/tiles tile {m}/4" for m in range(1, 5)], "Folder/line"]
        assert [i.scene for i in infos] == list(range(8)) and {i.n_scenes for i in infos} == {8}
        s = f.scenes
        assert (infos[0].axes, infos[0].shape, infos[0].n_z, infos[0].n_t) == ("CYX", (2, 20, 30), 3, 2)
        assert infos[0].pixel_size_um == pytest.approx((0.5, 0.5))
        for z in range(3):
            for t in range(2):
                np.testing.assert_array_equal(s[0].read(3, 18, 4, 29, z=z, t=t), np.moveaxis(stack[t, z, :, 3:18, 4:29], 0, -1))
        # colour: YXS in RGB order
        assert (infos[1].axes, infos[1].shape) == ("YXS", (25, 40, 3))
        np.testing.assert_array_equal(s[1].read(0, 25, 0, 40), bgr[..., ::-1])
        # x-z scan: Z lines as rows, with a warning
        assert (infos[2].axes, infos[2].shape, infos[2].n_z) == ("YX", (12, 50), 1)
        assert any("x-z" in w for w in infos[2].warnings)
        np.testing.assert_array_equal(s[2].read(2, 12, 0, 50)[..., 0], xz[2:])
        # tiles: one scene each, float32
        for m in range(4):
            assert infos[3 + m].dtype == "float32" and any("tile scan" in w for w in infos[3 + m].warnings)
            np.testing.assert_array_equal(s[3 + m].read(0, 16, 0, 16), np.moveaxis(tiles[m], 0, -1))
        # one line of X only: a 1-row image
        assert infos[7].shape == (1, 64)
        np.testing.assert_array_equal(s[7].read(0, 1, 10, 60)[0, :, 0], line[10:60])
        assert s[7].overview(8).shape == (1, 8, 1)


# --- SIF: a file cut inside its text header must fail, not hang ------------------------------
@needs_data
def test_sif_cut_inside_its_header_fails_without_hanging(tmp_path):
    path, reader, _ = real("sif_andor_ixon_image.sif")
    data = path.read_bytes()
    for cut in (36, 200, 1000, 2000, 2650):
        bad = tmp_path / f"cut{cut}.sif"
        bad.write_bytes(data[:cut])
        outcome = {}

        def attempt(bad=bad):
            try:
                reader.open(bad)
                outcome["result"] = "opened"
            except ImageError as exc:
                outcome["result"] = str(exc)
            except Exception as exc:  # pragma: no cover - reported below
                outcome["result"] = repr(exc)

        worker = threading.Thread(target=attempt, daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), f"reading {bad.name} hangs"
        assert outcome["result"].startswith(bad.name + ":"), outcome["result"]


def test_omezarr_in_no_length_unit_says_so_until_a_pixel_size_is_typed(tmp_path):
    """A scale in an unknown unit calibrates nothing: the cut fails saying why (the installed
    command, exit 1); with a typed pixel size it is cut, and no warning tells to enter one."""
    zarr = pytest.importorskip("zarr")
    import json

    data = _pattern((40, 30), seed=2)
    folder = tmp_path / "in"
    root = zarr.open_group(str(folder / "odd.zarr"), mode="w", zarr_format=2)
    root.attrs.update(_write_multiscale(root, data, "yx", ["furlong", "furlong"], [0.5, 0.5], levels=1))

    def cut(out, *extra):
        return subprocess.run([sys.executable, "-m", "tilesapp", "cut", str(folder), str(tmp_path / out),
                               "--tile-size", "16", "--overlap", "4", *extra], capture_output=True, text=True, timeout=120)

    failed = cut("a")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr, failed.stderr
    said = failed.stdout + failed.stderr
    assert "odd.zarr carries no pixel size in its metadata (its OME-Zarr axes are in 'furlong', not a length " \
           "unit); give its pixel size or turn calibration off." in said, said
    typed = cut("b", "--pixel-size", "0.65")
    assert typed.returncode == 0, typed.stderr
    assert "Warning" not in typed.stdout + typed.stderr and "furlong" not in typed.stdout + typed.stderr
    (record,) = json.loads((tmp_path / "b" / "manifest.json").read_text())["sources"]
    assert record["status"] == "ok" and record["pixel_size_um"] == [0.65, 0.65] and not record.get("warnings")
