"""The merge modes: how the tiles covering a pixel become one value.

A *combiner* holds the merge state of a band of rows (the whole image, or one tile row of a big
one): tiles are added in row-major order, and the first rows are taken out once no later tile
reaches them. Every mode works the same way, so every mode works in bands under the memory limit.

- ``blend``: weighted average (intensities, probabilities), weights from a window: "flat"
  (equal), "gradient" (linear ramps across the overlap) or "hann" (cosine ramps: smoother);
  with ``argmax``, the channel of the largest blended value (logits → class map).
- ``vote``: class-id maps; per pixel the class with the largest summed window weight over the
  tiles covering it; ties go to the smallest class id; never a value no tile predicted.
- ``instances``: instance label maps; labels made unique per tile, objects that meet where tiles
  overlap matched by their IoU there and given one id; an object cut by a tile's inner edge but
  whole in a neighbour is taken from the neighbour; output ids 1, 2, 3, … .
- ``max``: the largest value (binary masks where any detection should win).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tilesapp.core.errors import ImageError, SettingsError

COMBINES = ("blend", "vote", "instances", "max")
BLENDS = ("flat", "gradient", "hann")
#: Objects (instances, boxes) whose IoU where their tiles overlap reaches this are one object.
DEFAULT_IOU = 0.5
#: Tile boxes an instance group remembers; a group seen in more tiles is matched anywhere covered.
MAX_SEEN = 16


def blend_window(tile_size: int, overlap: int, blend: str,
                 inner: tuple[bool, bool, bool, bool] = (True, True, True, True)) -> np.ndarray:
    """(rows, cols) weights of one tile: ones ("flat"), or ramps over the overlap ("gradient"
    linear, "hann" cosine) towards the edges in ``inner`` (top, left, bottom, right: the edges
    with a neighbour; default all); ramps of two neighbours add up to one across their overlap.

    Every weight is positive, so a pixel covered by one tile only keeps that tile's value.

    >>> blend_window(6, 2, "gradient")[2]  # a middle row: the ramp itself
    array([0.33333333, 0.66666667, 1.        , 1.        , 0.66666667, 0.33333333])
    >>> blend_window(6, 2, "hann", (True, False, True, True))[2]  # no neighbour on the left
    array([1.  , 1.  , 1.  , 1.  , 0.75, 0.25])
    """
    if blend not in BLENDS:
        raise SettingsError("blend", f"{{name}} must be one of {', '.join(BLENDS)}; got {blend!r}.")
    if blend == "flat" or overlap == 0:
        return np.ones((tile_size, tile_size))
    top, left, bottom, right = inner
    return np.outer(_ramp(tile_size, overlap, blend, top, bottom), _ramp(tile_size, overlap, blend, left, right))


def _ramp(tile_size: int, overlap: int, blend: str, start: bool, end: bool) -> np.ndarray:
    i = np.arange(tile_size)
    ramp = np.ones(tile_size)
    if start:
        ramp = np.minimum(ramp, (i + 1) / (overlap + 1))
    if end:
        ramp = np.minimum(ramp, (tile_size - i) / (overlap + 1))
    return 0.5 - 0.5 * np.cos(np.pi * ramp) if blend == "hann" else ramp


class Weights:
    """The weights of a merge's tiles: a blend window, tapered only towards each tile's neighbours
    (a tile's edge on the image border has none: weights stay 1 there)."""

    def __init__(self, tile_size: int, overlap: int, blend: str):
        blend_window(2, 1, blend)  # checks the name
        self.tile_size, self.overlap, self.blend = tile_size, overlap, blend
        self.flat = blend == "flat" or overlap == 0
        self._windows: dict[tuple[bool, ...], np.ndarray] = {}

    def at(self, place: Placement) -> np.ndarray:
        """(rows, cols) weights of the tile's part at ``place``."""
        window = self._windows.get(place.inner)
        if window is None:
            window = self._windows[place.inner] = blend_window(self.tile_size, self.overlap, self.blend, place.inner)
        return window[: place.y1 - place.y0, : place.x1 - place.x0]


def check_combine(combine: str, blend: str | None, iou: float = DEFAULT_IOU) -> str:
    """Check a mode, its window and IoU threshold (SettingsError naming the option); returns the
    window: ``blend`` or, when None, "gradient" for a vote (no ties between two tiles) and
    "flat" otherwise."""
    if combine not in COMBINES:
        raise SettingsError("combine", f"{{name}} must be one of {', '.join(COMBINES)}; got {combine!r}.")
    blend = blend or ("gradient" if combine == "vote" else "flat")
    blend_window(2, 1, blend)
    if isinstance(iou, bool) or not isinstance(iou, (int, float)) or not 0 < iou <= 1:
        raise SettingsError("iou", f"{{name}} must be a share above 0 and at most 1; got {iou!r}.")
    return blend


@dataclass(frozen=True)
class Placement:
    """Where a tile's values go in a band: rows ``[y0, y1)`` and columns ``[x0, x1)`` of the band
    (the tile's part inside the image), and which of its edges lie inside the image
    (top, left, bottom, right): objects touching those are cut by the tile."""

    y0: int
    x0: int
    y1: int
    x1: int
    inner: tuple[bool, bool, bool, bool] = (False, False, False, False)
    name: str = ""


class Combiner:
    """Base of the merge modes: the state of a band of ``height`` rows of one image.

    ``start`` is called with the first tile's channels and dtype; ``add`` adds a tile's
    (rows, cols, channels) values at a placement; ``rows(n)`` gives the first ``n`` rows, done
    (valid until ``drop``), to be cast to :attr:`out_dtype`; ``drop(n)`` forgets them and
    makes room for ``n`` rows at the bottom. ``rows(n, out)`` may write the rows straight into
    ``out`` (n, cols, :attr:`out_channels`) of :attr:`out_dtype` and return it; a mode that
    cannot returns its rows as without it.
    """

    name = ""
    #: May hold a whole image when it fits (else always a band of one tile row).
    whole_ok = True
    #: Its rows are the same numbers whether the image is held whole or in bands (per-pixel
    #: arithmetic, in the same tile order): such a merge is done in bands even when it fits.
    same_in_bands = False
    #: Tiles of another size are resized with nearest neighbour (labels, never mixed).
    labels = False

    def __init__(self, weights: Weights, holes: bool, source: str):
        self.window, self.holes, self.source = weights, holes, source
        self.flat = weights.flat
        self.out_dtype: np.dtype | None = None
        self.channels = 0
        self.height = self.cols = 0

    @property
    def nearest(self) -> bool:
        """Rescaled back with nearest neighbour (labels, integers), else smoothly."""
        return self.labels or (self.out_dtype is not None and self.out_dtype.kind in "iub")

    @property
    def out_channels(self) -> int:
        """Channels of the rows it gives."""
        return self.channels

    def state_bytes(self, height: int, cols: int, channels: int) -> int:
        raise NotImplementedError

    def start(self, height: int, cols: int, channels: int, dtype: np.dtype) -> None:
        self.height, self.cols, self.channels = height, cols, channels

    def check(self, values: np.ndarray, place: Placement) -> np.ndarray:
        """The tile's part inside the image; its channels must be the first tile's."""
        if values.shape[2] != self.channels:
            raise ImageError(f"{self.source}: tile {place.name} has {values.shape[2]} channels, other tiles {self.channels}.")
        return values[: place.y1 - place.y0, : place.x1 - place.x0]

    def weights(self, place: Placement) -> np.ndarray:
        return self.window.at(place)

    def add(self, values: np.ndarray, place: Placement) -> None:
        raise NotImplementedError

    def rows(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        raise NotImplementedError

    def drop(self, n: int) -> None:
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        """What the summary reports of this image (instances: objects, merged, split)."""
        return {}

    def not_covered(self) -> ImageError:
        return ImageError(f"{self.source}: the tiles do not cover the whole image; the manifest does not match the tiles.")


def shift_rows(arrays: list[np.ndarray], n: int, fills: list) -> None:
    """Drop the first ``n`` rows of each array (in place) and fill ``n`` rows at its bottom."""
    for array, fill in zip(arrays, fills):
        keep = max(0, len(array) - n)
        array[:keep] = array[len(array) - keep :]
        array[keep:] = fill


def output_dtype(tile_dtype: np.dtype) -> np.dtype:
    """Merged images keep integer tiles' type; float tiles give float32 (float64 for float64)."""
    tile_dtype = np.dtype(tile_dtype)
    if tile_dtype.kind in "iu":
        return tile_dtype
    if tile_dtype.kind == "b":
        return np.dtype(np.uint8)
    return np.dtype(np.float32 if tile_dtype.itemsize <= 4 else np.float64)


# --- blend -----------------------------------------------------------------------------------------
class Blend(Combiner):
    """Weighted average; with ``argmax``, the index of the largest channel of the average."""

    name = "blend"
    same_in_bands = True

    def __init__(self, weights: Weights, holes: bool, source: str, argmax: bool = False):
        super().__init__(weights, holes, source)
        self.argmax = argmax

    def state_bytes(self, height: int, cols: int, channels: int) -> int:
        # float64 sums and weights, plus the final cast (see memory.merge_bytes)
        return height * cols * (channels * 16 + 8)

    def start(self, height: int, cols: int, channels: int, dtype: np.dtype) -> None:
        super().start(height, cols, channels, dtype)
        self.canvas = np.zeros((height, cols, channels))
        # flat weights are counts: whole numbers, the same quotient, a quarter of the traffic
        self.sums = np.zeros((height, cols), np.uint32 if self.flat else np.float64)
        self.one = self.sums.dtype.type(1)
        if self.argmax:
            self.out_dtype = np.dtype(np.uint8 if channels <= 256 else np.uint16)
        else:
            self.out_dtype = output_dtype(dtype)

    def add(self, values: np.ndarray, place: Placement) -> None:
        part = self.check(values, place)
        y0, x0, y1, x1 = place.y0, place.x0, place.y1, place.x1
        if self.flat:  # weights of 1: the same sums without a product per pixel
            view = self.canvas[y0:y1, x0:x1]
            # mixed types added in place (float32 into the float64 sums) go through numpy's small
            # cast buffer: no tile-sized float64 copy, whose fresh pages cost more than the add;
            # an int 1 is 5× slower than the sums' own type
            np.add(view, part, out=view)
            self.sums[y0:y1, x0:x1] += self.one
        else:
            w = self.weights(place)
            weighted = part.astype(np.float64)
            weighted *= w[..., np.newaxis]
            self.canvas[y0:y1, x0:x1] += weighted
            self.sums[y0:y1, x0:x1] += w

    @property
    def out_channels(self) -> int:
        return 1 if self.argmax else self.channels

    def rows(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        """The first ``n`` rows divided by their weights, in place (float64); their argmax
        (n, cols, 1) with ``argmax``. A flat blend's quotients go straight into a float ``out``."""
        part, w = self.canvas[:n], self.sums[:n]
        if not self.holes and not w.all():
            raise self.not_covered()
        # a hole's sums are 0 and stay 0: divided by 1 (the counts are dropped after this;
        # a division with where= is twice as slow)
        if self.flat:
            np.maximum(w, self.one, out=w)
            if out is not None and out.dtype.kind == "f" and not self.argmax:
                # divided in float64 and rounded once as stored: the numbers of divide-then-cast
                # without a float64 pass over the band in between
                return np.divide(part, w[..., np.newaxis], out=out, casting="unsafe")
            np.divide(part, w[..., np.newaxis], out=part)
        else:
            np.divide(part, w[..., np.newaxis], out=part, where=w[..., np.newaxis] > 0)
        if self.argmax:
            return np.argmax(part, axis=2).astype(self.out_dtype)[..., np.newaxis]
        return part

    def drop(self, n: int) -> None:
        shift_rows([self.canvas, self.sums], n, [0, 0])


# --- max -------------------------------------------------------------------------------------------
class Maximum(Combiner):
    """The largest value of the tiles covering a pixel."""

    name = "max"
    labels = True
    same_in_bands = True

    def state_bytes(self, height: int, cols: int, channels: int) -> int:
        return height * cols * (channels * 8 + 1)

    def start(self, height: int, cols: int, channels: int, dtype: np.dtype) -> None:
        super().start(height, cols, channels, dtype)
        self.out_dtype = output_dtype(dtype)
        self.low = np.iinfo(self.out_dtype).min if self.out_dtype.kind in "iu" else -np.inf
        self.canvas = np.full((height, cols, channels), self.low, self.out_dtype)
        self.covered = np.zeros((height, cols), bool)

    def add(self, values: np.ndarray, place: Placement) -> None:
        part = self.check(values, place)
        if part.dtype.kind == "f" and self.out_dtype.kind != "f":
            part = np.rint(part)
        view = self.canvas[place.y0 : place.y1, place.x0 : place.x1]
        np.maximum(view, part.astype(self.out_dtype, copy=False), out=view)
        self.covered[place.y0 : place.y1, place.x0 : place.x1] = True

    def rows(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        covered = self.covered[:n]
        if not covered.all():
            if not self.holes:
                raise self.not_covered()
            self.canvas[:n][~covered] = 0
        return self.canvas[:n]

    def drop(self, n: int) -> None:
        shift_rows([self.canvas, self.covered], n, [self.low, False])


# --- vote ------------------------------------------------------------------------------------------
def whole_numbers(values: np.ndarray, source: str, name: str, what: str) -> np.ndarray:
    """Integer labels of a tile: integer tiles as they are, float tiles when they hold whole
    numbers only (an ImageError naming the tile otherwise)."""
    if values.dtype.kind in "iu":
        return values
    if values.dtype.kind == "b":
        return values.astype(np.uint8)
    finite = np.isfinite(values)
    if not finite.all() or not np.array_equal(values, np.round(values)):
        bad = values[~finite][:1] if not finite.all() else values[values != np.round(values)][:1]
        raise ImageError(f"{source}: tile {name} holds {bad[0]:g}, not a whole number: {what} (intensities and "
                         f"probabilities are merged by blend).")
    return values.astype(np.int64)


def present_values(values: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, sorted (a count for small ranges, else a sort)."""
    if values.size == 0:
        return np.empty(0, np.int64)
    low, high = int(values.min()), int(values.max())
    if high - low < 1 << 20:
        counts = np.bincount((values.ravel() - low).astype(np.intp, copy=False), minlength=high - low + 1)
        return np.flatnonzero(counts).astype(np.int64) + low
    return np.unique(values).astype(np.int64)


class Vote(Combiner):
    """Per pixel, the class whose tiles' summed weights are largest; ties to the smallest class.

    Holds one float32 sum per class present in the band: ``reserve`` bytes at most (found in
    the tiles as they come; an ImageError says when they would need more).
    """

    name = "vote"
    whole_ok = False
    labels = True

    def __init__(self, weights: Weights, holes: bool, source: str, reserve: int = 0):
        super().__init__(weights, holes, source)
        self.reserve = reserve

    def state_bytes(self, height: int, cols: int, channels: int) -> int:
        return max(self.reserve, self.class_bytes(2, height, cols))

    @staticmethod
    def class_bytes(classes: int, height: int, cols: int) -> int:
        """Sums of ``classes`` classes for ``height`` rows, and the winners of a band."""
        return height * cols * (4 * classes + 12)

    def start(self, height: int, cols: int, channels: int, dtype: np.dtype) -> None:
        super().start(height, cols, channels, dtype)
        if channels != 1:
            raise ImageError(f"{self.source}: a vote needs tiles of class ids, one channel; the tiles have {channels} "
                             f"(for probabilities per class use --combine blend).")
        self.out_dtype = output_dtype(dtype)
        self.classes = np.empty(0, np.int64)
        self.sums = np.zeros((0, height, cols), np.float32)

    def add(self, values: np.ndarray, place: Placement) -> None:
        part = whole_numbers(self.check(values, place)[..., 0], self.source, place.name, "a vote needs class ids")
        present = present_values(part)
        self._grow(present)
        slots = np.searchsorted(self.classes, present)
        view = self.sums[:, place.y0 : place.y1, place.x0 : place.x1]
        w = np.float32(1.0) if self.flat else self.weights(place).astype(np.float32)
        for value, slot in zip(present, slots):
            np.add(view[slot], w, out=view[slot], where=part == value)

    def _grow(self, present: np.ndarray) -> None:
        new = np.setdiff1d(present, self.classes, assume_unique=True)
        if not len(new):
            return
        keep = np.array([self.sums[k].any() for k in range(len(self.classes))], bool)
        classes = np.union1d(self.classes[keep], new)  # classes gone from the band are forgotten
        need = self.class_bytes(len(classes), self.height, self.cols)
        if need > self.reserve:
            raise ImageError(
                f"{self.source}: voting between {len(classes)} classes needs {need >> 20} MB for {self.height} rows of "
                f"{self.cols} px, more than the memory limit leaves ({self.reserve >> 20} MB); raise the memory limit "
                f"(or, for instance labels, use --combine instances).")
        sums = np.zeros((len(classes), self.height, self.cols), np.float32)
        sums[np.searchsorted(classes, self.classes[keep])] = self.sums[keep]
        self.classes, self.sums = classes, sums

    def rows(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        best = np.zeros((n, self.cols), self.out_dtype)
        best_sum = np.zeros((n, self.cols), np.float32)
        for slot in range(len(self.classes)):  # classes ascending: a tie keeps the smaller class
            sums = self.sums[slot, :n]
            better = sums > best_sum
            best[better] = self.classes[slot]
            np.maximum(best_sum, sums, out=best_sum)
        if not self.holes and np.any(best_sum == 0):
            raise self.not_covered()
        return best[..., np.newaxis]

    def drop(self, n: int) -> None:
        keep = max(0, self.height - n)
        self.sums[:, :keep] = self.sums[:, self.height - keep :]
        self.sums[:, keep:] = 0


# --- instances ------------------------------------------------------------------------------------
class Instances(Combiner):
    """Instance labels stitched across tiles (see the module docstring).

    The band holds, per pixel, a provisional object id and a claim: -1 no tile yet, 0
    background, else 1 + the object's *margin* in the tile that painted it (its distance in
    pixels to that tile's nearest inner edge: 0 when the tile cut it). Ids are grouped by a
    union-find. A tile's objects are matched with the groups already in the band where both
    were seen (IoU at least ``iou`` over the tile's pixels that the group's tiles covered):
    matched objects are one group. A group takes its pixels from its member of largest margin
    — a tile seeing it whole and far from its edges replaces the parts cut by other tiles —;
    a group cut in every tile is the union of its parts; where two groups claim a pixel, the
    larger margin wins. Rows leave the band with output ids 1, 2, 3, … in the order of each
    object's first pixel (row by row, as in a whole image); the band's ids are then renumbered, so the state holds only open objects.
    An object whose parts had both left the band before they met keeps two ids: counted as
    ``split`` (never with a whole image in memory).
    """

    name = "instances"
    labels = True

    def __init__(self, weights: Weights, holes: bool, source: str, iou: float = DEFAULT_IOU):
        super().__init__(weights, holes, source)
        self.iou = iou
        self.objects = 0
        self.split = 0
        self.multi_out = bytearray(1)  # per output id: found in several tiles
        self._split_pairs: set[tuple[int, int]] = set()

    def state_bytes(self, height: int, cols: int, channels: int) -> int:
        # ids (int64) and claims (int16), ids resolved when rows leave, the uint32 output
        return height * cols * 24

    def start(self, height: int, cols: int, channels: int, dtype: np.dtype) -> None:
        super().start(height, cols, channels, dtype)
        if channels != 1:
            raise ImageError(f"{self.source}: instances need tiles of instance labels, one channel; the tiles have "
                             f"{channels}.")
        self.out_dtype = np.dtype(np.uint32)
        self.ids = np.zeros((height, cols), np.int64)
        self.claim = np.full((height, cols), -1, np.int16)
        self._reset_groups(1)

    def _reset_groups(self, n: int, out=None, best=None, multi=None, seen=None) -> None:
        """Groups 0..n-1 (0: background), each its own root."""
        self.seen: list = [()] * n if seen is None else seen  # boxes (band rows) of the tiles it was seen in
        self.parent = np.arange(n, dtype=np.int64)
        self.out = np.zeros(n, np.int64) if out is None else out  # output id, 0 until rows leave
        self.best = np.zeros(n, np.int16) if best is None else best  # claim of its best member painted
        self.multi = np.zeros(n, bool) if multi is None else multi  # members from several tiles

    def _new_groups(self, k: int, box: tuple[int, int, int, int]) -> int:
        """Add ``k`` groups seen in a tile of ``box``; returns the id of the first."""
        first = len(self.parent)
        self.seen.extend([(box,)] * k)
        self.parent = np.concatenate([self.parent, np.arange(first, first + k)])
        self.out = np.concatenate([self.out, np.zeros(k, np.int64)])
        self.best = np.concatenate([self.best, np.zeros(k, np.int16)])
        self.multi = np.concatenate([self.multi, np.zeros(k, bool)])
        return first

    def _roots(self) -> np.ndarray:
        """The root of every id (pointer jumping; the parents are compressed)."""
        roots = self.parent
        while True:
            nxt = roots[roots]
            if np.array_equal(nxt, roots):
                self.parent = roots
                return roots
            roots = nxt

    def _find(self, a: int) -> int:
        while self.parent[a] != a:
            a = int(self.parent[a])
        return a

    def _union(self, a: int, b: int) -> None:
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return
        if self.out[ra] and self.out[rb]:  # both already written with their own ids
            pair = (int(min(self.out[ra], self.out[rb])), int(max(self.out[ra], self.out[rb])))
            if pair not in self._split_pairs:
                self._split_pairs.add(pair)
                self.split += 1
            return
        if self.out[rb] or (not self.out[ra] and rb < ra):
            ra, rb = rb, ra  # the root keeps an output id, else the older id
        self.parent[rb] = ra
        boxes = None if self.seen[ra] is None or self.seen[rb] is None else tuple(sorted(set(self.seen[ra]) | set(self.seen[rb])))
        self.seen[ra] = boxes if boxes is not None and len(boxes) <= MAX_SEEN else None
        self.best[ra] = max(self.best[ra], self.best[rb])
        self.multi[ra] = True
        if self.out[ra]:
            self.multi_out[self.out[ra]] = 1

    def add(self, values: np.ndarray, place: Placement) -> None:
        labels = whole_numbers(self.check(values, place)[..., 0], self.source, place.name, "instances need labels")
        local, count = _relabel(labels)
        first = self._new_groups(count, (place.y0, place.x0, place.y1, place.x1))
        box = (slice(place.y0, place.y1), slice(place.x0, place.x1))
        ids, claim = self.ids[box], self.claim[box]
        covered = claim >= 0
        for t, c in self._matches(local, count, self._roots()[ids], covered, place):
            self._union(first + t - 1, c)
        roots = self._roots()
        new_ids = np.where(local > 0, local + (first - 1), 0)
        t_claim = (1 + _margins(local, count, place.inner))[local] * (local > 0)
        # groups this tile sees better than any tile before: their earlier pixels here go
        groups = roots[first : first + count]
        offer = np.zeros(len(roots), np.int16)
        np.maximum.at(offer, groups, (1 + _margins(local, count, place.inner))[1:].astype(np.int16))
        better = offer > self.best
        better[0] = False
        c_root = roots[ids]
        gone = covered & (ids > 0) & better[c_root]
        ids[gone] = 0
        claim[gone] = 0
        t_root = roots[new_ids]
        seen = local > 0
        paint = ~covered
        # a better view of its group wins every pixel but those a better-seen other group holds
        paint |= seen & better[t_root] & ~((ids > 0) & (roots[ids] != t_root) & (claim >= t_claim))
        # parts of a group cut everywhere add up
        paint |= seen & ~better[t_root] & (t_claim == 1) & (self.best[t_root] <= 1) & (ids == 0)
        ids[paint] = new_ids[paint]
        claim[paint] = t_claim[paint]
        self.best = np.maximum(self.best, offer)


    def rows(self, n: int, out: np.ndarray | None = None) -> np.ndarray:
        if not self.holes and np.any(self.claim[:n] < 0):
            raise self.not_covered()
        roots = self._roots()
        ids = roots[self.ids[:n]]
        unnamed = self.out == 0
        unnamed[0] = False
        waiting = unnamed[ids]
        # new ids in the order of each object's first pixel (row by row): the same in bands or whole
        fresh, first = np.unique(ids[waiting], return_index=True)
        fresh = fresh[np.argsort(first, kind="stable")]
        self.out[fresh] = np.arange(self.objects + 1, self.objects + 1 + len(fresh))
        self.multi_out.extend(self.multi[fresh].astype(np.uint8).tobytes())
        self.objects += len(fresh)
        return self.out[ids].astype(self.out_dtype)[..., np.newaxis]

    def drop(self, n: int) -> None:
        shift_rows([self.ids, self.claim], n, [0, -1])
        # renumber the groups still in the band 1..L: the state stays the size of the band
        roots = self._roots()
        ids = roots[self.ids]
        live = np.zeros(len(roots), bool)
        live[ids] = True
        live[0] = False
        keep = np.flatnonzero(live)
        renumber = np.zeros(len(roots), np.int64)
        renumber[keep] = np.arange(1, len(keep) + 1)
        self.ids = renumber[ids]
        index = np.concatenate([[0], keep])
        seen = [None if self.seen[g] is None else tuple((y0 - n, x0, y1 - n, x1) for y0, x0, y1, x1 in self.seen[g])
                for g in index]
        self._reset_groups(len(index), self.out[index], self.best[index], self.multi[index], seen)

    def _matches(self, local: np.ndarray, count: int, band_roots: np.ndarray, covered: np.ndarray, place: Placement):
        """(local label, band group) pairs that are one object: their IoU reaches ``iou`` where
        both were seen, the pixels of the tile that are covered by the tiles the group was seen in."""
        if not count or not covered.any():
            return []
        both = covered & (local > 0) & (band_roots > 0)
        if not both.any():
            return []
        pairs, inter = np.unique(local[both] * len(self.parent) + band_roots[both], return_counts=True)
        ts, cs = np.divmod(pairs, len(self.parent))
        c_area = np.bincount(band_roots[covered & (band_roots > 0)], minlength=len(self.parent))
        regions: dict = {}  # the tiles a group was seen in → the tile's pixels they covered
        out = []
        for t, c, n in zip(ts.tolist(), cs.tolist(), inter.tolist()):
            boxes = self.seen[c]
            if boxes not in regions:
                regions[boxes] = np.bincount(local[self._seen_region(boxes, covered, place)], minlength=count + 1)
            t_area = regions[boxes][t]
            if n / (t_area + c_area[c] - n) >= self.iou:
                out.append((t, c))
        return out

    @staticmethod
    def _seen_region(boxes, covered: np.ndarray, place: Placement) -> np.ndarray:
        """The covered pixels of a tile at ``place`` that lie in ``boxes`` (all of them for None)."""
        if boxes is None:
            return covered
        region = np.zeros(covered.shape, bool)
        for y0, x0, y1, x1 in boxes:
            ry0, ry1 = max(y0, place.y0) - place.y0, min(y1, place.y1) - place.y0
            rx0, rx1 = max(x0, place.x0) - place.x0, min(x1, place.x1) - place.x0
            if ry1 > ry0 and rx1 > rx0:
                region[ry0:ry1, rx0:rx1] = True
        return region & covered


    def counts(self) -> dict[str, int]:
        return {"objects": self.objects, "merged": int(sum(self.multi_out)), "split": self.split}


def _relabel(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 1..k (0 stays background), as int64, and k."""
    values = present_values(labels)
    values = values[values != 0]
    if not len(values):
        return np.zeros(labels.shape, np.int64), 0
    low, high = int(values[0]), int(values[-1])
    if high - low < 1 << 20 and low >= 0:
        lut = np.zeros(high + 1, np.int64)
        lut[values] = np.arange(1, len(values) + 1)
        return lut[labels], len(values)
    local = np.searchsorted(values, labels) + 1
    return np.where(labels == 0, 0, local).astype(np.int64), len(values)


def _margins(local: np.ndarray, count: int, inner: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Per local label (index 0: background), the object's distance in pixels to the tile's
    nearest inner edge (top, left, bottom, right): 0 when it touches one, at most 32000.

    >>> local = np.array([[0, 0, 0, 0], [0, 1, 0, 2], [0, 0, 0, 2]])
    >>> _margins(local, 2, (False, False, False, True)).tolist()  # only the right edge is inner
    [32000, 2, 0]
    """
    rows, cols = local.shape
    margin = np.full(count + 1, 32000, np.int64)
    top, left, bottom, right = inner
    if count and any(inner):
        yy, xx = np.nonzero(local)
        labels = local[yy, xx]
        for on, distance in ((top, yy), (left, xx), (bottom, rows - 1 - yy), (right, cols - 1 - xx)):
            if on:
                np.minimum.at(margin, labels, distance)
    return np.minimum(margin, 32000)


__all__ = [
    "BLENDS", "COMBINES", "DEFAULT_IOU", "Blend", "Combiner", "Instances", "Maximum", "Placement", "Vote", "Weights",
    "blend_window", "check_combine", "output_dtype", "present_values", "shift_rows", "whole_numbers",
]
