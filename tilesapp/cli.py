"""The command line: ``tilesapp cut | merge | sample | info | gui``.

Exit codes: 0 all done; 1 some images failed (the others were written); 2 bad arguments or
settings (nothing written); 130 interrupted. Users see one sentence per error; tracebacks go
to the log file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import signal
import sys
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any, TextIO

from tilesapp import APP_NAME, __version__
from tilesapp.core.calibration import UNITS, format_pixel_size
from tilesapp.core.errors import ImageError, OutputError, SettingsError, TilesError
from tilesapp.core.settings import (
    ANNOTATION_MASKS,
    DTYPES,
    FORMATS,
    LAYOUTS,
    NORMS,
    PAD_MODES,
    PIXEL_SIZE_SCOPES,
    PRESETS,
    Settings,
    load_settings,
    parse_memory_size,
)
from tilesapp.logs import setup_logging

log = logging.getLogger("tilesapp.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: How the command line names each setting in messages.
FLAGS = {
    "tile_size": "--tile-size", "overlap": "--overlap", "calibrate": "--no-calibration", "pixel_size": "--pixel-size",
    "pixel_size_scope": "--pixel-size-for", "unit": "--unit", "target_pixel_size": "--target-pixel-size",
    "target_unit": "--target-unit", "norm": "--norm", "percentiles": "--percentiles", "bounds": "--bounds",
    "dtype": "--dtype", "format": "--format", "pad_mode": "--pad-mode", "recursive": "--recursive",
    "min_foreground": "--min-foreground", "keep_empty": "--keep-empty", "min_box_visibility": "--min-box-visibility",
    "val_fraction": "--split", "seed": "--seed", "memory_limit": "--memory-limit", "workers": "--workers",
    "blend": "--blend", "layout": "--layout", "config": "--config", "save_config": "--save-config",
    "file_pixel_sizes": "file_pixel_sizes (in the settings file)", "scenes": "--scenes", "z": "--z", "t": "--t",
    "channels": "--channels", "channel_stretch": "--channel-stretch",
}
FLAGS.update({"boxes_from_masks": "--boxes-from-masks", "whole_images": "--whole-images",
              "annotation_masks": "--annotation-masks", "annotations": "--annotations"})
#: What to do about an image that failed because of a setting, in the command line's words.
HINTS = {
    "pixel_size": "(--pixel-size VALUE --unit UNIT, or --no-calibration)",
    "z": "(--z max|mean|each|N: a projection, every plane, or plane N from 0)",
    "t": "(--t each|N: every frame, or frame N from 0)",
    "channels": "(--channels 0,2 or names from 'tilesapp info'; or --format tif)",
}


# --- progress bar ----------------------------------------------------------------------------
class ProgressBar:
    """A one-line progress bar on a terminal (nothing at all elsewhere)."""

    def __init__(self, unit: str, stream: TextIO = sys.stderr, enabled: bool = True):
        self.unit, self.stream = unit, stream
        self.enabled = enabled and stream.isatty()
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def update(self, progress) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and progress.done < progress.total):
            return
        self.last = now
        width = shutil.get_terminal_size((80, 20)).columns
        if progress.total <= 0:
            line = f"{progress.message}… {progress.images_done}/{progress.images_total} images"
        else:
            fraction = progress.fraction
            elapsed = now - self.start
            eta = f" ETA {_clock(elapsed / fraction - elapsed)}" if 0.02 < fraction < 1 else ""
            digits = len(str(progress.total))
            counts = f" {fraction:4.0%} {progress.done:>{digits}}/{progress.total} {self.unit}{eta} "
            bar_width = max(10, min(40, width - len(counts) - 30))
            filled = int(bar_width * fraction)
            line = f"[{'#' * filled}{'.' * (bar_width - filled)}]{counts}{progress.current}"
        self.stream.write("\r" + line[: width - 1].ljust(width - 1))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * (shutil.get_terminal_size((80, 20)).columns - 1) + "\r")
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def drive(gen: Generator, bar: ProgressBar, cancel: threading.Event | None = None) -> Any:
    """Run a core generator to its end, feeding the bar; returns the generator's value.

    With ``cancel``, Ctrl-C sets it and the run winds down as cancelled (its manifest written),
    then KeyboardInterrupt is raised: an interrupt raised at a random moment could land in a
    finalizer and be lost. A second Ctrl-C interrupts at once.
    """
    interrupted: list[bool] = []
    previous = None
    if cancel is not None and threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        def on_interrupt(*_args):
            if interrupted:
                raise KeyboardInterrupt
            interrupted.append(True)
            cancel.set()

        previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        while True:
            bar.update(next(gen))
    except StopIteration as stop:
        value = stop.value
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt
    return value


# --- argument parsing --------------------------------------------------------------------------
def _pixel_size(text: str):
    text = text.strip()
    if text.lower() == "auto":
        return "auto"
    parts = [p for p in text.replace("x", ",").replace("×", ",").split(",") if p.strip()]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', a number or Y,X; got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values
    raise argparse.ArgumentTypeError(f"expected 'auto', a number or Y,X; got {text!r}")


def memory_size(text: str) -> int | None:
    """Bytes from '2GB', '512M', '1.5GiB' or '800' (MB); None for 'auto'.

    >>> memory_size("2GB"), memory_size("512m"), memory_size("auto")
    (2147483648, 536870912, None)
    """
    try:
        return parse_memory_size(text)
    except SettingsError:
        raise argparse.ArgumentTypeError(f"expected a size such as 2GB or 512MB, or 'auto'; got {text!r}") from None


def _settings_parent() -> argparse.ArgumentParser:
    """Options that make a Settings object (cut, and info to count tiles)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("settings (command-line values override --config and --preset)")
    g.add_argument("--config", metavar="SETTINGS.json", help="settings file saved by the window or by hand")
    g.add_argument("--preset", choices=sorted(PRESETS), help="unet: global 0–1 float32 .tif; yolo: global 0–255 uint8 .png")
    g.add_argument("--patch-size", "--tile-size", dest="tile_size", type=int, metavar="N", help="tile side in pixels (512)")
    g.add_argument("--overlap", type=int, metavar="N", help="overlap between neighbouring tiles in pixels (128)")
    g.add_argument("--pixel-size", type=_pixel_size, metavar="auto|VALUE|Y,X",
                   help="input pixel size; auto (default) reads each file's metadata")
    g.add_argument("--pixel-size-for", dest="pixel_size_scope", choices=PIXEL_SIZE_SCOPES,
                   help="which images --pixel-size is for: all (default; it replaces their metadata) or "
                        "uncalibrated (only images whose files carry no pixel size)")
    g.add_argument("--unit", metavar="UNIT", help=f"unit of --pixel-size: {', '.join(UNITS)} (µm also accepted)")
    g.add_argument("--target-pixel-size", type=float, metavar="VALUE", help="pixel size of the tiles (0.325)")
    g.add_argument("--target-unit", metavar="UNIT", help="unit of --target-pixel-size (um)")
    g.add_argument("--no-calibration", dest="calibrate", action="store_const", const=False,
                   help="keep the images' pixels: no rescaling")
    g.add_argument("--norm", choices=NORMS, help="histogram stretching per channel: none, per tile, per image (global)")
    g.add_argument("--percentiles", nargs=2, type=float, metavar=("LOW", "HIGH"), help="percentiles instead of min/max (0 100)")
    g.add_argument("--bounds", nargs=2, type=float, metavar=("LOW", "HIGH"), help="target bounds of normalized values (0 1)")
    g.add_argument("--dtype", choices=DTYPES, help="output type (float32)")
    g.add_argument("--format", choices=FORMATS, help="output format (tif)")
    g.add_argument("--pad-mode", choices=PAD_MODES, help="padding of images smaller than a tile (zero)")
    g.add_argument("--recursive", action="store_const", const=True, help="also take images from sub-folders")
    m = p.add_argument_group("scenes, planes and channels of microscope files")
    m.add_argument("--scenes", metavar="all|0,2", help="scenes (series, positions) to cut, 0-based (all)")
    m.add_argument("--z", metavar="max|mean|each|N",
                   help="of a Z stack: maximum or mean projection, every plane as its own image, or plane N (from 0)")
    m.add_argument("--t", metavar="each|N", help="of a time series: every frame as its own image, or frame N (from 0)")
    m.add_argument("--channels", metavar="0,2|NAMES", help="channels to keep, in order: 0-based numbers or names (all)")
    m.add_argument("--channel-stretch", choices=("auto", "joint", "each"),
                   help="normalize channels each on its own or jointly; auto: jointly for RGB colour (stain "
                        "colours keep their balance), each for fluorescence channels")
    t = p.add_argument_group("training sets")
    t.add_argument("--min-foreground", type=float, metavar="FRACTION",
                   help="drop tiles whose foreground share is below FRACTION (mask > 0, boxes, or pixels "
                        "above an automatic threshold); 0 keeps every tile")
    t.add_argument("--keep-empty", type=float, metavar="SHARE", help="keep this share of the dropped tiles, at random (0)")
    t.add_argument("--min-box-visibility", type=float, metavar="FRACTION",
                   help="a box enters a tile when this share of its area lies inside it (0.5)")
    t.add_argument("--split", dest="val_fraction", type=float, metavar="VAL_FRACTION",
                   help="put this share of the sources (never of one source's tiles) in val/, the rest in train/")
    t.add_argument("--seed", type=int, metavar="N", help="seed of the random choices: same seed, same result (0)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tilesapp",
        description=f"{APP_NAME}: cut calibrated microscopy images into normalized, overlapping tiles "
        "for deep learning, and merge tiles back. Without a command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"tilesapp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    settings = _settings_parent()
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="print errors only (for scripts)")
    memory = argparse.ArgumentParser(add_help=False)
    memory.add_argument("--memory-limit", type=memory_size, metavar="SIZE",
                        help="memory for pixels, e.g. 2GB or 512MB (default: a quarter of this computer's memory, "
                             "at most 512MB); bigger images are read and processed in bands")

    cut = sub.add_parser("cut", parents=[settings, quiet, memory], help="cut every image of a folder into tiles",
                         description="Cut every image of INPUT into tiles in OUTPUT, with a manifest.json.")
    cut.add_argument("input", metavar="INPUT", help="folder of images (.tif/.tiff, .png, .jpg/.jpeg, .bmp)")
    cut.add_argument("output", metavar="OUTPUT", help="export folder (created if missing; must be empty)")
    cut.add_argument("--overwrite", action="store_true", help="allow a non-empty OUTPUT (same names are replaced)")
    cut.add_argument("--workers", type=int, metavar="N", help="images (and bands) processed at once (one per core)")
    cut.add_argument("--save-config", metavar="SETTINGS.json", help="also save the effective settings to this file")
    cut.add_argument("--masks", metavar="DIR", help="label masks named like the images (same stem), cut on the same grid")
    cut.add_argument("--labels", metavar="DIR", help="YOLO label files <stem>.txt (class cx cy w h), cut with the tiles")
    f = cut.add_argument_group("training a model (README: Training a model)")
    f.add_argument("--layout", choices=LAYOUTS,
                   help="where tiles go: plain folders (default), or the layout a framework reads as it is")
    f.add_argument("--annotations", metavar="PATH",
                   help="QuPath GeoJSON, ImageJ ROIs (.roi, RoiSet.zip) or COCO JSON: a file, or a folder of files "
                        "named like the images; drawn into masks and boxes (instead of --masks/--labels)")
    f.add_argument("--annotation-masks", dest="annotation_masks", choices=ANNOTATION_MASKS,
                   help="draw annotations as class ids or one id per object (auto: what the layout needs)")
    f.add_argument("--boxes-from-masks", dest="boxes_from_masks", action="store_const", const=True,
                   help="derive a box per object from instance masks (--masks)")
    f.add_argument("--whole-images", dest="whole_images", action="store_const", const=True,
                   help="write each image whole, recalibrated and normalized, not cut (nnunet, cellpose, stardist)")
    cut.add_argument("--scheduler", metavar="ADDRESS|local:N",
                     help="run on a Dask cluster: a running scheduler (tcp://host:8786) or local:N worker processes; "
                          "every worker must see INPUT and OUTPUT at the same paths (needs tilesapp[dask])")
    cut.add_argument("--resume", action="store_true",
                     help="finish an interrupted cut into OUTPUT: images it completed with the same settings are kept, "
                          "the others are cut again")

    # merge modes and windows as tilesapp.core.combine names them (not imported here: numpy would
    # slow every start); the engine checks them again
    combine_modes, blend_windows = ("blend", "vote", "instances", "max"), ("flat", "gradient", "hann")
    merge = sub.add_parser("merge", parents=[quiet, memory], help="merge tiles (or a model's outputs) back into images",
                           description="Rebuild every source image from the tiles of TILES (a folder written by "
                           "'tilesapp cut', whose tiles may be replaced by model outputs of the same names), or, with "
                           "--boxes, merge a detector's per-tile boxes into one box file per source.")
    merge.add_argument("tiles", metavar="TILES", help="folder written by 'tilesapp cut'")
    merge.add_argument("output", metavar="OUTPUT", help="folder for the merged images (one .tif per source)")
    merge.add_argument("--combine", choices=combine_modes, default="blend",
                       help="how overlapping tiles are combined: blend (intensities, probabilities), vote (class ids), "
                            "instances (instance labels), max (binary masks: any detection wins)")
    merge.add_argument("--blend", choices=blend_windows,
                       help="weights in overlaps, for blend and vote: flat, gradient (linear fade across the overlap) "
                            "or hann (cosine fade); default flat for blend, gradient for vote")
    merge.add_argument("--iou", type=float, default=0.5, metavar="FRACTION",
                       help="objects (instances, boxes) whose IoU where their tiles overlap reaches this are one (0.5)")
    merge.add_argument("--boxes", metavar="PRED_DIR",
                       help="merge per-tile YOLO prediction files (<tile stem>.txt: class cx cy w h [confidence]) "
                            "into OUTPUT/<stem>.txt per source and OUTPUT/coco.json, instead of merging images")
    merge.add_argument("--box-fusion", choices=("nms", "wbf"), default="nms",
                       help="duplicates of one object: nms keeps the best box, wbf averages them (weighted box fusion)")
    merge.add_argument("--restore-scale", action="store_true", help="resample back to the original pixel size")
    merge.add_argument("--overwrite", action="store_true", help="allow a non-empty OUTPUT (files of the same names are replaced)")
    merge.add_argument("--scheduler", metavar="ADDRESS|local:N",
                       help="merge on a Dask cluster, one task per image (see 'tilesapp cut --help')")

    predict = sub.add_parser("predict", parents=[settings, quiet, memory], help="apply an ONNX model to every image",
                             description="Cut every image of INPUT as 'cut' would (in memory), run the model on its "
                             "tiles and merge the outputs into OUTPUT at the images' own pixel size: <stem>.tif (maps) "
                             "or <stem>.txt and coco.json (boxes). Settings come from --config, else from the file "
                             "saved beside the model (MODEL.tilesapp.json), then from the flags.")
    predict.add_argument("input", metavar="INPUT", help="folder of images (or one image)")
    predict.add_argument("output", metavar="OUTPUT", help="folder for the results (created if missing; must be empty)")
    predict.add_argument("--model", required=True, metavar="MODEL.onnx", help="the trained model, in ONNX format")
    predict.add_argument("--model-output", choices=("auto", "probabilities", "logits", "labels", "instances", "mask",
                                                    "boxes"),
                         help="what the model gives: probabilities (blended), logits (blended, then the class of the "
                              "largest), labels (class ids: voted), instances (stitched), mask (max), boxes (merged as "
                              "merge --boxes); auto (default): integer maps are labels, float maps probabilities")
    predict.add_argument("--blend", choices=blend_windows, help="weights in overlaps (gradient)")
    predict.add_argument("--iou", type=float, metavar="FRACTION", help="instances and boxes: IoU of one object (0.5)")
    predict.add_argument("--box-fusion", choices=("nms", "wbf"), help="boxes: keep the best (nms) or average (wbf)")
    predict.add_argument("--min-confidence", type=float, metavar="FRACTION",
                         help="raw YOLO heads: boxes below this confidence are dropped (0.25)")
    predict.add_argument("--batch-size", type=int, metavar="N", help="tiles per model run (default: 1 on the CPU, 4 on a GPU)")
    predict.add_argument("--input-scale", type=_input_scale, metavar="FACTOR",
                         help="multiply tile values by FACTOR before the model, e.g. 1/255 for models trained on "
                              "8-bit images divided by 255 (1)")
    predict.add_argument("--device", choices=("auto", "cpu"),
                         help="auto: a GPU (CUDA, DirectML, CoreML) when onnxruntime has one; cpu: the CPU only")
    predict.add_argument("--no-restore-scale", dest="restore_scale", action="store_const", const=False,
                         help="keep results at the tiles' pixel size (default: the images' own)")
    predict.add_argument("--overwrite", action="store_true", help="allow a non-empty OUTPUT (same names are replaced)")

    sample = sub.add_parser("sample", parents=[quiet], help="save a mosaic of up to 25 random images",
                            description="Save a mosaic of random images of INPUT, each at most 512 px, names drawn on them.")
    sample.add_argument("input", metavar="INPUT", help="folder of images")
    sample.add_argument("output", metavar="MOSAIC.png", help="image file to write (.png, .jpg or .tif)")
    sample.add_argument("--count", type=int, default=25, metavar="N", help="number of images (at most 25)")
    sample.add_argument("--size", type=int, default=512, metavar="PX", help="cell size in pixels (at most 512)")
    sample.add_argument("--seed", type=int, help="seed of the random choice (reproducible mosaics)")
    sample.add_argument("--recursive", action="store_true", help="also take images from sub-folders")
    sample.add_argument("--overwrite", action="store_true", help="replace MOSAIC.png if it exists")

    info = sub.add_parser("info", parents=[settings], help="list the images of a folder and what would be cut",
                          description="What INPUT holds: files, shapes, axes, types, pixel sizes, tiles per image "
                          "under the given settings, and the files that would be skipped.")
    info.add_argument("input", metavar="INPUT", help="folder of images")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")

    gui = sub.add_parser("gui", help="open the window (the default without a command)")
    gui.add_argument("folder", metavar="FOLDER", nargs="?", help="folder to open")
    gui.add_argument("--demo", action="store_true", help="open a folder of synthetic demo images")
    gui.add_argument("--quit-after", type=float, metavar="SECONDS", help="close the window after SECONDS (smoke tests)")
    return parser


