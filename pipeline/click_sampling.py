"""Simulated user clicks for training (Xu et al. 2016, "Deep Interactive Object Selection", §3.2; spec §2).

Per object `o` of an object map (ids 1..254; 0 = background, 255 = void): `M = (map == o)`, `dist_in` = distance
from a pixel of M to the nearest pixel outside M (the image border counts as outside), `dist_out` = distance from a
pixel outside M to M. Every pair holds positive clicks and the negative clicks of one strategy:

- positives: spaced picks among pixels of M with `dist_in > d_margin`;
- strategy 1: spaced picks among background pixels (not void, not on any object) with `d_margin < dist_out < d`;
- strategy 2: for every other object, spaced picks inside it with its own `dist_in > d_margin`;
- strategy 3: among non-void pixels with `0 < dist_out < d` (other objects allowed), one uniform pick, then greedy
  farthest-point picks, each maximising min(distance to M, distance to the clicks chosen so far), ties at the
  maximum broken uniformly at random.

"Spaced picks": one at a time, each uniform among the candidates farther than `d_step` from the clicks of that kind
already placed, stopping early when none is left. Decisions the spec leaves open:

- Counts: in `random` mode the counts of positives, of strategy 1 and of strategy 2 (per other object) are uniform
  in 1..N; in `fixed` mode they are N (no draw). Strategy 3 always places N_neg3 clicks (one uniform pick, then
  N_neg3 - 1 farthest-point picks: the spec's and the paper's boundary cover). Fewer clicks result only when the
  candidates run out.
- Strategy 2's clicks keep `d_step` between each other across objects too, so every kind of click is spaced.
- A strategy is offered only when it has candidates: 1 and 3 when their band is non-empty, 2 when some other
  object (small ones included: they are still objects of the image) has interior candidates. Every offered strategy
  therefore yields at least one negative click; an object with no offered strategy is skipped as
  `no_negative_candidate`. The strategy of each pair is uniform among the offered ones.
- Skip order: `small` (area < min_area), `low_box_fill` (area < min_box_fill × bounding-box area; off by default),
  then `no_positive_candidate`, then `no_negative_candidate`.
- An object's class is the most frequent class-map value over M other than 0 and 255 (smallest on a tie; 0 if none).
- Distances are compared squared, as exact integers, so a threshold never depends on float rounding.

All randomness comes from the generator passed in, drawn in a fixed order (objects by id; per pair: strategy,
positive count, positives, negative count(s), negatives), so a sample is reproducible from (seed, key) alone.
Distance transforms run once per object (on its bounding box, and on the box grown by `d` for the bands) and are
reused by all its pairs; picking works on candidate coordinate arrays in row-major order, updating only the rows
within reach of the new click.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from ifcn.distance import distance_inside, distance_outside, exact_squared
from ifcn.flags import flag
from ifcn.labels import BACKGROUND, MAX_OBJECT_ID, VOID, object_class
from ifcn.shards.records import ClickPair, ImageClicks, ObjectClicks, Point, SkippedObject

COUNT_MODES = ("random", "fixed")
SKIP_SMALL = "small"
SKIP_LOW_BOX_FILL = "low_box_fill"
SKIP_NO_POSITIVE = "no_positive_candidate"
SKIP_NO_NEGATIVE = "no_negative_candidate"

#: Clicks and candidate pixels: an (N, 2) int64 array of (y, x), candidates sorted row-major (as `np.nonzero` gives).
Clicks = np.ndarray
_NO_CLICKS = np.zeros((0, 2), dtype=np.int64)
_NO_CLICKS.setflags(write=False)  # shared: returned as is, never to be filled in
#: Rejection tries before falling back to an exact pick among the allowed candidates (see `_draw_allowed`).
_REJECTION_TRIES = 16
#: Upper limits of the click options, far above any sensible value (spec §2: 15 pairs, 5-10 clicks, d = 40), so that
#: a typo (`--pairs 100000`) stops at once instead of writing shards for days.
MAX_PAIRS = 1000
MAX_CLICKS = 100
MAX_DISTANCE = 10_000
MAX_MIN_AREA = MAX_DISTANCE * MAX_DISTANCE
#: Seeds up to 2**63 - 1, which every JSON reader and int64 column takes.
MAX_SEED = 2**63 - 1


def _check_maximum(field: str, value: float, maximum: float | None, why: str) -> None:
    if maximum is not None and value > maximum:
        raise ValueError(f"{flag(field)} must be at most {maximum:,} (got {value!r}): {why}")


def _valid_number(field: str, value: object, minimum: float, maximum: float | None = None, why: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{flag(field)} must be a finite number (got {value!r})")
    if value < minimum:
        raise ValueError(f"{flag(field)} must be at least {minimum:g} (got {value!r})")
    _check_maximum(field, value, maximum, why)
    return float(value)


def valid_int(field: str, value: object, minimum: int, maximum: int | None = None, why: str = "") -> int:
    """`value` as an int when it is a whole number within minimum..maximum; else a ValueError naming the CLI option of
    `field` (and `why` an upper limit exists: an absurd value would run for days or exhaust memory, not fail)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{flag(field)} must be a whole number (got {value!r})")
    if value < minimum:
        raise ValueError(f"{flag(field)} must be at least {minimum} (got {value!r})")
    _check_maximum(field, value, maximum, why)
    return int(value)


