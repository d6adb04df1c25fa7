"""``manifest.json``: what an export wrote, as typed records, read back with every rule checked.

A manifest travels with a tile folder that may come from someone else, so reading one trusts
nothing: every path it names must stay inside the tile folder, tile stems are plain unique
names, sizes are whole numbers in range and tile boxes lie inside their image. A manifest that
breaks a rule raises :class:`ManifestError` naming the field.

Names that are not valid UTF-8 (file names read from disk as surrogate escapes) are written as
``\\udcXX`` escapes, so the file stays valid JSON and the names come back exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from tilesapp import __version__
from tilesapp.core.errors import TilesError
from tilesapp.core.geometry import Tile, TileGrid
from tilesapp.core.textfiles import read_text

MANIFEST_NAME = "manifest.json"
#: 2 adds ``layout``, ``files`` and ``warnings``; version 1 manifests are read as well.
MANIFEST_VERSION = 2
#: Largest tile side a manifest may claim (the settings' own limit).
MAX_TILE_SIZE = 65536
#: Largest side of a recalibrated image a manifest may claim.
MAX_SIDE = 1 << 24


class ManifestError(TilesError):
    """A manifest breaks a rule; ``field`` names where."""

    def __init__(self, path: Path | str, field_: str, rule: str):
        super().__init__(f"{path}: {field_} {rule}; the manifest is damaged or was edited — cut the images again.")
        self.field = field_


@dataclass
class TileRecord:
    """One tile as the manifest lists it: its files and its box in recalibrated pixels."""

    file: str | None = None  # None for a tile the filter dropped
    source: str = ""
    index: int = -1
    row: int = -1
    col: int = -1
    y0: int = -1
    x0: int = -1
    y1: int = -1
    x1: int = -1
    pad_y: int = 0
    pad_x: int = 0
    mask: str | None = None
    label: str | None = None
    split: str | None = None
    foreground: float | None = None
    low: list[float] | None = None
    high: list[float] | None = None
    boxes: int | None = None

    def files(self) -> list[str]:
        """Every file of this tile (image, mask, label), relative to the tile folder."""
        return [f for f in (self.file, self.mask, self.label) if f]

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies, and a manifest lists tens of thousands of tiles;
        # the instance's own dict holds the fields in their order (set by __init__)
        return {name: value for name, value in self.__dict__.items() if value is not None}




@dataclass
class SourceRecord:
    """One source image: where it came from, how it was recalibrated and cut, how it ended."""

    file: str
    tile_stem: str
    status: str = "pending"
    error: str | None = None
    mask: str | None = None
    labels: str | None = None
    shape: list[int] | None = None
    axes: str | None = None
    dtype: str | None = None
    pixel_size_um: list[float] | None = None
    calibration: str | None = None
    scale_factor: list[float] | None = None
    scaled_shape: list[int] | None = None
    output_pixel_size_um: list[float] | None = None
    grid: list[int] | None = None
    padding: list[int] | None = None
    normalization: dict[str, Any] | None = None
    tiles: int = 0
    tiles_dropped: int = 0
    split: str | None = None
    warnings: list[str] = field(default_factory=list)
    name: str = ""  # the source's key (tiles name it): the file, or "file [s1 z03]" for a part of it
    scene: int | None = None  # 0-based, in a file of several scenes
    scene_name: str | None = None
    z: int | str | None = None  # a plane, or the projection ("max", "mean") of a Z stack
    t: int | None = None
    channel_names: list | None = None  # the channels kept (names, or indices), in order
    reader: str | None = None

    #: Keys written even when None (readers of version 1 manifests expect them).
    _ALWAYS = ("file", "tile_stem", "status", "error")

    def __post_init__(self) -> None:
        self.name = self.name or self.file

    def describe(self, plan, mask: Path | None = None, labels: Path | None = None) -> None:
        """Fill in what a plan says of the source (before its cut)."""
        info = plan.info
        self.mask = None if mask is None else mask.name
        self.labels = None if labels is None else labels.name
        self.shape, self.axes, self.dtype = list(info.shape), info.axes, info.dtype
        self.pixel_size_um = _pair(plan.input_pixel_size_um)
        self.calibration = plan.calibration
        self.scale_factor = list(plan.factors)
        self.scaled_shape = list(plan.scaled_shape)
        self.output_pixel_size_um = _pair(plan.output_pixel_size_um)
        self.grid = [plan.grid.n_rows, plan.grid.n_cols]
        self.padding = list(plan.grid.padding)

    @property
    def shape_yx(self) -> tuple[int, int]:
        axes = self.axes or "YX"
        return (int(self.shape[axes.index("Y")]), int(self.shape[axes.index("X")]))

    @property
    def channels(self) -> int:
        """Channels as the manifest describes the source (model outputs may have others)."""
        axes, shape = self.axes or "YX", self.shape or []
        if axes == "YX" or len(shape) != len(axes):
            return 1
        return int(shape[0] if axes == "CYX" else shape[2])

    def grid_of(self, tile_size: int, overlap: int) -> TileGrid:
        """The tile grid this source was cut on."""
        return TileGrid.for_shape(tuple(self.scaled_shape), tile_size, overlap)

    def to_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in _SOURCE_FIELDS}
        if not self.warnings:
            del data["warnings"]
        if self.name == self.file:
            del data["name"]  # a whole file: its name is the key, as in version 1 manifests
        return {k: v for k, v in data.items() if v is not None or k in self._ALWAYS}


_SOURCE_FIELDS = tuple(f.name for f in dataclasses.fields(SourceRecord))


@dataclass
class Manifest:
    """The whole manifest of one tile folder."""

    settings: dict[str, Any]
    tile_size: int
    overlap: int
    dtype: str
    format: str
    input: str = ""
    layout: str = "plain"
    status: str = "running"
    created: str = ""
    updated: str = ""
    version: str = __version__
    masks: str | None = None
    labels: str | None = None
    split: dict[str, Any] | None = None
    sources: list[SourceRecord] = field(default_factory=list)
    tiles: list[TileRecord] = field(default_factory=list)
    dropped: list[TileRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # other files the export wrote (classes.txt, ...)
    warnings: list[str] = field(default_factory=list)
    stopped_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "tilesapp_manifest": MANIFEST_VERSION,
            "version": self.version,
            "created": self.created,
            "updated": self.updated,
            "status": self.status,
            "input": self.input,
            "layout": self.layout,
            "settings": self.settings,
            "tile_size": self.tile_size,
            "overlap": self.overlap,
            "dtype": self.dtype,
            "format": self.format,
            "masks": self.masks,
            "labels": self.labels,
            "split": self.split,
            "sources": [s.to_dict() for s in self.sources],
            "tiles": [t.to_dict() for t in self.tiles],
            "dropped": [t.to_dict() for t in self.dropped],
            "skipped": list(self.skipped),
            "files": list(self.files),
            "warnings": list(self.warnings),
            "stopped_by": self.stopped_by,
        }

    def written_files(self) -> list[str]:
        """Every file this manifest says the export wrote, relative to its folder."""
        return [f for t in self.tiles for f in t.files()] + list(self.files)

    def tiles_by_source(self) -> dict[str, list[TileRecord]]:
        out: dict[str, list[TileRecord]] = {s.name: [] for s in self.sources}
        for tile in self.tiles:
            out.setdefault(tile.source, []).append(tile)
        return out


def _pair(value) -> list[float] | None:
    return None if value is None else [float(value[0]), float(value[1])]


def now() -> str:
    """The current time as manifests record it (local time, with its offset)."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


