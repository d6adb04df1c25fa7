"""Applying a trained model: every image cut as ``cut`` cuts it, its tiles run through an ONNX
model in memory, the outputs merged back at the image's own pixel size. Only results are written.

The cut is the engine's own (:func:`tilesapp.core.cut.cut_image`: read, recalibrate, normalize,
cut and cast, band by band under the memory limit), into a sink that hands each tile to the
model (batched) instead of writing it; the model's outputs go to the merge
(:class:`tilesapp.core.merge.ImageMerge`) in the mode that fits them:

- ``probabilities`` (float maps): blend — ``OUTPUT/<stem>.tif``, float32, one channel per output;
- ``logits``: blend, then the channel of the largest value — a class map (uint8);
- ``labels`` (class ids, e.g. an ArgMax head): vote — a class map;
- ``instances`` (instance labels): stitched instances — a uint32 label map;
- ``mask``: max — any tile's detection wins;
- ``boxes``: ``(N, M, 6)`` ``x0 y0 x1 y1 score class`` in tile pixels (an end-to-end detector),
  or a raw YOLO head ``(N, 4 + classes, anchors)`` (``cx cy w h`` then class scores) — merged
  as by ``merge --boxes``: ``OUTPUT/<stem>.txt`` per image and ``OUTPUT/coco.json``.

``auto`` takes integer maps for labels, float maps for probabilities and the shapes above for
boxes. The model receives the tiles as the cut would write them (the settings' output type and
bounds), times ``input_scale``, as ``(N, channels, rows, cols)``; its input shape is checked
against the settings first. Half of the memory limit goes to the cut, half to the merge; the
model's own working memory (its activations, a batch of tiles) comes on top.

onnxruntime is imported only here, when a model is loaded (``pip install "tilesapp[predict]"``).
CUDA, DirectML and CoreML execution providers are used when onnxruntime has them, else the CPU.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from tilesapp.core import boxes as box_merge
from tilesapp.core.combine import BLENDS, DEFAULT_IOU, Weights
from tilesapp.core.cut import CutRun, ImageJob, ImageResult, cut_image
from tilesapp.core.errors import ImageError, SettingsError, TilesError
from tilesapp.core.executors import ThreadExecutor
from tilesapp.core.folders import Inputs, check_output_place, collect_inputs, lock_output
from tilesapp.core.memory import MemoryGate, default_memory_limit
from tilesapp.core.merge import COCO_NAME, ImageMerge, MergeSummary, MergeTarget, as_tile, make_combiner
from tilesapp.core.plan import ImagePlan, plan_image
from tilesapp.core.progress import Progress, Throttle
from tilesapp.core.readers import open_image, to_yxc
from tilesapp.core.settings import Settings
from tilesapp.core.sinks import StemNames, TileFiles
from tilesapp.core.sources import sources_of
from tilesapp.core.writers import write_bytes, write_text
from tilesapp.core.textfiles import read_text

log = logging.getLogger(__name__)

MODEL_OUTPUTS = ("auto", "probabilities", "logits", "labels", "instances", "mask", "boxes")
#: The settings file a model may carry: ``unet.onnx`` → ``unet.tilesapp.json``.
SETTINGS_SUFFIX = ".tilesapp.json"
#: Execution providers used when onnxruntime has them, best first (the CPU always).
PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")
_COMBINE = {"probabilities": "blend", "logits": "blend", "labels": "vote", "instances": "instances", "mask": "max"}
_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
               "tensor(uint8)": np.uint8, "tensor(int8)": np.int8, "tensor(uint16)": np.uint16,
               "tensor(int16)": np.int16, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


@dataclass(frozen=True)
class PredictOptions:
    """How a model is applied (the ``"predict"`` object of a settings file, or flags).

    ``model_output`` (see the module docstring); ``blend`` the window of blends and votes;
    ``iou`` and ``box_fusion`` as for merge; ``min_confidence`` drops a raw YOLO head's weaker
    boxes; ``batch_size`` tiles per model run (None: 1 on the CPU, where batches gain little
    and cost the model's memory several times — measured 32 vs 29 ms per 512 px tile —, 4 on
    a GPU); ``input_scale`` multiplies tile values (1/255 for
    models trained on 8-bit images divided by 255, as Ultralytics does); ``restore_scale``
    writes results at the images' own pixel size; ``device`` "auto" (GPU providers when
    present) or "cpu".
    """

    model_output: str = "auto"
    blend: str = "gradient"
    iou: float = DEFAULT_IOU
    box_fusion: str = "nms"
    min_confidence: float = 0.25
    batch_size: int | None = None
    input_scale: float = 1.0
    restore_scale: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        for name, allowed in (("model_output", MODEL_OUTPUTS), ("blend", BLENDS), ("box_fusion", box_merge.FUSIONS),
                              ("device", ("auto", "cpu"))):
            if getattr(self, name) not in allowed:
                raise SettingsError(name, f"{{name}} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}.")
        for name, lowest in (("iou", 1e-9), ("min_confidence", 0.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lowest <= value <= 1:
                raise SettingsError(name, f"{{name}} must be a share {'above' if lowest else 'from'} 0 and at most 1; "
                                          f"got {value!r}.")
        if self.batch_size is not None and (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int)
                                            or not 1 <= self.batch_size <= 1024):
            raise SettingsError("batch_size", f"{{name}} must be a whole number from 1 to 1024; got {self.batch_size!r}.")
        scale = self.input_scale
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not np.isfinite(scale) or scale <= 0:
            raise SettingsError("input_scale", f"{{name}} must be a number above 0 (such as 1/255); got {scale!r}.")
        if not isinstance(self.restore_scale, bool):
            raise SettingsError("restore_scale", f"{{name}} must be true or false; got {self.restore_scale!r}.")

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: PredictOptions | None = None) -> tuple[PredictOptions, list[str]]:
        """Options from a dict over ``base``; returns them and the unknown keys."""
        if not isinstance(data, dict):
            raise SettingsError("predict", "{name} in a settings file must be a JSON object ({...}).")
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        return replace(base or cls(), **values), [k for k in data if k not in names]


def settings_beside(model: str | Path) -> Path:
    """The settings file saved beside a model: ``unet.onnx`` → ``unet.tilesapp.json``."""
    model = Path(model)
    return model.with_name(model.stem + SETTINGS_SUFFIX)


def predict_options(path: str | Path | None) -> dict[str, Any]:
    """The ``"predict"`` object of a settings file ({} when it has none)."""
    if path is None:
        return {}
    try:
        data = json.loads(read_text(path))
    except (OSError, ValueError):
        return {}  # the settings themselves were read (or refused) by load_settings
    section = data.get("predict", {}) if isinstance(data, dict) else {}
    if not isinstance(section, dict):
        raise SettingsError("predict", f"'predict' in {path} must be a JSON object ({{...}}).")
    return section


# --- the model ------------------------------------------------------------------------------------
class Model:
    """An ONNX model loaded for inference: its input (name, shape, type) and its first output."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None):
        # onnxruntime 1.29+ reports usage to Microsoft from its import on (and keeps a device id
        # in the user's home) unless told not to; a lab's images tool does not, unless asked
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            import onnxruntime as ort
        except ImportError:
            if getattr(sys, "frozen", False):  # a desktop build made without it
                raise TilesError("This build of Tiles Creator cannot run models (it was made without onnxruntime); "
                                 "use a build that includes it, or the Python package with pip install "
                                 "\"tilesapp[predict]\".") from None
            raise TilesError("Predicting needs onnxruntime, which is not installed: pip install \"tilesapp[predict]\" "
                             "(or pip install onnxruntime).") from None
        if os.environ["ORT_DISABLE_TELEMETRY"] == "1" and hasattr(ort, "disable_telemetry_events"):
            ort.disable_telemetry_events()  # Windows' event tracing, which the variable does not cover
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise SettingsError("model", f"{{name}} {self.path} is not a file; give the model's .onnx file.")
        available = ort.get_available_providers()
        wanted = [p for p in PROVIDERS if p in available and (device == "auto" or p == "CPUExecutionProvider")]
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=wanted)
        except Exception as exc:  # onnxruntime's own exceptions: a damaged or unsupported model
            if wanted != ["CPUExecutionProvider"] and "CPUExecutionProvider" in available:
                log.warning("model %s on %s failed (%s); using the CPU", self.path, wanted[0], exc)
                try:
                    self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
                except Exception as again:
                    raise _model_error(self.path, again) from None
            else:
                raise _model_error(self.path, exc) from None
        self.providers = self.session.get_providers()
        model_input, model_output = self.session.get_inputs()[0], self.session.get_outputs()[0]
        self.input_name, self.input_shape = model_input.name, list(model_input.shape)
        self.input_dtype = np.dtype(_ONNX_TYPES.get(model_input.type, np.float32))
        self.output_name = model_output.name
        if len(self.input_shape) != 4:
            raise SettingsError("model", f"{{name}} {self.path.name} takes an input of shape {self.input_shape}; "
                                         f"tiles go in as (batch, channels, rows, cols).")

    def fixed(self, axis: int) -> int | None:
        """The input's size along ``axis`` when the model fixes it (None: any)."""
        size = self.input_shape[axis]
        return size if isinstance(size, int) and size > 0 else None

    @property
    def channels(self) -> int | None:
        return self.fixed(1)

    def check_tile_size(self, tile_size: int, settings_file: Path | None) -> None:
        """A model of fixed rows/cols takes tiles of that size only (SettingsError otherwise)."""
        rows, cols = self.fixed(2), self.fixed(3)
        if rows is not None and cols is not None and rows != cols:
            raise SettingsError("model", f"{{name}} {self.path.name} takes {rows} × {cols} px inputs; tiles are square.")
        size = rows or cols
        if size is not None and size != tile_size:
            where = f"the settings ({settings_file.name})" if settings_file else "the settings"
            raise SettingsError("tile_size", f"{self.path.name} takes {size} × {size} px tiles but {where} cut "
                                             f"{tile_size} px tiles; set {{name}} {size} (and an overlap below it), or "
                                             f"save the training settings beside the model as "
                                             f"{settings_beside(self.path).name}.")

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The first output for a (N, channels, rows, cols) batch."""
        size = self.fixed(0)
        n = len(batch)
        if size is not None and n != size:  # a model of fixed batch: pad the last one
            batch = np.concatenate([batch, np.zeros((size - n, *batch.shape[1:]), batch.dtype)])
        out = self.session.run([self.output_name], {self.input_name: batch})[0]
        return out[:n]


def _model_error(path: Path, exc: BaseException) -> SettingsError:
    reason = str(exc).replace("[ONNXRuntimeError] : ", "").splitlines()[0][:200]
    return SettingsError("model", f"{{name}} {path.name} cannot be loaded as an ONNX model ({reason}).")


@dataclass(frozen=True)
class OutputKind:
    """What a model's output is, found by running it once on a blank batch."""

    kind: str  # one of MODEL_OUTPUTS but auto
    channels: int  # of a map (1 for boxes)
    boxes: str = ""  # "xyxy" (N, M, 6) or "yolo" (N, 4 + classes, anchors)


