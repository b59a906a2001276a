"""Click sampling rules of spec §2 on hand-made masks, checked against scipy's distance transform as the reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from ifcn.distance import distance_inside, distance_outside, edt
from ifcn.pipeline.click_sampling import (
    SKIP_NO_NEGATIVE,
    SKIP_NO_POSITIVE,
    SKIP_SMALL,
    ClickConfig,
    farthest_picks,
    image_objects,
    image_rng,
    interior_candidates,
    negatives_strategy2,
    negatives_strategy3,
    object_candidates,
    sample_image_clicks,
    spaced_picks,
)

VOID = 255


def ref_dist_in(mask: np.ndarray) -> np.ndarray:
    """dist_in with the image border as outside: scipy's EDT on the mask padded by one background pixel."""
    return ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]


def ref_dist_out(mask: np.ndarray) -> np.ndarray:
    return ndimage.distance_transform_edt(~mask)


def with_void(obj: np.ndarray, width: float = 2.0) -> np.ndarray:
    """Mark background within `width` px of any object as void, like VOC's band around objects."""
    out = obj.copy()
    out[(obj == 0) & (ref_dist_out(obj > 0) <= width)] = VOID
    return out


def disk(shape: tuple[int, int], cy: int, cx: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def one_object_map() -> np.ndarray:
    obj = np.zeros((120, 160), np.uint8)
    obj[35:85, 50:110] = 1
    return with_void(obj)


def two_object_map() -> np.ndarray:
    obj = np.zeros((120, 160), np.uint8)
    obj[20:80, 15:65] = 1
    obj[disk(obj.shape, 60, 118, 24)] = 2
    return with_void(obj)


def class_map_of(obj: np.ndarray) -> np.ndarray:
    cls = np.where((obj > 0) & (obj < VOID), obj + 10, 0).astype(np.uint8)
    cls[obj == VOID] = VOID
    return cls


def sample(obj: np.ndarray, seed: int = 0, key: str = "2008_000001", **kw):
    return sample_image_clicks(key, obj, class_map_of(obj), ClickConfig(**kw), image_rng(seed, key))


def all_pairs(clicks):
    return [(o.id, p) for o in clicks.objects for p in o.pairs]


def pairwise_min_distance(points) -> float:
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    if len(pts) < 2:
        return math.inf
    diff = pts[:, None, :] - pts[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    return dist[np.triu_indices(len(pts), 1)].min()


# --- distance transforms -----------------------------------------------------------------------------------------


def test_distance_transforms_match_scipy_and_treat_border_as_outside():
    rng = np.random.default_rng(3)
    mask = ndimage.gaussian_filter(rng.random((70, 90)), 4) > 0.5
    np.testing.assert_allclose(distance_inside(mask), ref_dist_in(mask), atol=1e-4)
    np.testing.assert_allclose(distance_outside(mask), ref_dist_out(mask), atol=1e-4)
    full = np.ones((5, 7), bool)
    assert distance_inside(full)[0, 3] == 1.0 and distance_inside(full)[2, 3] == 3.0
    assert np.isinf(edt(full)).all()  # no zero pixel: "far everywhere", not OpenCV's garbage


# --- positives -----------------------------------------------------------------------------------------------------


def test_positives_lie_more_than_d_margin_inside_their_object():
    obj = two_object_map()
    clicks = sample(obj, pairs=30)
    assert [o.id for o in clicks.objects] == [1, 2]
    for object_id, pair in all_pairs(clicks):
        dist = ref_dist_in(obj == object_id)
        assert 1 <= len(pair.pos) <= 5
        for y, x in pair.pos:
            assert obj[y, x] == object_id and dist[y, x] > 5.0


def test_object_touching_the_border_gets_no_positive_near_the_border():
    obj = np.zeros((100, 100), np.uint8)
    obj[0:40, 0:60] = 1
    cands = interior_candidates(obj == 1, 5.0)
    expected = np.argwhere(ref_dist_in(obj == 1) > 5.0)
    np.testing.assert_array_equal(cands, expected)
    assert cands[:, 0].min() == 5 and cands[:, 1].min() == 5  # rows/cols 0..4 are within 5 px of the border
    clicks = sample(obj, pairs=40, count_mode="fixed")
    pos = np.array([p for _, pair in all_pairs(clicks) for p in pair.pos])
    assert pos[:, 0].min() >= 5 and pos[:, 1].min() >= 5


# --- spacing and bands ---------------------------------------------------------------------------------------------


def test_clicks_of_one_kind_are_more_than_d_step_apart():
    clicks = sample(two_object_map(), pairs=40, count_mode="fixed", n_pos=8, d_step=7.0)
    seen = set()
    for _, pair in all_pairs(clicks):
        seen.add(pair.strategy)
        assert pairwise_min_distance(pair.pos) > 7.0
        if pair.strategy in (1, 2):
            assert pairwise_min_distance(pair.neg) > 7.0
    assert seen == {1, 2, 3}


def test_negative_bands_void_and_target():
    obj = two_object_map()
    obj[0:10, :] = VOID  # a void region inside the band of object 1
    clicks = sample(obj, pairs=60, count_mode="fixed")
    counts = {1: 0, 2: 0, 3: 0}
    for object_id, pair in all_pairs(clicks):
        counts[pair.strategy] += 1
        dist_out = ref_dist_out(obj == object_id)
        for y, x in pair.neg:
            assert obj[y, x] != VOID and obj[y, x] != object_id
            if pair.strategy == 1:
                assert obj[y, x] == 0 and 5.0 < dist_out[y, x] < 40.0
            if pair.strategy == 3:
                assert 0.0 < dist_out[y, x] < 40.0
    assert min(counts.values()) > 0


def test_strategy2_is_offered_only_when_another_object_has_candidates():
    one = sample(one_object_map(), pairs=60)
    assert {pair.strategy for _, pair in all_pairs(one)} == {1, 3}

    # A second object too thin for any interior click (width 6 < 2 * d_margin) offers no strategy 2 either.
    thin = one_object_map()
    thin[100:106, 10:150] = 2
    thin = with_void(np.where(thin == VOID, 0, thin).astype(np.uint8))
    assert {pair.strategy for _, pair in all_pairs(sample(thin, pairs=60, min_area=1000))} == {1, 3}

    obj = two_object_map()
    clicks = sample(obj, pairs=60)
    strategies = {pair.strategy for _, pair in all_pairs(clicks)}
    assert strategies == {1, 2, 3}
    for object_id, pair in all_pairs(clicks):
        if pair.strategy == 2:
            other = 3 - object_id
            dist = ref_dist_in(obj == other)
            assert pair.neg and all(obj[y, x] == other and dist[y, x] > 5.0 for y, x in pair.neg)


def test_strategy2_clicks_every_other_object():
    obj = np.zeros((150, 150), np.uint8)
    obj[10:50, 10:50] = 1
    obj[10:50, 90:130] = 2
    obj[90:140, 40:110] = 3
    obj = with_void(obj)
    config = ClickConfig(count_mode="fixed")
    objects = image_objects(obj, config.d_margin)
    cands = object_candidates(obj, objects, 3, config)
    assert cands.offered == (1, 2, 3)
    neg = negatives_strategy2(cands, config, image_rng(1, "k"))
    assert sorted(obj[y, x] for y, x in neg) == [1] * 5 + [2] * 5


# --- strategy 3: farthest points -----------------------------------------------------------------------------------


def test_strategy3_picks_farthest_points_brute_force():
    obj = np.zeros((60, 80), np.uint8)
    obj[20:40, 25:50] = 1
    obj[45:60, 0:30] = 2
    obj = with_void(obj)
    obj[0:8, 40:80] = VOID
    config = ClickConfig(count_mode="fixed", n_neg3=12, d=15.0)
    cands = object_candidates(obj, image_objects(obj, config.d_margin), 1, config)
    dist_out = ref_dist_out(obj == 1)
    band = (dist_out > 0) & (dist_out < 15.0) & (obj != VOID)
    assert set(map(tuple, cands.strategy3.tolist())) == set(map(tuple, np.argwhere(band).tolist()))

    for seed in range(5):
        clicks = negatives_strategy3(cands, config, image_rng(seed, "k"))
        assert len(clicks) == 12
        ys, xs = np.nonzero(band)
        running = np.rint(dist_out[ys, xs] ** 2)
        for k, (cy, cx) in enumerate(clicks.tolist()):
            assert band[cy, cx]
            if k > 0:  # the click reaches the maximum, over the band, of the min distance to object and earlier clicks
                value = running[(ys == cy) & (xs == cx)][0]
                assert value == running.max() > 0
            running = np.minimum(running, (ys - cy) ** 2 + (xs - cx) ** 2)


def test_farthest_picks_on_a_line_and_stops_when_exhausted():
    line = np.array([[0, x] for x in range(11)])
    base = np.full(11, 100)
    picks = farthest_picks(line, base, 3, np.random.default_rng(0)).tolist()
    first = picks[0][1]
    farthest_end = 0 if first >= 5 else 10  # a tie at 5 goes to the first in row order
    assert picks[1] == [0, farthest_end]
    few = farthest_picks(line[:3], base[:3], 10, np.random.default_rng(0))
    assert sorted(map(tuple, few.tolist())) == [(0, 0), (0, 1), (0, 2)]


# --- spaced picking ------------------------------------------------------------------------------------------------


def test_spaced_picks_spacing_placed_and_early_stop():
    grid = np.argwhere(np.ones((30, 30), bool))
    rng = np.random.default_rng(0)
    picks = spaced_picks(grid, 50, 6.0, rng)
    assert 4 <= len(picks) < 50 and pairwise_min_distance(picks) > 6.0  # ran out of room before 50
    square = np.argwhere(np.ones((5, 5), bool))
    assert len(spaced_picks(square, 5, 10.0, rng)) == 1
    placed = np.array([[15, 15]])
    for _ in range(20):
        (y, x), = spaced_picks(grid, 1, 6.0, rng, placed=placed)
        assert (y - 15) ** 2 + (x - 15) ** 2 > 36
    assert len(spaced_picks(grid[:0], 5, 6.0, rng)) == 0
    with pytest.raises(ValueError, match="sorted by row"):
        spaced_picks(grid[::-1], 2, 6.0, rng)


def test_spaced_picks_is_uniform_over_allowed_candidates():
    cands = np.array([[0, 20 * i] for i in range(10)])
    placed = np.array([[0, 3]])  # excludes candidate 0 only
    rng = np.random.default_rng(5)
    hits = np.zeros(10, int)
    for _ in range(3000):
        (_, x), = spaced_picks(cands, 1, 10.0, rng, placed=placed)
        hits[x // 20] += 1
    assert hits[0] == 0
    assert np.all(np.abs(hits[1:] - 3000 / 9) < 5 * math.sqrt(3000 / 9))


# --- counts, skips, classes ----------------------------------------------------------------------------------------


def test_fixed_and_random_counts():
    obj = two_object_map()
    fixed = sample(obj, pairs=30, count_mode="fixed", n_pos=3, n_neg1=4, n_neg2=2, n_neg3=6)
    expected_neg = {1: 4, 2: 2, 3: 6}  # strategy 2: n_neg2 in the single other object
    for _, pair in all_pairs(fixed):
        assert len(pair.pos) == 3 and len(pair.neg) == expected_neg[pair.strategy]
    rand = sample(obj, pairs=60, count_mode="random", n_pos=3, n_neg1=4, n_neg2=2, n_neg3=6)
    assert {len(pair.pos) for _, pair in all_pairs(rand)} == {1, 2, 3}
    for strategy, top in expected_neg.items():
        sizes = {len(pair.neg) for _, pair in all_pairs(rand) if pair.strategy == strategy}
        # strategy 3 always covers the boundary with n_neg3 clicks (spec §2: one uniform, n_neg3 - 1 greedy)
        assert sizes == ({top} if strategy == 3 else set(range(1, top + 1)))


def test_every_skip_reason_and_object_fields():
    obj = np.zeros((100, 200), np.uint8)
    obj[10:30, 10:30] = 1  # area 400: kept at min_area 400
    obj[50:69, 10:31] = 2  # area 399: small
    obj[10:90, 60:68] = 3  # 8 px wide: no pixel more than 5 px inside
    obj[40:90, 100:140] = 4
    obj = with_void(obj)
    cls = class_map_of(obj)
    cls[40:60, 100:140] = 7  # object 4: 800 px of class 7, 1200 of class 14 -> class 14
    cls[88:90, 100:140] = VOID
    clicks = sample_image_clicks("k", obj, cls, ClickConfig(pairs=2), image_rng(0, "k"))
    assert [(o.id, o.cls, o.area) for o in clicks.objects] == [(1, 11, 400), (4, 14, 2000)]
    assert [(s.id, s.cls, s.area, s.reason) for s in clicks.skipped] == [
        (2, 12, 399, SKIP_SMALL), (3, 13, 640, SKIP_NO_POSITIVE)]

    full = np.ones((50, 60), np.uint8)  # no outside pixel at all: no band, no other object
    ringed = np.full((120, 120), VOID, np.uint8)  # surrounded by void wider than d
    ringed[40:80, 40:80] = 1
    for obj in (full, ringed):
        clicks = sample(obj)
        assert clicks.objects == ()
        assert [(s.id, s.reason) for s in clicks.skipped] == [(1, SKIP_NO_NEGATIVE)]


def test_rejects_maps_of_different_sizes():
    with pytest.raises(ValueError, match=r"2008_000001.*class map"):
        sample_image_clicks("2008_000001", np.zeros((4, 5), np.uint8), np.zeros((5, 4), np.uint8), ClickConfig(),
                            image_rng(0, "x"))


# --- determinism ---------------------------------------------------------------------------------------------------


def test_determinism_by_seed_and_key():
    obj = two_object_map()
    assert sample(obj, seed=7).to_json_bytes() == sample(obj, seed=7).to_json_bytes()
    assert sample(obj, seed=7).to_json_bytes() != sample(obj, seed=8).to_json_bytes()
    assert sample(obj, seed=7, key="a") != sample(obj, seed=7, key="b")


def test_image_rng_is_stable_and_independent_of_call_order():
    first = image_rng(3, "2008_000123").bit_generator.random_raw(3)
    image_rng(3, "other").random(100)
    again = image_rng(3, "2008_000123").bit_generator.random_raw(3)
    np.testing.assert_array_equal(first, again)
    # sha256-based, so fixed across processes and Python's hash randomisation.
    assert int(first[0]) == 16348027402245905531
    assert image_rng(4, "2008_000123").bit_generator.random_raw() != first[0]
    with pytest.raises(ValueError, match="--seed"):
        image_rng(-1, "k")


# --- config --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"pairs": 0}, "--pairs must be at least 1 (got 0)"),
    ({"n_pos": 0}, "--n-pos must be at least 1 (got 0)"),
    ({"n_neg1": -2}, "--n-neg1 must be at least 1 (got -2)"),
    ({"n_neg3": 2.5}, "--n-neg3 must be a whole number (got 2.5)"),
    ({"d_margin": -1.0}, "--d-margin must be at least 0 (got -1.0)"),
    ({"d_step": float("nan")}, "--d-step must be a finite number"),
    ({"min_area": -1}, "--min-area must be at least 0 (got -1)"),
    ({"d": 5.0}, "--d must be greater than --d-margin (got --d 5, --d-margin 5)"),
    ({"count_mode": "all"}, "--count-mode must be one of random, fixed (got 'all')"),
])
def test_config_validation_names_the_option(kwargs, message):
    with pytest.raises(ValueError) as err:
        ClickConfig(**kwargs)
    assert message in str(err.value)


def test_config_to_dict_round_trip_and_normalised_types():
    config = ClickConfig(d=40, pairs=1, count_mode="fixed")
    as_dict = config.to_dict()
    assert as_dict["d"] == 40.0 and isinstance(as_dict["d"], float)
    assert ClickConfig(**as_dict) == config and as_dict == ClickConfig(d=40.0, pairs=1, count_mode="fixed").to_dict()
    assert set(as_dict) == {"d_margin", "d_step", "n_pos", "n_neg1", "n_neg2", "n_neg3", "d", "pairs", "min_area",
                            "count_mode", "min_box_fill"}


def test_farthest_picks_break_ties_at_random_with_the_generator():
    points = np.array([[0, 0], [0, 5], [0, 10]])  # from the middle point both ends are equally far
    base = np.full(3, 100)
    seconds = set()
    for seed in range(60):
        picks = farthest_picks(points, base, 2, np.random.default_rng(seed)).tolist()
        assert picks == farthest_picks(points, base, 2, np.random.default_rng(seed)).tolist()  # reproducible
        if picks[0] == [0, 5]:
            seconds.add(tuple(picks[1]))
    assert seconds == {(0, 0), (0, 10)}  # "first in row order" would always give (0, 0)
