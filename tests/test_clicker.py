"""The NoC clickers (spec §6) on hand-made masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.evaluation.clicker import depth, get_clicker, seed_click, standard_click


def _mask(shape: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    """A bool mask with the inclusive boxes (y0, x0, y1, x1) set."""
    m = np.zeros(shape, bool)
    for y0, x0, y1, x1 in boxes:
        m[y0:y1 + 1, x0:x1 + 1] = True
    return m


def _none(shape: tuple[int, int]) -> np.ndarray:
    return np.zeros(shape, bool)


def test_first_click_is_the_deepest_interior_point_first_in_row_major_order() -> None:
    gt = _mask((12, 16), (2, 3, 6, 11))  # 5 rows x 9 columns: depth 3 on row 4, columns 5..9
    empty = _none(gt.shape)
    click = standard_click(gt, empty, empty, empty)
    assert click == Click(4, 5, True) and type(click.y) is int and type(click.x) is int  # plain ints (JSON logs)


def test_image_border_counts_as_boundary() -> None:
    # A band along the top border, 5 rows high: with the border as boundary the deepest row is the middle one (2);
    # if the border were interior, row 0 would be deepest.
    gt = _mask((12, 20), (0, 0, 4, 19))
    empty = _none(gt.shape)
    assert standard_click(gt, empty, empty, empty) == Click(2, 2, True)
    assert depth(gt)[0, 10] == 1 and depth(gt)[2, 10] == 9  # squared distances


def test_positive_only_when_false_negatives_are_strictly_deeper() -> None:
    gt = _mask((9, 16), (1, 1, 3, 3))  # FN square, depth 2 at (2, 2)
    pred = _mask(gt.shape, (1, 8, 3, 10))  # FP square of the same depth at (2, 9)
    empty = _none(gt.shape)
    assert standard_click(gt, pred, empty, empty) == Click(2, 9, False)  # tie -> negative
    deeper = _mask(gt.shape, (1, 1, 5, 5))  # FN depth 3 > 2
    assert standard_click(deeper, pred, empty, empty) == Click(3, 3, True)
    assert standard_click(gt, _mask(gt.shape, (0, 8, 4, 12)), empty, empty) == Click(2, 10, False)  # FP deeper


def test_no_pixel_is_clicked_twice_and_none_when_every_error_pixel_is_clicked() -> None:
    gt = _mask((6, 7), (2, 2, 3, 4))  # 6 pixels
    pred = clicked = _none(gt.shape)
    clicked = clicked.copy()
    seen = []
    for _ in range(6):
        click = standard_click(gt, pred, pred, clicked)
        assert click is not None and click.positive and gt[click.y, click.x]
        seen.append((click.y, click.x))
        clicked[click.y, click.x] = True
    assert len(set(seen)) == 6
    assert standard_click(gt, pred, pred, clicked) is None


def test_perfect_prediction_gives_no_click() -> None:
    gt = _mask((8, 8), (2, 2, 5, 5))
    for clicker in ("standard", "seed"):
        assert get_clicker(clicker).next_click(gt, gt.copy(), _none(gt.shape), _none(gt.shape)) is None


def test_void_pixels_are_never_clicked_and_bound_the_errors() -> None:
    gt = _mask((20, 20), (7, 7, 12, 12))
    ignore = _mask(gt.shape, (5, 5, 14, 14)) & ~gt  # a void band around the object
    ignore |= _mask(gt.shape, (0, 0, 19, 3))  # and a wide void strip that would be the deepest background
    pred = np.ones(gt.shape, bool)  # everything predicted: FP = background outside the void
    clicked = _none(gt.shape)
    for _ in range(30):
        click = standard_click(gt, pred, ignore, clicked)
        assert click is not None and not click.positive
        assert not ignore[click.y, click.x] and not gt[click.y, click.x]
        clicked[click.y, click.x] = True
    # Void counts as boundary: the deepest FP pixel is not next to the void strip's inside edge.
    first = standard_click(gt, pred, ignore, _none(gt.shape))
    fp = ~gt & ~ignore
    expected = distance_transform_edt(np.pad(fp, 1))[1:-1, 1:-1]
    assert expected[first.y, first.x] == expected.max()


def test_standard_clicker_matches_a_direct_scipy_reference_on_random_masks() -> None:
    """The bounding-box shortcut gives the clicks of whole-image exact transforms, ties (equal depths) included."""

    def reference(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray, clicked: np.ndarray) -> Click | None:
        def dt(m: np.ndarray) -> np.ndarray:
            d = distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
            d[clicked] = 0
            return d

        d_fn, d_fp = dt(gt & ~pred & ~ignore), dt(~gt & pred & ~ignore)
        if max(d_fn.max(), d_fp.max()) == 0:
            return None
        d, positive = (d_fn, True) if d_fn.max() > d_fp.max() else (d_fp, False)
        y, x = np.unravel_index(np.argmax(d), d.shape)
        return Click(int(y), int(x), positive)

    rng = np.random.default_rng(7)
    for i in range(60):
        h, w = (int(v) for v in rng.integers(8, 60, size=2))
        if i % 2:  # speckle
            gt = rng.random((h, w)) < rng.uniform(0.1, 0.9)
            pred = rng.random((h, w)) < rng.uniform(0.1, 0.9)
        else:  # smooth shapes: many equally deep pixels at irrational distances
            gt, pred = np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)
            for m in (gt, pred):
                centre, axes = (int(rng.integers(0, w)), int(rng.integers(0, h))), (w // 3 + 1, h // 3 + 1)
                cv2.ellipse(m, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            gt, pred = gt.astype(bool), pred.astype(bool)
        ignore = rng.random((h, w)) < 0.1
        clicked = rng.random((h, w)) < 0.05
        assert standard_click(gt, pred, ignore, clicked) == reference(gt, pred, ignore, clicked)


def test_depth_is_the_exact_squared_distance_with_the_border_as_boundary() -> None:
    """Exact integers, so equally deep pixels tie exactly (ties decide the click): compared with scipy's exact
    transform on smooth shapes with many equally deep pixels at irrational distances."""
    rng = np.random.default_rng(1)
    for i in range(12):
        m = np.zeros((90, 120), np.uint8)
        cv2.ellipse(m, (60, 45 if i % 2 else 0), (int(rng.integers(15, 70)), int(rng.integers(15, 50))),
                    float(rng.uniform(0, 180)), 0, 360, 1, -1)
        mask = m.astype(bool)
        _, (iy, ix) = distance_transform_edt(np.pad(mask, 1), return_indices=True)
        yy, xx = np.indices(iy.shape)
        expected = ((yy - iy) ** 2 + (xx - ix) ** 2)[1:-1, 1:-1]
        np.testing.assert_array_equal(depth(mask), expected)
        for _ in range(3):  # the same answer on every call, whatever the memory layout of the input
            np.testing.assert_array_equal(depth(np.asfortranarray(mask)), expected)


def test_seed_clicker_picks_the_larger_8_connected_component() -> None:
    shape = (20, 24)
    # FN: two 3x3 squares touching at a corner = one 8-connected component of 18 pixels (two of 9 if 4-connected).
    gt = _mask(shape, (1, 1, 3, 3), (4, 4, 6, 6))
    # FP: one 4x4 square, 16 pixels, and a larger-depth region does not matter: only areas decide.
    pred = _mask(shape, (10, 10, 13, 13))
    empty = _none(shape)
    click = seed_click(gt, pred, empty, empty)
    assert click == Click(2, 2, True)  # the deepest point of the component, first in row-major order
    # Equal areas -> negative, at the deepest point of the FP component.
    pred18 = _mask(shape, (10, 10, 12, 15))  # 3 x 6 = 18
    assert seed_click(gt, pred18, empty, empty) == Click(11, 11, False)
    # A pixel already clicked is skipped: the next deepest unclicked pixel of the component.
    clicked = empty.copy()
    clicked[2, 2] = True
    assert seed_click(gt, pred, empty, clicked) == Click(5, 5, True)


def test_seed_clicker_breaks_equal_areas_by_the_first_pixel_in_row_major_order() -> None:
    gt = _mask((12, 24), (5, 2, 7, 4), (1, 15, 3, 17))  # equal squares; the right one starts on an earlier row
    assert seed_click(gt, _none(gt.shape), _none(gt.shape), _none(gt.shape)) == Click(2, 16, True)


def test_seed_clicker_passes_over_fully_clicked_components() -> None:
    gt = _mask((10, 10), (1, 1, 2, 2), (6, 6, 6, 6))  # a 4-pixel and a 1-pixel FN component
    clicked = _mask(gt.shape, (1, 1, 2, 2))
    assert seed_click(gt, _none(gt.shape), _none(gt.shape), clicked) == Click(6, 6, True)
    clicked[6, 6] = True
    assert seed_click(gt, _none(gt.shape), _none(gt.shape), clicked) is None


def test_unknown_clicker_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="standard"):
        get_clicker("nope")
