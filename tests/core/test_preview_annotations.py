"""The window's preview of imported annotations: the objects drawn where the export draws them,
and the tiles the filter keeps, decided as the export decides them (mask or boxes)."""

import json

import numpy as np
import pytest
from helpers import drain, microscopy, write_imagej

from tilesapp.core import preview_annotations
from tilesapp.core.errors import ImageError
from tilesapp.core.export import run_export
from tilesapp.core.geometry import TileGrid
from tilesapp.core.preview_annotations import annotation_preview, mask_fractions
from tilesapp.core.plan import plan_image
from tilesapp.core.readers import inspect_image
from tilesapp.core.settings import Settings

#: A cell with a hole covering little of its box, and a small nucleus.
RING = [[4, 4], [60, 4], [60, 60], [4, 60], [4, 4]]
HOLE = [[8, 8], [56, 8], [56, 56], [8, 56], [8, 8]]
NUCLEUS = [[150, 100], [170, 100], [170, 120], [150, 120], [150, 100]]


def feature(rings, name):
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": rings},
            "properties": {"classification": {"name": name}}}


@pytest.fixture
def project(tmp_path):
    images, notes = tmp_path / "images", tmp_path / "qupath"
    images.mkdir()
    notes.mkdir()
    write_imagej(images / "a.tif", microscopy((128, 192)), 0.65)  # recalibrated ×2: 256 × 384
    (notes / "a.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        feature([RING, HOLE], "cell"), feature([NUCLEUS], "nucleus")]}))
    return images, notes


def kept_by_export(images, notes, settings, out):
    drain(run_export(images, out, settings, annotations=notes))
    data = json.loads((out / "manifest.json").read_text())
    return sorted(t["index"] for t in data["tiles"] if t.get("file"))


@pytest.mark.parametrize("layout", ["plain", "ultralytics"])
def test_the_preview_keeps_the_tiles_the_export_keeps(project, tmp_path, layout):
    images, notes = project
    settings = Settings(tile_size=64, overlap=16, min_foreground=0.05, keep_empty=0.25, seed=3, layout=layout,
                        dtype="uint8", format="png")
    plan = plan_image(inspect_image(images / "a.tif"), settings, "a.tif")
    shown = annotation_preview(notes, images / "a.tif", plan, settings, "a.tif")
    assert shown.masks == ("classes" if layout == "plain" else "none")
    assert shown.objects.names == ("cell", "nucleus") and len(shown.objects.rings[0]) == 2
    # the rings are in recalibrated pixels (×2)
    np.testing.assert_allclose(shown.objects.xyxy[1], [300, 200, 340, 240])
    assert sorted(np.flatnonzero(shown.keep).tolist()) == kept_by_export(images, notes, settings, tmp_path / layout)


def test_a_mask_counts_the_hole_out_boxes_do_not(project):
    images, notes = project
    fractions = {}
    for layout in ("plain", "ultralytics"):
        settings = Settings(tile_size=128, overlap=0, min_foreground=0.5, layout=layout, dtype="uint8", format="png")
        plan = plan_image(inspect_image(images / "a.tif"), settings, "a.tif")
        fractions[layout] = annotation_preview(notes, images / "a.tif", plan, settings).foreground[0]
    assert fractions["ultralytics"] > 0.7 > 0.3 > fractions["plain"]


def test_no_filter_no_fractions_and_a_missing_file_fails_as_the_export_would(project, tmp_path):
    images, notes = project
    settings = Settings(tile_size=64, overlap=0)
    plan = plan_image(inspect_image(images / "a.tif"), settings, "a.tif")
    shown = annotation_preview(notes, images / "a.tif", plan, settings)
    assert shown.foreground is None and shown.keep is None and shown.file == notes / "a.geojson"
    write_imagej(images / "b.tif", microscopy((64, 64)), 0.65)
    with pytest.raises(ImageError, match="b.tif has no annotations in"):
        annotation_preview(notes, images / "b.tif", plan, settings)


def test_mask_fractions_in_bands_equal_the_whole(monkeypatch):
    rng = np.random.default_rng(0)
    mask = (rng.random((300, 410, 1)) > 0.7).astype(np.uint8)
    grid = TileGrid.for_shape((300, 410), 64, 20)
    whole = mask_fractions(lambda y0, y1: mask[y0:y1], grid)
    monkeypatch.setattr(preview_annotations, "WHOLE_MASK_PIXELS", 1000)
    np.testing.assert_allclose(mask_fractions(lambda y0, y1: mask[y0:y1], grid), whole)
