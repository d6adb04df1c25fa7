"""Merging tiles (for example a model's predictions) back into whole images.

Each source of the manifest is rebuilt on its recalibrated canvas as a weighted average of
its tiles: "flat" gives every pixel of a tile the same weight, "gradient" lets weights fall
off linearly across the overlap so that seams between tiles fade.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile

from tilesapp.core.errors import ImageError, SettingsError
from tilesapp.core.export import _prepare_output, check_output_folder, read_manifest
from tilesapp.core.progress import Progress
from tilesapp.core.resample import resample, working_dtype
from tilesapp.core.sources import TIFF_SUFFIXES, _read_other, from_yxc
from tilesapp.core.writers import write_image

log = logging.getLogger(__name__)

BLENDS = ("flat", "gradient")


@dataclass
class MergeSummary:
    """What a merge did."""

    output: Path
    written: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    not_cut: list[tuple[str, str]] = field(default_factory=list)  # sources the cut did not finish
    cancelled: bool = False

    @property
    def exit_code(self) -> int:
        return 0 if not (self.failed or self.cancelled) else 1


def blend_window(tile_size: int, overlap: int, blend: str) -> np.ndarray:
    """(rows, cols) weights of one tile: ones ("flat"), or linear ramps over the overlap.

    Every weight is positive, so a pixel covered by one tile only keeps that tile's value.

    >>> blend_window(6, 2, "gradient")[2]  # a middle row: the ramp itself
    array([0.33333333, 0.66666667, 1.        , 1.        , 0.66666667, 0.33333333])
    """
    if blend not in BLENDS:
        raise SettingsError("blend", f"blend must be one of {', '.join(BLENDS)}; got {blend!r}.")
    if blend == "flat" or overlap == 0:
        return np.ones((tile_size, tile_size))
    i = np.arange(tile_size)
    ramp = np.minimum(1.0, np.minimum(i + 1, tile_size - i) / (overlap + 1))
    return np.outer(ramp, ramp)


def read_tile(path: Path, tile_size: int) -> np.ndarray:
    """Read a tile as (rows, cols, channels), whatever its layout and size.

    Tiles replaced by a model's output may be YX, YXC or CYX, of any dtype; a tile of another
    size than ``tile_size`` (a model working at another resolution) is resized to it.
    """
    if path.suffix.lower() in TIFF_SUFFIXES:
        array = tifffile.imread(path)
    else:
        array = _read_other(path)
    array = np.squeeze(array) if array.ndim > 3 else array
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.ndim == 2:
        array = array[:, :, np.newaxis]
    elif array.ndim == 3:
        # channels last unless the first axis is clearly the short one (CYX)
        if array.shape[0] < min(array.shape[1:]) and array.shape[2] >= min(array.shape[:2]):
            array = np.moveaxis(array, 0, -1)
    else:
        raise ImageError(f"{path.name}: a tile of shape {array.shape} cannot be merged; tiles must be 2D with optional channels.")
    if array.shape[:2] != (tile_size, tile_size):
        interp = cv2.INTER_AREA if array.shape[0] > tile_size else cv2.INTER_LINEAR
        channels = array.shape[2]
        array = cv2.resize(np.ascontiguousarray(array, dtype=working_dtype(array.dtype)), (tile_size, tile_size),
                           interpolation=interp).reshape(tile_size, tile_size, channels)
    return array


def run_merge(
    tiles_folder: str | Path,
    output: str | Path,
    *,
    blend: str = "flat",
    restore_scale: bool = False,
    overwrite: bool = False,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, MergeSummary]:
    """Rebuild every source of a tile folder's manifest into ``output`` (one TIFF per source).

    Parameters
    ----------
    tiles_folder : path
        A folder written by the export (its ``manifest.json``); tile files may have been
        replaced by files of the same names holding a model's output.
    output : path
        Folder for the merged images, ``<stem>.tif``; checked like an export folder.
    blend : {"flat", "gradient"}
    restore_scale : bool
        Resample each merged image back to its source's original size (nearest neighbour for
        integer tiles such as label masks, smooth otherwise).
    cancel : threading.Event, optional
        Set it to stop between two tiles.
    """
    tiles_folder = Path(tiles_folder).expanduser()
    manifest = read_manifest(tiles_folder)
    tile_size, overlap = int(manifest["tile_size"]), int(manifest["overlap"])
    window = blend_window(tile_size, overlap, blend)
    out = Path(output).expanduser().absolute()
    check_output_folder(out, [tiles_folder], overwrite)
    _prepare_output(out)
    cancel = cancel or threading.Event()
    summary = MergeSummary(out)

    by_source: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tile in manifest["tiles"]:
        by_source[tile["source"]].append(tile)
    # Tiles dropped by the empty-tile filter leave holes, filled with zeros.
    with_holes = {tile["source"] for tile in manifest.get("dropped", [])}
    sources = []
    for source in manifest["sources"]:
        if source.get("status") == "ok" and by_source.get(source["file"]):
            sources.append(source)
        else:
            reason = source.get("error") or f"its cut ended as '{source.get('status')}'"
            summary.not_cut.append((source["file"], reason))
    total = sum(len(by_source[s["file"]]) for s in sources)
    done, last = 0, 0.0
    for number, source in enumerate(sources):
        tiles = by_source[source["file"]]
        try:
            canvas = weights = None
            for tile in tiles:
                if cancel.is_set():
                    summary.cancelled = True
                    return summary
                values = read_tile(tiles_folder / tile["file"], tile_size) if (tiles_folder / tile["file"]).is_file() else None
                if values is None:
                    raise ImageError(f"{source['file']}: tile {tile['file']} is missing from {tiles_folder}.")
                if canvas is None:
                    rows, cols = source["scaled_shape"]
                    dtype, channels = values.dtype, values.shape[2]
                    # float64 sums: with large overlaps a pixel sums dozens of tiles
                    canvas = np.zeros((rows, cols, channels), np.float64)
                    weights = np.zeros((rows, cols), canvas.dtype)
                elif values.shape[2] != channels:
                    raise ImageError(f"{source['file']}: tile {tile['file']} has {values.shape[2]} channels, other tiles {channels}.")
                y0, x0, y1, x1 = tile["y0"], tile["x0"], tile["y1"], tile["x1"]
                w = window[: y1 - y0, : x1 - x0].astype(canvas.dtype)
                canvas[y0:y1, x0:x1] += values[: y1 - y0, : x1 - x0] * w[..., np.newaxis]
                weights[y0:y1, x0:x1] += w
                done += 1
                if time.monotonic() - last > 0.05:
                    last = time.monotonic()
                    yield Progress(done, total, number, len(sources), source["file"], "Merging tiles")
            if source["file"] not in with_holes and np.any(weights == 0):
                raise ImageError(f"{source['file']}: the tiles do not cover the whole image; the manifest does not match the tiles.")
            np.divide(canvas, weights[..., np.newaxis], out=canvas, where=weights[..., np.newaxis] > 0)
            path = _write_merged(out, source, canvas, dtype, restore_scale)
            summary.written.append(path)
        except ImageError as exc:
            summary.failed.append((source["file"], str(exc)))
        except MemoryError:
            summary.failed.append((source["file"], f"{source['file']}: not enough memory to merge it."))
        except OSError as exc:
            summary.failed.append((source["file"], f"{source['file']}: writing failed ({exc.strerror or exc})."))
        except Exception as exc:
            log.exception("unexpected error while merging %s", source["file"])
            summary.failed.append((source["file"], f"{source['file']}: unexpected error ({exc}); see the log file."))
        yield Progress(done, total, number + 1, len(sources), source["file"], "Merging tiles")
    return summary


def _write_merged(out: Path, source: dict[str, Any], canvas: np.ndarray, dtype: np.dtype, restore_scale: bool) -> Path:
    pixel_size = source.get("output_pixel_size_um")
    if restore_scale and list(source["scaled_shape"]) != _shape_yx(source):
        rows, cols = _shape_yx(source)
        if dtype.kind in "iub":  # labels must stay labels: no interpolated values
            canvas = cv2.resize(canvas, (cols, rows), interpolation=cv2.INTER_NEAREST).reshape(rows, cols, -1)
        else:
            canvas = resample(canvas, (rows, cols))
        pixel_size = source.get("pixel_size_um")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        canvas = np.clip(np.rint(canvas), info.min, info.max).astype(dtype)
    else:
        canvas = canvas.astype(np.float32 if dtype.itemsize <= 4 else np.float64)
    channels = canvas.shape[2]
    if channels == 1:
        axes = "YX"
    elif source.get("axes") == "YXS" and channels in (3, 4):
        axes = "YXS"
    else:
        axes = "CYX"
    path = out / f"{source['tile_stem']}.tif"
    write_image(path, from_yxc(canvas, axes), axes, tuple(pixel_size) if pixel_size else None)
    return path


def _shape_yx(source: dict[str, Any]) -> list[int]:
    shape, axes = source["shape"], source["axes"]
    return [shape[axes.index("Y")], shape[axes.index("X")]]
