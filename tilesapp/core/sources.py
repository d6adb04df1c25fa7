"""What a run cuts: the sources a file gives under the settings — its scenes, its planes (a Z
projection, every plane, or one), its chosen channels — and their pixels, opened where read.

A file with one scene and one plane is one source named like the file. Otherwise each source's
name says which part of the file it is (``a.czi [s1]``, ``b.nd2 [z03]``, ``c.lif [s2 t05]``,
0-based), and its tiles' names too (``a_s1_000.tif``). Nothing is dropped without a word: a
stack without a choice fails with a message naming the option, a scene asked for that the file
does not have is a warning.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers import SceneInfo, open_image
from tilesapp.core.settings import Settings


class PlaneChoiceMissing(ImageError):
    """A stack and no choice of what to cut of it; ``setting`` names the option ("z" or "t")."""

    def __init__(self, message: str, setting: str):
        super().__init__(message)
        self.setting = setting


class ChannelsMissing(ImageError):
    setting = "channels"


@dataclass(frozen=True)
class SourceRef:
    """Which part of a file a source is: a scene, a plane or projection, channels (picklable)."""

    path: Path
    scene: int = 0
    z: int | str | None = None  # a plane, "max" or "mean"; None: the scene has one plane
    t: int | None = None
    channels: tuple[int, ...] | None = None  # None: all, in the file's order


@dataclass(frozen=True)
class Source:
    """One image a run cuts."""

    ref: SourceRef
    info: SceneInfo  # as the engine sees it: the chosen channels, one plane
    name: str  # as the manifest records it
    stem_suffix: str = ""  # after the file's stem in tile names
    warnings: tuple[str, ...] = ()


def sources_of(path: Path, name: str, scenes: list[SceneInfo], settings: Settings) -> tuple[list[Source], list[str]]:
    """The sources of a file whose scenes are ``scenes`` (its ``name`` as the manifest knows it),
    and warnings about the file. Raises :class:`ImageError` (with ``setting``) for a choice the
    file cannot satisfy."""
    warnings = []
    chosen = list(range(len(scenes))) if settings.scenes is None else list(settings.scenes)
    missing = [s for s in chosen if s >= len(scenes)]
    if missing:
        warnings.append(f"{name} has {len(scenes)} scene{'s' * (len(scenes) != 1)}: scene "
                        f"{', '.join(map(str, missing))} (0-based) does not exist.")
    chosen = [s for s in chosen if s < len(scenes)]
    if not chosen:
        raise ImageError(f"{name}: none of the scenes asked for is in the file ({len(scenes)} scene"
                         f"{'s' * (len(scenes) != 1)}, numbered from 0).")
    many = len(scenes) > 1
    out = []
    for s in chosen:
        info = scenes[s]
        channels = select_channels(info, settings.channels, name)
        for z, t in _planes(info, settings, name):
            ref = SourceRef(path, s, z, t, channels)
            parts = ([f"s{s}"] if many else []) + ([f"z{z:0{len(str(info.n_z - 1))}d}"] if settings.z == "each" and info.n_z > 1 else []) \
                + ([f"t{t:0{len(str(info.n_t - 1))}d}"] if settings.t == "each" and info.n_t > 1 else [])
            source_name = f"{name} [{' '.join(parts)}]" if parts else name
            out.append(Source(ref, view_info(info, ref), source_name, "".join(f"_{p}" for p in parts),
                              tuple(info.warnings)))
    return out, warnings


def _planes(info: SceneInfo, settings: Settings, name: str) -> list[tuple[int | str | None, int | None]]:
    zs: list[int | str | None] = [None]
    ts: list[int | None] = [None]
    if info.n_z > 1:
        if settings.z is None:
            raise PlaneChoiceMissing(f"{name} is a Z stack of {info.n_z} planes; choose what to cut of it: a maximum "
                                     f"or mean projection, every plane, or one plane.", "z")
        if isinstance(settings.z, int):
            if settings.z >= info.n_z:
                raise PlaneChoiceMissing(f"{name} has {info.n_z} Z planes (0–{info.n_z - 1}); plane {settings.z} "
                                         f"does not exist.", "z")
            zs = [settings.z]
        else:
            zs = list(range(info.n_z)) if settings.z == "each" else [settings.z]
    if info.n_t > 1:
        if settings.t is None:
            raise PlaneChoiceMissing(f"{name} is a time series of {info.n_t} frames; choose every frame or one.", "t")
        if isinstance(settings.t, int):
            if settings.t >= info.n_t:
                raise PlaneChoiceMissing(f"{name} has {info.n_t} frames (0–{info.n_t - 1}); frame {settings.t} "
                                         f"does not exist.", "t")
            ts = [settings.t]
        else:
            ts = list(range(info.n_t))
    return [(z, t) for t in ts for z in zs]


def select_channels(info: SceneInfo, spec: tuple[int | str, ...] | None, name: str) -> tuple[int, ...] | None:
    """0-based channel indices for ``spec`` (numbers or names from the metadata); None: all."""
    if spec is None:
        return None
    names = [n.casefold() for n in info.channel_names]
    out = []
    for item in spec:
        if isinstance(item, int):
            if item >= info.channels:
                raise ChannelsMissing(f"{name} has {info.channels} channel{'s' * (info.channels != 1)} "
                                      f"(0–{info.channels - 1}); channel {item} does not exist.")
            out.append(item)
        elif item.casefold() in names:
            out.append(names.index(item.casefold()))
        else:
            known = ", ".join(info.channel_names) if info.channel_names else "its metadata names none"
            raise ChannelsMissing(f"{name} has no channel named {item!r} ({known}).")
    return tuple(out)


def view_info(info: SceneInfo, ref: SourceRef) -> SceneInfo:
    """The scene as the engine sees one source of it: its channels, one plane."""
    axes, shape = info.axes, info.shape
    names = info.channel_names
    rows, cols = info.shape_yx
    if ref.channels is not None and list(ref.channels) != list(range(info.channels)):
        count = len(ref.channels)
        names = tuple(info.channel_names[c] for c in ref.channels) if info.channel_names else ()
        if count == 1:
            axes, shape = "YX", (rows, cols)
        elif axes == "YXS" and count in (3, 4):
            shape = (rows, cols, count)
        else:
            axes, shape = "CYX", (count, rows, cols)
    dtype = "float32" if ref.z == "mean" and np.dtype(info.dtype).itemsize <= 2 else \
        ("float64" if ref.z == "mean" else info.dtype)
    return replace(info, axes=axes, shape=shape, dtype=dtype, channel_names=names, n_z=1, n_t=1)


class SourcePixels:
    """The pixels of a source, opened on first use by whatever thread or process reads them;
    pickles as its reference, so band work can be shipped to another process."""

    def __init__(self, ref: SourceRef, info: SceneInfo | None = None):
        self.ref = ref
        self.path = ref.path
        self._info = info
        self._file = self._scene = None
        self._lock = threading.Lock()

    def _open(self):
        with self._lock:
            if self._scene is None:
                self._file = open_image(self.ref.path)
                try:
                    self._scene = self._file.scenes[self.ref.scene]
                except IndexError:
                    self._file.close()
                    self._file = None
                    raise ImageError(f"{self.ref.path.name}: scene {self.ref.scene} is not in the file any more.") from None
            return self._scene

    @property
    def info(self) -> SceneInfo:
        if self._info is None:
            self._info = view_info(self._open().info, self.ref)
        return self._info

    def scene_info(self) -> SceneInfo:
        """The file's scene as it is now (to tell a file changed on disk)."""
        return self._open().info

    @property
    def whole_only(self) -> bool:
        return bool(getattr(self._open(), "whole_only", False))

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The source's pixels ``[y0:y1, x0:x1]`` as (rows, cols, channels): its plane, or the
        projection of its planes (computed on just this region)."""
        scene, ref = self._open(), self.ref
        t = ref.t or 0
        if ref.z in ("max", "mean"):
            out = None
            for z in range(scene.info.n_z):
                plane = self._channels(scene.read(y0, y1, x0, x1, z=z, t=t))
                if out is None:
                    out = plane.astype(self.info.dtype) if ref.z == "mean" else plane
                elif ref.z == "max":
                    np.maximum(out, plane, out=out)
                else:
                    out += plane
            if ref.z == "mean":
                out /= scene.info.n_z
            return out
        return self._channels(scene.read(y0, y1, x0, x1, z=ref.z or 0, t=t))

    def _channels(self, region: np.ndarray) -> np.ndarray:
        if self.ref.channels is None:
            return region
        return np.ascontiguousarray(region[..., list(self.ref.channels)])

    def chunk_rows(self) -> int:
        return self._open().chunk_rows()

    def overview(self, max_side: int) -> np.ndarray:
        scene, ref = self._open(), self.ref
        if ref.z in ("max", "mean"):
            from tilesapp.core.readers import thin_overview

            return thin_overview(_AsScene(self), max_side)
        return self._channels(scene.overview(max_side, z=ref.z or 0, t=ref.t or 0))

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file = self._scene = None

    def __getstate__(self) -> dict[str, Any]:
        return {"ref": self.ref, "info": self._info}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["ref"], state["info"])


class _AsScene:
    """A source's pixels seen as a scene (for the generic thinned overview of a projection)."""

    def __init__(self, pixels: SourcePixels):
        self.pixels, self.info = pixels, pixels.info

    def read(self, y0, y1, x0, x1, *, z=0, t=0):
        return self.pixels.read(y0, y1, x0, x1)

    def chunk_rows(self):
        return self.pixels.chunk_rows()