_ENCODER = json.JSONEncoder(ensure_ascii=False)


def manifest_json(manifest: Manifest) -> bytes:
    """The manifest's file content: UTF-8 JSON, one source or tile per line (json's C encoder
    writes each; an indented dump goes through its much slower Python encoder); undecodable
    names kept as ``\\udcXX`` escapes."""
    parts = []
    encode = _ENCODER.encode  # one encoder: json.dumps(..., ensure_ascii=False) builds one per call
    for key, value in manifest.to_dict().items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            items = ",\n  ".join(map(encode, value))
            text = f"[\n  {items}\n ]"
        else:
            text = encode(value)
        parts.append(f" {json.dumps(key)}: {text}")
    return ("{\n" + ",\n".join(parts) + "\n}\n").encode("utf-8", "backslashreplace")


def undecodable_names(names: list[str]) -> list[str]:
    """The names among ``names`` that are not valid UTF-8 (read from disk as surrogate escapes)."""
    out = []
    for name in names:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            out.append(name)
    return out


# --- reading -----------------------------------------------------------------------------------
def read_manifest(folder: str | Path) -> Manifest:
    """Load and check ``manifest.json`` of a tile folder.

    Raises :class:`TilesError` when there is none or it cannot be parsed, and
    :class:`ManifestError` (naming the field) when it breaks a rule.
    """
    folder = Path(folder)
    path = folder / MANIFEST_NAME
    try:
        data = json.loads(read_text(path))  # as a person's editor may have saved it
    except FileNotFoundError:
        if not folder.exists():
            raise TilesError(f"The tile folder {folder} does not exist; check the path.") from None
        raise TilesError(f"{folder} has no {MANIFEST_NAME}; merge needs the folder written by 'tilesapp cut'.") from None
    except NotADirectoryError:
        raise TilesError(f"{folder} is a file, not a folder; merge needs the folder written by 'tilesapp cut'.") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise TilesError(f"{path} cannot be read ({str(exc)[:200]}); it may be damaged.") from None
    return parse_manifest(data, folder)


