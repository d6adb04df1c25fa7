from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from helpers import microscopy, refuse_folders, write_imagej, write_ome

from tilesapp.core.calibration import canonical_unit, scale_factors, scaled_shape, to_um
from tilesapp.core.errors import ImageError
from tilesapp.core.readers import inspect_image, open_image, read_image, scan_folder


def test_scan_orders_tiffs_first_and_lists_other_files(tmp_path):
    for name in ["b.png", "img10.tif", "img2.tif", "c.jpg", "d.jpeg", "e.bmp", "f.TIFF", "notes.txt", "data.csv"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "z.tif").write_bytes(b"x")
    scan = scan_folder(tmp_path)
    assert [p.name for p in scan.images] == ["f.TIFF", "img2.tif", "img10.tif", "b.png", "c.jpg", "d.jpeg", "e.bmp"]
    assert sorted(p.name for p in scan.skipped) == ["data.csv", "notes.txt"]
    assert "z.tif" in [p.name for p in scan_folder(tmp_path, recursive=True).images]


def test_imagej_pixel_size(tmp_path):
    info = inspect_image(write_imagej(tmp_path / "a.tif", microscopy(), 0.65))
    assert info.pixel_size_um == pytest.approx((0.65, 0.65))
    assert (info.calibration, info.axes, info.shape, info.dtype) == ("ImageJ", "YX", (300, 400), "uint16")


def test_imagej_anisotropic_and_other_units(tmp_path):
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, microscopy(), imagej=True, resolution=(1 / 0.002, 1 / 0.001), metadata={"unit": "mm"})
    assert inspect_image(path).pixel_size_um == pytest.approx((1.0, 2.0))  # (y, x)
    tifffile.imwrite(path, microscopy(), imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"unit": "\\u00B5m"})
    assert inspect_image(path).pixel_size_um == pytest.approx((0.5, 0.5))
    tifffile.imwrite(path, microscopy(), imagej=True, resolution=(2, 2), metadata={"unit": "pixel"})
    assert inspect_image(path).pixel_size_um is None


@pytest.mark.parametrize("value, unit, um", [(0.5, "µm", 0.5), (650, "nm", 0.65), (0.001, "mm", 1.0)])
def test_ome_pixel_size_and_units(tmp_path, value, unit, um):
    info = inspect_image(write_ome(tmp_path / "a.ome.tif", microscopy(), value, unit))
    assert info.pixel_size_um == pytest.approx((um, um)) and info.calibration == "OME"


def test_ome_default_unit_is_micrometre(tmp_path):
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, microscopy(), ome=True, metadata={"axes": "YX", "PhysicalSizeX": 0.4, "PhysicalSizeY": 0.3})
    assert inspect_image(path).pixel_size_um == pytest.approx((0.3, 0.4))


def test_plain_tiff_resolution_tags(tmp_path):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, microscopy(), resolution=(1e4 / 0.65, 1e4 / 0.65), resolutionunit="CENTIMETER")
    assert inspect_image(path).pixel_size_um == pytest.approx((0.65, 0.65))
    tifffile.imwrite(path, microscopy(), resolution=(25400 / 2.0, 25400 / 2.0), resolutionunit="INCH")
    assert inspect_image(path).pixel_size_um == pytest.approx((2.0, 2.0))
    tifffile.imwrite(path, microscopy(), resolution=(1, 1), resolutionunit="NONE")
    assert inspect_image(path).pixel_size_um is None
    tifffile.imwrite(path, microscopy())
    assert inspect_image(path).pixel_size_um is None
    tifffile.imwrite(path, microscopy(), resolution=(72, 72), resolutionunit="INCH")  # a software default
    assert inspect_image(path).pixel_size_um is None


