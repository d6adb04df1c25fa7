"""OME-Zarr (an ``X.zarr`` folder, NGFF 0.1–0.5, zarr v2 or v3) through ``zarr``.

A folder is one input; what it becomes:

- a **bioformats2raw** layout (root attribute ``bioformats2raw.layout``, series groups ``0/``,
  ``1/``, … and ``OME/METADATA.ome.xml``): every series is a scene, named after its OME-XML
  ``Image`` name;
- an HCS **plate**: every field of every well is a scene, named ``"<row>/<column>/<field>"``;
- a plain image (``multiscales`` at the root): one scene.

Only the full-resolution level of a ``multiscales`` is a scene; the lower levels serve the
overview. Axes ``t``, ``c``, ``z``, ``y``, ``x`` map to T planes, channels (``"CYX"``), Z planes
and the image; an RGB image (OME-XML: one channel with 3 samples per pixel, ``c`` of size 3) is
``"YXS"``. Channel names come from ``omero`` labels or the OME-XML.

Pixel size: the ``y``/``x`` ``scale`` of the full-resolution dataset (times the multiscale's own
scale) when the axes carry a length ``unit`` (origin ``"OME-Zarr"``), else the OME-XML
``PhysicalSizeY/X`` (origin ``"OME"``). A scale without a unit calibrates nothing: the scene is
uncalibrated (``None``) and a warning says so.

zarr reads are thread-safe; no lock. A chunk file that is missing reads as the array's fill
value (that is what zarr and the NGFF spec say); a damaged one raises ImageError.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from tilesapp.core.errors import ImageError
from tilesapp.core.readers.base import SceneInfo, reason

# NGFF (UDUNITS-2) length units and OME-XML unit symbols → µm
_UNIT_UM = {
    "angstrom": 1e-4, "picometer": 1e-6, "nanometer": 1e-3, "micrometer": 1.0, "millimeter": 1e3,
    "centimeter": 1e4, "decimeter": 1e5, "meter": 1e6,
    "Å": 1e-4, "pm": 1e-6, "nm": 1e-3, "µm": 1.0, "\u03bcm": 1.0, "um": 1.0, "micron": 1.0, "mm": 1e3,
    "cm": 1e4, "dm": 1e5, "m": 1e6,
}
_KNOWN_AXES = ("t", "c", "z", "y", "x")


def _ome(attrs) -> dict:
    """NGFF attributes: under "ome" since 0.5, at the top level before."""
    attrs = dict(attrs)
    inner = attrs.get("ome")
    return dict(inner) if isinstance(inner, dict) else attrs


class OmeZarrScene:
    def __init__(self, info: SceneInfo, levels: list, axes: tuple[str, ...]):
        self.info = info
        self._levels = levels  # zarr arrays, full resolution first
        self._axes = axes  # lower-case names, one per array dimension
        self._is_bool = str(levels[0].dtype) == "bool"

    def _take(self, array, z: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        info = self.info
        if not (0 <= z < info.n_z and 0 <= t < info.n_t):
            raise ImageError(
                f"{info.name}: plane z={z}, t={t} does not exist (the image has {info.n_z} Z and {info.n_t} T planes)."
            )
        index = []
        for a in self._axes:
            index.append({"t": t, "z": z, "y": rows, "x": cols, "c": slice(None)}.get(a, 0))
        try:
            part = np.asarray(array[tuple(index)])
        except Exception as exc:
            raise ImageError(f"{info.name}: cannot read the OME-Zarr pixels ({reason(exc)}).") from exc
        kept = [a for a in self._axes if a in ("c", "y", "x")]
        order = [kept.index(a) for a in ("y", "x", "c") if a in kept]
        part = part.transpose(order)
        if "c" not in kept:
            part = part[..., None]
        return np.array(part, dtype=np.uint8 if self._is_bool else part.dtype, order="C", copy=True)

    def read(self, y0: int, y1: int, x0: int, x1: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        h, w = self.info.shape_yx
        if not (0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w):
            raise ValueError(f"region [{y0}:{y1}, {x0}:{x1}] is outside the {h}×{w} image")
        return self._take(self._levels[0], z, t, slice(y0, y1), slice(x0, x1))

    def overview(self, max_side: int, *, z: int = 0, t: int = 0) -> np.ndarray:
        """The coarsest pyramid level still at least max_side long, subsampled to max_side."""
        max_side = max(1, max_side)
        yi, xi = self._axes.index("y"), self._axes.index("x")
        h, w = self.info.shape_yx
        chosen = self._levels[0]
        for level in self._levels[1:]:
            lh, lw = level.shape[yi], level.shape[xi]
            # a level must keep the plane's shape (same Z/T/C) and be big enough
            if max(lh, lw) < max_side or lh > h or lw > w:
                break
            if any(level.shape[i] != self._levels[0].shape[i] for i, a in enumerate(self._axes) if a not in ("y", "x")):
                break
            chosen = level
        lh, lw = chosen.shape[yi], chosen.shape[xi]
        step = max(1, math.ceil(max(lh, lw) / max_side))
        return self._take(chosen, z, t, slice(None, None, step), slice(None, None, step))

    def chunk_rows(self) -> int:
        array = self._levels[0]
        yi = self._axes.index("y")
        try:
            shards = getattr(array, "shards", None)
            return int((shards or array.chunks)[yi])
        except Exception:
            return 1


class OmeZarrFile:
    def __init__(self, path: Path):
        self.path = path
        self.scenes: list[OmeZarrScene] = []

    def close(self) -> None:
        self.scenes = list(self.scenes)  # zarr keeps no open handle for a local folder

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ome_xml(path: Path) -> list[dict]:
    """Per OME Image: name, physical sizes (µm) and channel names/samples, from OME/METADATA.ome.xml."""
    xml_path = path / "OME" / "METADATA.ome.xml"
    if not xml_path.is_file():
        return []
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError):
        return []
    images = []
    for image in root:
        if not image.tag.endswith("}Image") and image.tag != "Image":
            continue
        pixels = next((p for p in image if p.tag.endswith("Pixels")), None)
        entry = {"name": image.get("Name"), "px": None, "channels": [], "samples": []}
        if pixels is not None:
            sizes = []
            for axis in ("Y", "X"):
                value = pixels.get(f"PhysicalSize{axis}")
                unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")
                try:
                    sizes.append(float(value) * _UNIT_UM[unit] if value is not None else None)
                except (KeyError, ValueError):
                    sizes.append(None)
            if sizes[1] and sizes[1] > 0:
                entry["px"] = (sizes[0] if sizes[0] and sizes[0] > 0 else sizes[1], sizes[1])
            for ch in pixels:
                if ch.tag.endswith("Channel"):
                    entry["channels"].append(ch.get("Name") or "")
                    try:
                        entry["samples"].append(int(ch.get("SamplesPerPixel", "1")))
                    except ValueError:
                        entry["samples"].append(1)
        images.append(entry)
    return images


def _multiscale(path: Path, group, attrs: dict, label: str) -> tuple[dict, list]:
    """The first multiscale of an image group and its arrays, full resolution first."""
    multiscales = attrs.get("multiscales")
    if not multiscales:
        raise ImageError(f"{path.name}: image {label} has no multiscales metadata.")
    ms = multiscales[0]
    datasets = ms.get("datasets") or []
    if not datasets:
        raise ImageError(f"{path.name}: image {label} lists no datasets.")
    return ms, [group[d["path"]] for d in datasets]


def _axes(path: Path, ms: dict, ndim: int, label: str) -> tuple[list[str], list[str | None]]:
    """Lower-case axis names and their units (NGFF 0.3 lists names only; 0.1–0.2 nothing, meaning tczyx)."""
    raw_axes = ms.get("axes")
    if raw_axes is None:
        raw_axes = list("tczyx"[-ndim:])
    axes, units = [], []
    for a in raw_axes:
        if isinstance(a, dict):
            axes.append(str(a.get("name", "")).lower())
            units.append(a.get("unit"))
        else:
            axes.append(str(a).lower())
            units.append(None)
    if len(axes) != ndim or "y" not in axes or "x" not in axes:
        raise ImageError(f"{path.name}: image {label} has axes {axes} for a {ndim}-D array (needs y and x).")
    return axes, units


def _pixel_size(ms: dict, axes: list[str], units: list[str | None], entry: dict | None):
    """(pixel size (y, x) in µm or None, its origin, a calibration hint when None).

    The scale counts only with a length unit: a unitless scale (bioformats2raw writes 1.0)
    would claim 1 µm pixels, so the OME-XML is asked next, and else the user.
    """
    ndim = len(axes)
    scale = [1.0] * ndim
    datasets = ms.get("datasets") or []
    for transforms in (datasets[0].get("coordinateTransformations"), ms.get("coordinateTransformations")):
        for tr in transforms or []:
            if tr.get("type") == "scale" and len(tr.get("scale", [])) == ndim:
                scale = [s * float(v) for s, v in zip(scale, tr["scale"])]
    yi, xi = axes.index("y"), axes.index("x")
    uy, ux = units[yi], units[xi]
    if ux in _UNIT_UM and (uy in _UNIT_UM or uy is None) and scale[xi] > 0 and scale[yi] > 0:
        return (scale[yi] * _UNIT_UM[uy or ux], scale[xi] * _UNIT_UM[ux]), "OME-Zarr", ""
    if entry and entry.get("px"):
        return entry["px"], "OME", ""
    if ux is None:
        return None, None, "its OME-Zarr axes carry no unit, so their scale calibrates nothing"
    return None, None, f"its OME-Zarr axes are in {ux!r}, not a length unit"


def _channel_names(attrs: dict, entry: dict | None, n_c: int) -> tuple[str, ...]:
    """omero labels, else the OME-XML's; only when every channel has a name."""
    omero = attrs.get("omero") or {}
    labels = [str(ch.get("label") or "") for ch in omero.get("channels", []) if isinstance(ch, dict)]
    if len(labels) == n_c and all(labels):
        return tuple(labels)
    if entry and len(entry["channels"]) == n_c and all(entry["channels"]):
        return tuple(entry["channels"])
    return ()