def parse_manifest(data: Any, folder: Path) -> Manifest:
    """A :class:`Manifest` from parsed JSON, every rule checked (see the module docstring)."""
    where = folder / MANIFEST_NAME
    if not isinstance(data, dict) or "tiles" not in data or "sources" not in data:
        raise TilesError(f"{where} is not a Tiles Creator manifest.")
    check = _Reader(where, folder)
    tile_size = check.integer("tile_size", data.get("tile_size"), 1, MAX_TILE_SIZE)
    overlap = check.overlap = check.integer("overlap", data.get("overlap"), 0, tile_size - 1)
    sources = [check.source(i, s) for i, s in enumerate(check.items("sources", data.get("sources")))]
    stems = {}
    for i, source in enumerate(sources):
        key = source.tile_stem.casefold()
        if key in stems:
            raise ManifestError(where, f"sources[{i}].tile_stem", f"{source.tile_stem!r} repeats sources[{stems[key]}]'s")
        stems[key] = i
    by_name = {s.name: s for s in sources}
    if len(by_name) != len(sources):
        raise ManifestError(where, "sources", "lists a source twice")
    tiles = [check.tile(f"tiles[{i}]", t, by_name, tile_size) for i, t in enumerate(check.items("tiles", data["tiles"]))]
    dropped = [check.tile(f"dropped[{i}]", t, by_name, tile_size, files=False)
               for i, t in enumerate(check.items("dropped", data.get("dropped", [])))]
    files = [check.relative(f"files[{i}]", f) for i, f in enumerate(check.items("files", data.get("files", [])))]
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    text = _text_or_none
    return Manifest(
        settings=settings, tile_size=tile_size, overlap=overlap,
        dtype=str(data.get("dtype", "")), format=str(data.get("format", "")), input=str(data.get("input") or ""),
        layout=str(data.get("layout") or "plain"), status=str(data.get("status") or ""),
        created=str(data.get("created") or ""), updated=str(data.get("updated") or ""),
        version=str(data.get("version") or ""), masks=text(data.get("masks")), labels=text(data.get("labels")),
        split=data.get("split") if isinstance(data.get("split"), dict) else None,
        sources=sources, tiles=tiles, dropped=dropped,
        skipped=[str(s) for s in data.get("skipped") or [] if isinstance(s, str)], files=files,
        warnings=[str(w) for w in data.get("warnings") or [] if isinstance(w, str)], stopped_by=text(data.get("stopped_by")),
    )


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


_STEM = re.compile(r"[^/\\\x00]+")


