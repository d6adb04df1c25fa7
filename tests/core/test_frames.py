"""Tiles read as frame + pixels (tilesapp.core.readers.frames) give what tifffile reads, always."""

import numpy as np
import pytest
import tifffile

from tilesapp.core.errors import ImageError
from tilesapp.core.readers import frames
from tilesapp.core.readers.frames import TileFrames
from tilesapp.core.writers import TileWriter

LAYOUTS = [
    ((64, 48), np.float32, "YX", (0.325, 0.325)),
    ((64, 48), np.uint8, "YX", None),
    ((3, 64, 48), np.uint16, "CYX", (0.5, 0.25)),
    ((64, 48, 3), np.uint8, "YXS", (0.325, 0.325)),
    ((64, 48, 2), np.float64, "YXS", None),
]


@pytest.fixture
def parsed(monkeypatch):
    """Counts the files read the usual way (tifffile parsing their tags)."""
    calls = []
    usual = frames.read_array

    def counting(path):
        calls.append(path.name)
        return usual(path)

    monkeypatch.setattr(frames, "read_array", counting)
    return calls


@pytest.mark.parametrize("shape, dtype, axes, pixel_size", LAYOUTS)
def test_tiles_of_one_layout_are_read_without_parsing_and_equal_tifffile(tmp_path, parsed, shape, dtype, axes,
                                                                           pixel_size):
    rng = np.random.default_rng(1)
    writer = TileWriter()
    arrays = [(rng.random(shape) * 200).astype(dtype) for _ in range(5)]
    arrays[1][...] = 0  # the frame is learnt from the second tile: all zeros, it must not be found inside its pixels
    for i, array in enumerate(arrays):
        writer.write(tmp_path / f"t{i}.tif", array, axes, pixel_size)
    reader = TileFrames()
    for i, array in enumerate(arrays):
        got = reader.read(tmp_path / f"t{i}.tif")
        expected = tifffile.imread(tmp_path / f"t{i}.tif")
        assert got.dtype == expected.dtype and got.shape == expected.shape == array.shape
        np.testing.assert_array_equal(got, expected)
        assert got.flags.writeable and got.flags.c_contiguous
    assert parsed == ["t0.tif", "t1.tif"]  # only the first two of the layout were parsed


def test_files_of_sizes_met_once_are_read_once(tmp_path, parsed, monkeypatch):
    """Whole images of many sizes: each read by tifffile alone, no frame looked for."""
    learnt = []
    monkeypatch.setattr(frames, "tile_frame", lambda *args: learnt.append(args) or None)
    writer = TileWriter()
    reader = TileFrames()
    for side in (40, 41, 42, 43):
        writer.write(tmp_path / f"w{side}.tif", np.full((side, side), side, np.uint16), "YX")
        got = reader.read(tmp_path / f"w{side}.tif")
        assert got.shape == (side, side) and (got == side).all()
    assert parsed == ["w40.tif", "w41.tif", "w42.tif", "w43.tif"] and not learnt


def test_other_files_of_the_same_size_are_parsed(tmp_path, parsed):
    """A model's outputs beside the tiles: the same size but other tags (shape, type, byte
    order, compression) are never read through a tile's frame."""
    rng = np.random.default_rng(2)
    writer = TileWriter()
    writer.write(tmp_path / "a.tif", np.ones((64, 48), np.float32), "YX")
    writer.write(tmp_path / "b.tif", np.ones((64, 48), np.float32), "YX")
    size = (tmp_path / "a.tif").stat().st_size
    # the same number of pixel bytes in another shape and type, and the same size on disk
    other = (rng.random((48, 128)) * 60000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", other, photometric="minisblack")
    padding = size - (tmp_path / "c.tif").stat().st_size
    assert padding >= 0
    if padding:  # same size on disk: a description makes up the difference
        for extra in range(padding, 0, -1):
            tifffile.imwrite(tmp_path / "c.tif", other, photometric="minisblack", description="x" * extra)
            if (tmp_path / "c.tif").stat().st_size == size:
                break
    big_endian = (rng.random((64, 48)) * 9).astype(">f4")
    tifffile.imwrite(tmp_path / "d.tif", big_endian, byteorder=">")
    tifffile.imwrite(tmp_path / "e.tif", np.full((64, 48), 7, np.float32), compression="zlib")
    reader = TileFrames()
    for name in ("a.tif", "b.tif", "c.tif", "d.tif", "e.tif"):
        expected = tifffile.imread(tmp_path / name)
        got = reader.read(tmp_path / name)
        assert got.shape == expected.shape and got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    assert parsed.count("b.tif") == 1 and {"c.tif", "d.tif", "e.tif"} <= set(parsed)


def test_a_damaged_tile_is_refused_as_before(tmp_path):
    writer = TileWriter()
    for name in ("a.tif", "b.tif"):
        writer.write(tmp_path / name, np.ones((64, 48), np.float32), "YX")
    data = (tmp_path / "b.tif").read_bytes()
    reader = TileFrames()
    reader.read(tmp_path / "a.tif")
    (tmp_path / "b.tif").write_bytes(data[: len(data) - 100])  # truncated: another size, parsed, refused
    with pytest.raises(ImageError, match="b.tif"):
        reader.read(tmp_path / "b.tif")
    (tmp_path / "b.tif").write_bytes(b"\x00" * len(data))  # the frame's size, not its bytes
    with pytest.raises(ImageError, match="b.tif"):
        reader.read(tmp_path / "b.tif")


def _tiff_by_hand(pixels: np.ndarray, description_at: int | None = None, extra: tuple = ()) -> bytes:
    """A little-endian TIFF of uint8 ``pixels`` whose tags come after them; its description's
    16 bytes are read from ``description_at`` (an offset, possibly inside the pixels)."""
    rows, cols = pixels.shape
    data_at, ifd_at = 8, 8 + pixels.nbytes
    entries = [(256, 3, 1, cols), (257, 3, 1, rows), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, data_at), (278, 3, 1, rows), (279, 4, 1, pixels.nbytes)]
    if description_at is not None:
        entries.append((270, 2, 16, description_at))
    entries += list(extra)
    ifd = len(entries).to_bytes(2, "little") + b"".join(
        tag.to_bytes(2, "little") + kind.to_bytes(2, "little") + count.to_bytes(4, "little") + value.to_bytes(4, "little")
        for tag, kind, count, value in sorted(entries)) + bytes(4)
    return b"II*\x00" + ifd_at.to_bytes(4, "little") + pixels.tobytes() + ifd


