import numpy as np
import pytest
import tifffile

from tilesapp.core.readers import inspect_image, read_image, to_yxc
from tilesapp.core.writers import TileWriter, write_image

LAYOUTS = [
    ((64, 48), np.float32, "YX", (0.325, 0.325)),
    ((64, 48), np.uint16, "YX", None),
    ((3, 64, 48), np.uint16, "CYX", (0.5, 0.25)),
    ((64, 48, 3), np.uint8, "YXS", (0.325, 0.325)),
    ((64, 48, 4), np.uint16, "YXS", (0.325, 0.325)),
    ((64, 48, 2), np.float32, "YXS", None),
]


@pytest.mark.parametrize("shape, dtype, axes, pixel_size", LAYOUTS)
def test_tile_writer_is_byte_identical_to_tifffile(tmp_path, shape, dtype, axes, pixel_size):
    rng = np.random.default_rng(0)
    writer = TileWriter()
    for i in range(3):  # the first tile builds the frame, the next ones reuse it
        array = (rng.random(shape) * 200).astype(dtype)
        write_image(tmp_path / f"ref{i}.tif", array, axes, pixel_size)
        writer.write(tmp_path / f"fast{i}.tif", array, axes, pixel_size)
        assert (tmp_path / f"fast{i}.tif").read_bytes() == (tmp_path / f"ref{i}.tif").read_bytes()
        data, info = read_image(tmp_path / f"fast{i}.tif")
        assert info.axes == axes and np.array_equal(data, to_yxc(array, axes))
    assert not list(tmp_path.glob(".*"))


def test_tile_writer_handles_views_and_png(tmp_path):
    big = np.arange(100 * 120, dtype=np.float32).reshape(100, 120)
    writer = TileWriter()
    writer.write(tmp_path / "v.tif", big[10:42, 20:52], "YX", (1.0, 1.0))  # a strided view
    assert np.array_equal(tifffile.imread(tmp_path / "v.tif"), big[10:42, 20:52])
    assert inspect_image(tmp_path / "v.tif").pixel_size_um == pytest.approx((1.0, 1.0))
    writer.write(tmp_path / "p.png", (big[:32, :32] % 256).astype(np.uint8), "YX")
    assert np.array_equal(read_image(tmp_path / "p.png")[0][..., 0], (big[:32, :32] % 256).astype(np.uint8))


PNG_JPEG = [
    ("grey.png", (64, 48), np.uint8, "YX"),
    ("grey16.png", (64, 48), np.uint16, "YX"),
    ("rgb.png", (64, 48, 3), np.uint8, "YXS"),
    ("rgba.png", (64, 48, 4), np.uint8, "YXS"),
    ("planes.png", (3, 64, 48), np.uint8, "CYX"),
    ("one.png", (64, 48, 1), np.uint8, "YXS"),
    ("rgb.jpg", (64, 48, 3), np.uint8, "YXS"),
]


@pytest.mark.parametrize("name, shape, dtype, axes", PNG_JPEG)
def test_png_and_jpeg_tiles_written_in_one_call_are_the_bytes_of_write_image(tmp_path, name, shape, dtype, axes):
    rng = np.random.default_rng(1)
    band = (rng.random((shape[0] + 10, *shape[1:])) * 250).astype(dtype)
    array = band[5 : 5 + shape[0]]  # a view into a band, as tiles are
    write_image(tmp_path / f"ref-{name}", array, axes)
    writer = TileWriter()
    out = tmp_path / "out"
    out.mkdir()
    writer.write(out / name, array, axes)
    staging = [p for p in out.iterdir() if p.is_dir()]
    assert len(staging) == 1 and staging[0].name.startswith(".tilesapp-")  # written through the private folder
    assert list(staging[0].iterdir()) == []
    assert (out / name).read_bytes() == (tmp_path / f"ref-{name}").read_bytes()
    writer.close()
    assert sorted(p.name for p in out.iterdir()) == [name]


def test_a_tile_opencv_cannot_write_is_written_the_careful_way(tmp_path, monkeypatch):
    import pickle

    from tilesapp.core import writers

    tile = np.arange(64 * 48, dtype=np.uint16).reshape(64, 48)
    write_image(tmp_path / "ref.png", tile, "YX")
    writer = pickle.loads(pickle.dumps(TileWriter()))  # a cluster task's copy works the same
    monkeypatch.setattr(writers.cv2, "imwrite", lambda *a: False)  # a full disk, a name OpenCV cannot open
    writer.write(tmp_path / "a.png", tile, "YX")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "ref.png").read_bytes()
    with pytest.raises(FileNotFoundError):  # the real error of the folder, not OpenCV's False
        writer.write(tmp_path / "missing" / "b.png", tile, "YX")
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "ref.png"]  # the private folder is gone


def test_a_writer_dropped_without_close_takes_its_private_folder_away(tmp_path):
    import gc

    writer = TileWriter()
    writer.write(tmp_path / "a.png", np.zeros((8, 8), np.uint8), "YX")
    assert any(p.is_dir() for p in tmp_path.iterdir())
    del writer
    gc.collect()
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]