def output_kind(model: Model, tile_size: int, channels: int, wanted: str) -> OutputKind:
    """Run the model on a blank tile and say what its output is (SettingsError when it cannot be used)."""
    blank = np.zeros((1, model.channels or channels, tile_size, tile_size), model.input_dtype)
    try:
        out = model.run(blank)
    except Exception as exc:
        reason = str(exc).replace("[ONNXRuntimeError] : ", "").splitlines()[0][:200]
        raise SettingsError("model", f"{{name}} {model.path.name} fails on a {tile_size} px tile ({reason}).") from None
    shape = out.shape
    if out.ndim == 3 and shape[2] == 6 and shape[1:] != (tile_size, tile_size) and wanted in ("auto", "boxes"):
        return OutputKind("boxes", 1, "xyxy")
    if out.ndim == 3 and shape[1] > 4 and shape[2] > shape[1] and shape[1:] != (tile_size, tile_size) \
            and wanted in ("auto", "boxes"):
        return OutputKind("boxes", 1, "yolo")
    if out.ndim == 3:
        out = out[:, np.newaxis]
    if out.ndim != 4 or wanted == "boxes":
        raise SettingsError("model_output", f"{model.path.name} gives outputs of shape {list(shape)}, which {{name}} "
                                            f"{wanted} cannot merge; maps are (batch, channels, rows, cols), boxes "
                                            f"(batch, boxes, 6) or a YOLO head (batch, 4 + classes, anchors).")
    kind = wanted if wanted != "auto" else ("labels" if out.dtype.kind in "iub" else "probabilities")
    if kind in ("labels", "instances") and out.shape[1] != 1:
        raise SettingsError("model_output", f"{{name}} {kind} needs one channel of ids; {model.path.name} gives "
                                            f"{out.shape[1]} channels (per-class scores: use logits or probabilities).")
    return OutputKind(kind, int(out.shape[1]))