def test_axes_yx_yxs_cyx_read_as_rows_cols_channels(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    cyx = microscopy((40, 50), channels=3)
    write_imagej(tmp_path / "cyx.tif", cyx, 0.5, axes="CYX")
    array, info = read_image(tmp_path / "rgb.tif")
    assert info.axes == "YXS" and array.shape == (40, 50, 3) and np.array_equal(array, rgb)
    array, info = read_image(tmp_path / "cyx.tif")
    assert info.axes == "CYX" and info.channels == 3 and array.shape == (40, 50, 3)
    assert np.array_equal(array[..., 2], cyx[2])


def test_singleton_axes_are_dropped(tmp_path):
    path = tmp_path / "t.tif"
    tifffile.imwrite(path, microscopy((30, 40))[None, None], imagej=True, metadata={"axes": "TZYX"})
    array, info = read_image(path)
    assert info.axes == "YX" and array.shape == (30, 40, 1)


def test_a_z_stack_is_read_plane_by_plane(tmp_path):
    path = tmp_path / "stack.tif"
    stack = np.arange(5 * 30 * 40, dtype=np.uint16).reshape(5, 30, 40)
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    info = inspect_image(path)
    assert (info.axes, info.shape, info.n_z, info.n_t) == ("YX", (30, 40), 5, 1)
    with open_image(path) as image:
        np.testing.assert_array_equal(image.scenes[0].read(3, 9, 4, 20, z=2)[..., 0], stack[2, 3:9, 4:20])


def test_unknown_axes_are_a_clear_per_file_error(tmp_path):
    path = tmp_path / "mosaic.ome.tif"
    tifffile.imwrite(path, np.zeros((2, 3, 4, 30, 40), np.uint16), metadata={"axes": "RZTYX"}, photometric="minisblack")
    with pytest.raises(ImageError, match=r"mosaic.ome.tif: axes .* are not supported"):
        inspect_image(path)


def test_png_rgb_colours_are_not_swapped(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / "red.png"), rgb[..., ::-1])  # OpenCV writes BGR
    array, info = read_image(tmp_path / "red.png")
    assert info.axes == "YXS" and info.pixel_size_um is None
    assert array[0, 0].tolist() == [200, 0, 0]


def test_png_16_bit_grey(tmp_path):
    img = microscopy((20, 30))
    cv2.imwrite(str(tmp_path / "g.png"), img)
    array, info = read_image(tmp_path / "g.png")
    assert info.dtype == "uint16" and np.array_equal(array[..., 0], img)


@pytest.mark.parametrize("content", [b"", b"II*\x00garbage", b"\x89PNG\r\n\x1a\nbroken"])
def test_corrupt_files_raise_image_error_naming_the_file(tmp_path, content):
    path = tmp_path / ("bad.png" if content.startswith(b"\x89") else "bad.tif")
    path.write_bytes(content)
    with pytest.raises(ImageError, match=path.name):
        read_image(path)


@pytest.mark.parametrize("unit, um", [("nm", 1e-3), ("µm", 1), ("μm", 1), ("um", 1), ("mm", 1e3), ("cm", 1e4), ("dm", 1e5), ("m", 1e6)])
def test_units(unit, um):
    assert to_um(1.0, unit) == pytest.approx(um)
    assert canonical_unit(unit) in ("nm", "um", "mm", "cm", "dm", "m")


def test_scale_factor_and_rounding():
    assert scale_factors((0.65, 0.65), 0.325) == (2.0, 2.0)
    assert scaled_shape((1400, 1400), scale_factors((0.5, 0.5), 0.325)) == (2154, 2154)
    assert scaled_shape((10, 6), (0.25, 1.25)) == (3, 8)  # halves round up (2.5 -> 3, not 2)
    assert scaled_shape((3, 3), (0.01, 0.01)) == (1, 1)


def test_non_ascii_paths(tmp_path):
    folder = tmp_path / "données µm"
    folder.mkdir()
    img = microscopy((20, 30))
    cv2.imencode(".png", img)[1].tofile(str(folder / "cellule_é.png"))  # cv2.imwrite cannot on Windows
    write_imagej(folder / "noyau_ü.tif", img, 0.5)
    scan = scan_folder(folder)
    assert [p.name for p in scan.images] == ["noyau_ü.tif", "cellule_é.png"]
    for path in scan.images:
        array, _ = read_image(path)
        assert np.array_equal(array[..., 0], img)


def test_opening_reads_a_header_and_a_tiny_png_is_read_once(tmp_path, monkeypatch):
    from tilesapp.core.readers import opencv

    rng = np.random.default_rng(3)
    small = rng.integers(0, 255, (30, 40), dtype=np.uint8)
    big = rng.integers(0, 255, (400, 400), dtype=np.uint8)  # noise: its PNG is over 64 KB
    cv2.imwrite(str(tmp_path / "small.png"), small)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    assert (tmp_path / "small.png").stat().st_size < opencv.HEAD < (tmp_path / "big.png").stat().st_size
    read_sizes = []
    real_open = open

    class Counting:  # the file object open() gives, counting what is read from it
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            data = self.fh.read(n)
            read_sizes.append(len(data))
            return data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    opened = []
    monkeypatch.setattr(opencv, "open", lambda *a, **k: opened.append(Path(a[0]).name) or Counting(real_open(*a, **k)),
                        raising=False)
    with open_image(tmp_path / "big.png") as image:
        assert read_sizes == [opencv.HEAD]  # opening (a folder's inspection) reads the header only
        np.testing.assert_array_equal(image.scenes[0].read(0, 400, 0, 400)[..., 0], big)
        assert read_sizes == [opencv.HEAD, (tmp_path / "big.png").stat().st_size]  # then the file, once
        scene = image.scenes[0]
    with open_image(tmp_path / "small.png") as image:
        np.testing.assert_array_equal(image.scenes[0].read(0, 30, 0, 40)[..., 0], small)
    assert opened == ["big.png", "big.png", "small.png"]  # the small file's bytes came from its opening
    assert scene._pixels is None  # closing the file lets its pixels go


