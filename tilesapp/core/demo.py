"""A demo folder of synthetic fluorescence images, so that a first run shows something real."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile

# (file name, (rows, cols), pixel size in µm, how the calibration is stored)
_DEMO_IMAGES = (
    ("microglia_01.tif", (1024, 1024), 0.65, "imagej"),
    ("microglia_02.tif", (1024, 1024), 0.65, "imagej"),
    ("microglia_03.tif", (900, 1200), 0.65, "ome"),
    ("microglia_04.tif", (1400, 1400), 0.5, "ome"),
    ("microglia_05.tif", (768, 1024), 0.8, "tags"),
    ("microglia_06.tif", (1536, 1536), 0.325, "imagej"),
)


def synthetic_fluorescence(shape: tuple[int, int], pixel_size_um: float, seed: int = 0) -> np.ndarray:
    """A uint16 image that looks like a fluorescence micrograph of ramified cells.

    Cell bodies (~10 µm) with thin branching processes, a smooth uneven background, shot
    noise; sizes are physical, so images of different pixel sizes show cells of one size.
    """
    rng = np.random.default_rng(seed)
    rows, cols = shape
    px = 1.0 / pixel_size_um  # pixels per µm
    signal = np.zeros(shape, np.float32)
    n_cells = max(3, int(rows * cols / (px * px) / 2500))  # one cell per ~50 × 50 µm
    for _ in range(n_cells):
        cy, cx = rng.uniform(0, rows), rng.uniform(0, cols)
        brightness = rng.uniform(0.5, 1.0)
        for _ in range(rng.integers(3, 7)):  # processes: random walks from the soma
            y, x, angle = cy, cx, rng.uniform(0, 2 * np.pi)
            for _ in range(int(rng.integers(8, 20))):
                angle += rng.normal(0, 0.5)
                ny, nx = y + 3 * px * np.sin(angle), x + 3 * px * np.cos(angle)
                cv2.line(signal, (int(x), int(y)), (int(nx), int(ny)), brightness * 0.6,
                         max(1, int(0.8 * px)), cv2.LINE_AA)
                y, x = ny, nx
        cv2.circle(signal, (int(cx), int(cy)), max(2, int(5 * px)), brightness, -1, cv2.LINE_AA)
    signal = cv2.GaussianBlur(signal, (0, 0), max(0.5, 0.6 * px))
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    background = 0.08 + 0.05 * np.sin(yy / rows * np.pi) * np.cos(xx / cols * np.pi / 2)
    expected = 400 + 9000 * (signal / max(float(signal.max()), 1e-6) + background)
    image = rng.poisson(expected).astype(np.float64) + rng.normal(0, 30, shape)
    return np.clip(image, 0, 65535).astype(np.uint16)


def write_calibrated(path: Path, image: np.ndarray, pixel_size_um: float, how: str) -> None:
    """Write a TIFF with its pixel size as ImageJ metadata, OME-XML or plain tags (cm)."""
    if how == "imagej":
        tifffile.imwrite(path, image, imagej=True, resolution=(1 / pixel_size_um, 1 / pixel_size_um),
                         metadata={"unit": "um", "axes": "YX"})
    elif how == "ome":
        tifffile.imwrite(path, image, ome=True, metadata={"axes": "YX", "PhysicalSizeX": pixel_size_um,
                         "PhysicalSizeY": pixel_size_um, "PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"})
    else:
        per_cm = 1e4 / pixel_size_um
        tifffile.imwrite(path, image, resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")


def make_demo_folder(folder: str | Path, n_images: int = 6, seed: int = 0) -> Path:
    """Write up to six synthetic calibrated 16-bit images into ``folder``; return it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (name, shape, size, how) in enumerate(_DEMO_IMAGES[: max(1, n_images)]):
        write_calibrated(folder / name, synthetic_fluorescence(shape, size, seed + i), size, how)
    return folder
