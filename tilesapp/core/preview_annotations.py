"""What the window shows of imported annotations before exporting: one image's objects
(polygons and boxes in the pixels of the recalibrated image) and the tiles the empty-tile
filter keeps, decided as the export decides them.

The export (:mod:`tilesapp.core.training`, :mod:`tilesapp.core.cut`) measures a tile's
foreground on the mask it draws from the annotations when the layout makes masks, on the
objects' boxes otherwise; :func:`annotation_preview` does the same on the preview's grid,
band by band (a big image's mask is never held whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilesapp.core.annotations import box_coverage
from tilesapp.core.annotations_in import Objects
from tilesapp.core.geometry import TileGrid
from tilesapp.core.selection import keep_tiles, tile_fractions
from tilesapp.core.settings import Settings
from tilesapp.core.training import image_objects

#: Mask pixels read at once when measuring the foreground share of tiles (in bands above it).
WHOLE_MASK_PIXELS = 32 << 20


@dataclass(frozen=True)
class AnnotationPreview:
    """One image's imported objects as the preview draws them.

    ``objects`` are in pixels of the recalibrated image (``rings`` per object; ``classes``
    index ``objects.names``); ``masks`` is what the export draws them as ("none", "classes",
    "instances"); ``foreground`` and ``keep`` are per tile, None when the filter is off.
    """

    objects: Objects
    masks: str
    file: Path
    foreground: np.ndarray | None = None
    keep: np.ndarray | None = None
    warnings: tuple[str, ...] = ()


def annotation_preview(annotations: str | Path, image: str | Path, plan, settings: Settings,
                       name: str | None = None, source_name: str | None = None) -> AnnotationPreview:
    """The objects of ``image`` found in ``annotations`` (a file or a folder of them), drawn on
    ``plan`` (the image's recalibration and grid), and the tiles the filter keeps under
    ``settings`` — from the mask the layout draws, else from the boxes, as the export does.

    ``name`` is the file's name as the manifest knows it, ``source_name`` the image's (a scene
    or plane of the file; the filter's random choice of empty tiles is seeded by it).
    Raises :class:`~tilesapp.core.errors.ImageError` as the export would for this image (no
    annotation file for it, a malformed one).
    """
    image = Path(image)
    name = name or image.name
    objects = image_objects(annotations, image, name, settings)
    warnings: list[str] = []
    mask_rows, drawn = objects.prepare(name, plan, None, None, warnings)
    foreground = keep = None
    if settings.min_foreground > 0:
        grid = plan.grid
        if mask_rows is None:
            foreground = np.array([box_coverage(drawn, tile) for tile in grid])
        else:
            foreground = mask_fractions(mask_rows.rows, grid)
        keep = keep_tiles(foreground, settings.min_foreground, settings.keep_empty, settings.seed,
                          source_name or name)
    return AnnotationPreview(drawn, objects.masks, objects.file, foreground, keep, tuple(warnings))


def mask_fractions(rows, grid: TileGrid) -> np.ndarray:
    """Share of non-zero mask pixels in each tile; ``rows(y0, y1)`` gives mask rows of the
    recalibrated image as (rows, cols, channels). Read whole when small, else tile row by
    tile row.

    >>> grid = TileGrid.for_shape((4, 4), 2, 0)
    >>> mask = np.zeros((4, 4, 1), np.uint8); mask[0, 0] = 1
    >>> mask_fractions(lambda y0, y1: mask[y0:y1], grid).tolist()
    [0.25, 0.0, 0.0, 0.0]
    """
    height, width = grid.shape
    if height * width <= WHOLE_MASK_PIXELS:
        return tile_fractions(np.any(rows(0, height) != 0, axis=2), grid)
    out = np.zeros(len(grid))
    for r, y0 in enumerate(grid.row_starts):
        y1 = min(y0 + grid.tile_size, height)
        tiles = range(r * grid.n_cols, (r + 1) * grid.n_cols)
        out[tiles.start:tiles.stop] = tile_fractions(np.any(rows(y0, y1) != 0, axis=2), grid, tiles, y0)
    return out


__all__ = ["AnnotationPreview", "annotation_preview", "mask_fractions"]