class OmeZarrReader:
    name = "omezarr"
    suffixes = (".zarr",)
    folders = True  # an OME-Zarr image is a folder

    def sniff(self, head: bytes) -> bool:
        """For the head of a folder's metadata file (``.zattrs``, ``.zgroup``, ``zarr.json``): zarr JSON.

        OME-Zarr inputs are folders, found by their ``.zarr`` suffix; this only tells a zarr
        metadata document from an image file's bytes.
        """
        text = head.lstrip()
        return text.startswith(b"{") and any(
            key in head for key in (b'"zarr_format"', b'"multiscales"', b'"bioformats2raw.layout"', b'"node_type"', b'"ome"')
        )

    def open(self, path: Path) -> OmeZarrFile:
        path = Path(path)
        if not path.is_dir():
            raise ImageError(f"{path.name}: an OME-Zarr image is a folder, and this is not one.")
        try:
            import zarr
        except ImportError as exc:
            raise ImageError(f"{path.name}: reading OME-Zarr needs the package zarr (pip install zarr).") from exc
        try:
            root = zarr.open_group(str(path), mode="r")
            attrs = _ome(root.attrs)
        except Exception as exc:
            raise ImageError(f"{path.name}: this folder is not a readable OME-Zarr image ({reason(exc)}).") from exc
        try:
            scenes = self._scenes(path, root, attrs)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{path.name}: cannot read the OME-Zarr metadata ({reason(exc)}).") from exc
        f = OmeZarrFile(path)
        f.scenes = scenes
        return f

    # -- layouts ----------------------------------------------------------------------------
    def _scenes(self, path: Path, root, attrs: dict) -> list[OmeZarrScene]:
        xml = _ome_xml(path)
        groups: list[tuple[object, str | None, dict | None]] = []  # (group, name, OME-XML entry)
        if "bioformats2raw.layout" in attrs:
            series = None
            try:
                series = _ome(root["OME"].attrs).get("series")
            except Exception:
                series = None
            if not series:
                series, i = [], 0
                while (path / str(i)).is_dir():
                    series.append(str(i))
                    i += 1
            for i, name in enumerate(series):
                entry = xml[i] if i < len(xml) else None
                groups.append((root[str(name)], (entry or {}).get("name") or f"series {name}", entry))
        elif "plate" in attrs:
            plate = attrs["plate"]
            for well in plate.get("wells", []):
                wgroup = root[well["path"]]
                for image in _ome(wgroup.attrs).get("well", {}).get("images", []):
                    groups.append((wgroup[image["path"]], f"{well['path']}/{image['path']}", None))
        elif "multiscales" in attrs:
            groups.append((root, None, xml[0] if len(xml) == 1 else None))
        else:
            raise ImageError(f"{path.name}: this zarr folder holds no OME-Zarr image (no multiscales, series or plate).")
        if not groups:
            raise ImageError(f"{path.name}: this OME-Zarr folder holds no image.")
        planned = [self._image(path, group, name, entry) for group, name, entry in groups]
        return [
            OmeZarrScene(
                SceneInfo(**dict(info, scene=i, n_scenes=len(planned))), levels, axes
            )
            for i, (info, levels, axes) in enumerate(planned)
        ]

    def _image(self, path: Path, group, name: str | None, entry: dict | None):
        """SceneInfo fields (but scene and n_scenes), pyramid levels and axes of one multiscale image."""
        label = name or "/"
        attrs = _ome(group.attrs)
        ms, levels = _multiscale(path, group, attrs, label)
        level0 = levels[0]
        axes, units = _axes(path, ms, len(level0.shape), label)
        sizes = dict(zip(axes, level0.shape))
        for a, n in sizes.items():
            if a not in _KNOWN_AXES and n > 1:
                raise ImageError(f"{path.name}: image {label} has an axis {a!r} of size {n}, which is not supported.")
        dtype = np.dtype(str(level0.dtype)) if str(level0.dtype) != "bool" else np.dtype("uint8")
        if dtype.kind not in "uif":
            raise ImageError(f"{path.name}: OME-Zarr pixels of type {level0.dtype} are not supported.")
        px, origin, hint = _pixel_size(ms, axes, units, entry)

        h, w = int(sizes["y"]), int(sizes["x"])
        n_c = int(sizes.get("c", 1))
        names = _channel_names(attrs, entry, n_c)
        rgb = bool(entry) and n_c == 3 and entry["samples"] == [3] and dtype.kind == "u"
        if rgb:
            shape, s_axes, names = (h, w, 3), "YXS", ()
        elif n_c > 1:
            shape, s_axes = (n_c, h, w), "CYX"
        else:
            shape, s_axes = (h, w), "YX"
        info = dict(
            path=path, shape=shape, axes=s_axes, dtype=dtype.name,
            pixel_size_um=px, calibration=origin, scene_name=name,
            channel_names=names, n_z=int(sizes.get("z", 1)), n_t=int(sizes.get("t", 1)),
            reader=self.name, calibration_hint=hint,
        )
        return info, levels, tuple(axes)

READER = OmeZarrReader()