@dataclass(frozen=True)
class ClickConfig:
    """Click simulation parameters (spec §2 defaults). Field `a_b` is the CLI option `--a-b`."""

    d_margin: float = 5.0
    d_step: float = 10.0
    n_pos: int = 5
    n_neg1: int = 10
    n_neg2: int = 5
    n_neg3: int = 10
    d: float = 40.0
    pairs: int = 15
    min_area: int = 400
    count_mode: str = "random"
    #: Objects whose pixels fill less than this fraction of their bounding box are skipped (0: off). RITM drops SBD
    #: training objects under 0.08 as badly annotated.
    min_box_fill: float = 0.0

    def __post_init__(self) -> None:
        # Normalise types too, so that `to_dict` (stored in the manifest) is the same for 5 and 5.0.
        for field in ("d_margin", "d_step", "d"):
            object.__setattr__(self, field, _valid_number(field, getattr(self, field), 0, MAX_DISTANCE,
                                                          "a distance in pixels, longer than any image side"))
        for field in ("n_pos", "n_neg1", "n_neg2", "n_neg3"):
            object.__setattr__(self, field, valid_int(field, getattr(self, field), 1, MAX_CLICKS,
                                                      "clicks of one kind per pair (the paper uses 5 to 10)"))
        object.__setattr__(self, "pairs", valid_int("pairs", self.pairs, 1, MAX_PAIRS,
                                                    "click pairs per object (15 for training, 1 for validation)"))
        object.__setattr__(self, "min_area", valid_int("min_area", self.min_area, 0, MAX_MIN_AREA,
                                                       "pixels, more than any image has"))
        object.__setattr__(self, "min_box_fill", _valid_number("min_box_fill", self.min_box_fill, 0, 1,
                                                             "a fraction of the object's bounding box"))
        if not self.d > self.d_margin:
            raise ValueError(f"--d must be greater than --d-margin (got --d {self.d:g}, --d-margin {self.d_margin:g})")
        if self.count_mode not in COUNT_MODES:
            raise ValueError(f"--count-mode must be one of {', '.join(COUNT_MODES)} (got {self.count_mode!r})")

    def to_dict(self) -> dict:
        return asdict(self)


def image_rng(seed: int, key: str) -> np.random.Generator:
    """The generator of one image, from (seed, key) only: independent of shards, workers and call order.

    The key enters through sha256 (Python's `hash()` of a str changes from one process to the next).
    """
    seed = valid_int("seed", seed, 0, MAX_SEED)
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return np.random.default_rng(np.random.SeedSequence([seed, int.from_bytes(digest[:16], "little")]))


def click_count(n_max: int, config: ClickConfig, rng: np.random.Generator) -> int:
    """How many clicks to aim for: uniform in 1..n_max (`random`) or n_max (`fixed`, no draw)."""
    return int(rng.integers(1, n_max + 1)) if config.count_mode == "random" else n_max


# --- picking ----------------------------------------------------------------------------------------------------


def _rows(candidates: np.ndarray) -> tuple[Clicks, np.ndarray, np.ndarray]:
    """Candidates as an (N, 2) int64 array and their rows and columns as contiguous arrays; checks the row-major
    order we rely on."""
    cand = np.asarray(candidates, dtype=np.int64).reshape(-1, 2)
    ys, xs = np.ascontiguousarray(cand[:, 0]), np.ascontiguousarray(cand[:, 1])
    if len(ys) > 1 and np.any(ys[1:] < ys[:-1]):
        raise ValueError("candidates must be sorted by row (y), as np.nonzero / np.argwhere return them")
    return cand, ys, xs


