"""How one image will be recalibrated and cut, from metadata alone (no pixels).

The pixel size an image is recalibrated from is, in this order: one typed for that image;
one typed for every image (``pixel_size_scope="all"``); the file's metadata; one typed for the
images without calibration (``pixel_size_scope="uncalibrated"``). Otherwise the image fails
alone, with a message saying so — the scale is never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilesapp.core.calibration import format_pixel_size, scale_factors, scaled_shape
from tilesapp.core.errors import ImageError
from tilesapp.core.geometry import TileGrid
from tilesapp.core import memory
from tilesapp.core.readers import SceneInfo
from tilesapp.core.settings import Settings

#: Channels each format can store (1 = grey, 3 = RGB, 4 = RGBA).
FORMAT_CHANNELS = {"tif": None, "png": (1, 3, 4), "jpg": (1, 3)}
#: Enlargements and reductions beyond these are worth a warning: a calibration may be wrong.
LARGE_ENLARGEMENT, LARGE_REDUCTION = 8.0, 1 / 64

#: Where a typed pixel size came from, as the manifest records it.
TYPED_ALL, TYPED_FILE, TYPED_MISSING = "manual", "manual (this image)", "manual (no metadata)"


class ChannelsUnfit(ImageError):
    """The output format cannot store an image's channels; ``setting`` names what to change."""

    setting = "channels"


class CalibrationMissing(ImageError):
    """An image has no pixel size: none in its file, none typed. ``setting`` names what to give;
    ``hint`` says where to find it, when its reader knows (:attr:`SceneInfo.calibration_hint`)."""

    setting = "pixel_size"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class ImagePlan:
    """How one image will be recalibrated and cut."""

    info: SceneInfo
    factors: tuple[float, float]
    input_pixel_size_um: tuple[float, float] | None
    output_pixel_size_um: tuple[float, float] | None
    calibration: str | None
    scaled_shape: tuple[int, int]
    grid: TileGrid
    name: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def rescaled(self) -> bool:
        return self.scaled_shape != self.info.shape_yx


def resolve_pixel_size(info: SceneInfo, settings: Settings, name: str) -> tuple[tuple[float, float] | None, str | None]:
    """(pixel size in µm, where it came from) of an image, per the order in the module docstring."""
    typed = settings.pixel_size_for(name)
    if typed is not None:
        return typed, TYPED_FILE
    if settings.pixel_size_um is not None and settings.pixel_size_scope == "all":
        return settings.pixel_size_um, TYPED_ALL
    if info.pixel_size_um is not None:
        return info.pixel_size_um, info.calibration
    if settings.pixel_size_um is not None:
        return settings.pixel_size_um, TYPED_MISSING
    return None, None


def _count(n: int) -> str:
    """A pixel count as a person reads it: 78154, or 9.23e+32 for a wrong pixel size's."""
    return str(n) if n < 1e9 else f"{n:.3g}"


def plan_image(info: SceneInfo, settings: Settings, name: str | None = None, regions: bool = True) -> ImagePlan:
    """Plan the recalibration and the tiles of one image (``name``: as in the manifest).

    ``regions`` says whether its reader reads regions (else it is read whole). Raises
    :class:`ImageError` when the image has no pixel size and calibration is on, when the
    output format cannot store its channels, or when it would be too big to hold.
    """
    name = name or info.name
    allowed = FORMAT_CHANNELS[settings.format]
    if allowed is not None and info.channels not in allowed:
        raise ChannelsUnfit(
            f"{name}: .{settings.format} files cannot store {info.channels} channels "
            f"({'/'.join(map(str, allowed))} only); choose .tif, or keep fewer channels."
        )
    if settings.format == "png" and info.axes == "CYX" and info.channels in (2, 4):
        # PNG would store them as grey + alpha or RGBA: a channel lost or hidden as transparency
        raise ChannelsUnfit(
            f"{name}: its {info.channels} fluorescence channels would be written as "
            f"{'grey + alpha' if info.channels == 2 else 'RGBA'} in a PNG, hiding a channel as transparency; "
            f"choose .tif, or keep 1 or 3 channels."
        )
    warnings = list(info.warnings)
    if not settings.calibrate:
        factors = (1.0, 1.0)
        size_in = info.pixel_size_um
        size_out, origin = size_in, info.calibration
    else:
        size_in, origin = resolve_pixel_size(info, settings, name)
        if size_in is None:
            hint = info.calibration_hint
            raise CalibrationMissing(f"{name} carries no pixel size in its metadata{f' ({hint})' if hint else ''}; give "
                                     f"its pixel size or turn calibration off.", hint)
        target = settings.target_pixel_size_um
        factors = scale_factors(size_in, target)
        size_out = (target, target)
    shape = scaled_shape(info.shape_yx, factors)
    source = f"{format_pixel_size(size_in)}{f' read from {origin}' if origin and not origin.startswith('manual') else ''}"
    if max(factors) > LARGE_ENLARGEMENT:
        why = (" — a print resolution (dpi) is often stored where a pixel size should be" if origin and "dpi" in origin
               else "; enlarging this much adds no detail")
        warnings.append(f"enlarged ×{max(factors):.3g} (from {source}): check the pixel size and the target{why}.")
    if min(factors) < LARGE_REDUCTION:
        warnings.append(f"shrunk to {shape[0]} × {shape[1]} px (×{min(factors):.3g} from {source}): check the pixel size.")
    if any(n < settings.tile_size and f < 1 for n, f in zip(shape, factors)):
        warnings.append(f"recalibration shrinks it below one tile ({shape[0]} × {shape[1]} px for "
                        f"{settings.tile_size} px tiles): its tiles are mostly padding.")
    budget = memory.recalibration_budget()
    whole = shape[0] * shape[1] * info.channels * 4
    # Images read in regions are cut band by band, so only a large enlargement that no memory
    # could hold is refused: it is usually a wrong calibration.
    if budget is not None and whole > budget and (not regions or max(factors) > memory.MAX_STREAMED_ENLARGEMENT):
        raise ImageError(
            f"{name} would be {_count(shape[0])} × {_count(shape[1])} px after recalibration (×{max(factors):.3g} from {source}), "
            f"more than this computer's memory can hold; check the pixel size: a print resolution (dpi) read as a "
            f"pixel size is the usual cause — give the real one."
        )
    grid = TileGrid.for_shape(shape, settings.tile_size, settings.overlap)
    return ImagePlan(info, factors, size_in, size_out, origin, shape, grid, name, tuple(warnings))
