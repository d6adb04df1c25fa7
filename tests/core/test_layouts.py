"""Framework layouts (ultralytics, nnU-Net v2, Cellpose, StarDist, COCO): each builds a small
training set that is checked against the framework's own documented expectations — with the
framework's own checker where it installs without a GPU (pycocotools; ultralytics when present).
The command line is run as ``tilesapp`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

from tilesapp.core.annotations import resize_nearest
from tilesapp.core.errors import SettingsError
from tilesapp.core.export import run_export
from tilesapp.core.merge import run_merge
from tilesapp.core.preview import preview_image
from tilesapp.core.settings import Settings

YOLO = dict(norm="global", bounds=(0, 255), dtype="uint8", format="png")
SMALL = dict(tile_size=64, overlap=16)


def read(path: Path) -> np.ndarray:
    return tifffile.imread(path) if path.suffix == ".tif" else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def instance_mask(shape, seed):
    """Separate rectangles, each its own id (ids are not consecutive, one above 255)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint16)
    ids = [3, 9, 17, 300, 301, 1000]
    for k, label in enumerate(ids):
        y, x = 6 + 22 * (k // 3), 6 + 36 * (k % 3)
        h, w = rng.integers(8, 16), rng.integers(10, 28)
        mask[y : y + h, x : x + w] = label
    return mask


@pytest.fixture
def data(tmp_path):
    """Three images at 0.5 µm (×1.54 at 0.325 µm), instance masks, YOLO labels, QuPath GeoJSON."""
    root = tmp_path / "data"
    images, masks, labels, geo = (root / n for n in ("images", "masks", "labels", "geo"))
    for d in (images, masks, labels, geo):
        d.mkdir(parents=True)
    for i, shape in enumerate([(60, 110), (70, 90), (64, 64)]):
        write_imagej(images / f"img{i}.tif", microscopy(shape, seed=i), 0.5)
        mask = instance_mask(shape, i)
        tifffile.imwrite(masks / f"img{i}.tif", mask)
        features, lines = [], []
        for k, label in enumerate(np.unique(mask)[1:]):
            ys, xs = np.nonzero(mask == label)
            x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
            ring = [[int(x0), int(y0)], [int(x1), int(y0)], [int(x1), int(y1)], [int(x0), int(y1)], [int(x0), int(y0)]]
            name = ("nucleus", "cell")[k % 2]
            features.append({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
                             "properties": {"classification": {"name": name}}})
            lines.append(f"{k % 2} {(x0 + x1) / 2 / shape[1]} {(y0 + y1) / 2 / shape[0]} {(x1 - x0) / shape[1]} "
                         f"{(y1 - y0) / shape[0]}\n")
        (geo / f"img{i}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
        (labels / f"img{i}.txt").write_text("".join(lines))
    (labels / "classes.txt").write_text("cell\nnucleus\n")
    return root


def export(data, out, layout, split=0.0, **kw):
    inputs = {k: data / k for k in ("masks", "labels") if kw.pop(k, False)}
    if kw.pop("geo", False):
        inputs["annotations"] = data / "geo"
    settings = Settings(**{**SMALL, **YOLO, "layout": layout, "val_fraction": split, "seed": 2, **kw})
    _, summary = drain(run_export(data / "images", out, settings, **inputs))
    return summary


# --- ultralytics ------------------------------------------------------------------------------------------
def img2label_path(image: Path) -> Path:
    """ultralytics.data.utils.img2label_paths: the last /images/ becomes /labels/, the suffix .txt."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return Path(sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")


def check_ultralytics(yaml_path: Path) -> dict:
    """ultralytics' check_det_dataset (the documented rules, without downloads) and its label checks."""
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(yaml_path.read_text())
    assert "train" in data and "val" in data and ("names" in data or "nc" in data)
    if "nc" in data:
        assert len(data["names"]) == data["nc"]
    root = Path(data.get("path") or yaml_path.parent)  # no path: the folder of data.yaml
    for key in ("train", "val"):
        folder = (root / data[key]).resolve()
        assert folder.is_dir(), folder
    nc = len(data["names"])
    channels = data.get("channels", 3)
    train = sorted((root / data["train"]).iterdir())
    assert train
    for image in train + sorted((root / data["val"]).iterdir()):
        label = img2label_path(image)
        assert label.is_file(), label
        tile = cv2.imread(str(image), cv2.IMREAD_UNCHANGED)
        assert tile.dtype == np.uint8 and (tile.ndim == 2) == (channels == 1)
        rows = [line.split() for line in label.read_text().splitlines() if line]
        for row in rows:
            assert len(row) == 5
            values = np.array(row, float)
            assert values[0] == int(values[0]) and 0 <= values[0] < nc
            assert values[1:].max() <= 1.01 and values.min() >= -0.01
    try:  # the real checker, when ultralytics is installed
        from ultralytics.data.utils import check_det_dataset
    except ImportError:
        return data
    checked = check_det_dataset(str(yaml_path), autodownload=False)
    assert checked["nc"] == nc and Path(checked["train"]).is_dir()
    return data


def test_ultralytics_data_yaml_is_what_ultralytics_loads(data, tmp_path):
    out = tmp_path / "yolo"
    summary = export(data, out, "ultralytics", split=0.34, labels=True)
    assert summary.exit_code == 0 and summary.split == {"train": 2, "val": 1}
    parsed = check_ultralytics(out / "data.yaml")
    assert parsed["names"] == {0: "cell", 1: "nucleus"} and parsed["channels"] == 1
    assert parsed["train"] == "images/train" and parsed["val"] == "images/val"
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == \
        sorted(p.name.replace(".txt", ".png") for p in (out / "labels" / "val").iterdir())
    assert manifest(out)["layout"] == "ultralytics" and "data.yaml" in manifest(out)["files"]


def test_ultralytics_from_annotations_and_from_instance_masks(data, tmp_path):
    summary = export(data, tmp_path / "a", "ultralytics", geo=True)
    assert summary.exit_code == 0
    parsed = check_ultralytics(tmp_path / "a" / "data.yaml")
    assert parsed["names"] == {0: "cell", 1: "nucleus"} and parsed["val"] == "images/train"  # no split: val = train
    summary = export(data, tmp_path / "m", "ultralytics", masks=True, boxes_from_masks=True)
    assert summary.exit_code == 0
    assert check_ultralytics(tmp_path / "m" / "data.yaml")["names"] == {0: "object"}
    assert not any("masks" in p.parts for p in (tmp_path / "m").rglob("*"))  # masks gave boxes, no files
    # every object of the masks is a box somewhere
    assert sum(t["boxes"] for t in manifest(tmp_path / "m")["tiles"]) >= 18


def test_ultralytics_refuses_16_bit_tiles_and_a_set_without_boxes(data, tmp_path):
    with pytest.raises(SettingsError, match="ultralytics reads images as 8-bit"):
        Settings(layout="ultralytics", dtype="uint16", format="png")
    with pytest.raises(SettingsError, match="--layout ultralytics trains on boxes"):
        export(data, tmp_path / "x", "ultralytics", masks=True)
    assert not (tmp_path / "x").exists()


# --- nnU-Net v2 -----------------------------------------------------------------------------------------------
def check_nnunet(folder: Path) -> dict:
    """nnU-Net v2's dataset format (documentation/dataset_format.md): dataset.json fields,
    imagesTr/{case}_{XXXX}{file_ending} for every channel, labelsTr/{case}{file_ending} with
    consecutive labels from 0, numTraining = the cases."""
    dataset = json.loads((folder / "dataset.json").read_text())
    for key in ("channel_names", "labels", "numTraining", "file_ending"):
        assert key in dataset
    ending = dataset["file_ending"]
    assert ending in (".png", ".tif")  # NaturalImage2DIO: lossless 2D files
    channels = sorted(int(k) for k in dataset["channel_names"])
    assert channels == list(range(len(channels)))
    labels = dataset["labels"]
    assert labels["background"] == 0 and sorted(labels.values()) == list(range(len(labels)))
    cases = {}
    for path in (folder / "imagesTr").iterdir():
        match = re.fullmatch(r"(.+)_(\d{4})" + re.escape(ending), path.name)
        assert match, path.name
        cases.setdefault(match[1], set()).add(int(match[2]))
    assert len(cases) == dataset["numTraining"] > 0
    for case, found in cases.items():
        assert found == set(channels), case  # every case has every channel
        label = folder / "labelsTr" / f"{case}{ending}"
        assert label.is_file()
        seg = read(label)
        image = read(folder / "imagesTr" / f"{case}_0000{ending}")
        assert seg.shape == image.shape[:2] and seg.dtype.kind == "u"
        assert set(np.unique(seg).tolist()) <= set(labels.values())
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == sorted(f"{c}{ending}" for c in cases)
    return dataset


def test_nnunet_dataset_from_annotations_with_the_validation_share_in_imagesTs(data, tmp_path):
    out = tmp_path / "Dataset501_Cells"
    summary = export(data, out, "nnunet", split=0.34, geo=True)
    assert summary.exit_code == 0
    dataset = check_nnunet(out)
    assert dataset["labels"] == {"background": 0, "cell": 1, "nucleus": 2}
    assert dataset["overwrite_image_reader_writer"] == "NaturalImage2DIO" and dataset["file_ending"] == ".png"
    val = [t for t in manifest(out)["tiles"] if t["split"] == "val"]
    assert val and all(t["file"].startswith("imagesTs/") and t["mask"].startswith("labelsTs/") for t in val)
    assert dataset["numTraining"] == len(manifest(out)["tiles"]) - len(val)


def test_nnunet_splits_channels_into_files_and_merge_reads_them_back(tmp_path):
    images = tmp_path / "images"
    masks = tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(2):
        write_imagej(images / f"s{i}.tif", microscopy((50, 70), channels=2, seed=i), 0.325, axes="CYX")
        mask = np.zeros((50, 70), np.uint8)
        mask[10:30, 5:40] = 1
        mask[35:45, 50:65] = 2
        tifffile.imwrite(masks / f"s{i}.tif", mask)
    write_imagej(images / "z_odd.tif", microscopy((50, 70), seed=5), 0.325)  # one channel: not like the first
    tifffile.imwrite(masks / "z_odd.tif", mask)
    out = tmp_path / "Dataset502_Two"
    settings = Settings(tile_size=32, overlap=8, norm="none", dtype="float32", format="tif", layout="nnunet")
    _, summary = drain(run_export(images, out, settings, masks=masks))
    assert [n for n, _ in summary.failed] == ["z_odd.tif"]
    assert "nnU-Net needs the same channels in every case" in summary.failed[0][1]
    dataset = check_nnunet(out)
    assert len(dataset["channel_names"]) == 2 and dataset["labels"] == {"background": 0, "class_1": 1, "class_2": 2}
    assert all(f in manifest(out)["files"] for f in (t["file"].replace("_0000", "_0001") for t in manifest(out)["tiles"]))
    _, merged = drain(run_merge(out, tmp_path / "merged"))
    assert not merged.failed
    for path in merged.written:
        expected = preview_image(images / path.name, settings).image
        np.testing.assert_allclose(tifffile.imread(path), np.moveaxis(expected, -1, 0), rtol=1e-6)  # CYX as cut


def test_nnunet_whole_images_are_written_uncut_and_unpadded(data, tmp_path):
    out = tmp_path / "Dataset503_Whole"
    summary = export(data, out, "nnunet", masks=True, whole_images=True)
    assert summary.exit_code == 0 and summary.tiles_written == 3
    check_nnunet(out)
    m = manifest(out)
    assert m["overlap"] == 0 and m["tile_size"] == max(max(s["scaled_shape"]) for s in m["sources"])
    for source in m["sources"]:
        case = source["tile_stem"]
        image = read(out / "imagesTr" / f"{case}_0000.png")
        assert image.shape == tuple(source["scaled_shape"])  # recalibrated, not cut, not padded
        np.testing.assert_array_equal(read(out / "labelsTr" / f"{case}.png"),
                                      resize_nearest(tifffile.imread(data / "masks" / source["file"]), image.shape))
    _, merged = drain(run_merge(out, tmp_path / "merged"))
    assert not merged.failed and tifffile.imread(merged.written[0]).shape == tuple(m["sources"][0]["scaled_shape"])


def test_nnunet_refuses_lossy_files_and_whole_images_elsewhere():
    with pytest.raises(SettingsError, match="nnU-Net takes lossless files only"):
        Settings(layout="nnunet", dtype="uint8", format="jpg")
    with pytest.raises(SettingsError, match="whole_images is for layouts"):
        Settings(layout="coco", whole_images=True)


# --- Cellpose and StarDist ---------------------------------------------------------------------------------------
def check_ids_preserved(out: Path, data: Path, pairs: list[tuple[str, str]]):
    """Every mask tile is the nearest-neighbour crop of its source's instance mask: ids copied,
    never merged nor invented."""
    m = manifest(out)
    by_file = {t["file"]: t for t in m["tiles"]}
    sources = {s["name"] if "name" in s else s["file"]: s for s in m["sources"]}
    for image, mask in pairs:
        tile = by_file[image]
        source = sources[tile["source"]]
        full = resize_nearest(tifffile.imread(data / "masks" / source["file"]), tuple(source["scaled_shape"]))
        got = read(out / mask)
        assert got.dtype == np.uint16
        np.testing.assert_array_equal(got[: tile["y1"] - tile["y0"], : tile["x1"] - tile["x0"]],
                                      full[tile["y0"]: tile["y1"], tile["x0"]: tile["x1"]])
        assert set(np.unique(got).tolist()) <= {0, 3, 9, 17, 300, 301, 1000}


def test_cellpose_pairs_each_tile_with_its_masks_file_in_train_and_test(data, tmp_path):
    out = tmp_path / "cellpose"
    summary = export(data, out, "cellpose", split=0.34, masks=True, format="tif", dtype="uint16", bounds=(0, 65535))
    assert summary.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "test", "train"]
    pairs = []
    for side in ("train", "test"):
        files = sorted(p.name for p in (out / side).iterdir())
        images = [f for f in files if not f.endswith("_masks.tif")]
        assert images and files == sorted(images + [f.replace(".tif", "_masks.tif") for f in images])
        pairs += [(f"{side}/{f}", f"{side}/{f.replace('.tif', '_masks.tif')}") for f in images]
    check_ids_preserved(out, data, pairs)


def test_stardist_images_and_masks_share_names_and_keep_instance_ids(data, tmp_path):
    out = tmp_path / "stardist"
    summary = export(data, out, "stardist", masks=True, format="tif", dtype="float32", bounds=None)
    assert summary.exit_code == 0
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images == sorted(p.name for p in (out / "masks").iterdir())
    check_ids_preserved(out, data, [(f"images/{n}", f"masks/{n}") for n in images])


def test_instance_layouts_refuse_binary_masks_and_draw_annotations_as_instances(data, tmp_path):
    for path in (data / "masks").iterdir():
        tifffile.imwrite(path, (tifffile.imread(path) > 0).astype(np.uint8) * 255)
    summary = export(data, tmp_path / "bin", "stardist", masks=True)
    assert summary.images_ok == 0 and len(summary.failed) == 3
    assert all("is not an instance mask" in e and "--layout stardist needs every object labelled" in e
               and e.endswith("or use --layout plain or --layout nnunet for class masks.") for _, e in summary.failed)
    # boxes asked of class masks in a layout that takes them: the way out is to drop the boxes
    summary = export(data, tmp_path / "boxes", "nnunet", masks=True, boxes_from_masks=True)
    assert summary.images_ok == 0 and len(summary.failed) == 3
    assert all("--boxes-from-masks needs every object labelled" in e
               and e.endswith("or cut class masks as they are, without --boxes-from-masks.")
               for _, e in summary.failed), summary.failed
    summary = export(data, tmp_path / "geo", "cellpose", geo=True)
    assert summary.exit_code == 0
    tiles = [t for t in manifest(tmp_path / "geo")["tiles"] if t["source"] == "img0.tif"]
    ids = set().union(*(np.unique(read(tmp_path / "geo" / t["mask"])).tolist() for t in tiles))
    assert ids == set(range(7))  # one id per object (six of them), from 1


# --- COCO ---------------------------------------------------------------------------------------------------------
def check_coco(path: Path, images: Path) -> dict:
    """A valid COCO file: unique ids, every annotation's image and category exist, boxes and
    polygons inside their image, image files present; loaded by pycocotools when installed."""
    data = json.loads(path.read_text())
    image_ids = [i["id"] for i in data["images"]]
    assert len(set(image_ids)) == len(image_ids)
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])
    assert len({c["id"] for c in data["categories"]}) == len(data["categories"])
    sizes = {i["id"]: (i["width"], i["height"]) for i in data["images"]}
    categories = {c["id"] for c in data["categories"]}
    for image in data["images"]:
        assert (images / image["file_name"]).is_file()
    for a in data["annotations"]:
        assert a["image_id"] in sizes and a["category_id"] in categories
        width, height = sizes[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width + 1e-6 and y + h <= height + 1e-6
        for polygon in a.get("segmentation", []):
            xy = np.array(polygon).reshape(-1, 2)
            assert len(xy) >= 3 and xy.min() >= 0 and xy[:, 0].max() <= width and xy[:, 1].max() <= height
    try:
        from pycocotools.coco import COCO
    except ImportError:
        return data
    coco = COCO(str(path))
    for a in coco.loadAnns(coco.getAnnIds()):
        if "segmentation" in a:
            assert coco.annToMask(a).sum() > 0
    return data


def test_coco_from_annotations_clips_polygons_to_each_tile(data, tmp_path):
    out = tmp_path / "coco"
    summary = export(data, out, "coco", split=0.34, geo=True, min_box_visibility=0.3)
    assert summary.exit_code == 0
    for side in ("train", "val"):
        coco = check_coco(out / side / "annotations.json", out / side / "images")
        assert [c["name"] for c in coco["categories"]] == ["cell", "nucleus"]
        assert len(coco["images"]) == len(list((out / side / "images").iterdir()))
        assert all("segmentation" in a for a in coco["annotations"])
    m = manifest(out)
    assert not any(p.name == ".objects" for p in out.rglob("*")) and all(t.get("label") is None for t in m["tiles"])
    assert sum(t["boxes"] for t in m["tiles"]) == sum(
        len(json.loads((out / s / "annotations.json").read_text())["annotations"]) for s in ("train", "val"))


def test_coco_from_instance_masks_traces_each_object_and_from_yolo_labels_gives_boxes(data, tmp_path):
    summary = export(data, tmp_path / "m", "coco", masks=True)
    assert summary.exit_code == 0
    coco = check_coco(tmp_path / "m" / "annotations.json", tmp_path / "m" / "images")
    assert coco["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    assert not (tmp_path / "m" / "masks").exists()
    summary = export(data, tmp_path / "y", "coco", labels=True)
    assert summary.exit_code == 0
    coco = check_coco(tmp_path / "y" / "annotations.json", tmp_path / "y" / "images")
    assert coco["annotations"] and not any("segmentation" in a for a in coco["annotations"])


# --- the command line ---------------------------------------------------------------------------------------------
def tilesapp(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "tilesapp", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_cli_builds_a_run_ready_dataset_per_framework(data, tmp_path):
    runs = {
        "ultralytics": ["--annotations", data / "geo", "--preset", "yolo"],
        "nnunet": ["--annotations", data / "geo", "--preset", "yolo", "--split", "0.34"],
        "cellpose": ["--masks", data / "masks", "--format", "tif"],
        "stardist": ["--annotations", data / "geo", "--format", "tif"],
        "coco": ["--annotations", data / "geo", "--preset", "yolo"],
    }
    for layout, options in runs.items():
        out = tmp_path / f"Dataset9{len(layout)}_{layout}"
        done = tilesapp("cut", data / "images", out, "--layout", layout, "--patch-size", 64, "--overlap", 16, "--quiet",
                        *options)
        assert done.returncode == 0, (layout, done.stderr)
        assert done.stderr == "" and manifest(out)["layout"] == layout
    check_ultralytics(tmp_path / "Dataset911_ultralytics" / "data.yaml")
    check_nnunet(tmp_path / "Dataset96_nnunet")
    check_coco(tmp_path / "Dataset94_coco" / "annotations.json", tmp_path / "Dataset94_coco" / "images")


def test_cli_refusals_are_one_sentence_and_write_nothing(data, tmp_path):
    out = tmp_path / "out"
    cases = [
        (["--layout", "nnunet", "--masks", data / "masks", "--preset", "yolo", "--format", "jpg"],
         "tilesapp: error: nnU-Net takes lossless files only; choose .png or .tif for --layout nnunet."),
        (["--layout", "ultralytics", "--preset", "yolo", "--masks", data / "masks"],
         "tilesapp: error: --layout ultralytics trains on boxes: give --labels DIR, --annotations PATH, or instance "
         "masks with --masks DIR --boxes-from-masks."),
        (["--layout", "cellpose", "--whole-images", "--annotations", data / "geo", "--masks", data / "masks"],
         "tilesapp: error: --annotations replaces --masks and --labels: the masks and boxes are drawn from the "
         "annotations; give one or the other."),
        (["--boxes-from-masks"], "tilesapp: error: --boxes-from-masks needs instance masks (--masks DIR) to take boxes from."),
        (["--layout", "coco", "--whole-images"],
         "tilesapp: error: --whole-images is for layouts whose frameworks sample their own patches (nnunet, cellpose, "
         "stardist); --layout coco takes tiles."),
    ]
    for options, message in cases:
        done = tilesapp("cut", data / "images", out, "--quiet", *options)
        assert done.returncode == 2 and done.stderr.strip() == message, done.stderr
        assert not out.exists()


def test_cli_a_bad_annotation_file_fails_its_image_with_exit_code_1(data, tmp_path):
    (data / "geo" / "img1.geojson").write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", '
                                               '"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [NaN, 1], '
                                               '[5, 5]]]}}]}')
    out = tmp_path / "out"
    done = tilesapp("cut", data / "images", out, "--layout", "stardist", "--annotations", data / "geo", "--quiet",
                    "--patch-size", 64, "--overlap", 16)
    assert done.returncode == 1
    assert "img1.tif: img1.geojson: feature 0: a coordinate is NaN or infinite." in done.stderr
    sources = {s["file"]: s for s in manifest(out)["sources"]}
    assert sources["img1.tif"]["status"] == "failed" and sources["img0.tif"]["status"] == "ok"
    assert not any(p.name.startswith("img1_") for p in out.rglob("*"))


def test_class_names_with_path_separators_and_yaml_syntax_stay_names(data, tmp_path):
    hostile = ['../../outside/x', 'a: "b" # c\\d', "Ünïcødé/\\"]
    for path in (data / "geo").iterdir():
        features = json.loads(path.read_text())
        for k, f in enumerate(features["features"]):
            f["properties"]["classification"]["name"] = hostile[k % 3]
        path.write_text(json.dumps(features))
    out = tmp_path / "sets" / "yolo"
    summary = export(data, out, "ultralytics", geo=True)
    assert summary.exit_code == 0
    assert list(check_ultralytics(out / "data.yaml")["names"].values()) == sorted(hostile)
    assert sorted(p.name for p in (tmp_path / "sets").iterdir()) == ["yolo"]  # nothing written beside the export
    assert list(json.loads((out / "classes.json").read_text()))[1:] == sorted(hostile)
