"""The "nnunet" layout: an nnU-Net v2 raw dataset.

``imagesTr/<case>_<channel:04d>.<ext>`` (one grey file per channel, RGB too),
``labelsTr/<case>.<ext>`` (class ids: background 0, classes 1, 2, … consecutive), the validation
share in ``imagesTs/`` (and its labels in ``labelsTs/``, which nnU-Net does not read), and
``dataset.json`` with ``channel_names``, ``labels``, ``numTraining`` and ``file_ending``. Files are
lossless (.png or .tif, the settings refuse .jpg) and read by nnU-Net's ``NaturalImage2DIO``,
named in ``dataset.json`` so that a .tif is never taken for a 3D volume. The export folder
is the dataset: name it ``DatasetNNN_Name`` inside ``$nnUNet_raw``.
"""

from __future__ import annotations

import numpy as np

from tilesapp import __version__
from tilesapp.core.errors import ImageError
from tilesapp.core.manifest import Manifest
from tilesapp.core.sinks.base import TileFiles, join
from tilesapp.core.sinks.dataset import TrainingLayout, class_table

_FIRST = "_0000."


class NnunetSink(TrainingLayout):
    layout = "nnunet"
    sides = {"train": "Tr", "val": "Ts"}

    def prepare(self) -> list[str]:
        for split in self.run.splits:
            for kind in ("images", "labels"):
                (self.folder / f"{kind}{self.side(split)}").mkdir(parents=True, exist_ok=True)
        return []

    def names(self, stem: str, index: int, width: int, split: str, mask_format: str | None) -> TileFiles:
        case, side, ext = self.tile_name(stem, index, width), self.side(split), self.run.settings.format
        if self.run.masks and mask_format != ext:
            raise ImageError(f"{stem}: its mask cannot be stored as .{ext} like the images, and nnU-Net needs labels "
                             f"in the images' format; choose --format tif.")
        return TileFiles(file=join(f"images{side}", f"{case}_0000.{ext}"),
                         mask=join(f"labels{side}", f"{case}.{mask_format}") if self.run.masks else None)

    def write(self, name, array, axes, pixel_size_um) -> None:
        if _FIRST not in name.rsplit("/", 1)[-1]:  # a label
            super().write(name, array, axes, pixel_size_um)
            return
        for channel, plane in enumerate(channel_planes(array, axes)):
            super().write(channel_file(name, channel), plane, "YX", pixel_size_um)

    def discard(self, names: list[str]) -> None:
        for name in names:
            channel = 1
            while _FIRST in name.rsplit("/", 1)[-1] and (self.folder / channel_file(name, channel)).exists():
                (self.folder / channel_file(name, channel)).unlink(missing_ok=True)
                channel += 1
            (self.folder / name).unlink(missing_ok=True)

    def read(self, name: str) -> np.ndarray:
        """A case as (rows, cols, channels), its channel files stacked."""
        planes = [super(NnunetSink, self).read(name)]
        channel = 1
        while (self.folder / channel_file(name, channel)).is_file():
            planes.append(super(NnunetSink, self).read(channel_file(name, channel)))
            channel += 1
        return planes[0] if len(planes) == 1 else np.stack([np.squeeze(p) for p in planes], axis=-1)

    def finish(self, manifest: Manifest) -> list[str]:
        channels = self._channel_names(manifest)
        extra = [channel_file(t.file, c) for t in manifest.tiles for c in range(1, len(channels))]
        names = self.class_names
        if not names:
            names = tuple(f"class_{k}" for k in range(1, self._largest_label(manifest) + 1))
        training = [t for t in manifest.tiles if (t.split or "train") == "train"]
        what = "whole images" if self.run.settings.whole_images else f"{manifest.tile_size} px tiles"
        dataset = {
            "channel_names": {str(k): name for k, name in enumerate(channels)},
            "labels": class_table(names),
            "numTraining": len(training),
            "file_ending": f".{manifest.format}",
            "overwrite_image_reader_writer": "NaturalImage2DIO",
            "name": self.folder.name,
            "description": f"{what} written by Tiles Creator {__version__}",
        }
        return extra + [self.write_json("dataset.json", dataset)]

    @staticmethod
    def _channel_names(manifest: Manifest) -> list[str]:
        for source in manifest.sources:
            if source.status == "ok" and source.shape:
                n = source.channels
                given = [str(c) for c in (source.channel_names or [])]
                if len(given) == n and not all(c.isdigit() for c in given):
                    return given
                if source.axes == "YXS" and n in (3, 4):
                    return ["R", "G", "B", "A"][:n]
                return [f"channel_{k}" for k in range(n)]
        return ["channel_0"]

    def _largest_label(self, manifest: Manifest) -> int:
        """The largest class id in the label files written (0 when none)."""
        top = 0
        for tile in manifest.tiles:
            if tile.mask:
                try:
                    top = max(top, int(np.max(super().read(tile.mask))))
                except (OSError, ImageError, ValueError):
                    continue
        return top


def channel_file(name: str, channel: int) -> str:
    """The file of channel ``channel`` of the case whose first channel file is ``name``.

    >>> channel_file("imagesTr/a_003_0000.png", 2)
    'imagesTr/a_003_0002.png'
    """
    head, tail = name.rsplit(_FIRST, 1)
    return f"{head}_{channel:04d}.{tail}"


def channel_planes(array: np.ndarray, axes: str) -> list[np.ndarray]:
    """The grey planes of a tile in ``axes`` order (YX, YXS or CYX)."""
    if axes == "YX":
        return [array]
    if axes == "CYX":
        return [array[c] for c in range(array.shape[0])]
    return [np.ascontiguousarray(array[..., c]) for c in range(array.shape[2])]


SINK = NnunetSink