def test_reads_that_come_short_still_give_the_whole_header(tmp_path, monkeypatch):
    # Headers are read unbuffered, whose reads may return fewer bytes than asked before the end
    # of the file (a network drive): a short read must not be taken for the end of a file.
    from tilesapp.core import readers
    from tilesapp.core.readers import opencv
    from tilesapp.core.readers.base import read_upto

    rng = np.random.default_rng(5)
    big = rng.integers(0, 255, (300, 300), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    real_open = open

    class Dribbling:  # an unbuffered file: sized reads give at most 7 bytes, read() all (as FileIO's)
        def __init__(self, fh):
            self.fh = fh

        def read(self, n=-1):
            return self.fh.read() if n < 0 else self.fh.read(min(n, 7))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    with real_open(tmp_path / "big.png", "rb") as fh:
        assert read_upto(Dribbling(fh), 100) == (tmp_path / "big.png").read_bytes()[:100]
        fh.seek(-5, 2)
        assert len(read_upto(Dribbling(fh), 100)) == 5  # fewer only at the end
    dribble = lambda *a, **k: Dribbling(real_open(*a, **k))  # noqa: E731
    monkeypatch.setattr(opencv, "open", dribble, raising=False)
    monkeypatch.setattr(readers, "open", dribble, raising=False)
    with open_image(tmp_path / "big.png") as image:
        scene = image.scenes[0]
        assert scene.info.shape == (300, 300) and scene._data is None  # a header, not a whole file
        np.testing.assert_array_equal(scene.read(0, 300, 0, 300)[..., 0], big)


def _png_with_transparency(rgb: np.ndarray, comment_bytes: int) -> bytes:
    """An RGB PNG whose transparency chunk (tRNS) follows a comment of ``comment_bytes``."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows, cols, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(rows))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", cols, rows, 8, 2, 0, 0, 0))
            + chunk(b"tEXt", b"Comment\x00" + b"x" * comment_bytes) + chunk(b"tRNS", struct.pack(">HHH", 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("comment_bytes", [10, 6000, 70000])
def test_a_png_header_longer_than_the_first_read_is_read_on(tmp_path, comment_bytes):
    """Transparency declared after kilobytes of metadata (even past the longest header read)
    still makes the image RGBA, as OpenCV decodes it; it used to fail as damaged."""
    rgb = np.random.default_rng(4).integers(1, 255, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "transparent.png"
    path.write_bytes(_png_with_transparency(rgb, comment_bytes))
    with open_image(path) as image:
        scene = image.scenes[0]
        assert scene.info.shape == (20, 30, 4)
        pixels = scene.read(0, 20, 0, 30)
    np.testing.assert_array_equal(pixels[..., :3], rgb)
    assert (pixels[..., 3] == 255).all()


def test_a_sub_folder_that_cannot_be_read_is_said_and_the_search_goes_on(tmp_path, monkeypatch):
    """A sub-folder without permission (simulated: tests often run as root) is listed with why;
    the other folders are searched; the folder itself, unreadable, is a settings error."""
    from tilesapp.core.errors import SettingsError
    from tilesapp.core.folders import collect_inputs

    (tmp_path / "a_locked").mkdir()
    (tmp_path / "a_locked" / "hidden.tif").write_bytes(b"x")
    (tmp_path / "b_open").mkdir()
    (tmp_path / "b_open" / "seen.tif").write_bytes(b"x")
    refuse_folders(monkeypatch, "a_locked", "top_locked")
    scan = scan_folder(tmp_path, recursive=True)
    assert [p.name for p in scan.images] == ["seen.tif"]
    assert scan.unsearched == ((tmp_path / "a_locked", "Permission denied"),)
    inputs = collect_inputs(tmp_path, recursive=True)
    assert inputs.unsearched_warnings() == [
        "a_locked: this folder cannot be read (Permission denied); the images in it were not searched."]
    (tmp_path / "top_locked").mkdir()
    with pytest.raises(SettingsError, match=r"The input folder .*top_locked cannot be read \(Permission denied\); "
                                            r"check its permissions\."):
        collect_inputs(tmp_path / "top_locked", recursive=True)
    (tmp_path / "b_open" / "seen.tif").unlink()
    with pytest.raises(SettingsError, match=r"holds no images that can be read: .*a_locked cannot be read"):
        collect_inputs(tmp_path, recursive=True)


def test_a_folder_named_like_an_image_file_is_a_folder(tmp_path):
    """Only formats whose images are folders (X.zarr) make a folder an image: a folder named
    'run.czi' or 'day1.tif' is searched like any folder, given as input or met inside one."""
    from tilesapp.core.folders import collect_inputs

    outer = tmp_path / "run.czi"
    (outer / "day1.tif").mkdir(parents=True)
    write_imagej(outer / "a.tif", microscopy((40, 50)), 0.65)
    write_imagej(outer / "day1.tif" / "b.tif", microscopy((40, 50)), 0.65)
    (outer / "plate.zarr").mkdir()  # an image folder: one image, never searched inside
    assert [p.name for p in scan_folder(outer).images] == ["a.tif", "plate.zarr"]
    assert [p.relative_to(outer).as_posix() for p in scan_folder(outer, recursive=True).images] == [
        "a.tif", "day1.tif/b.tif", "plate.zarr"]
    inputs = collect_inputs(outer, recursive=True)
    assert inputs.root == outer and inputs.folders == [outer] and len(inputs.images) == 3


@pytest.mark.parametrize("value", ["NaN", "-0.5", "0", "INF"])
def test_an_unusable_ome_pixel_size_is_named_in_the_failure(tmp_path, value):
    """OME metadata whose PhysicalSize is not a length (NaN, negative, 0, infinite) calibrates
    nothing, and the failure says what it held instead of 'carries no pixel size' alone."""
    from tilesapp.core.plan import CalibrationMissing, plan_image
    from tilesapp.core.settings import Settings

    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="50" SizeY="40" '
           f'SizeC="1" SizeZ="1" SizeT="1" PhysicalSizeX="{value}" PhysicalSizeXUnit="nm" PhysicalSizeY="{value}">'
           '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels></Image></OME>')
    path = tmp_path / "odd.ome.tif"
    tifffile.imwrite(path, microscopy((40, 50)), description=xml, metadata=None)
    info = inspect_image(path)
    assert info.pixel_size_um is None
    with pytest.raises(CalibrationMissing) as caught:
        plan_image(info, Settings())
    assert str(caught.value) == (f"odd.ome.tif carries no pixel size in its metadata (its OME metadata gives "
                                 f"PhysicalSizeX '{value}' nm, PhysicalSizeY '{value}', which is not a pixel size); "
                                 f"give its pixel size or turn calibration off.")
    assert not plan_image(info, Settings(pixel_size=0.5)).warnings  # typed: nothing left to say


def test_an_ome_pixel_size_in_angstrom_is_read_and_an_unknown_unit_is_named(tmp_path):
    """Electron microscopy's OME-TIFFs give PhysicalSize in Å: read. A unit the program does not
    know is said as such, not as a value that is not a pixel size."""
    from tilesapp.core.plan import CalibrationMissing, plan_image
    from tilesapp.core.settings import Settings

    def ome(unit: str) -> Path:
        xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
               '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint16" SizeX="50" SizeY="40" '
               f'SizeC="1" SizeZ="1" SizeT="1" PhysicalSizeX="5000" PhysicalSizeXUnit="{unit}" PhysicalSizeY="5000" '
               f'PhysicalSizeYUnit="{unit}"><Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels></Image>'
               '</OME>')
        path = tmp_path / f"{unit.encode().hex()}.ome.tif"
        tifffile.imwrite(path, microscopy((40, 50)), description=xml.encode("utf-8"), metadata=None)
        return path

    info = inspect_image(ome("Å"))
    assert info.pixel_size_um == pytest.approx((0.5, 0.5)) and info.calibration == "OME"
    info = inspect_image(ome("furlong"))
    with pytest.raises(CalibrationMissing, match=r"\(its OME metadata gives it in 'furlong', a unit this program does "
                                                 r"not know\)"):
        plan_image(info, Settings())
