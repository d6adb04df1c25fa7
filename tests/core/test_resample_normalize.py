import numpy as np
import pytest
from helpers import microscopy

from tilesapp.core.errors import ImageError
from tilesapp.core import normalize
from tilesapp.core.normalize import cast, channel_range, check_fits, stretch, stretch_cast
from tilesapp.core.resample import resample


def test_downscale_is_anti_aliased():
    # A one-pixel checkerboard must average to grey, not alias into stripes.
    board = (np.indices((256, 256)).sum(axis=0) % 2 * 1000).astype(np.uint16)[..., None]
    small = resample(board, (64, 64))
    assert small.shape == (64, 64, 1) and small.dtype == np.float32
    assert np.allclose(small, 500.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_cubic_upscale_never_leaves_the_integer_range(dtype):
    info = np.iinfo(dtype)
    img = np.full((40, 40, 1), info.min, dtype)
    img[10:30, 10:30] = info.max  # a hard edge: cubic overshoot is largest here
    big = resample(img, (97, 97))
    assert big.shape == (97, 97, 1)
    assert big.min() >= info.min and big.max() <= info.max
    assert big.max() == info.max and big.min() == info.min


def test_float_images_are_not_clipped():
    img = np.zeros((20, 20, 1), np.float32)
    img[5:15, 5:15] = 1.0
    assert resample(img, (60, 60)).max() > 1.0  # cubic overshoot is genuine data for floats


def test_anisotropic_up_and_down_in_one_image():
    img = microscopy((100, 200))[..., None]
    out = resample(img, (250, 50))
    assert out.shape == (250, 50, 1)
    assert abs(float(out.mean()) - float(img.mean())) < 0.02 * float(img.mean())


def test_many_channels():
    img = np.random.default_rng(0).random((30, 40, 7)).astype(np.float32)
    out = resample(img, (60, 80))
    assert out.shape == (60, 80, 7)
    assert np.allclose(out[::2, ::2].mean(axis=(0, 1)), img.mean(axis=(0, 1)), atol=0.05)


def test_same_shape_is_identity():
    img = microscopy((30, 40))[..., None]
    out = resample(img, (30, 40))
    assert np.array_equal(out, img.astype(np.float32))


def test_stretch_per_channel_to_bounds():
    img = np.stack([np.linspace(10, 20, 11), np.linspace(-1, 1, 11)], axis=-1)[None]
    low, high = channel_range(img)
    assert low.tolist() == [10, -1] and high.tolist() == [20, 1]
    out = stretch(img, low, high, (0.0, 1.0))
    assert out.dtype == np.float32
    assert np.allclose(out[0, :, 0], np.linspace(0, 1, 11)) and np.allclose(out[0, :, 1], np.linspace(0, 1, 11))


def test_constant_channel_maps_to_lower_bound():
    img = np.full((8, 8, 2), 7.0)
    img[..., 1] = np.arange(64).reshape(8, 8)
    low, high = channel_range(img)
    out = stretch(img, low, high, (10.0, 200.0))
    assert np.all(np.isfinite(out))
    assert np.all(out[..., 0] == 10.0)
    assert out[..., 1].min() == 10.0 and out[..., 1].max() == 200.0


def test_percentiles_clip_outliers():
    img = np.concatenate([np.arange(1000.0), [1e6]])[None, :, None]
    low, high = channel_range(img, (1, 99))
    assert high[0] < 1000 and low[0] > 0
    out = stretch(img, low, high, (0, 1))
    assert out.max() == 1.0 and out.min() == 0.0


def test_nan_pixels_are_ignored_and_never_written():
    img = np.array([[[np.nan], [1.0], [3.0]]])
    low, high = channel_range(img)
    assert (low[0], high[0]) == (1.0, 3.0)
    assert np.all(np.isfinite(stretch(img, low, high, (0, 1))))


def test_cast_rounds_and_check_fits_refuses_overflow():
    assert cast(np.array([0.4, 0.6, 254.5, 255.0]), "uint8").tolist() == [0, 1, 254, 255]
    check_fits(np.array([0, 65535.0]), "uint16", "a.tif")
    with pytest.raises(ImageError, match="a.tif: values range from 0 to 70000, which uint16"):
        check_fits(np.array([0, 70000.0]), "uint16", "a.tif")
    with pytest.raises(ImageError, match="uint8"):
        check_fits(np.array([-1.0, 3.0]), "uint8", "a.tif")


@pytest.mark.parametrize("source", ["uint16", "float32", "float64"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("block_rows", [3, 37])
def test_stretch_cast_in_blocks_gives_the_bytes_of_stretch_then_cast(monkeypatch, source, dtype, in_place, block_rows):
    # 37 rows in blocks of 3 (12 whole blocks and a last one of 1), or in one block; two
    # channels, one constant; float sources with NaN and ±Inf
    rng = np.random.default_rng(7)
    img = (rng.random((37, 50, 2)) * 3000 - (200 if source != "uint16" else 0)).astype(source)
    img[..., 1] = img[0, 0, 1]
    img[1, 1, 0], img[2, 2, 0] = 0, 2600  # beyond the bounds below: 0 and 255 are written
    if source != "uint16":
        img.flat[::89], img.flat[3::97], img.flat[5::101] = np.nan, np.inf, -np.inf
    low, high = np.array([0.0, float(img[0, 0, 1])]), np.array([2500.0, float(img[0, 0, 1])])
    nan = source != "uint16"
    monkeypatch.setattr(normalize, "BLOCK_BYTES", block_rows * 50 * 2 * 4)
    given = img.copy()
    with np.errstate(invalid="ignore"):  # Inf / Inf in the constant channel: NaN, written as the lower bound
        expected = cast(stretch(img.copy(), low, high, (0, 255), in_place=in_place, may_have_nan=nan), dtype,
                        in_range=True)
        out = stretch_cast(given, low, high, (0, 255), dtype, in_place=in_place, may_have_nan=nan)
    assert out.dtype == np.dtype(dtype) and out.shape == img.shape
    assert out.tobytes() == expected.tobytes()
    assert out[..., 1].max() == 0  # the constant channel: the lower bound
    assert out[..., 0].max() == 255 and out[..., 0].min() == 0
    if not in_place or given.dtype != np.float32:
        assert np.array_equal(given, img, equal_nan=True)  # the caller's values are left alone


@pytest.mark.parametrize("offset, spread", [(1000.0, 1e-4), (0.0, 1e300)])
@pytest.mark.parametrize("dtype", ["float32", "uint16", "uint8"])
def test_float64_values_are_stretched_from_their_own_values(offset, spread, dtype):
    """A float64 image is shifted and scaled in float64, then stored: cast to float32 first,
    1000.0001–1000.0002 became a handful of grey levels and 1e300 became infinite (all tiles 0)."""
    from tilesapp.core.bands import ChannelStats

    rng = np.random.default_rng(1)
    image = (offset + rng.random((300, 200, 1)) * spread).astype(np.float64)
    stats = ChannelStats(1)
    stats.add(image)
    assert stats.nonfinite == 0
    assert (stats.low[0], stats.high[0]) == (image.min(), image.max())
    low, high = np.array([image.min()]), np.array([image.max()])
    bounds = (0, 1) if dtype == "float32" else (0, np.iinfo(dtype).max)
    unit = (image - image.min()) / (image.max() - image.min())
    want = cast(np.clip(unit.astype(np.float32) * np.float32(bounds[1]), *bounds), dtype, in_range=True)
    assert len(np.unique(want)) > min(250, np.iinfo(dtype).max if dtype != "float32" else 250)
    one_block = stretch_cast(image, low, high, bounds, dtype)
    normalize_blocks = normalize.BLOCK_BYTES
    try:
        normalize.BLOCK_BYTES = 200 * 4 * 7  # 7 rows a block: the block path
        in_blocks = stretch_cast(image, low, high, bounds, dtype)
    finally:
        normalize.BLOCK_BYTES = normalize_blocks
    for got in (one_block, in_blocks, cast(stretch(image, low, high, bounds), dtype, in_range=True)):
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
