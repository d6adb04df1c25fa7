"""Merge modes on synthetic predictions whose right answer is known: each tile's "prediction"
is cut from a ground truth, made worse where a model sees least (near the tile's inner edges),
written over the tile file; the merge must give the ground truth back."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tifffile
from helpers import drain

from tilesapp.core.combine import blend_window
from tilesapp.core.errors import SettingsError
from tilesapp.core.export import run_export
from tilesapp.core.geometry import TileGrid
from tilesapp.core.merge import run_merge
from tilesapp.core.settings import Settings

#: (tile size, overlap, image shape): every grid ends with a tile shifted back inside the image.
GRIDS = [(64, 16, (150, 230)), (64, 32, (97, 200)), (100, 40, (333, 251))]
WRONG = 99  # what a tile predicts near its inner edges


def cut(tmp_path, shape, tile_size, overlap, name="a.tif"):
    """A tile folder of a blank image (no calibration, no normalization) and its manifest."""
    src = tmp_path / "in"
    src.mkdir(exist_ok=True)
    tifffile.imwrite(src / name, np.zeros(shape, np.uint16))
    settings = Settings(tile_size=tile_size, overlap=overlap, calibrate=False, norm="none", dtype="uint16")
    drain(run_export(src, tmp_path / "tiles", settings))
    return tmp_path / "tiles", json.loads((tmp_path / "tiles" / "manifest.json").read_text())


@pytest.mark.parametrize("tile_size, overlap, shape", GRIDS)
def test_each_grid_ends_with_tiles_shifted_back(tile_size, overlap, shape):
    grid = TileGrid.for_shape(shape, tile_size, overlap)
    for starts in (grid.row_starts, grid.col_starts):
        assert starts[-1] - starts[-2] < tile_size - overlap


def crop(truth, t, tile_size):
    """The tile ``t`` of a manifest cut from ``truth``, padded with zeros to a tile."""
    out = np.zeros((tile_size, tile_size), truth.dtype)
    out[: t["y1"] - t["y0"], : t["x1"] - t["x0"]] = truth[t["y0"] : t["y1"], t["x0"] : t["x1"]]
    return out


def inner_edges(t, shape):
    """(top, left, bottom, right): which edges of tile ``t`` lie inside the image."""
    return t["y0"] > 0, t["x0"] > 0, t["y1"] < shape[0], t["x1"] < shape[1]


def predict(tiles, manifest, model):
    """Write ``model(tile record)`` over every tile file."""
    for t in manifest["tiles"]:
        tifffile.imwrite(tiles / t["file"], model(t))


def merge(tiles, out, **kwargs):
    _, summary = drain(run_merge(tiles, out, **kwargs))
    assert not summary.failed, summary.failed
    return tifffile.imread(summary.written[0]), summary


# --- vote -----------------------------------------------------------------------------------------
def class_map(shape, grid):
    """Classes 1..9 with boundaries in the middle of the first and of the last overlap (the
    shifted-back tile's), along both axes."""
    def boundaries(starts):
        first = starts[1] + (starts[0] + grid.tile_size - starts[1]) // 2
        last = starts[-1] + (starts[-2] + grid.tile_size - starts[-1]) // 2
        return first, last

    yy, xx = np.mgrid[: shape[0], : shape[1]]
    (y1, y2), (x1, x2) = boundaries(grid.row_starts), boundaries(grid.col_starts)
    return (1 + (xx >= x1) + (xx >= x2) + 3 * ((yy >= y1) + (yy >= y2))).astype(np.uint8)


def edge_errors(truth, shape, tile_size, overlap):
    """A model right everywhere but within overlap/8 px of its tile's inner edges."""
    margin = max(1, overlap // 8)

    def model(t):
        pred = crop(truth, t, tile_size)
        h, w = t["y1"] - t["y0"], t["x1"] - t["x0"]
        top, left, bottom, right = inner_edges(t, shape)
        for on, part in ((top, np.s_[:margin, :w]), (left, np.s_[:h, :margin]),
                         (bottom, np.s_[h - margin : h, :w]), (right, np.s_[:h, w - margin : w])):
            if on:
                pred[part] = WRONG
        return pred

    return model


@pytest.mark.parametrize("tile_size, overlap, shape", GRIDS)
@pytest.mark.parametrize("window", ["gradient", "hann"])
def test_vote_returns_a_class_map_exactly_where_blend_does_not(tmp_path, tile_size, overlap, shape, window):
    tiles, manifest = cut(tmp_path, shape, tile_size, overlap)
    truth = class_map(shape, TileGrid.for_shape(shape, tile_size, overlap))
    predict(tiles, manifest, edge_errors(truth, shape, tile_size, overlap))
    voted, _ = merge(tiles, tmp_path / "vote", combine="vote", blend=window)
    assert voted.dtype == np.uint8
    np.testing.assert_array_equal(voted, truth)
    blended, _ = merge(tiles, tmp_path / "blend", combine="blend")
    assert not np.array_equal(blended, truth)
    assert set(np.unique(blended)) - set(range(1, 10)) - {WRONG}  # averaged ids: classes no tile predicted


def test_vote_is_the_default_gradient_and_ties_go_to_the_smallest_class(tmp_path):
    tiles, manifest = cut(tmp_path, (64, 112), 64, 16)  # two tiles side by side, overlap [48, 64)
    predict(tiles, manifest, lambda t: np.full((64, 64), 7 if t["index"] == 0 else 3, np.uint8))
    flat, _ = merge(tiles, tmp_path / "flat", combine="vote", blend="flat")
    assert (flat[:, :48] == 7).all() and (flat[:, 48:64] == 3).all() and (flat[:, 64:] == 3).all()  # a tie: 3 < 7
    graded, _ = merge(tiles, tmp_path / "graded", combine="vote")  # gradient: the nearer tile's centre wins
    assert (graded[:, :56] == 7).all() and (graded[:, 56:] == 3).all()


def test_vote_of_float_tiles_and_its_restored_scale_keep_only_predicted_classes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", np.zeros((90, 130), np.uint16), imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"unit": "um"})
    drain(run_export(src, tmp_path / "tiles", Settings(tile_size=64, overlap=16, norm="none", dtype="uint16")))
    manifest = json.loads((tmp_path / "tiles" / "manifest.json").read_text())
    for t in manifest["tiles"]:  # a model at half resolution writing float class ids
        tifffile.imwrite(tmp_path / "tiles" / t["file"], np.where(np.arange(32) < 16, 2.0, 5.0)[None].repeat(32, 0)
                         .astype(np.float32) + (t["index"] % 2))
    voted, summary = merge(tmp_path / "tiles", tmp_path / "vote", combine="vote", restore_scale=True)
    assert voted.shape == (90, 130) and set(np.unique(voted)) <= {2.0, 3.0, 5.0, 6.0}


def test_vote_refuses_more_classes_than_the_memory_limit_holds(tmp_path):
    tiles, manifest = cut(tmp_path, (600, 4000), 256, 64)
    rng = np.random.default_rng(0)
    predict(tiles, manifest, lambda t: rng.integers(0, 400, (256, 256)).astype(np.uint16))
    _, summary = drain(run_merge(tiles, tmp_path / "out", combine="vote", memory_limit=64 << 20))
    assert summary.exit_code == 1 and not summary.written
    message = summary.failed[0][1]
    assert "classes" in message and "memory limit" in message and "--combine instances" in message


@pytest.mark.parametrize("combine", ["vote", "instances"])
def test_label_modes_refuse_fractional_values(tmp_path, combine):
    tiles, manifest = cut(tmp_path, (64, 112), 64, 16)
    predict(tiles, manifest, lambda t: np.full((64, 64), 0.25, np.float32))
    _, summary = drain(run_merge(tiles, tmp_path / "out", combine=combine))
    assert "not a whole number" in summary.failed[0][1] and "a_000.tif" in summary.failed[0][1]


def test_bad_mode_window_and_iou_are_refused_before_anything_is_written(tmp_path):
    tiles, _ = cut(tmp_path, (64, 112), 64, 16)
    for kwargs, word in (({"combine": "median"}, "combine"), ({"blend": "gauss"}, "blend"), ({"iou": 0}, "iou"),
                         ({"boxes": tmp_path / "nowhere"}, "boxes"), ({"boxes": tiles, "box_fusion": "x"}, "box_fusion")):
        with pytest.raises(SettingsError, match=word):
            drain(run_merge(tiles, tmp_path / "out", **kwargs))
    assert not (tmp_path / "out").exists()


# --- instances ------------------------------------------------------------------------------------
def discs(shape, radius, seed=0):
    """Non-touching discs 1..n on a jittered grid: many cross tile edges and corners."""
    rng = np.random.default_rng(seed)
    truth = np.zeros(shape, np.int32)
    step, n = 2 * radius + 3, 0
    for cy in range(radius, shape[0] - radius, step):
        for cx in range(radius, shape[1] - radius, step):
            if rng.random() < 0.75:
                n += 1
                jy, jx = rng.integers(-1, 2, 2)
                cv2.circle(truth, (int(cx + jx), int(cy + jy)), radius, n, -1)
    return truth


def instance_model(truth, shape, tile_size, seed=1, worse_when_cut=True):
    """Each tile's labels renumbered at random (ids repeat across tiles); an object its tile cuts
    is predicted one pixel thinner (but still up to the edge), as a model seeing part of it would."""
    rng = np.random.default_rng(seed)

    def model(t):
        pred = crop(truth, t, tile_size)
        h, w = t["y1"] - t["y0"], t["x1"] - t["x0"]
        part = pred[:h, :w]
        if worse_when_cut:
            cut = set()
            for on, edge in zip(inner_edges(t, shape), (part[0], part[:, 0], part[-1], part[:, -1])):
                if on:
                    cut |= set(np.unique(edge).tolist())
            for label in cut - {0}:
                obj = (part == label).astype(np.uint8)
                part[(obj > 0) & (cv2.erode(obj, np.ones((3, 3)), borderType=cv2.BORDER_REPLICATE) == 0)] = 0
        ids = np.unique(pred[pred > 0])
        lut = np.zeros(int(pred.max()) + 1, np.uint16)
        lut[ids] = rng.permutation(len(ids)) + 1
        return lut[pred]

    return model


def assert_same_objects(truth, merged):
    """Equal up to a renumbering: one output id per object, ids 1..n."""
    pairs = set(zip(truth.ravel().tolist(), merged.ravel().tolist()))
    assert all((a == 0) == (b == 0) for a, b in pairs), "foreground differs"
    n = int(truth.max())
    assert len(pairs) == n + 1, f"{len(pairs) - 1} object/id pairs for {n} objects"
    assert sorted(np.unique(merged).tolist()) == list(range(n + 1))  # consecutive ids


@pytest.mark.parametrize("tile_size, overlap, shape", GRIDS)
def test_instances_each_disc_crossing_seams_gets_one_id(tmp_path, tile_size, overlap, shape):
    radius = (overlap - 3) // 2  # small enough to be whole in some tile: taken from there
    tiles, manifest = cut(tmp_path, shape, tile_size, overlap)
    truth = discs(shape, radius)
    predict(tiles, manifest, instance_model(truth, shape, tile_size))
    merged, summary = merge(tiles, tmp_path / "out", combine="instances")
    assert merged.dtype == np.uint32
    assert_same_objects(truth, merged)  # pixel-exact: the cut, thinner parts were replaced
    counts = summary.counts["a.tif"]
    assert counts["objects"] == truth.max() and counts["split"] == 0
    assert 0 < counts["merged"] <= counts["objects"]


@pytest.mark.parametrize("tile_size, overlap, shape", GRIDS)
def test_instances_larger_than_the_overlap_are_stitched_from_their_parts(tmp_path, tile_size, overlap, shape):
    tiles, manifest = cut(tmp_path, shape, tile_size, overlap)
    truth = discs(shape, overlap, seed=2)  # never whole in one tile
    predict(tiles, manifest, instance_model(truth, shape, tile_size, worse_when_cut=False))
    merged, _ = merge(tiles, tmp_path / "out", combine="instances")
    assert_same_objects(truth, merged)


def test_instances_in_bands_equal_the_whole_merge(tmp_path):
    shape = (1500, 2600)  # 23 B/px of state: more than 64 MB, merged tile row by tile row
    tiles, manifest = cut(tmp_path, shape, 128, 48)
    truth = discs(shape, 20, seed=3)
    predict(tiles, manifest, instance_model(truth, shape, 128))
    whole, _ = merge(tiles, tmp_path / "whole", combine="instances")
    banded, summary = merge(tiles, tmp_path / "banded", combine="instances", memory_limit=64 << 20)
    assert_same_objects(truth, banded)
    np.testing.assert_array_equal(banded, whole)
    assert summary.counts["a.tif"]["split"] == 0
    with tifffile.TiffFile(tmp_path / "banded" / "a.tif") as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled


def test_instances_tall_objects_that_meet_after_leaving_the_band_are_counted_split(tmp_path):
    shape = (1400, 2700)
    truth = np.zeros(shape, np.int32)
    truth[10:700, 100:110] = 1  # two arms of a U, joined below the first tile rows
    truth[10:700, 300:310] = 1
    truth[690:700, 100:310] = 1
    tiles, manifest = cut(tmp_path, shape, 128, 32)
    predict(tiles, manifest, instance_model(truth, shape, 128, worse_when_cut=False))
    whole, whole_summary = merge(tiles, tmp_path / "whole", combine="instances")
    assert whole_summary.counts["a.tif"] == {"objects": 1, "merged": 1, "split": 0}
    banded, summary = merge(tiles, tmp_path / "banded", combine="instances", memory_limit=64 << 20)
    assert summary.counts["a.tif"]["objects"] == 2 and summary.counts["a.tif"]["split"] == 1
    assert set(np.unique(banded[truth > 0])) == {1, 2}


@pytest.mark.parametrize("combine", ["vote", "max"])
def test_vote_and_max_streamed_to_a_bigtiff_equal_the_merge_in_memory(tmp_path, combine):
    # vote: more than 32 MB of output (half of a 64 MB limit); max: more than 64 MB of state: a tiled BigTIFF
    shape = (2200, 2100) if combine == "vote" else (3000, 2900)
    tiles, manifest = cut(tmp_path, shape, 128, 48)
    truth = class_map(shape, TileGrid.for_shape(shape, 128, 48)) if combine == "vote" else \
        (discs(shape, 9, seed=5) > 0).astype(np.uint8) * 255
    predict(tiles, manifest, edge_errors(truth, shape, 128, 48) if combine == "vote" else
            (lambda t: crop(truth, t, 128)))
    whole, _ = merge(tiles, tmp_path / "whole", combine=combine)
    streamed, _ = merge(tiles, tmp_path / "streamed", combine=combine, memory_limit=64 << 20)
    np.testing.assert_array_equal(streamed, whole)
    np.testing.assert_array_equal(streamed, truth)
    with tifffile.TiffFile(tmp_path / "streamed" / "a.tif") as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled


# --- max and blend windows ------------------------------------------------------------------------
@pytest.mark.parametrize("tile_size, overlap, shape", GRIDS)
def test_max_keeps_every_detection_that_a_tile_missed_near_its_edge(tmp_path, tile_size, overlap, shape):
    tiles, manifest = cut(tmp_path, shape, tile_size, overlap)
    truth = (discs(shape, 5, seed=4) > 0).astype(np.uint8) * 255
    margin = overlap // 4

    def model(t):  # misses everything near its inner edges
        pred = crop(truth, t, tile_size)
        h, w = t["y1"] - t["y0"], t["x1"] - t["x0"]
        top, left, bottom, right = inner_edges(t, shape)
        pred[: margin * top], pred[:, : margin * left] = 0, 0
        pred[h - margin * bottom : h], pred[:, w - margin * right : w] = 0, 0
        return pred

    predict(tiles, manifest, model)
    maxed, _ = merge(tiles, tmp_path / "max", combine="max")
    np.testing.assert_array_equal(maxed, truth)
    blended, _ = merge(tiles, tmp_path / "blend")
    assert not np.array_equal(blended, truth)


def test_hann_window_ramps_sum_to_one_and_blend_it_smoothly(tmp_path):
    w = blend_window(16, 6, "hann")[8]
    assert w.min() > 0 and w.max() == 1
    np.testing.assert_allclose(w[:6] + w[-6:], 1.0)  # two neighbours' ramps across a 6 px overlap
    tiles, manifest = cut(tmp_path, (64, 112), 64, 32)
    predict(tiles, manifest, lambda t: np.full((64, 64), 1000.0 * t["index"], np.float32))
    merged, _ = merge(tiles, tmp_path / "hann", blend="hann")
    assert merged[0, 0] == 0 and merged[0, -1] == 2000
    assert np.abs(np.diff(merged[0])).max() < 150  # no step: a smooth ramp between tiles


# --- the command line ------------------------------------------------------------------------------
def tilesapp(*args):
    """The command as users run it: exit code, stdout, stderr."""
    return subprocess.run([sys.executable, "-m", "tilesapp", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_merge_modes_report_what_they_did(tmp_path):
    shape = (150, 230)
    tiles, manifest = cut(tmp_path, shape, 64, 16)
    truth = discs(shape, 6)
    predict(tiles, manifest, instance_model(truth, shape, 64))
    run = tilesapp("merge", tiles, tmp_path / "inst", "--combine", "instances")
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert f"Instances: {truth.max()} objects; " in run.stdout and "given one id." in run.stdout
    assert_same_objects(truth, tifffile.imread(tmp_path / "inst" / "a.tif"))
    run = tilesapp("merge", tiles, tmp_path / "vote", "--combine", "vote", "--blend", "hann", "--quiet")
    assert run.returncode == 0 and run.stdout == "" and (tmp_path / "vote" / "a.tif").exists()


@pytest.mark.parametrize("args, words", [
    (["--combine", "median"], "invalid choice: 'median'"),
    (["--iou", "0"], "--iou must be a share above 0 and at most 1"),
    (["--boxes", "nowhere"], "--boxes nowhere is not a folder"),
])
def test_cli_merge_bad_options_exit_2_with_one_sentence(tmp_path, args, words):
    tiles, _ = cut(tmp_path, (64, 112), 64, 16)
    run = tilesapp("merge", tiles, tmp_path / "out", *args)
    assert run.returncode == 2 and words in run.stderr.strip().splitlines()[-1]  # after argparse's usage, if any
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "out").exists()


def test_cli_merge_a_failing_source_exits_1_and_names_it(tmp_path):
    tiles, manifest = cut(tmp_path, (64, 112), 64, 16)
    predict(tiles, manifest, lambda t: np.full((64, 64), 0.5, np.float32))
    run = tilesapp("merge", tiles, tmp_path / "out", "--combine", "vote")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith("Failed: a.tif: tile a_000.tif holds 0.5, not a whole number")


def test_instances_merged_on_a_cluster_equal_a_local_merge(tmp_path):
    pytest.importorskip("distributed")
    shape = (600, 700)
    tiles, manifest = cut(tmp_path, shape, 128, 48)
    truth = discs(shape, 20)
    predict(tiles, manifest, instance_model(truth, shape, 128))
    here, local = merge(tiles, tmp_path / "here", combine="instances")
    there, remote = merge(tiles, tmp_path / "there", combine="instances", executor="local:2")
    np.testing.assert_array_equal(there, here)
    assert remote.counts == local.counts and local.counts["a.tif"]["objects"] == truth.max()