# --- the run --------------------------------------------------------------------------------------
@dataclass
class PredictSummary(MergeSummary):
    """What a prediction did: a merge's summary, plus the model's providers and the files passed over."""

    providers: list[str] = field(default_factory=list)
    kind: str = ""
    skipped: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    #: The settings each failed image needs (e.g. "pixel_size"), as the export's summary says.
    settings_failures: dict[str, tuple[str, ...]] = field(default_factory=dict)


def run_predict(
    inputs: str | Path | list[str | Path],
    output: str | Path,
    model: str | Path | Model,
    settings: Settings,
    options: PredictOptions | None = None,
    *,
    settings_file: Path | None = None,
    overwrite: bool = False,
    cancel: threading.Event | None = None,
) -> Generator[Progress, None, PredictSummary]:
    """Apply ``model`` to every image of ``inputs``; results into ``output`` (see the module docstring).

    ``settings`` are the cut's (tile size, calibration, normalization, output type: what the
    model was trained on; ``memory_limit`` and ``workers`` apply too). Raises SettingsError /
    OutputError / TilesError before anything is written; an image that fails is reported in the
    summary. Setting ``cancel`` stops between two tiles (the image being done is not written).
    """
    options = options or PredictOptions()
    settings = replace(settings, min_foreground=0.0, val_fraction=0.0)  # every tile, one side
    found = collect_inputs(inputs, settings.recursive)
    out = Path(output).expanduser().absolute()
    check_output_place(out, found.folders, "the results")
    if not isinstance(model, Model):
        model = Model(model, options.device, settings.workers)
    model.check_tile_size(settings.tile_size, settings_file)
    run = _Prediction(found, out, model, settings, options, cancel or threading.Event())
    return (yield from run.run(overwrite))