def _near(ys: np.ndarray, xs: np.ndarray, point: np.ndarray, radius_sq: float) -> tuple[int, int, np.ndarray]:
    """Candidates within sqrt(radius_sq) rows of `point`: the index range [lo, hi) and their squared distances.

    Called once per click drawn, so per-call overhead counts (bench/bench_real_prep.py): two scalar searches and
    in-place arithmetic on the contiguous rows and columns, half the time of an (N, 2) difference and einsum."""
    radius = math.sqrt(radius_sq)
    py, px = int(point[0]), int(point[1])
    lo, hi = int(ys.searchsorted(math.ceil(py - radius))), int(ys.searchsorted(math.floor(py + radius) + 1))
    dist_sq, dx = ys[lo:hi] - py, xs[lo:hi] - px
    dist_sq *= dist_sq
    dx *= dx
    dist_sq += dx
    return lo, hi, dist_sq


def _exclude(ys: np.ndarray, xs: np.ndarray, allowed: np.ndarray, point: np.ndarray, d_step: float) -> int:
    """Disallow the candidates within d_step of `point`; returns how many were still allowed."""
    lo, hi, dist_sq = _near(ys, xs, point, d_step * d_step)
    newly = allowed[lo:hi] & (dist_sq <= d_step * d_step)
    allowed[lo:hi] &= ~newly
    return int(np.count_nonzero(newly))


def _draw_allowed(allowed: np.ndarray, left: int, rng: np.random.Generator) -> int:
    """A uniform index among the allowed candidates.

    While most candidates are allowed, rejection sampling costs O(1) instead of O(N); it stays exactly uniform, and
    the rare run of rejections falls back to the exact O(N) pick.
    """
    k = len(allowed)
    if left == k:
        return int(rng.integers(k))
    if 4 * left >= k:
        tries = rng.integers(k, size=_REJECTION_TRIES)
        ok = allowed[tries]
        if ok.any():
            return int(tries[int(ok.argmax())])
    return int(np.flatnonzero(allowed)[rng.integers(left)])


def _within_reach(cand: Clicks, placed: np.ndarray | None, d_step: float) -> Clicks:
    """The placed clicks that can exclude a candidate: those within d_step of the candidates' bounding box.

    Strategy 2 passes the clicks of all earlier objects; almost none are near the next object, and skipping them
    keeps images with many objects fast.
    """
    points = np.asarray(placed if placed is not None else _NO_CLICKS, dtype=np.int64).reshape(-1, 2)
    if not len(points) or not len(cand):
        return _NO_CLICKS
    near = np.all((points >= cand.min(axis=0) - d_step) & (points <= cand.max(axis=0) + d_step), axis=1)
    return points[near]


def spaced_picks(candidates: np.ndarray, n: int, d_step: float, rng: np.random.Generator,
                 placed: np.ndarray | None = None) -> Clicks:
    """Up to `n` clicks, one at a time, each uniform among the candidates farther than `d_step` from every click
    already placed (the earlier picks and `placed`); stops early when no candidate is left."""
    cand, ys, xs = _rows(candidates)
    allowed = np.ones(len(cand), dtype=bool)
    left = len(cand)
    for point in _within_reach(cand, placed, d_step):
        left -= _exclude(ys, xs, allowed, point, d_step)
    picks: list[int] = []
    while len(picks) < n and left > 0:
        i = _draw_allowed(allowed, left, rng)
        picks.append(i)
        left -= _exclude(ys, xs, allowed, cand[i], d_step)
    return cand[picks]


def farthest_picks(candidates: np.ndarray, base_sq: np.ndarray, n: int, rng: np.random.Generator) -> Clicks:
    """Up to `n` clicks: the first uniform, then greedy farthest-point picks, each maximising the smaller of its
    squared distance `base_sq` (to the object) and its squared distance to the clicks chosen so far.

    Ties at the maximum are broken uniformly at random with `rng` (spec §2): the band caps the distance, so many
    pixels tie, and "first in row order" would repeat most clicks across an object's pairs. Stops early when every
    candidate has been picked.
    """
    cand, ys, xs = _rows(candidates)
    if n < 1 or len(cand) == 0:
        return _NO_CLICKS
    min_sq = np.array(base_sq, dtype=np.int64).reshape(-1)
    if len(min_sq) != len(cand):
        raise ValueError(f"base_sq has {len(min_sq)} values for {len(cand)} candidates")
    i = int(rng.integers(len(cand)))
    bound = int(min_sq.max())  # no candidate's running minimum exceeds this, so farther rows cannot change
    picks = [i]
    while len(picks) < n:
        lo, hi, dist_sq = _near(ys, xs, cand[i], bound)
        np.minimum(min_sq[lo:hi], dist_sq, out=min_sq[lo:hi])
        bound = int(min_sq.max())
        if bound <= 0:
            break
        i = _random_tie(min_sq, bound, rng)
        picks.append(i)
    return cand[picks]