def build_settings(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """Settings from defaults < --config < --preset < explicit flags; unknown config keys returned."""
    settings, unknown = (load_settings(args.config) if args.config else (Settings(), []))
    if args.preset:
        settings = settings.with_preset(args.preset)
    names = {f.name for f in dataclasses.fields(Settings)}
    overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if overrides.get("pixel_size") == "auto":
        overrides["pixel_size"] = None
    if "percentiles" in overrides:
        overrides["percentiles"] = tuple(overrides["percentiles"])
    if "bounds" in overrides:
        overrides["bounds"] = tuple(overrides["bounds"])
    return dataclasses.replace(settings, **overrides), unknown


# --- commands ------------------------------------------------------------------------------------
def _say(args, *lines: str) -> None:
    if not getattr(args, "quiet", False):
        for line in lines:
            print(line)


def cmd_cut(args) -> int:
    from tilesapp.core.export import run_export
    from tilesapp.core.settings import save_settings

    settings, unknown = build_settings(args)
    if unknown:
        _warn(f"{args.config}: ignored unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}.")
    if args.save_config:
        _check_save_config(Path(args.save_config), args)
    cancel = threading.Event()
    gen = run_export(args.input, args.output, settings, overwrite=args.overwrite, cancel=cancel,
                     masks=args.masks, labels=args.labels, annotations=args.annotations, executor=args.scheduler,
                     resume=args.resume)
    try:
        summary = drive(gen, ProgressBar("tiles", enabled=not args.quiet), cancel)
    except KeyboardInterrupt:
        cancel.set()
        gen.close()
        _warn(f"Interrupted: {Path(args.output) / 'manifest.json'} lists the tiles written so far "
              f"(add --resume to finish the cut).")
        return EXIT_INTERRUPTED
    if args.save_config:
        save_settings(settings, args.save_config)
    n_images = summary.images_ok
    _say(args, f"Wrote {summary.tiles_written} tiles from {n_images} image{'s' * (n_images != 1)} to {summary.output}"
               + (f" (see {summary.manifest_path.name})." if summary.manifest_written else "."))
    if summary.tiles_dropped:
        _say(args, f"Dropped {summary.tiles_dropped} tiles below {settings.min_foreground:.0%} foreground "
                   f"(kept {settings.keep_empty:.0%} of such tiles at random).")
    if summary.split:
        _say(args, f"Split by source: {summary.split.get('train', 0)} images in train/, {summary.split.get('val', 0)} in val/.")
    if summary.skipped:
        _say(args, f"Skipped {len(summary.skipped)} file{'s' * (len(summary.skipped) != 1)} that "
                   f"{'are' if len(summary.skipped) != 1 else 'is'} not an image: {', '.join(summary.skipped[:10])}"
                   f"{' …' if len(summary.skipped) > 10 else ''}")
    for _name, message in summary.warnings:
        _warn(f"Warning: {message}")
    if summary.failed:
        _warn(f"{len(summary.failed)} image{'s' * (len(summary.failed) != 1)} failed:")
        hinted = set()
        for name, reason in summary.failed:
            _warn(f"  {reason}")
            for setting, hint in HINTS.items():
                if setting in summary.settings_failures.get(name, ()) and setting not in hinted:
                    hinted.add(setting)
                    _warn(f"    {hint}")
    if summary.stopped_by:
        _warn(f"Stopped: {summary.stopped_by}")
    return summary.exit_code


def _check_save_config(path: Path, args) -> None:
    """--save-config must be writable, and outside the input folder, before anything is cut."""
    from tilesapp.core.folders import is_inside

    path = path.expanduser()
    if not path.parent.is_dir():
        raise OutputError(f"The folder {path.parent} of --save-config does not exist; create it or choose another.")
    if path.is_dir():
        raise OutputError(f"--save-config {path} is a folder; give a file name such as settings.json.")
    if is_inside(path.parent, args.input):
        raise OutputError(f"--save-config {path} is inside the input folder; save the settings elsewhere so the "
                          f"input is never touched.")


#: How merge and predict name their own settings in messages.
MERGE_FLAGS = {"combine": "--combine", "iou": "--iou", "boxes": "--boxes", "box_fusion": "--box-fusion",
               "model": "--model", "model_output": "--model-output", "batch_size": "--batch-size",
               "input_scale": "--input-scale", "device": "--device", "min_confidence": "--min-confidence"}


def cmd_merge(args) -> int:
    from tilesapp.core.merge import run_merge

    cancel = threading.Event()
    gen = run_merge(args.tiles, args.output, combine=args.combine, blend=args.blend, iou=args.iou, boxes=args.boxes,
                    box_fusion=args.box_fusion, restore_scale=args.restore_scale, overwrite=args.overwrite,
                    cancel=cancel, memory_limit=args.memory_limit, executor=args.scheduler)
    try:
        summary = drive(gen, ProgressBar("tiles", enabled=not args.quiet), cancel)
    except KeyboardInterrupt:
        cancel.set()
        gen.close()
        _warn("Interrupted.")
        return EXIT_INTERRUPTED
    except SettingsError as exc:
        _warn(f"tilesapp: error: {exc.describe({**FLAGS, **MERGE_FLAGS})}")
        return EXIT_USAGE
    _report_merge(args, summary, "box file" if args.boxes else "merged image")
    return summary.exit_code


def _report_merge(args, summary, what: str) -> None:
    """The lines a merge (or a prediction) ends with."""
    n = len(summary.written)
    _say(args, f"Wrote {n} {what}{'s' * (n != 1)} to {summary.output}"
               + (" and coco.json." if what == "box file" and n else "."))
    if "objects" in {k for c in summary.counts.values() for k in c}:
        _say(args, f"Instances: {summary.total('objects')} objects; {summary.total('merged')} found in several tiles "
                   f"were given one id" + (f"; {summary.total('split')} kept two ids (their parts met after they were "
                                           f"written; raise --memory-limit to merge them whole)" if summary.total('split')
                                           else "") + ".")
    if "boxes" in {k for c in summary.counts.values() for k in c}:
        _say(args, f"Boxes: {summary.total('boxes_in')} per-tile boxes merged into {summary.total('boxes')}.")
    for name, reason in summary.not_cut:
        _say(args, f"Not merged, its cut did not complete: {name} ({reason})")
    for _name, reason in summary.failed:
        _warn(f"Failed: {reason}")
    if summary.cancelled:
        _warn("Stopped before the end: the images not listed above were not written.")


def _input_scale(text: str) -> float:
    """A factor such as 0.5, 1/255 or 0.00392."""
    try:
        if "/" in text:
            top, bottom = text.split("/", 1)
            return float(top) / float(bottom)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a number or a fraction such as 1/255; got {text!r}") from None


def cmd_predict(args) -> int:
    from tilesapp.core.predict import PredictOptions, predict_options, run_predict, settings_beside

    beside = settings_beside(Path(args.model).expanduser())
    if not args.config and beside.is_file():
        args.config = str(beside)
    settings, unknown = build_settings(args)
    unknown = [key for key in unknown if key != "predict"]
    if unknown:
        _warn(f"{args.config}: ignored unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}.")
    cancel, gen = threading.Event(), None
    try:
        options, unknown = PredictOptions.from_dict(predict_options(args.config))
        if unknown:
            _warn(f"{args.config}: ignored unknown predict setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}.")
        flags = {k: getattr(args, k) for k in ("model_output", "blend", "iou", "box_fusion", "min_confidence",
                                               "batch_size", "input_scale", "device", "restore_scale")
                 if getattr(args, k) is not None}
        options, _ = PredictOptions.from_dict(flags, options)
        gen = run_predict(args.input, args.output, args.model, settings, options, overwrite=args.overwrite,
                          cancel=cancel, settings_file=Path(args.config) if args.config else None)
        summary = drive(gen, ProgressBar("tiles", enabled=not args.quiet), cancel)
    except KeyboardInterrupt:
        cancel.set()
        if gen is not None:
            gen.close()
        _warn("Interrupted: results written so far are complete images.")
        return EXIT_INTERRUPTED
    except SettingsError as exc:
        _warn(f"tilesapp: error: {exc.describe({**FLAGS, **MERGE_FLAGS})}")
        return EXIT_USAGE
    source = f"settings from {args.config}" if args.config else "default settings (no settings file beside the model)"
    _say(args, f"{Path(args.model).name} ({summary.kind}, {', '.join(summary.providers)}), {source}.")
    _report_merge(args, summary, "box file" if summary.kind == "boxes" else "result")
    for _name, message in summary.warnings:
        _warn(f"Warning: {message}")
    hinted = set()
    for name, _reason in summary.failed:
        for setting, hint in HINTS.items():
            if setting in summary.settings_failures.get(name, ()) and setting not in hinted:
                hinted.add(setting)
                _warn(f"    {hint}")
    return summary.exit_code


def cmd_sample(args) -> int:
    from tilesapp.core.folders import collect_inputs, is_inside
    from tilesapp.core.mosaic import make_mosaic
    from tilesapp.core.writers import write_image

    out = Path(args.output).expanduser()
    if not 1 <= args.count <= 25:
        raise SettingsError("count", f"--count must be between 1 and 25; got {args.count}.")
    if not 16 <= args.size <= 512:
        raise SettingsError("size", f"--size must be between 16 and 512; got {args.size}.")
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise SettingsError("output", f"{out.name}: the mosaic must be a .png, .jpg or .tif file.")
    inputs = collect_inputs(args.input, args.recursive)
    if any(is_inside(out.parent, folder) for folder in inputs.folders):
        raise OutputError(f"{out} is inside the input folder; save the mosaic somewhere else so the input is never touched.")
    if out.is_dir():
        raise OutputError(f"{out} is a folder; give the mosaic a file name, such as {out / 'mosaic.png'}.")
    if out.exists() and not args.overwrite:
        raise OutputError(f"{out} already exists; choose another name or pass --overwrite.")
    if not out.parent.is_dir():
        raise OutputError(f"The folder {out.parent} does not exist; create it first.")
    for warning in inputs.unsearched_warnings():
        _warn(f"Warning: {warning}")
    mosaic = drive(make_mosaic(inputs.images, args.count, args.size, args.seed), ProgressBar("images", enabled=not args.quiet))
    write_image(out, mosaic, "YXS")  # atomically: an earlier mosaic stays whole until the new one is
    _say(args, f"Wrote a mosaic of {min(args.count, len(inputs.images))} images to {out}.")
    return EXIT_OK


def cmd_info(args) -> int:
    from tilesapp.core.folders import collect_inputs

    settings, unknown = build_settings(args)
    inputs = collect_inputs(args.input, settings.recursive)
    rows = [row for path in inputs.images for row in _info_rows(path, inputs.name(path), settings)]
    total = sum(r.get("tiles", 0) for r in rows)
    skipped = [inputs.name(p) for p in inputs.skipped]
    unsearched = inputs.unsearched_warnings()
    if args.json:
        # escaped where the output cannot hold every character: JSON stays valid either way
        print(json.dumps({"input": str(inputs.root), "settings": settings.to_dict(), "images": rows,
                          "skipped": skipped, "unsearched": unsearched, "tiles": total}, indent=2,
                         ensure_ascii=not _utf8(sys.stdout)))
        return EXIT_OK
    _print_info_table(inputs.root, rows, skipped, total, settings)
    for warning in unsearched:
        _warn(f"Warning: {warning}")
    if unknown:
        _warn(f"{args.config}: ignored unknown settings {', '.join(unknown)}.")
    return EXIT_OK


def _info_rows(path: Path, name: str, settings: Settings) -> list[dict[str, Any]]:
    """One row per scene of a file: what its metadata says, and the tiles it gives under ``settings``."""
    from tilesapp.core.plan import plan_image
    from tilesapp.core.readers import open_image
    from tilesapp.core.sources import sources_of

    try:
        with open_image(path) as image:
            scenes = [(scene.info, not getattr(scene, "whole_only", False)) for scene in image.scenes]
    except ImageError as exc:
        return [{"file": name, "error": str(exc)}]
    rows = []
    for number, (info, regions) in enumerate(scenes):
        row: dict[str, Any] = {
            "file": name, "scene": number, "scene_name": info.scene_name, "reader": info.reader,
            "shape": list(info.shape), "axes": info.axes, "dtype": info.dtype, "z": info.n_z, "t": info.n_t,
            "channels": info.channels, "channel_names": list(info.channel_names),
            "pixel_size_um": list(info.pixel_size_um) if info.pixel_size_um else None, "calibration": info.calibration,
        }
        if info.calibration_hint:
            row["calibration_hint"] = info.calibration_hint
        if info.warnings:
            row["warnings"] = list(info.warnings)
        try:
            one = dataclasses.replace(settings, scenes=(number,))
            sources, _ = sources_of(path, name, [i for i, _ in scenes], one)
            plans = [plan_image(source.info, settings, source.name, regions) for source in sources]
            row.update(sources=len(sources), scaled_shape=list(plans[0].scaled_shape),
                       tiles=sum(len(p.grid) for p in plans))
            row["warnings"] = row.get("warnings", []) + [w for p in plans for w in p.warnings if w not in info.warnings]
            if not row["warnings"]:
                del row["warnings"]
        except ImageError as exc:
            row["error"] = str(exc) + (f" {HINTS[exc.setting]}" if getattr(exc, "setting", None) in HINTS else "")
        rows.append(row)
    return rows


def _one_line(text: str) -> str:
    """``text`` with control characters (a newline in a file name) shown as escapes, so that a
    table row stays one line.

    >>> _one_line("a\\nb ü.tif")
    'a\\\\nb ü.tif'
    """
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _print_info_table(root: Path, rows: list[dict], skipped: list[str], total: int, settings: Settings) -> None:
    headers = ("file", "scene", "shape", "axes", "Z×T", "dtype", "channels", "pixel size", "from", "after rescale", "tiles")
    table = []
    for r in rows:
        if "shape" not in r:
            table.append((_one_line(r["file"]), "", "", "", "", "", "", "", "", "", "error"))
            continue
        size = format_pixel_size(tuple(r["pixel_size_um"])) if r["pixel_size_um"] else "none"
        scaled = " × ".join(map(str, r["scaled_shape"])) if "scaled_shape" in r else "—"
        scene = str(r["scene"]) + (f" {r['scene_name']}" if r.get("scene_name") else "")
        planes = f"{r['z']}×{r['t']}" if r["z"] * r["t"] > 1 else ""
        channels = ", ".join(r["channel_names"]) or str(r["channels"])
        table.append((_one_line(r["file"]), scene, " × ".join(map(str, r["shape"])), r["axes"], planes, r["dtype"], channels, size,
                      r["calibration"] or "", scaled, str(r.get("tiles", "—"))))
    widths = [max(len(h), *(len(t[i]) for t in table)) if table else len(h) for i, h in enumerate(headers)]
    files = len({r["file"] for r in rows})
    print(f"{root}: {files} image file{'s' * (files != 1)} ({len(rows)} scene{'s' * (len(rows) != 1)}), "
          f"{len(skipped)} other file{'s' * (len(skipped) != 1)}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
    for r in rows:
        if "error" in r:
            print(f"  ! {r['error']}")
        for warning in r.get("warnings", ()):
            print(f"  ! {r['file']}: {warning}")
    if skipped:
        print(f"Skipped (not images): {', '.join(skipped)}")
    target = f"{settings.target_pixel_size:g} {settings.target_unit.replace('um', 'µm')}" if settings.calibrate else "no rescaling"
    print(f"{total} tiles of {settings.tile_size} px, overlap {settings.overlap} px, {target}.")


def cmd_gui(args) -> int:
    try:
        from tilesapp.gui.app import run_app
    except ImportError as exc:
        log.exception("the window cannot start")
        _warn(f"The window cannot start ({exc}); reinstall Tiles Creator, or use the commands (tilesapp --help).")
        return EXIT_FAILED
    folder = Path(args.folder) if getattr(args, "folder", None) else None
    return run_app(folder, demo=getattr(args, "demo", False), quit_after=getattr(args, "quit_after", None))


COMMANDS = {"cut": cmd_cut, "merge": cmd_merge, "predict": cmd_predict, "sample": cmd_sample, "info": cmd_info,
            "gui": cmd_gui}
#: The engine modules each command imports (numpy, OpenCV, …: a second or more to load).
_MODULES = {"cut": ("tilesapp.core.export",), "merge": ("tilesapp.core.merge",), "predict": ("tilesapp.core.predict",),
            "sample": ("tilesapp.core.mosaic",), "info": ("tilesapp.core.plan", "tilesapp.core.sources")}


def _import_engine(command: str) -> None:
    """Import what a command needs before it starts: an interrupt now quits at once, rather
    than surfacing from inside a C extension's import as an ImportError."""
    import importlib

    from tilesapp._entry import quitting_on_interrupt

    with quitting_on_interrupt():
        for module in _MODULES.get(command, ()):
            importlib.import_module(module)


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


def _never_fail_to_print() -> None:
    """What the terminal's (or a redirected file's) encoding cannot show is printed as escapes
    (\\u00d7), never a crash: Windows writes redirected output in its ANSI code page, which has
    no emoji, no Chinese and no ×."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")


def _utf8(stream) -> bool:
    return (getattr(stream, "encoding", None) or "").lower().replace("-", "") in ("utf8", "utf8sig")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tilesapp`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    log_file = None
    _never_fail_to_print()
    try:
        parser = build_parser()
        args = parser.parse_args(argv)  # exits 2 with a usage message on bad arguments
        log_file = setup_logging()
        command = COMMANDS.get(args.command or "gui")
        _import_engine(args.command or "gui")
        return command(args)
    except SettingsError as exc:
        _warn(f"tilesapp: error: {exc.describe(FLAGS)}")
        return EXIT_USAGE
    except OutputError as exc:
        _warn(f"tilesapp: error: {exc}")
        return EXIT_USAGE
    except TilesError as exc:
        _warn(f"tilesapp: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _warn("Interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:
        log.exception("unexpected error in 'tilesapp %s'", " ".join(argv))
        where = f" Details are in {log_file}." if log_file else ""
        _warn(f"tilesapp: unexpected error: {str(exc).rstrip('.')}.{where}")
        return EXIT_FAILED