class _Reader:
    """Field checks of :func:`parse_manifest`, each raising a :class:`ManifestError` naming the field."""

    def __init__(self, where: Path, folder: Path):
        self.where, self.folder = where, folder
        self.root = folder.resolve()
        self._parents: dict[Path, bool] = {}
        self._grids: dict[str, TileGrid] = {}
        self.overlap = 0

    def fail(self, name: str, rule: str):
        raise ManifestError(self.where, name, rule)

    def items(self, name: str, value: Any) -> list:
        if not isinstance(value, list):
            self.fail(name, "must be a list")
        return value

    def integer(self, name: str, value: Any, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            self.fail(name, f"must be a whole number between {lo} and {hi}; got {str(value)[:40]}")
        return value

    def relative(self, name: str, value: Any) -> str:
        """A path relative to the tile folder that stays inside it (symlinks resolved)."""
        if not isinstance(value, str) or not value or "\x00" in value:
            self.fail(name, "must be a file name inside the tile folder")
        pure = PurePosixPath(value.replace("\\", "/"))
        if pure.is_absolute() or ".." in pure.parts or re.match(r"^[A-Za-z]:", value):
            self.fail(name, f"{value!r} points outside the tile folder")
        if not self._inside(self.folder / pure):
            self.fail(name, f"{value!r} leads outside the tile folder (through a link)")
        return value

    def _inside(self, path: Path) -> bool:
        # Folders are resolved once (a manifest lists thousands of tiles in a few folders);
        # the file itself only when it is a link.
        parent = self._parents.get(path.parent)
        if parent is None:
            parent = self._parents[path.parent] = self._within(path.parent.resolve())
        if not parent:
            return False
        return not path.is_symlink() or self._within(path.resolve())

    def _within(self, resolved: Path) -> bool:
        return resolved == self.root or self.root in resolved.parents

    def _grid(self, source: SourceRecord, tile_size: int) -> TileGrid:
        key = source.name
        if key not in self._grids:
            self._grids[key] = source.grid_of(tile_size, self.overlap)
        return self._grids[key]

    def source(self, i: int, data: Any) -> SourceRecord:
        name = f"sources[{i}]"
        if not isinstance(data, dict) or not isinstance(data.get("file"), str):
            self.fail(name, "must be an object with a 'file'")
        stem = data.get("tile_stem")
        if not isinstance(stem, str) or not _STEM.fullmatch(stem) or stem in (".", "..") or stem.startswith("."):
            self.fail(f"{name}.tile_stem", f"must be a plain file name; got {str(stem)[:80]!r}")
        known = {f.name for f in dataclasses.fields(SourceRecord)}
        record = SourceRecord(**{k: v for k, v in data.items() if k in known})
        if record.status == "ok":
            shape = record.scaled_shape
            if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(n, int) and not isinstance(n, bool)
                                                                       and 1 <= n <= MAX_SIDE for n in shape)):
                self.fail(f"{name}.scaled_shape", f"must be two whole numbers between 1 and {MAX_SIDE}")
            if not (isinstance(record.shape, list) and isinstance(record.axes, str) and record.axes in ("YX", "YXS", "CYX")
                    and len(record.shape) == len(record.axes)
                    and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_SIDE for n in record.shape)):
                self.fail(f"{name}.shape", "must match its axes (YX, YXS or CYX) with sizes from 1")
        if not isinstance(record.warnings, list):
            record.warnings = []
        return record

    def tile(self, name: str, data: Any, sources: dict[str, SourceRecord], tile_size: int, files: bool = True) -> TileRecord:
        if not isinstance(data, dict):
            self.fail(name, "must be an object")
        known = {f.name for f in dataclasses.fields(TileRecord)}
        record = TileRecord(**{k: v for k, v in data.items() if k in known})
        source = sources.get(record.source) if isinstance(record.source, str) else None
        if source is None:
            self.fail(f"{name}.source", f"{str(record.source)[:80]!r} is not one of the sources")
        for key in ("index", "row", "col", "y0", "x0", "y1", "x1", "pad_y", "pad_x"):
            self.integer(f"{name}.{key}", getattr(record, key), 0, MAX_SIDE)
        if source.status == "ok":
            grid = self._grid(source, tile_size)
            if not record.index < len(grid) or grid.tile(record.index) != Tile(
                    record.index, record.row, record.col, record.y0, record.x0, record.y1, record.x1,
                    record.pad_y, record.pad_x):
                self.fail(name, f"does not lie where tile {record.index} of {source.name}'s grid lies "
                                f"({source.scaled_shape[0]} × {source.scaled_shape[1]} px, tile_size {tile_size}, "
                                f"overlap {self.overlap})")
        if files:
            record.file = self.relative(f"{name}.file", record.file)
            for key in ("mask", "label"):
                if getattr(record, key) is not None:
                    setattr(record, key, self.relative(f"{name}.{key}", getattr(record, key)))
        return record
