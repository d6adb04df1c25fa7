"""predict: tiny ONNX models built here (identity, a 3×3 convolution, a two-class argmax head,
constant boxes), applied in memory, compared with cutting, running the model on each tile file by
hand and merging."""

import ast
import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
from helpers import drain, microscopy, write_imagej

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tilesapp.core.errors import SettingsError, TilesError  # noqa: E402
from tilesapp.core.export import run_export  # noqa: E402
from tilesapp.core.merge import COCO_NAME, run_merge  # noqa: E402
from tilesapp.core.predict import PredictOptions, run_predict, settings_beside  # noqa: E402
from tilesapp.core.settings import Settings, save_settings  # noqa: E402

SETTINGS = Settings(tile_size=64, overlap=16)  # the UNet preset's normalization: global 0–1 float32


# --- models -----------------------------------------------------------------------------------------
def save(path, nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # read by any onnxruntime of the last years
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def tensor(name, kind, shape):
    return helper.make_tensor_value_info(name, kind, shape)


def identity(path, channels=1, size="H"):
    return save(path, [helper.make_node("Identity", ["x"], ["y"])], [tensor("x", TensorProto.FLOAT, ["N", channels, size, size])],
                [tensor("y", TensorProto.FLOAT, ["N", channels, size, size])])


def conv(path, out_channels=2, seed=0, head=None):
    """A 3×3 convolution (1 → ``out_channels``, zero padding), optionally followed by an ArgMax head."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.normal(size=(out_channels, 1, 3, 3)).astype(np.float32), "w")
    bias = numpy_helper.from_array(rng.normal(size=out_channels).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if head else "y"], pads=[1, 1, 1, 1])]
    output = tensor("y", TensorProto.FLOAT, ["N", out_channels, "H", "W"])
    if head == "argmax":
        nodes.append(helper.make_node("ArgMax", ["c"], ["y"], axis=1, keepdims=1))
        output = tensor("y", TensorProto.INT64, ["N", 1, "H", "W"])
    return save(path, nodes, [tensor("x", TensorProto.FLOAT, ["N", 1, "H", "W"])], [output], [weights, bias])


def constant_boxes(path, boxes):
    """Whatever the tile, the same boxes (x0 y0 x1 y1 score class, tile pixels): (N, M, 6)."""
    table = numpy_helper.from_array(np.array([boxes], np.float32), "table")
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    shape = numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape")
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Reshape", ["z", "shape"], ["r"]),
             helper.make_node("Add", ["r", "table"], ["y"])]
    return save(path, nodes, [tensor("x", TensorProto.FLOAT, ["N", 1, 64, 64])],
                [tensor("y", TensorProto.FLOAT, ["N", len(boxes), 6])], [table, zero, shape])


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    write_imagej(folder / "a.tif", microscopy((120, 90), seed=1), 0.65)  # recalibrated ×2: 240 × 180
    write_imagej(folder / "b.tif", microscopy((70, 150), seed=2), 0.5)
    return folder


# --- the reference: cut, the model per tile file, merge ------------------------------------------
def by_hand(images, tmp_path, model, settings=SETTINGS, ids=False, **merge):
    drain(run_export(images, tmp_path / "tiles", settings))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    for t in manifest["tiles"]:
        path = tmp_path / "tiles" / t["file"]
        out = session.run(None, {"x": tifffile.imread(path).astype(np.float32)[None, None]})[0][0]
        tifffile.imwrite(path, out.astype(np.uint16) if ids else out, photometric="minisblack")
    _, summary = drain(run_merge(tmp_path / "tiles", tmp_path / "merged", **merge))
    assert not summary.failed
    return {p.name: tifffile.imread(p) for p in summary.written}


def predicted(images, out, model, settings=SETTINGS, **options):
    _, summary = drain(run_predict(images, out, model, settings, PredictOptions(**options)))
    assert not summary.failed, summary.failed
    return {p.name: tifffile.imread(p) for p in summary.written}, summary


def test_identity_gives_the_cut_images_back_at_their_own_pixel_size(images, tmp_path):
    model = identity(tmp_path / "identity.onnx")
    expected = by_hand(images, tmp_path, model, blend="gradient", restore_scale=True)
    got, summary = predicted(images, tmp_path / "out", model)
    assert summary.kind == "probabilities" and sorted(got) == ["a.tif", "b.tif"]
    assert got["a.tif"].shape == (120, 90) and got["b.tif"].shape == (70, 150)  # the sources' size
    for name in got:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif"]  # nothing but results


@pytest.mark.parametrize("blend", ["flat", "hann"])
def test_a_convolution_blended_equals_cutting_running_and_merging(images, tmp_path, blend):
    model = conv(tmp_path / "conv.onnx")
    expected = by_hand(images, tmp_path, model, blend=blend)
    got, _ = predicted(images, tmp_path / "out", model, blend=blend, restore_scale=False)
    for name in got:
        assert got[name].shape == expected[name].shape == (2, *expected[name].shape[1:])
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-5)


def test_a_two_class_argmax_head_is_voted_like_the_tiles(images, tmp_path):
    model = conv(tmp_path / "argmax.onnx", head="argmax")
    expected = by_hand(images, tmp_path, model, ids=True, combine="vote", restore_scale=True)
    got, summary = predicted(images, tmp_path / "out", model)
    assert summary.kind == "labels"
    for name in got:
        assert got[name].dtype == np.uint16 and set(np.unique(got[name])) <= {0, 1}
        np.testing.assert_array_equal(got[name], expected[name])


def test_logits_are_blended_then_the_largest_channel_taken(images, tmp_path):
    model = conv(tmp_path / "logits.onnx", out_channels=3, seed=4)
    blended = by_hand(images, tmp_path, model, blend="gradient")
    got, summary = predicted(images, tmp_path / "out", model, model_output="logits", restore_scale=False)
    for name in got:
        assert got[name].dtype == np.uint8
        np.testing.assert_array_equal(got[name], np.argmax(blended[name], axis=0))


def test_boxes_of_a_detector_are_merged_like_merge_boxes(images, tmp_path):
    model = constant_boxes(tmp_path / "boxes.onnx", [[10, 12, 20, 30, 0.9, 0], [40, 50, 64, 64, 0.8, 1]])
    drain(run_export(images, tmp_path / "tiles", SETTINGS))
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    (tmp_path / "pred").mkdir()
    for t in manifest["tiles"]:  # the same boxes in YOLO form, tile by tile
        (tmp_path / "pred" / f"{Path(t['file']).stem}.txt").write_text(
            "0 0.234375 0.328125 0.156250 0.281250 0.9\n1 0.812500 0.890625 0.375000 0.218750 0.8\n")
    _, merged = drain(run_merge(tmp_path / "tiles", tmp_path / "merged", boxes=tmp_path / "pred", restore_scale=True))
    _, summary = drain(run_predict(images, tmp_path / "out", model, SETTINGS))
    assert summary.kind == "boxes" and not summary.failed
    for path in merged.written:
        assert (tmp_path / "out" / path.name).read_text() == path.read_text()
    assert summary.counts == merged.counts
    coco = json.loads((tmp_path / "out" / COCO_NAME).read_text())
    assert coco["annotations"] == json.loads((tmp_path / "merged" / COCO_NAME).read_text())["annotations"]


def test_in_bands_under_the_memory_limit_the_result_is_the_same(tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    write_imagej(folder / "big.tif", microscopy((3000, 2600), seed=5), 0.2)  # 45 MB to cut whole, shrunk to 1846 × 1600
    model = conv(tmp_path / "conv.onnx")
    settings = Settings(tile_size=128, overlap=32, target_pixel_size=0.325)
    whole, _ = predicted(folder, tmp_path / "whole", model, settings, batch_size=16)
    # 32 MB for the cut and 32 MB for the merge (a blend of two channels: 118 MB whole): both in bands
    banded, _ = predicted(folder, tmp_path / "banded", model, replace(settings, memory_limit=64 << 20), batch_size=16)
    assert whole["big.tif"].shape == (2, 3000, 2600)
    assert banded["big.tif"].shape == (3000, 2600, 2)  # a streamed BigTIFF holds channels as samples
    np.testing.assert_allclose(banded["big.tif"], np.moveaxis(whole["big.tif"], 0, -1), rtol=1e-4, atol=1e-4)
    with tifffile.TiffFile(tmp_path / "banded" / "big.tif") as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled


def test_cancel_stops_between_tiles_and_writes_nothing_half_done(images, tmp_path):
    cancel = threading.Event()
    gen = run_predict(images, tmp_path / "out", identity(tmp_path / "m.onnx"), SETTINGS, PredictOptions(batch_size=1),
                      cancel=cancel)
    summary = None
    try:
        while True:
            if next(gen).done >= 1:
                cancel.set()
    except StopIteration as stop:
        summary = stop.value
    # images finished before the cancel landed are whole files; the rest is not written at all
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == sorted(p.name for p in summary.written) and not any(n.startswith(".") for n in written)
    for path in summary.written:
        assert tifffile.imread(path).size > 0
    assert summary.cancelled or len(summary.written) == len(list(images.glob("*.tif")))


def test_the_model_input_is_checked_against_the_settings(images, tmp_path):
    fixed = identity(tmp_path / "fixed.onnx", size=128)
    with pytest.raises(SettingsError, match=r"fixed.onnx takes 128 × 128 px tiles but the settings cut 64 px tiles"):
        drain(run_predict(images, tmp_path / "out", fixed, SETTINGS))
    assert not (tmp_path / "out").exists()
    rgb = identity(tmp_path / "rgb.onnx", channels=3)
    _, summary = drain(run_predict(images, tmp_path / "out", rgb, SETTINGS))
    assert summary.exit_code == 1 and not summary.written
    assert summary.failed[0] == ("a.tif", "a.tif has 1 channel but rgb.onnx takes 3; predict images like those it was "
                                          "trained on.")
    rgb_images = tmp_path / "rgb-images"
    rgb_images.mkdir()
    write_imagej(rgb_images / "two.tif", np.stack([microscopy((64, 64), seed=s) for s in (1, 2)]), 0.65, axes="CYX")
    _, summary = drain(run_predict(rgb_images, tmp_path / "out2", identity(tmp_path / "one.onnx"), SETTINGS))
    assert summary.failed[0] == ("two.tif", "two.tif has 2 channels but one.onnx takes 1; keep 1 of them with --channels, "
                                            "or predict images like those it was trained on.")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(SettingsError, match="junk.onnx cannot be loaded as an ONNX model"):
        drain(run_predict(images, tmp_path / "out2", tmp_path / "junk.onnx", SETTINGS))


def test_without_onnxruntime_the_message_says_what_to_install(images, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(TilesError, match=r'pip install "tilesapp\[predict\]"'):
        drain(run_predict(images, tmp_path / "out", identity(tmp_path / "m.onnx"), SETTINGS))


def test_only_predict_imports_onnxruntime():
    package = Path(__file__).resolve().parents[2] / "tilesapp"
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] in ("onnxruntime", "onnx") for n in names):
                found.append(path.name)
    assert found == ["predict.py"]


# --- the command line -------------------------------------------------------------------------------
def tilesapp(*args):
    return subprocess.run([sys.executable, "-m", "tilesapp", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_cli_predict_takes_the_settings_saved_beside_the_model(images, tmp_path):
    model = conv(tmp_path / "unet.onnx", head="argmax")
    beside = settings_beside(model)
    save_settings(SETTINGS, beside)
    data = json.loads(beside.read_text())
    data["predict"] = {"blend": "hann"}
    beside.write_text(json.dumps(data))
    run = tilesapp("predict", images, tmp_path / "out", "--model", model)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert f"unet.onnx (labels, CPUExecutionProvider), settings from {beside}." in run.stdout
    assert "Wrote 2 results to" in run.stdout
    expected = by_hand(images, tmp_path, model, ids=True, combine="vote", blend="hann", restore_scale=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "a.tif"), expected["a.tif"])


@pytest.mark.parametrize("args, code, words", [
    (["--tile-size", "256"], 2, "takes 64 × 64 px tiles but the settings cut 256 px tiles; set --tile-size 64"),
    (["--batch-size", "0"], 2, "--batch-size must be a whole number from 1 to 1024"),
    (["--input-scale", "1/0"], 2, "expected a number or a fraction such as 1/255"),
    (["--model-output", "boxes"], 2, "cannot merge"),
])
def test_cli_predict_refuses_bad_settings_with_one_sentence(images, tmp_path, args, code, words):
    model = identity(tmp_path / "m.onnx", size=64)
    run = tilesapp("predict", images, tmp_path / "out", "--model", model, "--tile-size", 64, "--overlap", 16, *args)
    assert run.returncode == code and words in run.stderr.strip().splitlines()[-1], run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "out").exists()


def test_cli_predict_a_missing_model_and_a_failing_image(images, tmp_path):
    run = tilesapp("predict", images, tmp_path / "out", "--model", tmp_path / "none.onnx")
    assert run.returncode == 2 and "--model" in run.stderr and "is not a file" in run.stderr
    (images / "broken.tif").write_bytes(b"II*\x00junk")
    run = tilesapp("predict", images, tmp_path / "out", "--model", identity(tmp_path / "m.onnx"), "--tile-size", 64,
                   "--overlap", 16)
    assert run.returncode == 1 and "Failed: broken.tif" in run.stderr and "Traceback" not in run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif"]


def test_cli_predict_sends_no_usage_reports(images, tmp_path):
    """onnxruntime 1.29+ reports to Microsoft from its import on and keeps a device id in the
    home folder, unless ORT_DISABLE_TELEMETRY says no: predict says no (a user's own setting wins)."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), USERPROFILE=str(home))
    run = subprocess.run([sys.executable, "-m", "tilesapp", "predict", str(images), str(tmp_path / "out"), "--model",
                          str(identity(tmp_path / "m.onnx")), "--tile-size", "64", "--overlap", "16"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.tif", "b.tif"]
    left = [str(p.relative_to(home)) for p in home.rglob("*") if "icrosoft" in str(p) or "onnxruntime" in str(p)]
    assert left == []
