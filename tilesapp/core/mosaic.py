"""The sample mosaic: a glance at up to 25 images of a folder, names written on them."""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Generator, Sequence
from pathlib import Path

import unicodedata

import cv2
import numpy as np

from tilesapp.core import memory
from tilesapp.core.errors import Cancelled, ImageError
from tilesapp.core.progress import Progress
from tilesapp.core.readers import open_image
from tilesapp.core.resample import resample


def display_rgb(image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.8)) -> np.ndarray:
    """An 8-bit RGB rendering of a (rows, cols, channels) image, contrast-stretched per channel.

    One channel is shown grey, two or three as red/green(/blue), more as their first three;
    an RGB(A) image keeps its colours.
    """
    channels = image.shape[2]
    shown = image[..., :3].astype(np.float32)
    low = np.percentile(shown, percentiles[0], axis=(0, 1))
    high = np.percentile(shown, percentiles[1], axis=(0, 1))
    span = np.where(high > low, high - low, 1.0)
    out = np.clip((shown - low) / span * 255.0, 0, 255).astype(np.uint8)
    if channels == 1:
        return np.repeat(out, 3, axis=2)
    if out.shape[2] == 2:
        return np.concatenate([out, np.zeros_like(out[..., :1])], axis=2)
    return out


def thumbnail(path: Path, size: int) -> np.ndarray:
    """RGB uint8 image of ``path`` whose longer side is at most ``size`` pixels.

    A big TIFF is not read whole: every n-th pixel (or a pyramid level) down to 4 × ``size``,
    read band by band, then averaged down.
    """
    with open_image(path) as file:
        if not file.scenes:
            raise ImageError(f"{Path(path).name}: the file holds no image.")
        scene = file.scenes[0]
        if scene.info.nbytes <= memory.WHOLE_READ_BYTES or getattr(scene, "whole_only", False):
            rows, cols = scene.info.shape_yx
            image = scene.read(0, rows, 0, cols)  # the fastest read
        else:
            image = scene.overview(4 * size)
    rows, cols = image.shape[:2]
    factor = min(1.0, size / max(rows, cols))
    if factor < 1.0:
        image = resample(image, (max(1, round(rows * factor)), max(1, round(cols * factor))))
    return display_rgb(image)


def make_mosaic(
    paths: Sequence[str | Path],
    max_images: int = 25,
    cell: int = 512,
    seed: int | None = None,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, np.ndarray]:
    """Assemble up to ``max_images`` random images of ``paths`` into one RGB uint8 mosaic.

    Each image is scaled to fit a ``cell`` × ``cell`` square (never enlarged) and labelled with
    its file name; unreadable files get a cell that says so. Returns (rows, cols, 3).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ImageError("There is no image to show; load a folder of images first.")
    chosen = sorted(random.Random(seed).sample(paths, min(max_images, len(paths))), key=lambda p: p.name.lower())
    n = len(chosen)
    grid_cols = math.ceil(math.sqrt(n))
    grid_rows = math.ceil(n / grid_cols)
    gap = max(2, cell // 64)
    mosaic = np.full((grid_rows * (cell + gap) + gap, grid_cols * (cell + gap) + gap, 3), 32, np.uint8)
    for i, path in enumerate(chosen):
        if cancel is not None and cancel.is_set():
            raise Cancelled("The sample was cancelled.")
        yield Progress(i, n, i, n, path.name, "Reading images for the sample")
        try:
            thumb = thumbnail(path, cell)
            label = path.name
        except ImageError as exc:
            thumb = np.full((cell, cell, 3), 64, np.uint8)
            label = f"{path.name}: unreadable"
            _draw_text(thumb, str(exc).split(": ", 1)[-1][:60], cell // 2)
        r, c = divmod(i, grid_cols)
        y = gap + r * (cell + gap) + (cell - thumb.shape[0]) // 2
        x = gap + c * (cell + gap) + (cell - thumb.shape[1]) // 2
        mosaic[y : y + thumb.shape[0], x : x + thumb.shape[1]] = thumb
        cell_view = mosaic[gap + r * (cell + gap) :, gap + c * (cell + gap) :][:cell, :cell]
        _draw_text(cell_view, label, 0)
    yield Progress(n, n, n, n, "", "Sample ready")
    return mosaic


def _draw_text(image: np.ndarray, text: str, y: int) -> None:
    """Write ``text`` white on a dark band at row ``y`` of ``image`` (in place)."""
    # Hershey fonts have ASCII only: accents are dropped (é → e), other letters shown as ?
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    text = text.encode("ascii", "replace").decode("ascii")
    scale = max(0.4, image.shape[1] / 640)
    thickness = max(1, round(scale * 1.5))
    (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    while width > image.shape[1] - 8 and len(text) > 4:  # long names: keep the end, it differs most
        text = "..." + text[4:]
        (width, height), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    band = height + base + 8
    image[y : y + band, :] = (image[y : y + band, :] * 0.35).astype(np.uint8)
    cv2.putText(image, text, (4, y + height + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