def _random_tie(values: np.ndarray, maximum: int, rng: np.random.Generator) -> int:
    """A uniform index among those where `values` equals `maximum` (no draw when only one does)."""
    ties = np.flatnonzero(values == maximum)
    return int(ties[rng.integers(len(ties))]) if len(ties) > 1 else int(ties[0])


# --- candidates -------------------------------------------------------------------------------------------------


def interior_candidates(mask: np.ndarray, d_margin: float) -> Clicks:
    """Pixels of `mask` with dist_in > d_margin (image border = outside), row-major (y, x)."""
    return np.argwhere(exact_squared(distance_inside(mask)) > d_margin * d_margin)


@dataclass(frozen=True)
class ImageObjects:
    """The objects of an object map: bounding boxes and interior candidates (positives, and strategy 2 of others)."""

    boxes: dict[int, tuple[slice, slice]]
    interiors: dict[int, Clicks]


def image_objects(object_map: np.ndarray, d_margin: float) -> ImageObjects:
    """Find the objects (ids 1..254 present in the map) and their interior candidates in image coordinates."""
    found = ndimage.find_objects(object_map, max_label=MAX_OBJECT_ID)
    boxes = {i + 1: box for i, box in enumerate(found) if box is not None}
    interiors = {o: interior_candidates(object_map[box] == o, d_margin) + np.array([box[0].start, box[1].start])
                 for o, box in boxes.items()}
    return ImageObjects(boxes, interiors)


@dataclass(frozen=True)
class ObjectCandidates:
    """Candidate pixels of one target object (image coordinates, row-major), reused by all of its pairs."""

    positive: Clicks
    strategy1: Clicks
    strategy2: tuple[Clicks, ...]  # one array per other object that has interior candidates, by id
    strategy3: Clicks
    strategy3_sq: np.ndarray  # squared dist_out of each strategy-3 candidate

    @property
    def offered(self) -> tuple[int, ...]:
        """The negative strategies that have candidates (see the module notes)."""
        has = {1: len(self.strategy1) > 0, 2: len(self.strategy2) > 0, 3: len(self.strategy3) > 0}
        return tuple(s for s, ok in has.items() if ok)


def object_candidates(object_map: np.ndarray, objects: ImageObjects, object_id: int,
                      config: ClickConfig) -> ObjectCandidates:
    """All candidates of `object_id`, from one distance transform on its box grown by `d`.

    Pixels outside that window are more than `d` from the object, so they lie in no band, and the transform inside
    it is exact because the whole object lies in the window.
    """
    box = objects.boxes.get(object_id)
    if box is None:
        raise ValueError(f"object {object_id} is not in the object map")
    reach = math.floor(config.d)
    y0, x0 = max(box[0].start - reach, 0), max(box[1].start - reach, 0)
    window = object_map[y0:box[0].stop + reach, x0:box[1].stop + reach]
    dist_sq = exact_squared(distance_outside(window == object_id))
    in_reach = dist_sq < config.d * config.d
    band1 = (window == BACKGROUND) & in_reach & (dist_sq > config.d_margin * config.d_margin)
    band3 = (window != VOID) & in_reach & (dist_sq > 0)
    rows3, cols3 = np.nonzero(band3)
    others = tuple(c for o, c in objects.interiors.items() if o != object_id and len(c))
    return ObjectCandidates(positive=objects.interiors[object_id],
                            strategy1=np.argwhere(band1) + np.array([y0, x0]),
                            strategy2=others,
                            strategy3=np.stack([rows3 + y0, cols3 + x0], axis=1),
                            strategy3_sq=dist_sq[rows3, cols3])


# --- clicks -----------------------------------------------------------------------------------------------------


def positive_clicks(cands: ObjectCandidates, config: ClickConfig, rng: np.random.Generator) -> Clicks:
    """1..n_pos spaced clicks inside the object, at least d_margin from its boundary."""
    return spaced_picks(cands.positive, click_count(config.n_pos, config, rng), config.d_step, rng)


