"""Writing images: a temporary name first, then an atomic rename to the final name.

A crash or a cancel can therefore leave only ``.<name>.partial`` files behind, never a
half-written file under a final name.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import tifffile

PARTIAL_SUFFIX = ".partial"


def partial_path(path: Path) -> Path:
    """Hidden temporary name used while ``path`` is written."""
    return path.with_name(f".{path.name}{PARTIAL_SUFFIX}")


def write_image(
    path: str | Path,
    array: np.ndarray,
    axes: str,
    pixel_size_um: tuple[float, float] | None = None,
    compression: str | None = None,
) -> None:
    """Write ``array`` (in ``axes`` order: YX, YXS or CYX) to ``path``, atomically.

    The format follows the suffix (.tif/.tiff, .png, .jpg/.jpeg). TIFFs carry the pixel size
    (ImageJ metadata in µm when ImageJ can read the layout, resolution tags in cm otherwise).
    """
    path = Path(path)
    tmp = partial_path(path)
    try:
        suffix = path.suffix.lower()
        if suffix in (".tif", ".tiff"):
            _write_tiff(tmp, array, axes, pixel_size_um, compression)
        else:
            data = encode(array, axes, suffix)
            with open(tmp, "wb") as fh:
                fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def encode(array: np.ndarray, axes: str, suffix: str) -> bytes:
    """PNG/JPEG bytes of an array (OpenCV's encoder; colours reordered to its BGR)."""
    if axes == "CYX":
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3:
        if array.shape[2] == 1:
            array = array[:, :, 0]
        elif array.shape[2] in (3, 4):
            code = cv2.COLOR_RGB2BGR if array.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
            array = cv2.cvtColor(np.ascontiguousarray(array), code)
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if suffix in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(suffix, np.ascontiguousarray(array), params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {array.dtype} {array.shape} image as {suffix}")
    return buffer.tobytes()


def _imagej_compatible(array: np.ndarray, axes: str) -> bool:
    if array.dtype not in (np.uint8, np.uint16, np.float32):
        return False
    if axes == "YXS":
        return array.dtype == np.uint8 and array.shape[2] == 3
    return True


def _write_tiff(path, array, axes, pixel_size_um, compression) -> None:
    kwargs: dict = {"compression": compression}
    if axes == "YXS":
        kwargs["photometric"] = "rgb" if array.shape[2] in (3, 4) else "minisblack"
        if array.shape[2] == 4:
            kwargs["extrasamples"] = ("unassalpha",)
        kwargs["planarconfig"] = "contig"
    else:
        kwargs["photometric"] = "minisblack"
    if _imagej_compatible(array, axes):
        metadata = {"axes": axes}
        if pixel_size_um is not None:
            metadata["unit"] = "um"
            kwargs["resolution"] = (1.0 / pixel_size_um[1], 1.0 / pixel_size_um[0])
        tifffile.imwrite(path, array, imagej=True, metadata=metadata, **kwargs)
        return
    if pixel_size_um is not None:
        kwargs["resolution"] = (1e4 / pixel_size_um[1], 1e4 / pixel_size_um[0])
        kwargs["resolutionunit"] = "CENTIMETER"
    tifffile.imwrite(path, array, metadata={"axes": axes}, **kwargs)
