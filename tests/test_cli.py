import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from helpers import microscopy, refuse_folders
from safety_helpers import cli_env

from tilesapp import __version__
from tilesapp.cli import main
from tilesapp.logs import log_path


def run(*args):
    """The installed command as users run it: real exit code, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", "tilesapp", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"tilesapp {__version__}"


def test_cut_then_merge_round_trip(folder, tmp_path):
    out, merged = tmp_path / "tiles", tmp_path / "merged"
    result = run("cut", folder, out, "--patch-size", 128, "--overlap", 48, "--norm", "none")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"Wrote {len(manifest['tiles'])} tiles from 3 images" in result.stdout
    assert "notes.txt" in result.stdout
    assert "Traceback" not in result.stderr and result.stderr == ""  # no bar: not a terminal
    result = run("merge", out, merged, "--blend", "gradient")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in merged.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    assert tifffile.imread(merged / "a.tif").shape == (600, 800)


def test_some_images_fail_exit_1_others_written(folder, tmp_path):
    (folder / "broken.tif").write_bytes(b"II*\x00\x08\x00\x00\x00junk")
    tifffile.imwrite(folder / "nocal.tif", microscopy((64, 64)))
    result = run("cut", folder, tmp_path / "out", "--patch-size", 128, "--overlap", 32)
    assert result.returncode == 1
    assert "2 images failed" in result.stderr and "broken.tif" in result.stderr
    assert "--pixel-size VALUE --unit UNIT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert (tmp_path / "out" / "a_000.tif").exists()
    sources = {s["file"]: s["status"] for s in json.loads((tmp_path / "out" / "manifest.json").read_text())["sources"]}
    assert sources == {"a.tif": "ok", "b.tif": "ok", "c.tif": "ok", "broken.tif": "failed", "nocal.tif": "failed"}


@pytest.mark.parametrize(
    "args, words",
    [
        (["--overlap", "512"], "overlap must be smaller than the tile size"),
        (["--dtype", "float32", "--format", "jpg"], ".jpg files can only store uint8"),
        (["--dtype", "uint8", "--bounds", "0", "1.5"], "whole numbers"),
        (["--preset", "yolo", "--format", "jpg", "--bounds", "0", "300"], "0–255"),
        (["--unit", "parsec", "--pixel-size", "3"], "not a length unit"),
        (["--pixel-size", "-1"], "greater than 0"),
    ],
)
def test_bad_settings_exit_2_with_one_sentence_and_nothing_written(folder, tmp_path, args, words):
    out = tmp_path / "out"
    result = run("cut", folder, out, *args)
    assert result.returncode == 2
    assert words in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_unsafe_output_folders_exit_2(folder, tmp_path):
    result = run("cut", folder, folder / "tiles")
    assert result.returncode == 2 and "inside the input folder" in result.stderr
    assert not (folder / "tiles").exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("x")
    result = run("cut", folder, busy)
    assert result.returncode == 2 and "--overwrite" in result.stderr
    # --overwrite replaces an earlier export, never files no export wrote
    result = run("cut", folder, busy, "--overwrite")
    assert result.returncode == 2 and "x.txt" in result.stderr and (busy / "x.txt").read_text() == "x"
    (busy / "x.txt").unlink()
    assert main(["cut", str(folder), str(busy), "--quiet", "--patch-size", "384"]) == 0
    assert main(["cut", str(folder), str(busy), "--overwrite", "--quiet", "--patch-size", "256"]) == 0


def test_missing_input_and_bad_arguments(tmp_path):
    result = run("cut", tmp_path / "nope", tmp_path / "out")
    assert result.returncode == 2 and "does not exist" in result.stderr
    result = run("cut", tmp_path, tmp_path / "out", "--norm", "median")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    # a mistyped tile folder is not called a folder without a manifest
    result = run("merge", tmp_path / "tilse", tmp_path / "merged")
    assert result.returncode == 2 and not (tmp_path / "merged").exists()
    assert result.stderr.strip() == f"tilesapp: error: The tile folder {tmp_path / 'tilse'} does not exist; check the path."


def test_config_file_and_flags_override(folder, tmp_path):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"tile_size": 256, "overlap": 64, "norm": "local", "colour": "red"}))
    out = tmp_path / "out"
    code = main(["cut", str(folder), str(out), "--config", str(config), "--overlap", "16", "--quiet",
                 "--save-config", str(tmp_path / "effective.json")])
    assert code == 0
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert (settings["tile_size"], settings["overlap"], settings["norm"]) == (256, 16, "local")
    assert json.loads((tmp_path / "effective.json").read_text())["overlap"] == 16


def test_unknown_config_key_is_reported_not_fatal(folder, tmp_path, capsys):
    config = tmp_path / "settings.json"
    config.write_text(json.dumps({"tile_size": 256, "colour": "red"}))
    assert main(["cut", str(folder), str(tmp_path / "out"), "--config", str(config), "--quiet"]) == 0
    assert "colour" in capsys.readouterr().err


def test_presets_and_manual_calibration(folder, tmp_path):
    out = tmp_path / "out"
    assert main(["cut", str(folder), str(out), "--preset", "yolo", "--pixel-size", "650", "--unit", "nm",
                 "--patch-size", "256", "--overlap", "0", "-q"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["dtype"] == "uint8" and manifest["format"] == "png"
    assert all(s["calibration"] == "manual" for s in manifest["sources"])
    tile = cv2.imread(str(out / manifest["tiles"][0]["file"]), cv2.IMREAD_UNCHANGED)
    assert tile.shape == (256, 256) and tile.dtype == np.uint8


def test_no_calibration_keeps_pixels(folder, tmp_path):
    out = tmp_path / "out"
    assert main(["cut", str(folder), str(out), "--no-calibration", "--patch-size", "100", "--overlap", "0", "-q"]) == 0
    a = json.loads((out / "manifest.json").read_text())["sources"][0]
    assert a["scaled_shape"] == [300, 400] and a["scale_factor"] == [1.0, 1.0]


def test_info_table_and_json(folder, capsys):
    assert main(["info", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "a.tif" in text and "300 × 400" in text and "ImageJ" in text and "OME" in text
    assert "notes.txt" in text
    assert main(["info", str(folder), "--json", "--patch-size", "128", "--overlap", "32"]) == 0
    data = json.loads(capsys.readouterr().out)
    a = data["images"][0]
    assert a["file"] == "a.tif" and a["shape"] == [300, 400] and a["axes"] == "YX" and a["dtype"] == "uint16"
    assert a["pixel_size_um"] == pytest.approx([0.65, 0.65]) and a["scaled_shape"] == [600, 800]
    assert data["skipped"] == ["notes.txt"] and data["tiles"] == sum(i["tiles"] for i in data["images"])


def test_sample_mosaic(folder, tmp_path):
    out = tmp_path / "mosaic.png"
    result = run("sample", folder, out, "--seed", 1)
    assert result.returncode == 0, result.stderr
    mosaic = cv2.imread(str(out))
    assert mosaic.shape[0] <= 2 * 520 + 8 and mosaic.shape[2] == 3
    result = run("sample", folder, out)
    assert result.returncode == 2 and "already exists" in result.stderr
    result = run("sample", folder, folder / "m.png")
    assert result.returncode == 2 and "inside the input folder" in result.stderr
    assert not (folder / "m.png").exists()
    (tmp_path / "shots.png").mkdir()  # a folder with an image's name: said, never an unexpected error
    result = run("sample", folder, tmp_path / "shots.png", "--overwrite")
    assert result.returncode == 2 and "shots.png is a folder; give the mosaic a file name" in result.stderr, result.stderr
    for suffix in (".jpg", ".tif"):  # every format, written whole under its name
        result = run("sample", folder, tmp_path / f"mosaic{suffix}", "--seed", 1)
        assert result.returncode == 0 and cv2.imread(str(tmp_path / f"mosaic{suffix}")).shape == mosaic.shape
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_unexpected_error_goes_to_the_log_not_the_screen(folder, tmp_path, monkeypatch, capsys):
    from tilesapp.core import export

    def boom(*args, **kwargs):
        raise RuntimeError("something internal")

    monkeypatch.setattr(export, "collect_inputs", boom)
    assert main(["cut", str(folder), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "unexpected error: something internal" in err and "Traceback" not in err
    assert str(log_path()) in err
    assert "Traceback" in log_path().read_text() and "something internal" in log_path().read_text()


def test_relative_paths_from_the_current_folder(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(folder.parent)
    assert main(["info", folder.name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["file"] == "a.tif"
    assert main(["cut", folder.name, "out", "--patch-size", "256", "-q"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["file"] for s in manifest["sources"]] == ["a.tif", "b.tif", "c.tif"]
    assert main(["merge", "out", "merged", "-q"]) == 0
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == ["a.tif", "b.tif", "c.tif"]
    assert main(["sample", folder.name, "mosaic.png", "-q"]) == 0 and (tmp_path / "mosaic.png").is_file()
    masks = tmp_path / "masks"
    masks.mkdir()
    for name, shape in (("a", (300, 400)), ("b", (256, 256)), ("c", (200, 500))):
        tifffile.imwrite(masks / f"{name}.tif", np.ones(shape, np.uint8))
    assert main(["cut", folder.name, "out2", "--masks", "masks", "--patch-size", "256", "-q"]) == 0
    assert (tmp_path / "out2" / "masks" / "a_000.tif").is_file()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
@pytest.mark.parametrize("users", [None, "3"])
def test_the_command_starts_no_spinning_blas_threads_unless_the_user_asks(users):
    # numpy's OpenBLAS starts a thread per core as numpy is imported, spinning a while after the
    # import's dot product: CPU the cut needs. The command's entry point asks for one thread before
    # numpy is imported; a user's own OPENBLAS_NUM_THREADS wins.
    code = ("import os, tilesapp._entry, numpy; "
            "print(os.environ['OPENBLAS_NUM_THREADS'], len(os.listdir('/proc/self/task')))")
    env = cli_env()
    env.pop("OPENBLAS_NUM_THREADS", None)
    if users:
        env["OPENBLAS_NUM_THREADS"] = users
    value, threads = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                                    check=True).stdout.split()
    assert value == (users or "1")
    if not users:
        assert threads == "1"


def test_the_command_hands_the_gil_over_sooner_than_python_by_default():
    # The cut's threads hand the GIL over at every file operation and OpenCV call; with Python's
    # 5 ms switch interval a thread back from one waited for a thread running Python.
    code = "import sys; a = sys.getswitchinterval(); import tilesapp._entry; print(a, sys.getswitchinterval())"
    before, after = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(),
                                   check=True).stdout.split()
    assert float(before) == pytest.approx(0.005) and float(after) == pytest.approx(0.0002)  # kept in µs


def test_recursive_cut_follows_links_to_folders_once(tmp_path):
    """Links back up the tree (a loop) and a second way to a folder are searched once: the
    command ends, and each image is cut once, under the name of its first way in name order."""
    folder = tmp_path / "in"
    (folder / "b_sub").mkdir(parents=True)
    (folder / "c_other").mkdir()
    tifffile.imwrite(folder / "b_sub" / "one.tif", microscopy((40, 50), seed=1))
    tifffile.imwrite(folder / "c_other" / "two.tif", microscopy((40, 50), seed=2))
    try:
        (folder / "b_sub" / "up").symlink_to("..", target_is_directory=True)  # a loop
        (folder / "b_sub" / "top").symlink_to(folder, target_is_directory=True)  # the same loop, absolute
        (folder / "a_way_to_other").symlink_to("c_other", target_is_directory=True)
        (folder / "b_sub" / "gone").symlink_to(tmp_path / "missing", target_is_directory=True)
    except OSError:
        pytest.skip("this system does not let us make symbolic links")
    out = tmp_path / "out"
    result = run("cut", folder, out, "--recursive", "--no-calibration", "--patch-size", 32, "--overlap", 0)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    sources = [s["file"] for s in json.loads((out / "manifest.json").read_text())["sources"]]
    assert sources == ["b_sub/one.tif", "a_way_to_other/two.tif"], sources


def test_a_sub_folder_that_cannot_be_read_is_warned_in_the_summary_and_manifest(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "in"
    (folder / "locked").mkdir(parents=True)
    (folder / "open").mkdir()
    tifffile.imwrite(folder / "open" / "one.tif", microscopy((40, 50), seed=1))
    refuse_folders(monkeypatch, "locked")
    out = tmp_path / "out"
    assert main(["cut", str(folder), str(out), "--recursive", "--no-calibration", "--patch-size", "32", "--overlap", "0",
                 "-q"]) == 0
    said = "locked: this folder cannot be read (Permission denied); the images in it were not searched."
    assert f"Warning: {said}" in capsys.readouterr().err
    manifest = json.loads((out / "manifest.json").read_text())
    assert said in manifest["warnings"] and [s["file"] for s in manifest["sources"]] == ["open/one.tif"]


def test_a_file_where_a_folder_belongs_is_said_for_what_it_is(folder, tmp_path):
    """Each command names what its folder is for; a file given as the tiles of a merge is
    named as such, never as a damaged manifest."""
    a_file = tmp_path / "notes.md"
    a_file.write_text("notes")
    tiles = tmp_path / "tiles"
    assert run("cut", folder, tiles, "--patch-size", 128, "--overlap", 32, "-q").returncode == 0
    for args, said in ((("cut", folder, a_file), "choose a folder for the tiles."),
                       (("merge", tiles, a_file), "choose a folder for the merged images."),
                       (("merge", a_file, tmp_path / "merged"), "merge needs the folder written by 'tilesapp cut'.")):
        result = run(*args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert result.stderr.strip() == f"tilesapp: error: {a_file} is a file, not a folder; {said}", result.stderr
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "keep.txt").write_text("mine")
    result = run("merge", tiles, tmp_path / "merged")  # a merge's folder is its output folder, not an export's
    assert result.returncode == 2 and f"The output folder {tmp_path / 'merged'} is not empty (1 item)" in result.stderr
    (tmp_path / "merged" / "keep.txt").unlink()
    (tmp_path / "merged").rmdir()
    result = run("cut", a_file, tmp_path / "out")  # a file that is not an image, as the input
    assert result.returncode == 2 and "notes.md is not an image this program reads (.tif" in result.stderr, result.stderr
    assert a_file.read_text() == "notes" and not (tmp_path / "merged").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_text_files_saved_by_windows_tools_are_read(folder, tmp_path, encoding):
    """A settings file and YOLO labels with a byte order mark (Notepad's UTF-8 with BOM, or its
    "Unicode", UTF-16) are read as the text they hold, with the same result as plain UTF-8."""
    settings = tmp_path / "settings.json"
    settings.write_text('{"tile_size": 128, "overlap": 32, "calibrate": false}', encoding=encoding)
    labels, plain = tmp_path / "labels", tmp_path / "plain-labels"
    for where, how in ((labels, encoding), (plain, "utf-8")):
        where.mkdir()
        (where / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n1 0.25 0.3 0.1 0.1\n", encoding=how)
        for empty in ("b.txt", "c.txt"):  # images without objects
            (where / empty).write_text("", encoding=how)
        (where / "classes.txt").write_text("cell\nnucleus\n", encoding=how)
    for out, given in (("out", labels), ("plain-out", plain)):
        result = run("cut", folder, tmp_path / out, "--config", settings, "--labels", given, "-q")
        assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["tile_size"] == 128 and manifest["settings"]["calibrate"] is False
    written = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.txt"))
    assert written and written == sorted(p.relative_to(tmp_path / "plain-out") for p in (tmp_path / "plain-out").rglob("*.txt"))
    for name in written:  # the tiles' labels; classes.txt is copied as it was given
        if name.name != "classes.txt":
            assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "plain-out" / name).read_bytes(), name


@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_output_the_terminal_cannot_encode_is_escaped_not_a_crash(tmp_path, encoding):
    """Windows writes redirected output in its ANSI code page (no emoji, no Chinese): names and
    signs it cannot hold are printed as escapes; --json stays valid JSON with the real names."""
    import os

    folder = tmp_path / "in"
    folder.mkdir()
    names = ["细胞 😀.tif", "plain.tif"]
    for name in names:
        tifffile.imwrite(folder / name, microscopy((40, 50), seed=1))
    env = {**os.environ, "PYTHONIOENCODING": encoding}

    def command(*args):
        return subprocess.run([sys.executable, "-m", "tilesapp", *map(str, args)], capture_output=True, timeout=120,
                              env=env)

    table = command("info", folder, "--no-calibration")
    assert table.returncode == 0 and b"Traceback" not in table.stderr, table.stderr
    assert rb"\u7ec6\u80de \U0001f600.tif" in table.stdout and b"plain.tif" in table.stdout
    listing = command("info", folder, "--no-calibration", "--json")
    assert listing.returncode == 0
    assert sorted(row["file"] for row in json.loads(listing.stdout)["images"]) == sorted(names)
    (folder / "细胞 😀.tif").write_bytes(b"II*\x00damaged")  # its failure names it
    cut = command("cut", folder, tmp_path / "out", "--no-calibration", "--patch-size", 32, "--overlap", 0)
    assert cut.returncode == 1 and b"Traceback" not in cut.stderr, cut.stderr
    assert rb"\u7ec6\u80de \U0001f600.tif" in cut.stderr, cut.stderr


def test_info_keeps_one_line_per_image_whatever_its_name(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("line\nbreak.tif", "tab\there.tif"):
        tifffile.imwrite(folder / name, microscopy((40, 50), seed=1))
    result = run("info", folder, "--no-calibration")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()[2:4]  # after the title and the header
    assert [row.split()[0] for row in rows] == ["line\\nbreak.tif", "tab\\there.tif"], result.stdout


def test_empty_truncated_and_misnamed_files_are_named_for_what_they_are(tmp_path):
    """Files a failed copy or a wrong name leaves behind each fail alone, in plain words (not a
    library's header bytes or the file's full path), and the good image is still cut."""
    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "good.tif", microscopy((300, 300)), imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "um"})
    (folder / "empty.tif").write_bytes(b"")
    (folder / "empty.czi").write_bytes(b"")
    (folder / "short.czi").write_bytes(b"ZISRAWFILE" + bytes(90))  # a CZI header needs 112 bytes
    noise = np.random.default_rng(3).integers(0, 256, 5000, np.uint8).tobytes()
    for name in ("photo.nd2", "scan.tif", "stack.lif"):
        (folder / name).write_bytes(noise)
    out = tmp_path / "tiles"
    result = run("cut", folder, out, "--preset", "unet", "--target-pixel-size", "0.5")
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert "  empty.tif: the file is empty (0 bytes); it was not copied or saved completely." in lines
    assert "  empty.czi: the file is empty (0 bytes); it was not copied or saved completely." in lines
    assert ("  short.czi: the file is truncated (100 bytes, less than a CZI file's header); copy it again."
            in lines)
    for name, what, header in [("photo.nd2", "an ND2 file", "an ND2 header"), ("scan.tif", "a TIFF file", "a TIFF header"),
                               ("stack.lif", "a Leica LIF file", "a LIF header")]:
        assert (f"  {name}: this is not {what} (its first bytes are not {header}); it is damaged, or another format "
                f"named {Path(name).suffix}.") in lines
    assert "Traceback" not in result.stderr and str(folder) not in result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    status = {s["file"]: (s["status"], s.get("error")) for s in manifest["sources"]}
    assert status["good.tif"] == ("ok", None)
    assert status["empty.czi"] == ("failed", "empty.czi: the file is empty (0 bytes); it was not copied or saved "
                                             "completely.")
    assert {name: state for name, (state, _) in status.items()} == {
        "good.tif": "ok", "empty.tif": "failed", "empty.czi": "failed", "short.czi": "failed", "photo.nd2": "failed",
        "scan.tif": "failed", "stack.lif": "failed"}
    assert len(manifest["tiles"]) == 1 and (out / manifest["tiles"][0]["file"]).is_file()


def test_a_bad_settings_file_is_named_with_its_own_words(folder, tmp_path):
    """A value in --config is named as the file writes it (its key, the file), not as the option
    that would override it; an image given as --config is called what it is."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"patch_size": 1e12}))
    result = run("cut", folder, tmp_path / "out", "--config", old)
    assert result.returncode == 2 and not (tmp_path / "out").exists()
    assert result.stderr.strip() == "tilesapp: error: old.json: patch_size must be between 1 and 65536; got 1000000000000."
    result = run("cut", folder, tmp_path / "out", "--config", folder / "a.tif")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "codec" not in result.stderr
    assert "a.tif is not a text file, so not a settings file" in result.stderr


