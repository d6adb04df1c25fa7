"""Annotations drawn elsewhere (QuPath GeoJSON, ImageJ ROI sets, COCO JSON): read, rasterized and
boxed, checked against masks and boxes computed here independently (a per-pixel even-odd test on
pixel centres, plain rectangles), then cut with the images; hostile files fail their image alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

from tilesapp.core.annotations import Boxes, boxes_in_tile, resize_nearest, scale_boxes
from tilesapp.core.annotations_in import (
    Objects,
    Shape,
    clip_ring,
    objects_in_tile,
    rasterize,
    read_coco,
    read_geojson,
    read_rois,
    read_shapes,
    ring_area,
    scan_instances,
)
from tilesapp.core.errors import ImageError, SettingsError
from tilesapp.core.export import run_export
from tilesapp.core.geometry import Tile, TileGrid
from tilesapp.core.preview import preview_image

roifile = pytest.importorskip("roifile")


# --- an independent reference: even-odd ray casting at every pixel centre -------------------------------
def reference_mask(rings, shape) -> np.ndarray:
    """Pixels whose centre (col + 0.5, row + 0.5) lies inside ``rings`` (even-odd), computed per pixel."""
    rows, cols = shape
    cy, cx = np.mgrid[0:rows, 0:cols] + 0.5
    inside = np.zeros(shape, bool)
    for ring in rings:
        ring = np.asarray(ring, float)
        for (x0, y0), (x1, y1) in zip(ring, np.roll(ring, -1, axis=0)):
            if y0 == y1:
                continue
            crosses = ((y0 <= cy) & (cy < y1)) | ((y1 <= cy) & (cy < y0))
            x_at = x0 + (cy - y0) * (x1 - x0) / (y1 - y0)
            inside ^= crosses & (cx < x_at)
    return inside


def feature(rings, name=None, kind="Polygon"):
    props = {"objectType": "annotation"}
    if name is not None:
        props["classification"] = {"name": name, "color": [255, 0, 0]}
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": rings}, "properties": props}


def collection(*features):
    return {"type": "FeatureCollection", "features": list(features)}


SQUARE = [[10, 10], [30, 10], [30, 25], [10, 25], [10, 10]]
HOLE = [[15, 14], [22, 14], [22, 20], [15, 20], [15, 14]]
TRIANGLE = [[40.3, 5.7], [58.9, 12.2], [44.1, 33.6], [40.3, 5.7]]
BOWTIE = [[5, 40], [25, 55], [25, 40], [5, 55], [5, 40]]  # self-intersecting


# --- QuPath GeoJSON ------------------------------------------------------------------------------------------
def test_geojson_polygons_holes_and_multipolygons_rasterize_like_an_independent_even_odd_test(tmp_path):
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps(collection(
        feature([SQUARE, HOLE], "Tumor"),
        feature([[TRIANGLE], [BOWTIE]], "Stroma", kind="MultiPolygon"),
        feature([[3, 3]], "Tumor", kind="Point"),  # not an area: left out, said
    )))
    read = read_geojson(path)
    assert [s.name for s in read.shapes] == ["Tumor", "Stroma"]
    assert read.warnings("a.geojson") == ["a.geojson: 1 Point geometries (only areas are annotations here) left out."]
    shape = (64, 70)
    got = rasterize(read.shapes, [1, 2], shape)
    expected = np.zeros(shape, np.int32)
    expected[reference_mask([SQUARE[:-1], HOLE[:-1]], shape)] = 1
    expected[reference_mask([TRIANGLE[:-1], BOWTIE[:-1]], shape)] = 2
    np.testing.assert_array_equal(got, expected)
    # the square with integer corners covers exactly its pixels, minus the hole's
    block = np.zeros(shape, bool)
    block[10:25, 10:30] = True
    block[14:20, 15:22] = False
    np.testing.assert_array_equal(got == 1, block)
    # the bowtie's two triangles are filled, its crossing point is no hole in a wrong place
    assert (got == 2).sum() == expected.__eq__(2).sum() > 0


def test_random_polygons_match_the_reference_pixel_for_pixel():
    rng = np.random.default_rng(3)
    shape = (50, 47)
    for _ in range(60):
        rings = [rng.uniform(-8, 58, (rng.integers(3, 14), 2)) for _ in range(rng.integers(1, 3))]
        got = rasterize([Shape("x", tuple(rings), (0, 0, 1, 1), "")], [1], shape)
        np.testing.assert_array_equal(got.astype(bool), reference_mask(rings, shape))


def test_later_objects_are_drawn_over_earlier_ones_and_values_are_kept():
    a = Shape("a", (np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float),), (0, 0, 10, 10), "")
    b = Shape("b", (np.array([[5, 5], [15, 5], [15, 15], [5, 15]], float),), (5, 5, 15, 15), "")
    got = rasterize([a, b], [70000, 3], (16, 16), dtype=np.uint32)
    assert got[2, 2] == 70000 and got[7, 7] == 3 and got[12, 12] == 3 and got.dtype == np.uint32


def test_qupath_feature_lists_classifications_and_unclassified_objects(tmp_path):
    path = tmp_path / "b.json"
    data = [feature([SQUARE], None), feature([SQUARE], "  Immune cells "), feature([SQUARE], "../../etc/passwd")]
    data[0]["properties"].pop("classification", None)
    path.write_text(json.dumps(data))  # QuPath 0.2 writes a plain list of features
    assert [s.name for s in read_shapes(path).shapes] == ["object", "Immune cells", "../../etc/passwd"]


@pytest.mark.parametrize("text, problem", [
    ('{"type": "FeatureCollection", "features": [', "is not valid JSON (line 1"),
    (json.dumps(collection(feature([[[1, 1], [float("nan"), 2], [3, 3]]], "a"))).replace("NaN", "NaN"),
     "feature 0: a coordinate is NaN or infinite"),
    (json.dumps(collection(feature([SQUARE]), feature([[[0, 0], [1e300, 0], [0, 5]]], "a"))),
     "feature 1: coordinate 1e+300 is no pixel position"),
    (json.dumps(collection(feature([[["x", 1], [2, 2], [3, 3]]], "a"))), "feature 0: coordinates must be lists of numbers"),
    (json.dumps(collection({"type": "Feature", "geometry": {"type": "Polygon"}})), "feature 0: a Polygon needs lists"),
    (json.dumps({"type": "FeatureCollection", "features": 3}), "is not GeoJSON"),
    ("[" * 100000 + "]" * 100000, "nested too deeply"),
])
def test_malformed_geojson_names_the_file_and_the_feature(tmp_path, text, problem):
    path = tmp_path / "bad.geojson"
    path.write_text(text)
    with pytest.raises(ImageError, match="bad.geojson") as info:
        read_shapes(path)
    assert problem in str(info.value)


def test_zero_area_polygons_are_left_out_and_said(tmp_path):
    path = tmp_path / "z.geojson"
    line = [[0, 0], [10, 10], [20, 20], [0, 0]]
    path.write_text(json.dumps(collection(feature([line], "a"), feature([[[1, 1], [1, 1]]], "a"), feature([SQUARE], "b"))))
    read = read_geojson(path)
    assert [s.name for s in read.shapes] == ["b"]
    assert read.skipped == {"polygons without area": 2}


# --- ImageJ / Fiji ROI sets ------------------------------------------------------------------------------------
def test_roi_sets_written_with_roifile_give_rectangles_polygons_and_ovals(tmp_path):
    from roifile import ROI_TYPE, ImagejRoi, roiwrite

    rect = ImagejRoi(roitype=ROI_TYPE.RECT, top=5, left=3, bottom=15, right=13, name="r1")
    polygon = ImagejRoi.frompoints(np.array([[20.5, 4.25], [40, 6], [33.75, 22.5]]), name="p/../x")
    polygon.roitype = ROI_TYPE.POLYGON
    polygon.group = 2
    oval = ImagejRoi(roitype=ROI_TYPE.OVAL, top=20, left=5, bottom=36, right=25, name="o")
    line = ImagejRoi(roitype=ROI_TYPE.LINE, x1=1, y1=1, x2=9, y2=9, name="l")
    roiwrite(tmp_path / "img.zip", [rect, polygon, oval, line], mode="w")
    read = read_rois(tmp_path / "img.zip")
    assert [s.name for s in read.shapes] == ["object", "group 2", "object"]
    assert [s.where for s in read.shapes] == ["ROI 1 'r1'", "ROI 2 'p/../x'", "ROI 3 'o'"]
    assert read.skipped == {"line ROIs (only areas are annotations here)": 1}
    shape = (40, 45)
    got = rasterize(read.shapes, [1, 2, 3], shape)
    expected = np.zeros(shape, np.int32)
    expected[5:15, 3:13] = 1  # ImageJ's rectangle: pixels 3..12 × 5..14
    expected[reference_mask([polygon.coordinates()], shape)] = 2
    expected[reference_mask([oval.coordinates()], shape)] = 3
    np.testing.assert_array_equal(got, expected)
    # a single .roi file reads the same
    rect.tofile(tmp_path / "one.roi")
    assert read_shapes(tmp_path / "one.roi").shapes[0].box == (3.0, 5.0, 13.0, 15.0)


def test_a_damaged_roi_file_names_itself(tmp_path):
    (tmp_path / "bad.roi").write_bytes(b"Iout" + b"\xff" * 10)
    with pytest.raises(ImageError, match="bad.roi cannot be read as ImageJ ROIs"):
        read_shapes(tmp_path / "bad.roi")


# --- COCO ------------------------------------------------------------------------------------------------------
def coco_file(path, width=60, height=50):
    data = {
        "images": [{"id": 7, "file_name": "sub/img.png", "width": width, "height": height},
                   {"id": 8, "file_name": "other.png", "width": 10, "height": 10}],
        "categories": [{"id": 3, "name": "nucleus"}, {"id": 1, "name": "cell"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 20, 15],
             "segmentation": [[10, 10, 30, 10, 30, 25, 10, 25]], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [40.5, 30, 8, 6]},  # a box alone
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1,
             "segmentation": {"counts": [0, 25], "size": [50, 60]}},
            {"id": 4, "image_id": 8, "category_id": 1, "bbox": [1, 1, 2, 2]},
        ],
    }
    path.write_text(json.dumps(data))
    return data


def test_coco_polygons_and_boxes_are_read_for_the_image_named_in_it(tmp_path):
    coco_file(tmp_path / "annotations.json")
    read = read_shapes(tmp_path / "annotations.json", "img.png")
    assert [(s.name, s.box, s.box_only) for s in read.shapes] == [
        ("cell", (10.0, 10.0, 30.0, 25.0), False), ("nucleus", (40.5, 30.0, 48.5, 36.0), True)]
    assert read.skipped == {"crowd regions (iscrowd)": 1}
    got = rasterize(read.shapes, [1, 2], (50, 60))
    assert (got == 1).sum() == 20 * 15 and not (got == 2).any()  # a box alone is not drawn into masks
    assert read_coco(tmp_path / "annotations.json").entry("IMG.tif")["id"] == 7  # by stem, any case


@pytest.mark.parametrize("change, problem", [
    (lambda d: d["annotations"][0].update(category_id=99), "annotation 1: category_id 99 is not in 'categories'"),
    (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3]]), "annotation 1: a polygon must be a list"),
    (lambda d: d["annotations"][1].update(bbox=[1, 2, -3, 4]), "annotation 2: bbox [1, 2, -3, 4] is not a box"),
    (lambda d: d["images"][0].pop("file_name"), "images[0] needs an 'id' and a 'file_name'"),
])
def test_malformed_coco_names_the_annotation(tmp_path, change, problem):
    data = coco_file(tmp_path / "c.json")
    change(data)
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(ImageError) as info:
        read_shapes(tmp_path / "c.json", "img.png")
    assert "c.json" in str(info.value) and problem in str(info.value)


# --- objects in tiles ---------------------------------------------------------------------------------------------
def test_objects_in_a_tile_follow_the_yolo_box_visibility_rule():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 300, (40, 2))
    wh = rng.uniform(5, 60, (40, 2))
    boxes = scale_boxes(np.arange(40) % 3, np.column_stack([xy + wh / 2, wh]) / 300, (300, 300))
    for tile in TileGrid.for_shape((300, 300), 128, 32):
        for visibility in (0.0, 0.5, 0.9):
            lines = boxes_in_tile(boxes, tile, 128, visibility)
            objects = objects_in_tile(boxes, tile, visibility)
            assert len(lines) == len(objects)
            for (cls, cx, cy, w, h), obj in zip(lines, objects):
                x0, y0, x1, y1 = obj.box
                assert cls == obj.cls
                np.testing.assert_allclose([(x0 + x1) / 256, (y0 + y1) / 256, (x1 - x0) / 128, (y1 - y0) / 128],
                                           [cx, cy, w, h], atol=1e-9)


def test_polygons_are_clipped_to_the_tile_exactly():
    rng = np.random.default_rng(1)
    tile = Tile(0, 0, 0, 20, 10, 52, 42)
    for _ in range(30):
        ring = rng.uniform(0, 70, (rng.integers(3, 9), 2))
        clipped = clip_ring(ring, tile)
        assert clipped.size == 0 or (clipped[:, 0].min() >= 10 - 1e-9 and clipped[:, 0].max() <= 42 + 1e-9
                                     and clipped[:, 1].min() >= 20 - 1e-9 and clipped[:, 1].max() <= 52 + 1e-9)
        if ring_area(ring) and len(clipped) >= 3:
            inside = reference_mask([ring], (80, 80))[20:52, 10:42]
            got = reference_mask([clipped], (80, 80))[20:52, 10:42]
            assert (inside != got).sum() <= 0.02 * max(1, inside.sum()) + 2  # the same region, up to edge pixels


def test_coco_objects_of_imported_polygons_carry_their_clipped_outline():
    ring = np.array([[-5, 2], [20, 2], [20, 12], [-5, 12]], float)
    objects = Objects(np.array([1]), np.array([[0, 2, 20, 12]], float), rings=((ring,),), outer=((0,),))
    [obj] = objects_in_tile(objects, Tile(0, 0, 0, 0, 0, 16, 16), 0.5)
    assert obj.cls == 1 and obj.box == (0.0, 2.0, 16.0, 12.0) and obj.area == 160.0
    np.testing.assert_allclose(np.array(obj.polygons[0]).reshape(-1, 2)[:, 0].max(), 16)


# --- instance masks ------------------------------------------------------------------------------------------------
def test_instance_masks_give_each_objects_box_and_binary_or_class_masks_are_refused():
    mask = np.zeros((40, 50), np.uint16)
    mask[2:10, 3:8] = 5
    mask[20:30, 10:45] = 300
    mask[21:25, 40:49] = 300  # touching itself: one region
    found = scan_instances(lambda y0, y1: mask[y0:y1, :, None], mask.shape, "m", "--layout cellpose")
    assert found.ids.tolist() == [5, 300]
    assert found.xyxy.tolist() == [[3, 2, 8, 10], [10, 20, 49, 30]]
    binary = (mask > 0).astype(np.uint8) * 255
    with pytest.raises(ImageError, match="label 255 covers 2 separate regions, so it is a binary mask. --layout cellpose"):
        scan_instances(lambda y0, y1: binary[y0:y1, :, None], mask.shape, "m", "--layout cellpose")
    classes = mask.copy()
    classes[35:38, 0:3] = 5
    with pytest.raises(ImageError, match="label 5 covers 2 separate regions, so it is a class mask"):
        scan_instances(lambda y0, y1: classes[y0:y1, :, None], mask.shape, "m", "x")


# --- through the export ---------------------------------------------------------------------------------------------
@pytest.fixture
def drawn(tmp_path):
    """Two images at 0.65 µm (doubled by recalibration), QuPath GeoJSON for each, one bad."""
    images, geo = tmp_path / "images", tmp_path / "geo"
    images.mkdir()
    geo.mkdir()
    for name in ("a", "b"):
        write_imagej(images / f"{name}.tif", microscopy((60, 80), seed=len(name)), 0.65)
    (geo / "a.tif.geojson").write_text(json.dumps(collection(
        feature([SQUARE, HOLE], "Tumor"), feature([TRIANGLE], "Stroma"), feature([BOWTIE], "Tumor"))))
    (geo / "b.geojson").write_text(json.dumps(collection(feature([SQUARE], "Stroma"))))
    return images, geo


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def test_annotations_are_scaled_with_the_image_drawn_and_cut_on_its_grid(drawn, tmp_path):
    images, geo = drawn
    out = tmp_path / "out"
    settings_kw = dict(tile_size=64, overlap=16, norm="global", dtype="uint8", format="png")
    from tilesapp.core.settings import Settings

    _, summary = drain(run_export(images, out, Settings(**settings_kw), annotations=geo))
    assert summary.exit_code == 0, summary.failed
    m = manifest(out)
    assert m["labels"] == str(geo) and m["sources"][0]["labels"] == "a.tif.geojson"
    assert json.loads((out / "classes.json").read_text()) == {"background": 0, "Stroma": 1, "Tumor": 2}
    assert (out / "classes.txt").read_text() == "Stroma\nTumor\n"
    assert set(m["files"]) >= {"classes.json", "classes.txt"}
    # the whole class mask at the recalibrated size (120 × 160), drawn independently
    scaled = [np.array(r[:-1], float) * 2 for r in (SQUARE, HOLE, TRIANGLE, BOWTIE)]
    expected = np.zeros((120, 160), np.uint8)
    expected[reference_mask(scaled[:2], (120, 160))] = 2
    expected[reference_mask(scaled[2:3], (120, 160))] = 1
    expected[reference_mask(scaled[3:], (120, 160))] = 2
    for t in (t for t in m["tiles"] if t["source"] == "a.tif"):
        piece = np.array(__import__("cv2").imread(str(out / t["mask"]), -1))
        np.testing.assert_array_equal(piece, expected[t["y0"]: t["y1"], t["x0"]: t["x1"]])
        # YOLO boxes: the objects' boxes (×2), cut by the visibility rule
        boxes = Boxes(np.array([1, 0, 1]), np.array([[20, 20, 60, 50], [80.6, 11.4, 117.8, 67.2], [10, 80, 50, 110]]))
        tile = Tile(t["index"], t["row"], t["col"], t["y0"], t["x0"], t["y1"], t["x1"])
        lines = [" ".join([str(c)] + [f"{v:.6f}" for v in rest]) for c, *rest in boxes_in_tile(boxes, tile, 64, 0.5)]
        assert (out / t["label"]).read_text().splitlines() == lines


def test_a_bad_annotation_file_fails_its_image_alone(drawn, tmp_path):
    images, geo = drawn
    (geo / "b.geojson").write_text(json.dumps(collection(feature([SQUARE], "x"), feature([[[0, 0], [float("inf"), 1],
                                                                                            [2, 2]]], "x"))))
    from tilesapp.core.settings import Settings

    _, summary = drain(run_export(images, tmp_path / "out", Settings(tile_size=64, overlap=16), annotations=geo))
    assert summary.images_ok == 1
    [(name, error)] = summary.failed
    assert name == "b.tif" and error == "b.tif: b.geojson: feature 1: a coordinate is NaN or infinite."
    assert not any(p.name.startswith("b_") for p in (tmp_path / "out").rglob("*"))


def test_an_image_without_annotations_fails_alone_and_classes_txt_fixes_the_table(drawn, tmp_path):
    images, geo = drawn
    (geo / "b.geojson").unlink()
    (geo / "classes.txt").write_text("Tumor\nStroma\nNecrosis\n")
    from tilesapp.core.settings import Settings

    _, summary = drain(run_export(images, tmp_path / "out", Settings(tile_size=64, overlap=16), annotations=geo))
    assert [n for n, _ in summary.failed] == ["b.tif"] and "has no annotations in" in summary.failed[0][1]
    assert json.loads((tmp_path / "out" / "classes.json").read_text()) == {
        "background": 0, "Tumor": 1, "Stroma": 2, "Necrosis": 3}


def test_a_class_missing_from_classes_txt_fails_the_image_naming_the_feature(drawn, tmp_path):
    images, geo = drawn
    (geo / "classes.txt").write_text("Tumor\n")
    from tilesapp.core.settings import Settings

    _, summary = drain(run_export(images, tmp_path / "out", Settings(tile_size=64, overlap=16), annotations=geo))
    assert summary.images_ok == 0
    assert summary.failed[1][1] == "b.tif: b.geojson: feature 0: class 'Stroma' is not in classes.txt; add it there."


def test_coco_of_another_size_fails_the_image(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    write_imagej(images / "img.tif", microscopy((40, 60), seed=1), 0.325)
    coco_file(tmp_path / "coco.json", width=61)
    from tilesapp.core.settings import Settings

    _, summary = drain(run_export(images, tmp_path / "out", Settings(tile_size=32, overlap=8),
                                  annotations=tmp_path / "coco.json"))
    assert summary.failed == [("img.tif", "img.tif: coco.json gives img.tif a size of 50 × 61 px but the image is 40 × 60 px; "
                                          "the annotations belong to another image.")]


def test_instance_masks_from_imported_annotations_keep_one_id_per_object(drawn, tmp_path):
    images, geo = drawn
    from tilesapp.core.settings import Settings

    settings = Settings(tile_size=256, overlap=0, annotation_masks="instances")
    _, summary = drain(run_export(images, tmp_path / "out", settings, annotations=geo))
    assert summary.exit_code == 0
    tile = next(t for t in manifest(tmp_path / "out")["tiles"] if t["source"] == "a.tif")
    mask = tifffile.imread(tmp_path / "out" / tile["mask"])
    assert sorted(np.unique(mask).tolist()) == [0, 1, 2, 3]


def test_annotations_do_not_mix_with_masks_or_labels(drawn, tmp_path):
    images, geo = drawn
    from tilesapp.core.settings import Settings

    with pytest.raises(SettingsError, match="--annotations replaces --masks and --labels"):
        drain(run_export(images, tmp_path / "out", Settings(), annotations=geo, masks=geo))
    with pytest.raises(SettingsError, match="do not exist"):
        drain(run_export(images, tmp_path / "out", Settings(), annotations=tmp_path / "nothing"))
    assert not (tmp_path / "out").exists()


def test_resize_nearest_is_what_masks_of_files_get_and_drawn_masks_agree_on_square_pixels(tmp_path):
    """A mask file and the same objects drawn give the same tiles when the scale is ×2."""
    mask = np.zeros((60, 80), np.uint8)
    mask[10:25, 10:30] = 2
    np.testing.assert_array_equal(resize_nearest(mask, (120, 160)) == 2,
                                  rasterize([Shape("t", (np.array(SQUARE[:-1], float) * 2,), (0, 0, 1, 1), "")],
                                            [2], (120, 160)) == 2)


def test_the_preview_gets_the_polygons_of_one_image_in_recalibrated_pixels(drawn):
    """What the window's Training set panel draws over the image and its tile grid."""
    from tilesapp.core.settings import Settings
    from tilesapp.core.training import preview_objects

    images, geo = drawn
    settings = Settings(tile_size=64, overlap=16)
    plan = preview_image(images / "a.tif", settings).plan
    objects, warnings = preview_objects(geo, images / "a.tif", plan)
    assert warnings == [] and objects.names == ("Stroma", "Tumor")
    assert [objects.names[c] for c in objects.classes] == ["Tumor", "Stroma", "Tumor"]
    np.testing.assert_allclose(objects.rings[0][0], np.array(SQUARE[:-1], float) * 2)  # ×2: 0.65 → 0.325 µm
    np.testing.assert_allclose(objects.xyxy[0], [20, 20, 60, 50])
    with pytest.raises(ImageError, match="b.tif has no annotations"):
        (geo / "b.geojson").unlink()
        preview_objects(geo, images / "b.tif", plan)