def negatives_strategy1(cands: ObjectCandidates, config: ClickConfig, rng: np.random.Generator) -> Clicks:
    """Strategy 1: 1..n_neg1 spaced clicks on the background band d_margin < dist_out < d."""
    return spaced_picks(cands.strategy1, click_count(config.n_neg1, config, rng), config.d_step, rng)


def negatives_strategy2(cands: ObjectCandidates, config: ClickConfig, rng: np.random.Generator) -> Clicks:
    """Strategy 2: 1..n_neg2 spaced clicks inside every other object (spaced across objects as well)."""
    clicks = _NO_CLICKS
    for other in cands.strategy2:
        picked = spaced_picks(other, click_count(config.n_neg2, config, rng), config.d_step, rng, placed=clicks)
        clicks = np.concatenate([clicks, picked])
    return clicks


def negatives_strategy3(cands: ObjectCandidates, config: ClickConfig, rng: np.random.Generator) -> Clicks:
    """Strategy 3: n_neg3 clicks covering the band 0 < dist_out < d (first uniform, then farthest-point)."""
    return farthest_picks(cands.strategy3, cands.strategy3_sq, config.n_neg3, rng)


#: Negative strategies by number (the `strategy` field of a ClickPair).
NEGATIVE_STRATEGIES: dict[int, Callable[[ObjectCandidates, ClickConfig, np.random.Generator], Clicks]] = {
    1: negatives_strategy1,
    2: negatives_strategy2,
    3: negatives_strategy3,
}


def _points(clicks: Clicks) -> tuple[Point, ...]:
    return tuple((int(y), int(x)) for y, x in clicks.tolist())


def sample_pair(cands: ObjectCandidates, config: ClickConfig, rng: np.random.Generator) -> ClickPair:
    """One pair: a strategy uniform among the offered ones, positives, then that strategy's negatives."""
    offered = cands.offered
    if not offered:
        raise ValueError("no negative strategy is offered for this object (it should have been skipped)")
    strategy = offered[int(rng.integers(len(offered)))]
    pos = positive_clicks(cands, config, rng)
    neg = NEGATIVE_STRATEGIES[strategy](cands, config, rng)
    return ClickPair(strategy, _points(pos), _points(neg))


def _check_maps(key: str, object_map: np.ndarray, class_map: np.ndarray) -> None:
    if object_map.ndim != 2 or not np.issubdtype(object_map.dtype, np.integer):
        raise ValueError(f"{key}: the object map must be a 2-D integer index array (got {object_map.dtype}, "
                         f"shape {object_map.shape})")
    if class_map.shape != object_map.shape or not np.issubdtype(class_map.dtype, np.integer):
        raise ValueError(f"{key}: the class map must be an integer index array of the object map's shape "
                         f"{object_map.shape} (got {class_map.dtype}, shape {class_map.shape})")


def sample_image_clicks(key: str, object_map: np.ndarray, class_map: np.ndarray, config: ClickConfig,
                        rng: np.random.Generator, name: str = "") -> ImageClicks:
    """Sample `config.pairs` click pairs for every object of one image; the others are listed with a skip reason.
    `name` is the image's name in its dataset, kept in the clicks (the key when not given)."""
    object_map, class_map = np.asarray(object_map), np.asarray(class_map)
    _check_maps(key, object_map, class_map)
    objects = image_objects(object_map, config.d_margin)
    kept: list[ObjectClicks] = []
    skipped: list[SkippedObject] = []
    for object_id, box in objects.boxes.items():
        mask = object_map[box] == object_id
        area = int(np.count_nonzero(mask))
        cls = object_class(class_map[box][mask])
        if area < config.min_area:
            skipped.append(SkippedObject(object_id, cls, area, SKIP_SMALL))
            continue
        if area < config.min_box_fill * mask.size:
            skipped.append(SkippedObject(object_id, cls, area, SKIP_LOW_BOX_FILL))
            continue
        if not len(objects.interiors[object_id]):
            skipped.append(SkippedObject(object_id, cls, area, SKIP_NO_POSITIVE))
            continue
        cands = object_candidates(object_map, objects, object_id, config)
        if not cands.offered:
            skipped.append(SkippedObject(object_id, cls, area, SKIP_NO_NEGATIVE))
            continue
        pairs = tuple(sample_pair(cands, config, rng) for _ in range(config.pairs))
        kept.append(ObjectClicks(object_id, cls, area, pairs))
    height, width = object_map.shape
    return ImageClicks(key, height, width, tuple(kept), tuple(skipped), name)
