import numpy as np
from helpers import drain, microscopy, write_imagej

from tilesapp.core.demo import make_demo_folder
from tilesapp.core.mosaic import make_mosaic
from tilesapp.core.readers import inspect_image, scan_folder


def test_mosaic_of_at_most_25_images_each_at_most_512(tmp_path):
    for i in range(30):
        write_imagej(tmp_path / f"img{i:02d}.tif", microscopy((40 + i, 60), seed=i), 0.5)
    records, mosaic = drain(make_mosaic(scan_folder(tmp_path).images, max_images=25, cell=64, seed=3))
    assert mosaic.dtype == np.uint8 and mosaic.ndim == 3 and mosaic.shape[2] == 3
    gap = 2
    assert mosaic.shape == (5 * (64 + gap) + gap, 5 * (64 + gap) + gap, 3)
    assert records[-1].done == 25
    # reproducible with a seed, different with another
    assert np.array_equal(mosaic, drain(make_mosaic(scan_folder(tmp_path).images, cell=64, seed=3))[1])


def test_mosaic_cell_limits_size_and_marks_unreadable_files(tmp_path):
    write_imagej(tmp_path / "big.tif", microscopy((1200, 600)), 0.5)
    (tmp_path / "broken.tif").write_bytes(b"II*\x00nothing")
    _, mosaic = drain(make_mosaic(scan_folder(tmp_path).images, cell=512, seed=0))
    assert mosaic.shape == (1 * (512 + 8) + 8, 2 * (512 + 8) + 8, 3)
    # the big image is scaled to 512 rows: its cell is filled from top to bottom in its centre
    assert mosaic[300, 8 + 256].sum() > 0


def test_demo_folder_is_calibrated_16_bit(tmp_path):
    make_demo_folder(tmp_path, n_images=3)
    infos = [inspect_image(p) for p in scan_folder(tmp_path).images]
    assert len(infos) == 3
    assert all(i.dtype == "uint16" and i.pixel_size_um is not None for i in infos)
    assert {i.calibration for i in infos} == {"ImageJ", "OME"}
