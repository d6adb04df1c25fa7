"""Boxes predicted per tile, merged into whole-image boxes: each object found by several
overlapping tiles (whole in some, cut by the edges of others) comes back once, within a pixel."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import drain, write_imagej

from tilesapp.core.boxes import PlacedBoxes, merge_boxes, place_boxes, read_predictions, shared_iou
from tilesapp.core.errors import ImageError, SettingsError
from tilesapp.core.export import run_export
from tilesapp.core.geometry import Tile
from tilesapp.core.merge import COCO_NAME, run_merge
from tilesapp.core.settings import Settings

GRIDS = [(64, 16, (150, 230)), (64, 32, (97, 200)), (100, 40, (333, 251))]  # last tiles shifted back


def cut(tmp_path, shapes, tile_size, overlap, pixel_size=None):
    """A tile folder of blank images ``{name: shape}`` (recalibrated from ``pixel_size`` µm to
    0.325 µm when given, else not at all)."""
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    for name, shape in shapes.items():
        if pixel_size:
            write_imagej(src / name, np.zeros(shape, np.uint16), pixel_size)
        else:
            tifffile.imwrite(src / name, np.zeros(shape, np.uint16))
    settings = Settings(tile_size=tile_size, overlap=overlap, calibrate=bool(pixel_size), norm="none", dtype="uint16")
    drain(run_export(src, tmp_path / "tiles", settings))
    return tmp_path / "tiles", json.loads((tmp_path / "tiles" / "manifest.json").read_text())


def truth_boxes(shape, size, seed=0):
    """(class, x0, y0, x1, y1) boxes about ``size`` px on a jittered grid, apart from each other."""
    rng = np.random.default_rng(seed)
    boxes = []
    step = size + 6
    for y in range(2, shape[0] - step, step):
        for x in range(2, shape[1] - step, step):
            if rng.random() < 0.7:
                w, h = rng.uniform(0.6, 1.0, 2) * size
                x0, y0 = x + rng.uniform(0, size - w), y + rng.uniform(0, size - h)
                boxes.append((int(rng.integers(0, 3)), x0, y0, x0 + w, y0 + h))
    return boxes


def detector(boxes, tile_size, noise=0.25, seed=1):
    """Per tile, the part of every box it sees (a cut box ends at the tile's edge), a little
    noisy; cut boxes get the higher confidences, to be sure whole ones win by position alone."""
    rng = np.random.default_rng(seed)

    def lines(t):
        out = []
        for cls, x0, y0, x1, y1 in boxes:
            vx0, vy0, vx1, vy1 = max(x0, t["x0"]), max(y0, t["y0"]), min(x1, t["x1"]), min(y1, t["y1"])
            if vx1 - vx0 < 1 or vy1 - vy0 < 1:
                continue
            whole = (vx0, vy0, vx1, vy1) == (x0, y0, x1, y1)
            vx0, vy0, vx1, vy1 = np.array([vx0, vy0, vx1, vy1]) + rng.uniform(-noise, noise, 4) * [
                vx0 > t["x0"], vy0 > t["y0"], vx1 < t["x1"], vy1 < t["y1"]]  # edges of the tile stay exact
            conf = rng.uniform(0.5, 0.8) if whole else rng.uniform(0.85, 0.99)
            out.append(f"{cls} {((vx0 + vx1) / 2 - t['x0']) / tile_size:.7f} {((vy0 + vy1) / 2 - t['y0']) / tile_size:.7f} "
                       f"{(vx1 - vx0) / tile_size:.7f} {(vy1 - vy0) / tile_size:.7f} {conf:.4f}")
        return out

    return lines


def write_predictions(folder: Path, manifest, source, lines):
    """One <tile stem>.txt per tile of ``source`` that has a box (none for the others, as YOLO)."""
    folder.mkdir(exist_ok=True)
    for t in manifest["tiles"]:
        if t["source"] == source:
            text = lines(t)
            if text:
                (folder / f"{Path(t['file']).stem}.txt").write_text("\n".join(text) + "\n")


def read_yolo_boxes(path: Path, shape):
    rows = np.loadtxt(path, ndmin=2)
    cls, cx, cy, w, h, conf = rows.T
    h_img, w_img = shape
    return cls, np.stack([(cx - w / 2) * w_img, (cy - h / 2) * h_img, (cx + w / 2) * w_img, (cy + h / 2) * h_img], 1), conf


def assert_one_box_each(truth, classes, xyxy, within=1.0):
    assert len(xyxy) == len(truth)
    found = set()
    for cls, *box in truth:
        err = np.abs(xyxy - np.array(box)).max(axis=1)
        best = int(np.argmin(err))
        assert err[best] < within and classes[best] == cls, (box, xyxy[best], err[best])
        found.add(best)
    assert len(found) == len(truth)


@pytest.mark.parametrize("tile_size, overlap, shape", GRIDS)
@pytest.mark.parametrize("fusion", ["nms", "wbf"])
def test_boxes_duplicated_across_overlaps_come_back_once_within_a_pixel(tmp_path, tile_size, overlap, shape, fusion):
    tiles, manifest = cut(tmp_path, {"a.tif": shape}, tile_size, overlap)
    truth = truth_boxes(shape, overlap - 4)  # whole in some tile, cut by the edges of others
    write_predictions(tmp_path / "pred", manifest, "a.tif", detector(truth, tile_size))
    _, summary = drain(run_merge(tiles, tmp_path / "out", boxes=tmp_path / "pred", box_fusion=fusion))
    assert summary.exit_code == 0 and [p.name for p in summary.written] == ["a.txt"]
    counts = summary.counts["a.tif"]
    assert counts["boxes"] == len(truth) < counts["boxes_in"]  # duplicates were there, and went
    classes, xyxy, conf = read_yolo_boxes(tmp_path / "out" / "a.txt", shape)
    assert_one_box_each(truth, classes, xyxy)
    if fusion == "nms":
        assert conf.max() <= 0.8  # the whole boxes were kept, although cut ones were more confident
    else:
        assert 0.5 <= conf.min() and conf.max() <= 0.99  # the mean of each group


@pytest.mark.parametrize("fusion", ["nms", "wbf"])
def test_boxes_larger_than_the_overlap_are_rebuilt_from_their_cut_parts(tmp_path, fusion):
    shape = (64, 230)  # one row of tiles: 0, 48, 96, 144, 166
    tiles, manifest = cut(tmp_path, {"a.tif": shape}, 64, 16)
    truth = [(1, 30.0, 10.0, 100.0, 40.0), (2, 150.5, 20.0, 220.25, 50.0)]  # wider than any overlap: cut everywhere
    write_predictions(tmp_path / "pred", manifest, "a.tif", detector(truth, 64, noise=0))
    _, summary = drain(run_merge(tiles, tmp_path / "out", boxes=tmp_path / "pred", box_fusion=fusion))
    classes, xyxy, _ = read_yolo_boxes(tmp_path / "out" / "a.txt", shape)
    assert_one_box_each(truth, classes, xyxy, within=0.01)


def test_restored_boxes_and_the_coco_file(tmp_path):
    shapes = {"a.tif": (80, 120), "b.tif": (70, 50)}
    tiles, manifest = cut(tmp_path, shapes, 64, 24, pixel_size=0.65)  # recalibrated ×2
    scaled = {s["file"]: tuple(s["scaled_shape"]) for s in manifest["sources"]}
    truth = {name: truth_boxes(scaled[name], 18, seed=k) for k, name in enumerate(shapes)}
    for name in shapes:
        write_predictions(tmp_path / "pred", manifest, name, detector(truth[name], 64))
    (tmp_path / "pred" / "classes.txt").write_text("cell\nnucleus\ndebris\n")
    _, summary = drain(run_merge(tiles, tmp_path / "out", boxes=tmp_path / "pred", restore_scale=True))
    assert summary.exit_code == 0
    coco = json.loads((tmp_path / "out" / COCO_NAME).read_text())
    assert [c["name"] for c in coco["categories"]] == ["cell", "nucleus", "debris"]
    assert [(i["file_name"], i["height"], i["width"]) for i in coco["images"]] == [("a.tif", 80, 120), ("b.tif", 70, 50)]
    assert (tmp_path / "out" / "classes.txt").read_text() == "cell\nnucleus\ndebris\n"
    for image in coco["images"]:
        name = image["file_name"]
        found = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
        xyxy = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in found)])
        original = [(cls, *(np.array(box) / 2)) for cls, *box in truth[name]]  # back at 0.65 µm
        assert_one_box_each(original, np.array([a["category_id"] - 1 for a in found]), xyxy, within=0.5)
        # the YOLO file is normalized to the image: the same at any pixel size
        classes, yolo_xyxy, _ = read_yolo_boxes(tmp_path / "out" / f"{Path(name).stem}.txt", shapes[name])
        assert_one_box_each(original, classes, yolo_xyxy, within=0.5)


@pytest.mark.parametrize("line, problem", [
    ("0 0.5 0.5 0.1", "found 4 values"),
    ("0 0.5 nan 0.1 0.1", "finite"),
    ("0 0.5 0.5 -0.1 0.1", "greater than 0"),
    ("0 1.7 0.5 0.1 0.1", "outside the tile"),
    ("0 0.5 0.5 0.1 0.1 1.5", "confidence"),
    ("1.5 0.5 0.5 0.1 0.1", "class"),
    ("cat 0.5 0.5 0.1 0.1", "numbers"),
])
def test_a_hostile_prediction_file_fails_its_source_with_file_and_line(tmp_path, line, problem):
    tiles, manifest = cut(tmp_path, {"a.tif": (64, 112), "b.tif": (64, 64)}, 64, 16)
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "a_001.txt").write_text(f"0 0.5 0.5 0.2 0.2 0.9\n\n{line}\n")
    (pred / "b_000.txt").write_text("2 0.5 0.5 0.2 0.2\n")
    _, summary = drain(run_merge(tiles, tmp_path / "out", boxes=pred))
    assert summary.exit_code == 1 and summary.failed[0][0] == "a.tif"
    assert summary.failed[0][1].startswith("a.tif: a_001.txt: line 3: ") and problem in summary.failed[0][1]
    assert [p.name for p in summary.written] == ["b.txt"]
    assert (tmp_path / "out" / "b.txt").read_text() == "2 0.500000 0.500000 0.200000 0.200000 1.00000\n"
    assert not (tmp_path / "out" / "a.txt").exists()


def test_a_prediction_folder_that_names_no_tile_is_refused(tmp_path):
    tiles, _ = cut(tmp_path, {"a.tif": (64, 112)}, 64, 16)
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "image_7.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with pytest.raises(SettingsError, match="named like a tile"):
        drain(run_merge(tiles, tmp_path / "out", boxes=tmp_path / "pred"))
    assert not (tmp_path / "out").exists()


def test_shared_iou_compares_boxes_where_both_tiles_see():
    tiles = np.array([[0, 0, 64, 64], [48, 0, 112, 64]], float)
    cut_here = np.array([[False, False, True, False], [False] * 4])
    whole, part = [50, 10, 70, 30], [50, 10, 64, 30]  # the first tile sees 14 of its 20 px
    boxes = PlacedBoxes(np.zeros(2, int), np.array([part, whole], float), np.array([0.9, 0.6]), tiles, cut_here)
    assert shared_iou(boxes, 0, np.array([1]))[0] == pytest.approx(1.0)
    merged = merge_boxes(boxes)
    assert len(merged) == 1 and merged.xyxy[0].tolist() == whole and merged.conf[0] == 0.6


def test_place_boxes_clips_to_the_image_and_flags_inner_edges_only():
    tile = Tile(1, 0, 1, 0, 36, 50, 100, pad_y=14)  # the last column of a 50 × 100 image, padded below
    rows = read_rows(["0 0.05 0.5 0.1 0.2", "1 0.9 0.75 0.1 0.1", "2 0.5 0.98 0.2 0.04"])
    placed = place_boxes(rows, tile, 64, (50, 100))
    assert placed.classes.tolist() == [0, 1]  # the third box lies in the padding
    assert placed.cut.tolist() == [[True, False, False, False], [False, False, False, False]]
    assert placed.xyxy[1].tolist() == pytest.approx([36 + 54.4, 44.8, 36 + 60.8, 50])  # clipped to the image


def read_rows(lines):
    return np.array([[float(v) for v in line.split()] + [1.0] for line in lines])


def test_read_predictions_reads_optional_confidence(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n3 0.2 0.3 0.05 0.05 0.42\n")
    assert read_predictions(path).tolist() == [[0, 0.5, 0.5, 0.1, 0.1, 1.0], [3, 0.2, 0.3, 0.05, 0.05, 0.42]]
    path.write_text("0 0.5 0.5 0.1 0.1 inf\n")
    with pytest.raises(ImageError, match="t.txt: line 1"):
        read_predictions(path)


def tilesapp(*args):
    """The command as users run it: exit code, stdout, stderr."""
    return subprocess.run([sys.executable, "-m", "tilesapp", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_merges_boxes_and_names_a_hostile_line(tmp_path):
    shape = (150, 230)
    tiles, manifest = cut(tmp_path, {"a.tif": shape, "b.tif": (64, 112)}, 64, 16)
    truth = truth_boxes(shape, 12)
    write_predictions(tmp_path / "pred", manifest, "a.tif", detector(truth, 64))
    run = tilesapp("merge", tiles, tmp_path / "out", "--boxes", tmp_path / "pred", "--box-fusion", "wbf")
    assert run.returncode == 0, run.stderr
    assert "Wrote 2 box files to" in run.stdout and "and coco.json." in run.stdout
    assert f"per-tile boxes merged into {len(truth)}." in run.stdout
    assert (tmp_path / "out" / "b.txt").read_text() == ""  # no tile of b has a detection
    (tmp_path / "pred" / "b_001.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 -1 0.1\n")
    run = tilesapp("merge", tiles, tmp_path / "out2", "--boxes", tmp_path / "pred")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "Failed: b.tif: b_001.txt: line 2: w and h must be greater than 0" in run.stderr
