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
