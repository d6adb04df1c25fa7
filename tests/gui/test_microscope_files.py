"""Issue 12 in the window: every scene and plane of a microscope file is a row of the sources
table, a stack waits for a choice of planes made in Planes (never a dialog), channels are kept
and reordered by name, colour is stretched jointly. Driven as a person does (clicks, picks,
typing and Enter), checked on screen and on disk; real instrument files where the shared
realdata folder exists."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication

from helpers import find
from person import click, click_row, column, pick, table_rows, type_in, type_in_row

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"
if not REALDATA.is_dir():
    REALDATA = Path("/work/shared/realdata")
CZI_SCENES = "czi_2scenes_z2_neubias_xyz__multiple_images.czi"
ND2_Z = "nd2_z11_arcadia_example-zstack.nd2"
ND2_T = "nd2_t53_arcadia_example-timelapse.nd2"


def real(*names: str):
    missing = [n for n in names if not (REALDATA / n).exists()]
    return pytest.mark.skipif(bool(missing), reason=f"realdata not here: {', '.join(missing)}")


@pytest.fixture
def stacks(tmp_path):
    """A two-series OME-TIFF (scenes "left" 60 × 80 and "right" 50 × 70) and an ImageJ Z stack
    of 4 planes, all at the target pixel size (no resampling)."""
    folder = tmp_path / "stacks"
    folder.mkdir()
    rng = np.random.default_rng(0)
    left, right = (rng.integers(0, 4000, shape, dtype=np.uint16) for shape in ((60, 80), (50, 70)))
    with tifffile.TiffWriter(folder / "two.ome.tif", ome=True) as tif:
        for image, name in ((left, "left"), (right, "right")):
            tif.write(image, metadata={"axes": "YX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325, "Name": name})
    planes = rng.integers(0, 4000, (4, 40, 50), dtype=np.uint16)
    tifffile.imwrite(folder / "stack.tif", planes, imagej=True, resolution=(1 / 0.325, 1 / 0.325),
                     metadata={"axes": "ZYX", "unit": "um"})
    return folder, left, right, planes


def choose(qtbot, window, name: str, text: str) -> None:
    """Pick a combo box item by typing, after the keyboard search of an earlier pick is over."""
    qtbot.wait(QApplication.keyboardInputInterval() + 50)
    pick(qtbot, window, name, text)


def channel_menu(window) -> dict[str, QAction]:
    """The Names menu as a person sees it when opening it."""
    menu = find(window, "channelsMenu")
    menu.aboutToShow.emit()
    return {a.text(): a for a in menu.actions() if not a.isSeparator()}


def rows_by_name(window) -> dict[str, list[str]]:
    return {row[0]: row for row in table_rows(window)}


def preview_row(qtbot, window, name: str):
    with qtbot.waitSignal(window.previewShown, timeout=20_000) as blocker:
        click_row(qtbot, window, name)
    return blocker.args[0]


def showing_placeholder(window) -> bool:
    return window.viewer._stack.currentWidget() is window.viewer.placeholder


def export(window, qtbot, dialogs, out, timeout=60_000):
    dialogs.folder = out
    click(qtbot, window, "exportFolderButton")
    with qtbot.waitSignal(window.exportEnded, timeout=timeout) as blocker:
        click(qtbot, window, "exportButton")
    return blocker.args[0]


def test_every_scene_is_a_row_and_a_stack_waits_for_a_plane_choice(window, load, qtbot, stacks, tmp_path, dialogs):
    folder, left, right, planes = stacks
    load(window, folder)
    rows = rows_by_name(window)
    assert list(rows) == ["stack.tif", "two.ome.tif [s0]", "two.ome.tif [s1]"]
    scene, shape = column(window, "Scene"), column(window, "Shape")
    assert (rows["two.ome.tif [s0]"][scene], rows["two.ome.tif [s1]"][scene]) == ("1 of 2 · left", "2 of 2 · right")
    assert (rows["two.ome.tif [s0]"][shape], rows["two.ome.tif [s1]"][shape]) == ("60 × 80", "50 × 70")
    # The stack is one row that says what it needs and where to give it; no dialog.
    assert rows["stack.tif"][column(window, "Planes")] == "Z 4"
    assert rows["stack.tif"][-1] == "needs a Z choice (4 planes): choose in Planes, Media panel"
    assert find(window, "sourcesLabel").text() == "3 images (from 2 files)"
    assert window.media.zCombo.isVisible() and not window.media.tCombo.isVisible()
    assert find(window, "planesNote").text().startswith("⚠ 1 file needs a Z choice")
    assert "e.g. stack.tif: needs a Z choice (Planes, in the Media panel)" in find(window, "exportWarningLabel").text()
    # Each scene previews on a click of its row.
    preview = preview_row(qtbot, window, "two.ome.tif [s1]")
    assert preview.values.shape == (50, 70)
    np.testing.assert_allclose(preview.values, right, atol=0.01)
    assert "scene 2 of 2 (right)" in window.viewer.title.text
    assert preview_row(qtbot, window, "two.ome.tif [s0]").values.shape == (60, 80)
    # The stack's row: the view says where to choose, no dialog storm.
    click_row(qtbot, window, "stack.tif")
    qtbot.waitUntil(lambda: showing_placeholder(window), timeout=10_000)
    assert "Planes (Media panel)" in window.viewer.placeholder.text()
    assert not dialogs.shown
    # Choosing the maximum projection makes it an image, previewed by itself.
    with qtbot.waitSignal(window.previewShown, timeout=20_000) as blocker:
        pick(qtbot, window, "zCombo", "max")
    np.testing.assert_allclose(blocker.args[0].values, planes.max(axis=0), atol=0.01)
    assert rows_by_name(window)["stack.tif"][column(window, "Planes")] == "Z 4 → max"
    assert not find(window, "planesNote").isVisible() and not find(window, "exportWarningLabel").isVisible()
    # The export writes one source per scene, named as the table names them.
    summary = export(window, qtbot, dialogs, tmp_path / "out")
    manifest = json.loads(summary.manifest_path.read_text())
    assert sorted(s.get("name", s["file"]) for s in manifest["sources"]) == sorted(rows_by_name(window))
    assert summary.images_ok == summary.images_total == 3
    names = sorted(p.name for p in (tmp_path / "out").rglob("*.tif"))
    assert any("_s0_" in n for n in names) and any("_s1_" in n for n in names)


def test_every_plane_and_one_plane(window, load, qtbot, stacks, tmp_path, dialogs):
    folder, _, _, planes = stacks
    load(window, folder)
    pick(qtbot, window, "zCombo", "every")
    names = [row[0] for row in table_rows(window)]
    assert names[:4] == ["stack.tif [z0]", "stack.tif [z1]", "stack.tif [z2]", "stack.tif [z3]"]
    np.testing.assert_allclose(preview_row(qtbot, window, "stack.tif [z2]").values, planes[2], atol=0.01)
    # One plane, typed as the names count them.
    choose(qtbot, window, "zCombo", "one")
    assert find(window, "zPlaneSpin").isEnabled()
    type_in(qtbot, window, "zPlaneSpin", "3")
    row = rows_by_name(window)["stack.tif"]
    assert row[column(window, "Planes")] == "Z 4 → 3" and row[-1] == "ready"
    with qtbot.waitSignal(window.previewShown, timeout=20_000) as blocker:
        click_row(qtbot, window, "stack.tif")
    np.testing.assert_allclose(blocker.args[0].values, planes[3], atol=0.01)
    # A plane the stack does not have: said in its row, in the window's words.
    type_in(qtbot, window, "zPlaneSpin", "7")
    status = rows_by_name(window)["stack.tif"][-1]
    assert status.startswith("will fail:") and "plane 7 does not exist" in status and "Planes (Media panel)" in status
    assert window.settings.z == 7  # the value typed, kept: nothing clamped
    assert not dialogs.shown


def test_channels_are_kept_and_reordered_by_name(window, load, qtbot, tmp_path, dialogs):
    folder = tmp_path / "channels"
    folder.mkdir()
    channels = np.stack([np.full((40, 50), v, np.uint16) for v in (100, 2000, 30000)])
    channels[:, :, :25] //= 2  # not constant: something to stretch
    tifffile.imwrite(folder / "ch.tif", channels, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325, "Channel": {"Name": ["DAPI", "GFP", "RFP"]}})
    load(window, folder)
    click(qtbot, window, "normNone")  # values kept: the channels are seen as they are
    assert rows_by_name(window)["ch.tif"][column(window, "Channels")] == "3: DAPI, GFP, RFP"
    # The names of the loaded images are offered; picking two keeps those, in that order.
    assert {"DAPI", "GFP", "RFP"} <= set(channel_menu(window))
    channel_menu(window)["RFP"].trigger()
    channel_menu(window)["DAPI"].trigger()
    assert find(window, "channelsEdit").text() == "RFP, DAPI" and window.settings.channels == ("RFP", "DAPI")
    assert rows_by_name(window)["ch.tif"][column(window, "Channels")] == "2: RFP, DAPI"
    preview = preview_row(qtbot, window, "ch.tif")
    np.testing.assert_allclose(preview.values[..., 0], channels[2], atol=0.01)
    np.testing.assert_allclose(preview.values[..., 1], channels[0], atol=0.01)
    # A name the image does not have: said in its row.
    type_in(qtbot, window, "channelsEdit", "Cy5")
    assert "has no channel named 'Cy5' (DAPI, GFP, RFP)" in rows_by_name(window)["ch.tif"][-1]
    type_in(qtbot, window, "channelsEdit", "RFP, 0")  # names and numbers from 0 mix
    summary = export(window, qtbot, dialogs, tmp_path / "out")
    tile = tifffile.imread(next((tmp_path / "out").rglob("ch_000.tif")))
    assert summary.images_ok == 1 and tile.shape == (2, 512, 512)
    np.testing.assert_allclose(tile[0, :40, :50], channels[2])
    np.testing.assert_allclose(tile[1, :40, :50], channels[0])
    # All channels again.
    channel_menu(window)["All channels (clear the list)"].trigger()
    assert window.settings.channels is None and find(window, "channelsEdit").text() == ""


def test_colour_is_stretched_jointly_unless_asked_otherwise(window, load, qtbot, tmp_path):
    folder = tmp_path / "he"
    folder.mkdir()
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 100, 80)  # red 0–100
    rgb[..., 1] = np.linspace(50, 200, 80)  # green 50–200
    rgb[..., 2] = np.linspace(0, 255, 80)  # blue 0–255
    cv2.imwrite(str(folder / "he.png"), rgb[..., ::-1])
    load(window, folder)
    click(qtbot, window, "calibrationCheck")  # a PNG carries no pixel size
    preview_row(qtbot, window, "he.png")
    with qtbot.waitSignal(window.outputShown, timeout=10_000) as blocker:
        click(qtbot, window, "outputValuesCheck")
    joint = blocker.args[0].values
    assert window.settings.channel_stretch == "auto"
    assert joint[..., 0].max() == pytest.approx(100 / 255, abs=1e-3)  # one low/high for the three colours
    assert joint[..., 1].min() == pytest.approx(50 / 255, abs=1e-3)
    with qtbot.waitSignal(window.outputShown, timeout=10_000) as blocker:
        pick(qtbot, window, "channelStretchCombo", "each")
    each = blocker.args[0].values
    assert each[..., 0].max() == pytest.approx(1.0) and each[..., 1].min() == pytest.approx(0.0)


@real(CZI_SCENES, ND2_T)
def test_a_real_czi_of_two_scenes_and_an_nd2_time_series(window, load, qtbot, tmp_path, dialogs):
    folder = tmp_path / "instrument"
    folder.mkdir()
    for name in (CZI_SCENES, ND2_T):
        shutil.copy(REALDATA / name, folder / name)
    load(window, folder)
    rows = rows_by_name(window)
    assert rows[CZI_SCENES][column(window, "Scene")] == "2 scenes"
    assert rows[CZI_SCENES][-1] == "needs a Z choice (2 planes): choose in Planes, Media panel"
    assert rows[ND2_T][-1] == "needs a frame choice (53 frames): choose in Planes, Media panel"
    assert rows[ND2_T][column(window, "Channels")] == "GFP 488 nm"
    assert window.media.zCombo.isVisible() and window.media.tCombo.isVisible()
    pick(qtbot, window, "zCombo", "max")
    choose(qtbot, window, "tCombo", "one")
    type_in(qtbot, window, "tFrameSpin", "52")
    rows = rows_by_name(window)
    assert [n for n in rows if n.startswith("czi")] == [f"{CZI_SCENES} [s0]", f"{CZI_SCENES} [s1]"]
    assert rows[f"{CZI_SCENES} [s1]"][column(window, "Pixel size"):column(window, "From") + 1] == ["0.195644 µm", "CZI"]
    assert rows[ND2_T][column(window, "Planes")] == "T 53 → 52" and rows[ND2_T][-1] == "ready"
    first = preview_row(qtbot, window, f"{CZI_SCENES} [s0]")
    second = preview_row(qtbot, window, f"{CZI_SCENES} [s1]")
    assert "scene 2 of 2" in window.viewer.title.text
    assert second.values.shape == first.values.shape and not np.array_equal(second.values, first.values)
    summary = export(window, qtbot, dialogs, tmp_path / "out")
    records = {s.get("name", s["file"]): s for s in json.loads(summary.manifest_path.read_text())["sources"]}
    assert records[f"{CZI_SCENES} [s1]"]["scene"] == 1 and records[f"{CZI_SCENES} [s1]"]["z"] == "max"
    assert records[ND2_T]["t"] == 52 and summary.images_ok == 3


@real(ND2_Z)
def test_a_real_nd2_z_stack_gives_every_plane(window, load, qtbot, tmp_path):
    folder = tmp_path / "zstack"
    folder.mkdir()
    shutil.copy(REALDATA / ND2_Z, folder / ND2_Z)
    load(window, folder)
    pick(qtbot, window, "zCombo", "every")
    names = [row[0] for row in table_rows(window)]
    assert len(names) == 11 and names[0] == f"{ND2_Z} [z00]" and names[-1] == f"{ND2_Z} [z10]"
    assert find(window, "sourcesLabel").text() == "11 images (from 1 file)"
    assert preview_row(qtbot, window, f"{ND2_Z} [z05]").values.shape[:2] == (127, 127)


def test_channels_and_scenes_belong_to_their_folder(window, load, qtbot, stacks, tmp_path):
    folder, *_ = stacks
    load(window, folder)
    type_in_row(qtbot, window, "two.ome.tif [s1]", "Pixel size", "0.5")
    assert window.settings.file_pixel_sizes == (("two.ome.tif [s1]", 0.5, 0.5),)
    type_in(qtbot, window, "scenesEdit", "1")
    assert [row[0] for row in table_rows(window)][-1] == "two.ome.tif [s1]" and len(table_rows(window)) == 2
    type_in(qtbot, window, "channelsEdit", "0")
    assert window.settings.scenes == (1,) and window.settings.channels == (0,)
    assert window.store.load_settings().scenes is None and window.store.load_settings().channels is None
    other = tmp_path / "other"
    other.mkdir()
    tifffile.imwrite(other / "a.tif", np.zeros((20, 20), np.uint16), imagej=True, resolution=(1 / 0.325, 1 / 0.325),
                     metadata={"unit": "um"})
    said = []
    window.statusBar().messageChanged.connect(said.append)  # the sample may follow it at once
    load(window, other)
    assert window.settings.scenes is None and window.settings.channels is None and not window.settings.file_pixel_sizes
    assert find(window, "channelsEdit").text() == "" and find(window, "scenesEdit").text() == ""
    assert any("the pixel sizes typed for 1 image, the channels chosen, the scenes chosen of the previous folder "
               "cleared" in text for text in said)


SIF = "sif_andor_ixon_image.sif"


@real(SIF)
def test_a_sif_says_where_its_pixel_size_is_found_until_one_is_typed(window, load, qtbot, tmp_path, dialogs):
    """Andor SIF files carry no pixel size: the row, the tooltip and the view say how to find
    it; once it is typed, the image is ready with no warning left telling to enter it."""
    folder = tmp_path / "sif"
    folder.mkdir()
    (folder / SIF).symlink_to(REALDATA / SIF)
    load(window, folder)
    status = column(window, "Status")
    row = rows_by_name(window)[SIF]
    assert row[status].startswith("needs a pixel size: double-click its Pixel size cell")
    assert "camera's pixel size × binning ÷ magnification" in row[status]
    click_row(qtbot, window, SIF)
    qtbot.waitUntil(lambda: "carries no pixel size" in window.viewer.placeholder.text(), timeout=10_000)
    assert "binning ÷ magnification" in window.viewer.placeholder.text()
    with qtbot.waitSignal(window.previewShown, timeout=20_000):
        type_in_row(qtbot, window, SIF, "Pixel size", "0.5")
    row = rows_by_name(window)[SIF]
    assert row[status] == "ready", row
    summary = export(window, qtbot, dialogs, tmp_path / "out")
    record = json.loads(summary.manifest_path.read_text())["sources"][0]
    assert record["status"] == "ok" and record["calibration"] == "manual (this image)", record
    assert not record.get("warnings") and not summary.warnings