def test_float64_images_beyond_float32_are_cut_not_called_infinite(tmp_path):
    """Finite float64 values that float32 cannot hold (1e300) are measured and stretched as they
    are: no 'pixels are NaN or infinite' warning, and tiles that span the bounds (they were all 0)."""
    folder = tmp_path / "in"
    folder.mkdir()
    image = np.random.default_rng(5).random((150, 150)) * 1e300
    tifffile.imwrite(folder / "model.tif", image)
    out = tmp_path / "tiles"
    result = run("cut", folder, out, "--no-calibration", "--preset", "unet", "--patch-size", 150, "--overlap", 0)
    assert result.returncode == 0, result.stderr
    assert "infinite" not in result.stderr and json.loads((out / "manifest.json").read_text())["warnings"] == []
    tile = tifffile.imread(out / "model_000.tif")
    want = ((image - image.min()) / (image.max() - image.min())).astype(np.float32)
    np.testing.assert_array_equal(tile.reshape(want.shape), want)


def test_a_stretch_that_sends_every_pixel_to_the_lower_bound_is_said(tmp_path):
    """A sparse image whose 1 % and 99 % percentiles are both its background lost its cells
    without a word (every tile 0); a blank image is said to be blank. Others are not warned."""
    folder = tmp_path / "in"
    folder.mkdir()
    sparse = np.zeros((256, 256), np.uint16)
    sparse[100:104, 100:104] = 3000
    tifffile.imwrite(folder / "sparse.tif", sparse)
    tifffile.imwrite(folder / "blank.tif", np.full((256, 256), 7, np.uint16))
    tifffile.imwrite(folder / "cells.tif", microscopy((256, 256)))
    out = tmp_path / "tiles"
    result = run("cut", folder, out, "--no-calibration", "--preset", "unet", "--percentiles", 1, 99,
                 "--patch-size", 256, "--overlap", 0)
    assert result.returncode == 0, result.stderr
    sparse_warning = ("sparse.tif: its 1 % and 99 % percentiles are both 0 (most pixels hold that value), so every tile "
                      "holds the lower bound (0) and the pixels above it (up to 3000) are lost; widen the percentiles "
                      "(0–100 keeps every value).")
    blank_warning = "blank.tif: every pixel holds 7, so its tiles hold the lower bound (0)."
    assert result.stderr.splitlines() == [f"Warning: {blank_warning}", f"Warning: {sparse_warning}"]
    warnings = {s["file"]: s.get("warnings", []) for s in json.loads((out / "manifest.json").read_text())["sources"]}
    assert warnings == {"sparse.tif": [sparse_warning], "blank.tif": [blank_warning], "cells.tif": []}
    assert tifffile.imread(out / "sparse_000.tif").max() == 0  # what the warning says
    # with every value kept, the cells are there and nothing is said
    result = run("cut", folder, tmp_path / "all", "--no-calibration", "--preset", "unet", "--patch-size", 256,
                 "--overlap", 0)
    assert result.returncode == 0 and "sparse" not in result.stderr
    assert tifffile.imread(tmp_path / "all" / "sparse_000.tif").max() == 1.0