class _Prediction:
    """One prediction run: each source planned, then cut into the model and merged, in turn."""

    def __init__(self, inputs: Inputs, out: Path, model: Model, settings: Settings, options: PredictOptions,
                 cancel: threading.Event):
        self.inputs, self.out, self.model, self.settings, self.options = inputs, out, model, settings, options
        self.kind = OutputKind("", 1)
        self.cancel = cancel
        self.limit = settings.memory_limit or default_memory_limit()
        self.summary = PredictSummary(out, providers=list(model.providers),
                                      skipped=[inputs.name(p) for p in inputs.skipped],
                                      warnings=[("", warning) for warning in inputs.unsearched_warnings()])
        self.coco = box_merge.CocoFile()
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        on_cpu = model.providers[:1] == ["CPUExecutionProvider"]
        self.batch_size = model.fixed(0) or options.batch_size or (1 if on_cpu else 4)
        # half of the limit for the cut (its process gate), half for the merge: a gate of its own,
        # never the cut's (the merge holds its bytes while the cut asks for its own)
        self.merge_gate = MemoryGate(self.limit - self.limit // 2)
        self.stems = StemNames()

    def run(self, overwrite: bool) -> Generator[Progress, None, PredictSummary]:
        jobs: list[ImageJob] = []
        throttle = Throttle()
        for number, path in enumerate(self.inputs.images):
            jobs += self._plan(path, self.inputs.name(path), len(jobs))
            if throttle.due():
                yield Progress(0, 0, number, len(self.inputs.images), self.inputs.name(path), "Reading image metadata")
        # the model tried once on a blank tile: what it gives decides the merge (nothing written yet)
        channels = jobs[0].plan.info.channels if jobs else 1
        self.kind = output_kind(self.model, self.settings.tile_size, channels, self.options.model_output)
        self.summary.kind = self.kind.kind
        lock = lock_output(self.out, overwrite)  # two runs writing into one folder at once would mix their results
        try:
            yield from self._predict(jobs)
            if self.coco.images:
                write_bytes(self.out / COCO_NAME, json.dumps(self.coco.document(), indent=1).encode("utf-8"))
        finally:
            lock.release()
        self.summary.cancelled = self.cancel.is_set()
        return self.summary

    def _predict(self, jobs: list[ImageJob]) -> Generator[Progress, None, None]:
        total = sum(len(j.plan.grid) for j in jobs)
        done, throttle = 0, Throttle()
        with ThreadPoolExecutor(1, thread_name_prefix="tilesapp-predict") as pool, ThreadExecutor(1) as bands:
            try:
                for number, job in enumerate(jobs):
                    if self.cancel.is_set():
                        break
                    future = pool.submit(self._image, job, bands)
                    while not future.done() or not self.events.empty():
                        try:
                            done += self.events.get(timeout=0.1)
                        except queue.Empty:
                            continue
                        if throttle.due():
                            yield Progress(done, total, number, len(jobs), job.name, "Predicting")
                    future.result()
                    yield Progress(done, total, number + 1, len(jobs), job.name, "Predicting")
            except BaseException:
                self.cancel.set()  # closed, interrupted: the image being done stops at its next tile
                raise

    def _plan(self, path: Path, name: str, first: int) -> list[ImageJob]:
        """The sources of one file (its scenes, planes, channels as the settings choose), planned."""
        try:
            with open_image(path) as image:
                scenes = [(scene.info, not getattr(scene, "whole_only", False)) for scene in image.scenes]
            if not scenes:
                raise ImageError(f"{name}: the file holds no image.")
            sources, warnings = sources_of(path, name, [info for info, _ in scenes], self.settings)
        except ImageError as exc:
            self._failed(name, exc)
            return []
        self.summary.warnings += [(name, warning) for warning in warnings]
        jobs = []
        for source in sources:
            stem = self.stems.take(name, source.stem_suffix)
            try:
                plan = plan_image(source.info, self.settings, source.name, scenes[source.ref.scene][1])
                channels = self.model.channels
                has = plan.info.channels
                if channels is not None and has != channels:
                    # more channels than the model takes: some of them may be what it was trained on
                    todo = f"keep {channels} of them with --channels, or predict" if has > channels else "predict"
                    raise ImageError(f"{source.name} has {has} channel{'s' * (has != 1)} but {self.model.path.name} takes "
                                     f"{channels}; {todo} images like those it was trained on.")
            except ImageError as exc:
                self._failed(source.name, exc)
                continue
            self.summary.warnings += [(source.name, f"{source.name}: {warning}") for warning in plan.warnings]
            jobs.append(ImageJob(first + len(jobs), source.ref, source.name, stem, plan))
        return jobs

    def _failed(self, name: str, exc: ImageError) -> None:
        self.summary.failed.append((name, str(exc)))
        if getattr(exc, "setting", None):
            self.summary.settings_failures[name] = (exc.setting,)

    def _image(self, job: ImageJob, bands: ThreadExecutor) -> None:
        """Cut one image into the model and merge its outputs (in the worker thread)."""
        image = _ImagePrediction(job, self, self.merge_gate)
        name, failed = job.name, self.summary.failed
        try:
            image.start()
            run = CutRun(self.settings, _ModelSink(image, self.out), self.limit // 2, 1, self.cancel, self.events.put)
            result: ImageResult = cut_image(job, run, bands)
            self.summary.warnings += [(name, f"{name}: {warning}") for warning in result.warnings]
            if result.status == "ok":
                image.flush()
                image.finish()
            elif result.status != "cancelled":
                failed.append((name, result.error or f"{name}: {result.status}."))
        except ImageError as exc:
            failed.append((name, str(exc)))
        except MemoryError:
            failed.append((name, f"{name}: not enough memory to predict it; lower the batch size or the memory limit."))
        except OSError as exc:
            failed.append((name, f"{name}: writing its result failed ({exc.strerror or exc})."))
        except Exception as exc:
            log.exception("unexpected error while predicting %s", name)
            failed.append((name, f"{name}: unexpected error ({exc}); see the log file."))
        finally:
            image.close()


class _ModelSink:
    """The cut's sink for a prediction: each tile goes to the model instead of a file."""

    layout = "model"

    def __init__(self, image: _ImagePrediction, folder: Path):
        self.image, self.folder = image, folder

    def prepare(self) -> list[str]:
        return []

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        return TileFiles(str(index))

    def write(self, name: str, array: np.ndarray, axes: str, pixel_size_um) -> None:
        self.image.add(int(name), to_yxc(array, axes))

    def write_text(self, name: str, text: str) -> None:
        pass

    def discard(self, names: list[str]) -> None:
        pass

    def finish(self, manifest) -> list[str]:
        return []

    def read(self, name: str) -> np.ndarray:
        raise FileNotFoundError(name)


class _ImagePrediction:
    """One image's tiles through the model (in batches) and its outputs into a merge."""

    def __init__(self, job: ImageJob, run: _Prediction, gate):
        self.job, self.run, self.gate = job, run, gate
        self.plan: ImagePlan = job.plan
        self.grid = job.plan.grid
        self.batch: list[tuple[int, np.ndarray]] = []
        self.boxes: list[box_merge.PlacedBoxes] = []
        self.merge: ImageMerge | None = None
        self.held = 0

    def start(self) -> None:
        run, kind = self.run, self.run.kind
        if kind.kind == "boxes":
            return
        plan, options = self.plan, run.options
        combiner = make_combiner(_COMBINE[kind.kind], Weights(self.grid.tile_size, self.grid.overlap, options.blend),
                                 False, self.job.name, options.iou, argmax=kind.kind == "logits")
        restore = options.restore_scale and plan.rescaled
        target = MergeTarget(run.out / f"{self.job.stem}.tif", tuple(plan.info.shape_yx), None, plan.input_pixel_size_um,
                             plan.output_pixel_size_um, restore)
        self.merge = ImageMerge(self.grid, combiner, target, run.limit - run.limit // 2, kind.channels, run.cancel)
        self.held = self.gate.acquire(self.merge.bytes_needed(), run.cancel)

    def add(self, index: int, values: np.ndarray) -> None:
        """A tile as the cut made it, (rows, cols, channels) of the settings' type."""
        self.batch.append((index, values))
        if len(self.batch) >= self.run.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.batch:
            return
        batch, self.batch = self.batch, []
        model, scale = self.run.model, self.run.options.input_scale
        x = np.stack([values for _, values in batch]).transpose(0, 3, 1, 2).astype(np.float32)
        if scale != 1.0:
            x *= np.float32(scale)
        try:
            outputs = model.run(x.astype(model.input_dtype, copy=False))
        except Exception as exc:  # onnxruntime's own exceptions
            reason = str(exc).replace("[ONNXRuntimeError] : ", "").splitlines()[0][:200]
            raise ImageError(f"{self.job.name}: the model failed on its tiles ({reason}).") from None
        for (index, _), out in zip(batch, outputs):
            self._take(self.grid.tile(index), out)

    def _take(self, tile, out: np.ndarray) -> None:
        kind = self.run.kind
        size = self.grid.tile_size
        if kind.kind == "boxes":
            rows = _box_rows(out, kind.boxes, size, self.run.options.min_confidence)
            placed = box_merge.place_boxes(rows, tile, size, self.plan.scaled_shape)
            if kind.boxes == "yolo":  # a raw head: its many candidates merged within the tile first
                placed = box_merge.merge_boxes(placed, self.run.options.iou)
            self.boxes.append(placed)
            return
        values = out if out.ndim == 3 else out[np.newaxis]
        values = np.moveaxis(values, 0, -1)
        if kind.kind in ("labels", "mask") and values.dtype.kind in "iub":
            if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
                raise ImageError(f"{self.job.name}: the model gives ids outside 0–65535 ({kind.kind}).")
            values = values.astype(np.uint16)
        self.merge.add(tile, as_tile(values, size, f"tile {tile.index}", nearest=kind.kind != "probabilities"
                                     and kind.kind != "logits"), f"tile {tile.index}")

    def finish(self) -> None:
        run, summary, name = self.run, self.run.summary, self.job.name
        if run.cancel.is_set():
            return
        if self.merge is not None:
            path = self.merge.close()
            if path is not None:
                summary.written.append(path)
                if self.merge.combiner.counts():
                    summary.counts[name] = self.merge.combiner.counts()
            return
        placed = box_merge.concat(self.boxes)
        size = tuple(self.plan.info.shape_yx) if run.options.restore_scale else tuple(self.plan.scaled_shape)
        merged = box_merge.merge_boxes(placed, run.options.iou, run.options.box_fusion).scaled(self.plan.scaled_shape, size)
        target = run.out / f"{self.job.stem}.txt"
        write_text(target, box_merge.yolo_text(merged, size))
        run.coco.add_image(name, size, merged)
        summary.written.append(target)
        summary.counts[name] = {"boxes_in": len(placed), "boxes": len(merged)}

    def close(self) -> None:
        if self.merge is not None:
            self.merge.abort()
        self.gate.release(self.held)
        self.held = 0


def _box_rows(out: np.ndarray, layout: str, tile_size: int, min_confidence: float) -> np.ndarray:
    """A tile's boxes from a detector's output as (n, 6) class, cx, cy, w, h, confidence,
    normalized to the tile (boxes of no size or below ``min_confidence`` left out)."""
    if layout == "xyxy":  # (M, 6): x0 y0 x1 y1 score class, in tile pixels
        x0, y0, x1, y1, score, cls = np.asarray(out, np.float64).T
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    else:  # (4 + classes, anchors): cx cy w h, then a score per class
        out = np.asarray(out, np.float64)
        cx, cy, w, h = out[:4]
        scores = out[4:]
        cls, score = np.argmax(scores, axis=0).astype(np.float64), scores.max(axis=0)
    rows = np.stack([cls, cx / tile_size, cy / tile_size, w / tile_size, h / tile_size, score], axis=1)
    keep = np.all(np.isfinite(rows), axis=1) & (score >= min_confidence) & (w > 0) & (h > 0) & (cls >= 0)
    rows = rows[keep]
    rows[:, 5] = np.clip(rows[:, 5], 0, 1)
    rows[:, 0] = np.floor(rows[:, 0])
    return rows


__all__ = ["MODEL_OUTPUTS", "SETTINGS_SUFFIX", "Model", "OutputKind", "PredictOptions", "PredictSummary",
           "output_kind", "predict_options", "run_predict", "settings_beside"]
