"""The sink seam: where tiles go, and where merge reads them back.

A sink is made for one run (:func:`make_sink`) from the export folder, the settings and what
the run carries (masks, labels, splits); it names each tile's files, writes them, takes them
back when an image fails, and writes what the layout needs at the end (a ``data.yaml``, an
archive). Merge reopens the sink a manifest names (``layout``) to read the tiles back. A
layout is a module of this package ending with ``SINK = SomeSink`` listed in :data:`BUILTIN`,
or a class given to :func:`register`.
"""

from __future__ import annotations

import importlib

from tilesapp.core.errors import SettingsError
from tilesapp.core.sinks.base import Layout, RunInfo, StemNames, TileFiles, TileSink, tile_stems

#: Layout modules of this package.
BUILTIN = ("folder", "ultralytics", "nnunet", "cellpose", "stardist", "coco")

_registry: dict[str, type] | None = None


def layouts() -> dict[str, type]:
    """Sink classes by layout name."""
    global _registry
    if _registry is None:
        _registry = {}
        for module_name in BUILTIN:
            module = importlib.import_module(f"{__name__}.{module_name}")
            for sink in getattr(module, "SINKS", (getattr(module, "SINK", None),)):
                if sink is not None:
                    _registry[sink.layout] = sink
    return _registry


def register(sink: type) -> None:
    """Add a layout (a :class:`TileSink` class with a ``layout`` name)."""
    layouts()[sink.layout] = sink


def unregister(sink: type) -> None:
    layouts().pop(sink.layout, None)


def sink_class(layout: str) -> type:
    try:
        return layouts()[layout]
    except KeyError:
        raise SettingsError("layout", f"{{name}} must be one of {', '.join(sorted(layouts()))}; got {layout!r}.") from None


__all__ = ["Layout", "RunInfo", "StemNames", "TileFiles", "TileSink", "layouts", "register", "sink_class", "tile_stems", "unregister"]