def test_tags_after_the_pixels_are_framed_too(tmp_path, parsed):
    rng = np.random.default_rng(4)
    images = [rng.integers(0, 255, (32, 40), dtype=np.uint8) for _ in range(3)]
    for i, image in enumerate(images):
        (tmp_path / f"late{i}.tif").write_bytes(_tiff_by_hand(image))
    reader = TileFrames()
    for i, image in enumerate(images):
        np.testing.assert_array_equal(reader.read(tmp_path / f"late{i}.tif"), image)
        np.testing.assert_array_equal(tifffile.imread(tmp_path / f"late{i}.tif"), image)
    assert parsed == ["late0.tif", "late1.tif"]


def test_a_tag_whose_value_lies_inside_the_pixels_is_never_framed(tmp_path, parsed):
    """Such a file's tags change with its pixels: each one is parsed."""
    rng = np.random.default_rng(5)
    images = [rng.integers(1, 255, (32, 40), dtype=np.uint8) for _ in range(3)]
    for i, image in enumerate(images):
        image.reshape(-1)[100:116] = np.frombuffer(b"a description!\x00\x00", np.uint8)
        (tmp_path / f"odd{i}.tif").write_bytes(_tiff_by_hand(image, description_at=8 + 100))
        assert tifffile.TiffFile(tmp_path / f"odd{i}.tif").pages.first.description.startswith("a description")
    reader = TileFrames()
    for i, image in enumerate(images):
        np.testing.assert_array_equal(reader.read(tmp_path / f"odd{i}.tif"), image)
    assert parsed == ["odd0.tif", "odd1.tif", "odd2.tif"]


@pytest.mark.parametrize("tag", [(266, 3, 1, 2), (317, 3, 1, 2)], ids=["bits reversed", "predictor"])
def test_pixels_stored_otherwise_than_read_are_never_framed(tmp_path, parsed, tag):
    """Bits stored in reverse order (FillOrder 2) or as differences (Predictor 2, uncompressed):
    a first tile of zeros reads as its bytes, the next ones do not."""
    rng = np.random.default_rng(6)
    images = [np.zeros((32, 40), np.uint8)] + [rng.integers(1, 255, (32, 40), dtype=np.uint8) for _ in range(2)]
    for i, image in enumerate(images):
        (tmp_path / f"rev{i}.tif").write_bytes(_tiff_by_hand(image, extra=[tag]))
    reader = TileFrames()
    for i in range(3):
        np.testing.assert_array_equal(reader.read(tmp_path / f"rev{i}.tif"), tifffile.imread(tmp_path / f"rev{i}.tif"))
    assert not np.array_equal(tifffile.imread(tmp_path / "rev1.tif"), images[1])  # tifffile decodes the bytes
    assert parsed == ["rev0.tif", "rev1.tif", "rev2.tif"]


def test_png_tiles_are_read_the_usual_way(tmp_path, parsed):
    import cv2

    image = np.random.default_rng(3).integers(0, 255, (32, 40), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    reader = TileFrames()
    for _ in range(2):
        np.testing.assert_array_equal(reader.read(tmp_path / "a.png"), image)
    assert parsed == ["a.png", "a.png"]
