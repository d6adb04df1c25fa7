"""Masks and YOLO boxes cut on the image's grid, the empty-tile filter and the split."""

import json

import cv2
import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

from tilesapp.cli import main
from tilesapp.core.annotations import boxes_in_tile, read_yolo, resize_nearest, scale_boxes
from tilesapp.core.errors import ImageError, OutputError, SettingsError
from tilesapp.core.export import run_export
from tilesapp.core.geometry import Tile, TileGrid
from tilesapp.core.merge import run_merge
from tilesapp.core.preview import preview_image
from tilesapp.core.selection import keep_tiles, split_sources, tile_fractions
from tilesapp.core.settings import Settings

LABELS = (0, 1, 2, 7)


def manifest(out):
    return json.loads((out / "manifest.json").read_text())


def label_mask(shape, seed=0):
    """A label image: rectangles of labels 1, 2 and 7 on background 0."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    for label in (1, 2, 7, 1, 2):
        y, x = rng.integers(0, shape[0] - 20), rng.integers(0, shape[1] - 20)
        mask[y : y + rng.integers(5, 40), x : x + rng.integers(5, 40)] = label
    return mask


@pytest.fixture
def dataset(tmp_path):
    images, masks, labels = tmp_path / "images", tmp_path / "masks", tmp_path / "labels"
    for d in (images, masks, labels):
        d.mkdir()
    for i, shape in enumerate([(150, 200), (130, 170), (160, 160)]):
        write_imagej(images / f"img{i}.tif", microscopy(shape, seed=i), 0.5)  # rescaled by 0.5 / 0.325
        tifffile.imwrite(masks / f"img{i}.tif", label_mask(shape, seed=i))
        (labels / f"img{i}.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.1 0.1 0.1 0.1\n")
    (labels / "classes.txt").write_text("cell\nnucleus\n")
    return images, masks, labels


@pytest.mark.parametrize("factor_from", [0.65, 0.5, 0.2])
def test_nearest_keeps_label_values_exactly(factor_from):
    mask = label_mask((100, 130))
    factor = factor_from / 0.325
    out = resize_nearest(mask, (round(100 * factor), round(130 * factor)))
    assert out.dtype == np.uint8
    assert set(np.unique(out)) <= set(LABELS)  # none invented
    if factor >= 1:
        assert set(np.unique(out)) == set(np.unique(mask))  # none lost when enlarging


def test_masks_are_cut_on_the_image_grid_with_identical_names(dataset, tmp_path):
    images, masks, _ = dataset
    settings = Settings(tile_size=64, overlap=16)
    _, summary = drain(run_export(images, tmp_path / "out", settings, masks=masks))
    out = tmp_path / "out"
    assert summary.exit_code == 0
    image_names = sorted(p.name for p in (out / "images").iterdir())
    assert image_names == sorted(p.name for p in (out / "masks").iterdir())  # both .tif here
    m = manifest(out)
    assert m["masks"] == str(masks) and m["sources"][0]["mask"] == "img0.tif"
    source = m["sources"][0]
    full = resize_nearest(tifffile.imread(masks / "img0.tif"), tuple(source["scaled_shape"]))
    for t in (t for t in m["tiles"] if t["source"] == "img0.tif"):
        assert t["file"].startswith("images/") and t["mask"] == "masks/" + t["file"].split("/")[1]
        piece = tifffile.imread(out / t["mask"])
        assert piece.shape == (64, 64) and piece.dtype == np.uint8  # never normalized
        assert np.array_equal(piece, full[t["y0"] : t["y1"], t["x0"] : t["x1"]])
        assert tifffile.imread(out / t["file"]).dtype == np.float32


def test_png_images_get_png_masks_never_jpg(dataset, tmp_path):
    images, masks, _ = dataset
    yolo = Settings(tile_size=64, overlap=0, format="jpg", dtype="uint8", bounds=(0, 255))
    drain(run_export(images, tmp_path / "out", yolo, masks=masks))
    stems = lambda d: sorted(p.stem for p in d.iterdir())  # noqa: E731
    assert stems(tmp_path / "out" / "images") == stems(tmp_path / "out" / "masks")
    assert {p.suffix for p in (tmp_path / "out" / "masks").iterdir()} == {".png"}
    piece = cv2.imread(str(next((tmp_path / "out" / "masks").iterdir())), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(piece)) <= set(LABELS)


def test_missing_or_mismatched_mask_fails_that_image_only(dataset, tmp_path):
    images, masks, _ = dataset
    (masks / "img1.tif").unlink()
    tifffile.imwrite(masks / "img2.tif", np.zeros((10, 10), np.uint8))
    _, summary = drain(run_export(images, tmp_path / "out", Settings(tile_size=64, overlap=0), masks=masks))
    reasons = dict(summary.failed)
    assert summary.exit_code == 1 and sorted(reasons) == ["img1.tif", "img2.tif"]
    assert "img1.tif has no mask in" in reasons["img1.tif"] and str(masks) in reasons["img1.tif"]
    assert "img2.tif" in reasons["img2.tif"] and "its mask img2.tif is 10 × 10 px" in reasons["img2.tif"]
    assert {t["source"] for t in manifest(tmp_path / "out")["tiles"]} == {"img0.tif"}


def test_box_inside_one_tile(tmp_path):
    boxes = scale_boxes(np.array([3]), np.array([[20 / 256, 30 / 256, 16 / 256, 20 / 256]]), (256, 256))
    grid = TileGrid.for_shape((256, 256), 128, 0)
    lines = [boxes_in_tile(boxes, t, 128, 0.5) for t in grid]
    assert [len(x) for x in lines] == [1, 0, 0, 0]
    assert lines[0][0] == pytest.approx((3, 20 / 128, 30 / 128, 16 / 128, 20 / 128))


def test_box_across_a_border_is_clipped_with_the_visibility_rule():
    # x from 100 to 160 across the border at 128: 28/60 = 47 % in tile 0, 32/60 = 53 % in tile 1
    boxes = scale_boxes(np.array([0]), np.array([[130 / 256, 50 / 256, 60 / 256, 20 / 256]]), (256, 256))
    t0, t1 = Tile(0, 0, 0, 0, 0, 128, 128), Tile(1, 0, 1, 0, 128, 128, 256)
    assert boxes_in_tile(boxes, t0, 128, 0.5) == []
    (line,) = boxes_in_tile(boxes, t1, 128, 0.5)
    assert line == pytest.approx((0, 16 / 128, 50 / 128, 32 / 128, 20 / 128))  # clipped to x 128..160
    (line0,) = boxes_in_tile(boxes, t0, 128, 0.4)
    assert line0 == pytest.approx((0, 114 / 128, 50 / 128, 28 / 128, 20 / 128))


def test_labels_scaled_with_the_image_and_written_per_tile(tmp_path):
    src, labels = tmp_path / "in", tmp_path / "labels"
    src.mkdir()
    labels.mkdir()
    write_imagej(src / "a.tif", microscopy((128, 128)), 0.65)  # ×2 → 256 × 256
    (labels / "a.txt").write_text("2 0.25 0.25 0.125 0.125\n")  # 32 × 32 px box centred at (64, 64) after ×2
    (labels / "classes.txt").write_text("a\nb\nc\n")
    drain(run_export(src, tmp_path / "out", Settings(tile_size=128, overlap=0), labels=labels))
    out = tmp_path / "out"
    texts = {p.name: p.read_text() for p in sorted((out / "labels").iterdir())}
    assert list(texts) == ["a_000.txt", "a_001.txt", "a_002.txt", "a_003.txt"]  # one per image tile
    assert texts["a_000.txt"] == "2 0.500000 0.500000 0.250000 0.250000\n"
    assert texts["a_001.txt"] == texts["a_002.txt"] == texts["a_003.txt"] == ""  # empty files
    assert (out / "classes.txt").read_text() == "a\nb\nc\n"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["a_000.tif", "a_001.tif", "a_002.tif", "a_003.tif"]


def test_malformed_label_line_fails_that_image_with_line_number(dataset, tmp_path):
    images, _, labels = dataset
    (labels / "img1.txt").write_text("0 0.5 0.5 0.2 0.2\n\n1 0.5 0.5 0.2\n")
    _, summary = drain(run_export(images, tmp_path / "out", Settings(tile_size=64, overlap=0), labels=labels))
    reasons = dict(summary.failed)
    assert list(reasons) == ["img1.tif"] and "img1.txt: line 3: expected 5 values" in reasons["img1.tif"]
    with pytest.raises(ImageError, match="line 1: cx, cy, w and h must lie between 0 and 1"):
        (labels / "bad.txt").write_text("0 1.5 0.5 0.2 0.2\n")
        read_yolo(labels / "bad.txt")


def test_filter_with_masks_counts_and_reproducibility(dataset, tmp_path):
    images, masks, _ = dataset
    settings = Settings(tile_size=64, overlap=16, min_foreground=0.05, keep_empty=0.5, seed=7)
    records, summary = drain(run_export(images, tmp_path / "a", settings, masks=masks))
    m = manifest(tmp_path / "a")
    assert records[-1].done == records[-1].total == len(m["tiles"]) + len(m["dropped"])  # dropped tiles count as done
    for source in m["sources"]:
        grid = TileGrid.for_shape(tuple(source["scaled_shape"]), 64, 16)
        full = resize_nearest(tifffile.imread(masks / source["file"]), tuple(source["scaled_shape"]))
        fractions = tile_fractions(full > 0, grid)
        expected = keep_tiles(fractions, 0.05, 0.5, 7, source["file"])
        kept = sorted(t["index"] for t in m["tiles"] if t["source"] == source["file"])
        dropped = sorted(t["index"] for t in m["dropped"] if t["source"] == source["file"])
        assert kept == np.flatnonzero(expected).tolist() and dropped == np.flatnonzero(~expected).tolist()
        n_empty = int((fractions < 0.05).sum())
        assert len(kept) == int((fractions >= 0.05).sum()) + int(np.floor(0.5 * n_empty + 0.5))
    assert summary.tiles_dropped == len(m["dropped"]) > 0
    assert all(t["foreground"] < 0.05 for t in m["dropped"])
    # same seed: the same files; another seed: other empty tiles kept
    drain(run_export(images, tmp_path / "b", settings, masks=masks))
    assert sorted(p.name for p in (tmp_path / "b" / "images").iterdir()) == sorted(p.name for p in (tmp_path / "a" / "images").iterdir())
    drain(run_export(images, tmp_path / "c", Settings(tile_size=64, overlap=16, min_foreground=0.05, keep_empty=0.5, seed=8), masks=masks))
    assert sorted(p.name for p in (tmp_path / "c" / "images").iterdir()) != sorted(p.name for p in (tmp_path / "a" / "images").iterdir())


def test_filter_without_annotations_uses_an_automatic_threshold(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    img = np.full((128, 256), 100, np.uint16) + np.random.default_rng(0).integers(0, 10, (128, 256)).astype(np.uint16)
    img[20:100, 10:110] = 3000  # bright cells only in the left half
    write_imagej(src / "a.tif", img, 0.325)
    _, summary = drain(run_export(src, tmp_path / "out", Settings(tile_size=128, overlap=0, min_foreground=0.1)))
    m = manifest(tmp_path / "out")
    assert [t["index"] for t in m["tiles"]] == [0] and [t["index"] for t in m["dropped"]] == [1]
    assert m["tiles"][0]["foreground"] == pytest.approx(80 * 100 / 128**2, abs=0.01)


def test_filter_with_boxes(tmp_path):
    src, labels = tmp_path / "in", tmp_path / "labels"
    src.mkdir()
    labels.mkdir()
    write_imagej(src / "a.tif", microscopy((128, 256)), 0.325)
    (labels / "a.txt").write_text("0 0.25 0.5 0.25 0.5\n")  # 64 × 64 px in the left tile: 25 % of it
    settings = Settings(tile_size=128, overlap=0, min_foreground=0.2)
    drain(run_export(src, tmp_path / "out", settings, labels=labels))
    m = manifest(tmp_path / "out")
    assert [t["index"] for t in m["tiles"]] == [0] and m["tiles"][0]["foreground"] == pytest.approx(0.25)
    assert sorted(p.name for p in (tmp_path / "out" / "labels").iterdir()) == ["a_000.txt"]


def test_split_by_source_never_splits_one_source(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(10):
        write_imagej(src / f"s{i}.tif", microscopy((100, 100), seed=i), 0.325)
    settings = Settings(tile_size=64, overlap=16, val_fraction=0.3, seed=3)
    _, summary = drain(run_export(src, tmp_path / "out", settings))
    m = manifest(tmp_path / "out")
    assert summary.split == {"train": 7, "val": 3}
    assert sorted(m["split"]["train"] + m["split"]["val"]) == sorted(s["file"] for s in m["sources"])
    assert not set(m["split"]["train"]) & set(m["split"]["val"])
    for t in m["tiles"]:
        side = "val" if t["source"] in m["split"]["val"] else "train"
        assert t["split"] == side and t["file"].startswith(f"{side}/") and (tmp_path / "out" / t["file"]).is_file()
    assert split_sources([s["file"] for s in m["sources"]], 0.3, 3) == {s["file"]: s["split"] for s in m["sources"]}


def test_split_with_masks_and_labels_layout(dataset, tmp_path):
    images, masks, labels = dataset
    settings = Settings(tile_size=64, overlap=0, val_fraction=0.4, seed=0)
    drain(run_export(images, tmp_path / "out", settings, masks=masks, labels=labels))
    out = tmp_path / "out"
    for side in ("train", "val"):
        names = {kind: sorted(p.stem for p in (out / side / kind).iterdir()) for kind in ("images", "masks", "labels")}
        assert names["images"] == names["masks"] == names["labels"] and names["images"]
        assert (out / side / "classes.txt").read_text() == "cell\nnucleus\n"


def test_merge_with_layout_and_dropped_tiles(dataset, tmp_path):
    images, masks, _ = dataset
    settings = Settings(tile_size=64, overlap=16, norm="none", min_foreground=0.05)
    drain(run_export(images, tmp_path / "tiles", settings, masks=masks))
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged"))
    assert summary.exit_code == 0 and len(summary.written) == 3
    m = manifest(tmp_path / "tiles")
    merged = tifffile.imread(tmp_path / "merged" / "img0.tif")
    source = m["sources"][0]
    assert merged.shape == tuple(source["scaled_shape"])
    kept = [t for t in m["tiles"] if t["source"] == "img0.tif"]
    t = kept[0]
    assert np.array_equal(merged[t["y0"] : t["y1"], t["x0"] : t["x1"]], tifffile.imread(tmp_path / "tiles" / t["file"]))


def test_preview_annotated_matches_the_export(dataset):
    images, masks, labels = dataset
    settings = Settings(tile_size=64, overlap=16, min_foreground=0.05, keep_empty=0.5, seed=7)
    p = preview_image(images / "img0.tif", settings, masks=masks, labels=labels)
    assert p.mask.shape[:2] == p.image.shape[:2] == p.plan.scaled_shape
    assert len(p.boxes) == 2 and p.keep.shape == (len(p.plan.grid),) and p.mask_axes == "YX"
    fractions = tile_fractions(p.mask[..., 0] > 0, p.plan.grid)
    assert np.array_equal(p.keep, keep_tiles(fractions, 0.05, 0.5, 7, "img0.tif"))
    with pytest.raises(ImageError, match="no mask"):
        preview_image(images / "img0.tif", settings, masks=labels)


def test_refusals(dataset, tmp_path):
    images, masks, labels = dataset
    with pytest.raises(SettingsError, match="masks folder"):
        drain(run_export(images, tmp_path / "out", Settings(), masks=tmp_path / "nope"))
    with pytest.raises(OutputError, match="inside the masks folder"):
        drain(run_export(images, masks / "out", Settings(), masks=masks))
    with pytest.raises(SettingsError) as err:
        Settings(val_fraction=1.0)
    assert err.value.field == "val_fraction"


def test_cli_training_set(dataset, tmp_path, capsys):
    images, masks, labels = dataset
    code = main(["cut", str(images), str(tmp_path / "out"), "--masks", str(masks), "--labels", str(labels),
                 "--patch-size", "64", "--overlap", "0", "--min-foreground", "0.05", "--keep-empty", "0",
                 "--split", "0.34", "--seed", "1", "--min-box-visibility", "0.3"])
    text = capsys.readouterr().out
    assert code == 0 and "Split by source: 2 images in train/, 1 in val/." in text and "Dropped" in text
    m = manifest(tmp_path / "out")
    assert m["settings"]["min_box_visibility"] == 0.3 and m["split"]["seed"] == 1
    (masks / "img0.tif").unlink()
    assert main(["cut", str(images), str(tmp_path / "out2"), "--masks", str(masks), "-q"]) == 1
    assert "img0.tif has no mask" in capsys.readouterr().err


def test_annotation_folders_may_not_be_the_input_or_inside_the_output(dataset, tmp_path):
    images, masks, labels = dataset
    with pytest.raises(SettingsError, match="masks folder is the input folder"):
        drain(run_export(images, tmp_path / "out", Settings(), masks=images))
    with pytest.raises(SettingsError, match="labels folder is the input folder"):
        drain(run_export(images, tmp_path / "out", Settings(), labels=images))
    with pytest.raises(OutputError, match="inside the export folder"):
        drain(run_export(images, tmp_path, Settings(), masks=masks, overwrite=True))
    assert not (tmp_path / "manifest.json").exists()
