"""Test data made in the tests: synthetic microscopy images written by tifffile."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile


def microscopy(shape=(300, 400), channels=None, dtype=np.uint16, seed=0) -> np.ndarray:
    """Synthetic fluorescence-like image: blobs on a smooth background with noise.

    Returns (rows, cols) or (channels, rows, cols) when ``channels`` is given.
    """
    rng = np.random.default_rng(seed)
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    planes = []
    for c in range(channels or 1):
        img = 200 + 50 * np.sin(yy / rows * 3) + 30 * np.cos(xx / cols * 2)
        for _ in range(12):
            cy, cx, r = rng.uniform(0, rows), rng.uniform(0, cols), rng.uniform(4, 15)
            img = img + (1500 + 500 * c) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img = img + rng.normal(0, 20, shape)
        planes.append(img)
    out = np.stack(planes) if channels else planes[0]
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        out = np.clip(out * (info.max / 65535 if info.max < 65535 else 1), info.min, info.max)
    return out.astype(dtype)


def write_imagej(path: Path, image: np.ndarray, pixel_size_um: float | tuple | None, axes: str = "YX") -> Path:
    """TIFF with ImageJ metadata (unit µm, resolution = pixels per µm); (y, x) for anisotropic."""
    kwargs = {}
    metadata = {"axes": axes}
    if pixel_size_um is not None:
        py, px = pixel_size_um if isinstance(pixel_size_um, tuple) else (pixel_size_um, pixel_size_um)
        kwargs["resolution"] = (1 / px, 1 / py)
        metadata["unit"] = "um"
    tifffile.imwrite(path, image, imagej=True, metadata=metadata, **kwargs)
    return path


def write_ome(path: Path, image: np.ndarray, pixel_size: float, unit: str = "µm", axes: str = "YX") -> Path:
    tifffile.imwrite(path, image, ome=True, metadata={"axes": axes, "PhysicalSizeX": pixel_size, "PhysicalSizeY": pixel_size,
                                                      "PhysicalSizeXUnit": unit, "PhysicalSizeYUnit": unit})
    return path


def drain(gen):
    """Run a core generator to its end; returns (progress records, return value)."""
    records = []
    try:
        while True:
            records.append(next(gen))
    except StopIteration as stop:
        return records, stop.value


def find(window, name: str):
    """The widget of ``window`` whose objectName is ``name`` (the test fails when there is none)."""
    from PySide6.QtWidgets import QWidget  # imported here: the engine's tests never load Qt

    widget = window.findChild(QWidget, name)
    assert widget is not None, name
    return widget


def refuse_folders(monkeypatch, *names: str) -> None:
    """Folders named ``names`` cannot be listed (PermissionError), as without permission; simulated,
    because tests often run as root, whom permissions do not stop."""
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self.name in names:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
