"""The NoC engine (spec §6) with rule-based predictors, batched against one at a time, GrabCut, and a real model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import cv2
import numpy as np
import pytest
import torch

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.evaluation.noc import NocSettings, ObjectLog, evaluate_objects, run_batch, summarize
from ifcn.trainer.evaluation.objects import EvalObject
from ifcn.trainer.inference.grabcut import grabcut_refine, seed_mask
from tests.eval_data import random_scene, scene_objects

CPU = torch.device("cpu")


class ColourPredictor:
    """Perfect on flat-colour images: foreground = every pixel of the colour under the first positive click."""

    device = CPU

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        out = torch.zeros(images.shape[0], *images.shape[2:])
        for b, row in enumerate(clicks):
            first = next(c for c in row if c.positive)
            colour = images[b, :, first.y, first.x].view(3, 1, 1)
            out[b] = (images[b] == colour).all(0).float()
        return out


class EmptyPredictor:
    device = CPU

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        return torch.zeros(images.shape[0], *images.shape[2:])


class BoxPredictor:
    """Squares of half-size r around positive clicks, minus squares around negative clicks (applied after)."""

    device = CPU

    def __init__(self, r: int) -> None:
        self.r = r

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        out = torch.zeros(images.shape[0], *images.shape[2:])
        r = self.r
        for b, row in enumerate(clicks):
            for value in (1.0, 0.0):
                for c in row:
                    if c.positive == bool(value):
                        out[b, max(0, c.y - r):c.y + r + 1, max(0, c.x - r):c.x + r + 1] = value
        return out


def _flat_scene(shape: tuple[int, int], boxes: Sequence[tuple[int, int, int, int]],
                void: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """An object map with rectangles 1..N, each in a void band `void` px wide, and an image where each object and
    its band share one flat colour (so a colour-based prediction covers the void band too)."""
    object_map = np.zeros(shape, np.uint8)
    image = np.zeros((*shape, 3), np.uint8)
    for i, (y0, x0, y1, x1) in enumerate(boxes, start=1):
        band = np.s_[max(0, y0 - void):y1 + 1 + void, max(0, x0 - void):x1 + 1 + void]
        object_map[band] = 255
        image[band] = (40 * i, 255 - 30 * i, 100)
        object_map[y0:y1 + 1, x0:x1 + 1] = i
    return object_map, image


def test_perfect_predictor_needs_one_click_and_void_is_left_out_of_iou() -> None:
    scenes = [_flat_scene((30, 40), [(3, 3, 12, 15), (18, 20, 27, 36)]), _flat_scene((25, 25), [(0, 0, 10, 24)])]
    maps, images = zip(*scenes, strict=True)
    objects, _ = scene_objects(maps, images)
    settings = NocSettings(max_clicks=5)
    logs = list(evaluate_objects(objects, ColourPredictor(), settings, batch_size=4))
    assert len(logs) == 3
    for log in logs:
        assert log.ious == (1.0,) * 5
        assert log.clicks[0] is not None and log.clicks[0].positive and all(c is None for c in log.clicks[1:])
    summary = summarize(logs, settings)
    assert summary.noc == {0.85: 1.0, 0.90: 1.0} and summary.nof == {0.85: 0, 0.90: 0}


def test_empty_predictor_fails_every_object() -> None:
    object_map, _ = _flat_scene((30, 40), [(3, 3, 12, 15), (18, 20, 27, 36)])
    objects, _ = scene_objects([object_map])
    settings = NocSettings(max_clicks=7, iou_thresholds=(0.5, 0.85))
    logs = list(evaluate_objects(objects, EmptyPredictor(), settings, batch_size=2))
    summary = summarize(logs, settings)
    assert summary.noc == {0.5: 7.0, 0.85: 7.0}
    assert summary.nof == {0.5: 2, 0.85: 2}
    assert summary.miou_curve == (0.0,) * 7
    for log in logs:  # every click positive, all different
        assert all(c.positive for c in log.clicks) and len({(c.y, c.x) for c in log.clicks}) == 7


def test_box_predictor_gives_the_hand_computed_noc() -> None:
    # An 11 x 33 rectangle; each positive click paints an 11 x 11 square. Hand computation:
    # click 1 at the first deepest point (15, 15) paints columns 10..20 (IoU 1/3); the remaining FN is bounded by the
    # prediction, so click 2 lands at (15, 26) (IoU 2/3) and click 3 at (15, 37) (IoU 1); then nothing is left.
    object_map = np.zeros((31, 53), np.uint8)
    object_map[10:21, 10:43] = 1
    objects, _ = scene_objects([object_map])
    settings = NocSettings(max_clicks=5, iou_thresholds=(0.6, 0.85, 0.9))
    (log,) = run_batch(objects, BoxPredictor(5), settings)
    assert log.clicks == (Click(15, 15, True), Click(15, 26, True), Click(15, 37, True), None, None)
    assert log.ious == pytest.approx((1 / 3, 2 / 3, 1.0, 1.0, 1.0))
    summary = summarize([log], settings)
    assert summary.noc == {0.6: 2.0, 0.85: 3.0, 0.9: 3.0}
    assert summary.nof == {0.6: 0, 0.85: 0, 0.9: 0}


def test_strict_criterion_of_the_seed_clicker() -> None:
    object_map = np.zeros((31, 53), np.uint8)
    object_map[10:21, 10:43] = 1
    objects, _ = scene_objects([object_map])
    standard = summarize(run_batch(objects, BoxPredictor(5), NocSettings(max_clicks=4, iou_thresholds=(1.0,))),
                         NocSettings(max_clicks=4, iou_thresholds=(1.0,)))
    seed_settings = NocSettings(max_clicks=4, iou_thresholds=(1.0,), clicker="seed")
    seed = summarize(run_batch(objects, BoxPredictor(5), seed_settings), seed_settings)
    assert standard.noc == {1.0: 3.0} and standard.nof == {1.0: 0}
    assert seed.noc == {1.0: 4.0} and seed.nof == {1.0: 1}  # IoU > 1 is never reached


def _scenes(seed: int = 3) -> tuple[list[EvalObject], Counter]:
    rng = np.random.default_rng(seed)
    shapes = [(40, 56), (48, 40), (40, 56), (48, 40), (40, 56)]
    maps, images = zip(*(random_scene(rng, s, 3) for s in shapes), strict=True)
    return scene_objects(maps, images)


@pytest.mark.parametrize("clicker", ["standard", "seed"])
def test_batched_and_one_at_a_time_logs_are_identical_rule_based(clicker: str) -> None:
    objects, _ = _scenes()
    settings = NocSettings(max_clicks=8, clicker=clicker)
    runs = [sorted(evaluate_objects(objects, BoxPredictor(4), settings, batch_size=b, workers=w),
                   key=lambda g: g.index) for b, w in ((1, 1), (2, 1), (5, 3), (64, 1))]
    assert len(runs[0]) == len(objects) >= 10
    assert any(c is not None and not c.positive for log in runs[0] for c in log.clicks)  # negatives exercised
    for other in runs[1:]:
        assert other == runs[0]


class MaskPredictor:
    """Predicts one fixed mask, whatever the clicks."""

    device = CPU

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = torch.from_numpy(mask).float()

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        return self.mask.expand(images.shape[0], *self.mask.shape)


def test_an_iou_of_exactly_0_90_reaches_noc_90_at_that_click() -> None:
    # A 10-pixel object predicted with 9 of its pixels: IoU 9/10, which float32 would make 0.8999999762.
    object_map = np.zeros((12, 16), np.uint8)
    object_map[5, 3:13] = 1
    prediction = object_map == 1
    prediction[5, 12] = False
    objects, _ = scene_objects([object_map])
    settings = NocSettings(max_clicks=3, iou_thresholds=(0.9,))
    (log,) = run_batch(objects, MaskPredictor(prediction), settings)
    assert log.ious[0] == 0.9
    summary = summarize([log], settings)
    assert summary.noc == {0.9: 1.0} and summary.nof == {0.9: 0} and summary.never_reached == {0.9: 0}


def _log(index: int, ious: Sequence[float]) -> ObjectLog:
    return ObjectLog(index, f"k{index}", 1, 1, 10, (Click(0, 0, True),) * len(ious), tuple(ious))


def test_nof_counts_objects_at_the_most_clicks_as_ritm_and_never_reached_is_reported_beside() -> None:
    settings = NocSettings(max_clicks=3, iou_thresholds=(0.85, 0.9))
    logs = [_log(0, (0.95, 0.95, 0.95)),  # reaches both at click 1
            _log(1, (0.5, 0.7, 0.88)),  # 0.85 only at the last click: NoC@85 = 3, a failure for RITM's NoF
            _log(2, (0.2, 0.3, 0.4)),  # never reaches either
            _log(3, (0.86, 0.5, 0.91))]  # reaches 0.85 at click 1 and 0.90 at the last click
    summary = summarize(logs, settings)
    assert summary.noc == {0.85: (1 + 3 + 3 + 1) / 4, 0.9: (1 + 3 + 3 + 3) / 4}
    assert summary.nof == {0.85: 2, 0.9: 3}
    assert summary.never_reached == {0.85: 1, 0.9: 2}


def test_the_batched_device_clicker_gives_the_logs_of_the_per_object_clicker() -> None:
    objects, _ = _scenes(seed=4)
    settings = NocSettings(max_clicks=8)
    cpu = sorted(evaluate_objects(objects, BoxPredictor(4), settings, batch_size=5, device_clicker=False),
                 key=lambda g: g.index)
    for batch_size in (1, 5):
        device = sorted(evaluate_objects(objects, BoxPredictor(4), settings, batch_size, device_clicker=True),
                        key=lambda g: g.index)
        assert device == cpu
    assert any(c is not None and not c.positive for log in cpu for c in log.clicks)
    with pytest.raises(ValueError, match="standard"):
        run_batch(objects[:1], BoxPredictor(4), NocSettings(clicker="seed"), device_clicker=True)


def test_min_area_skips_and_counts() -> None:
    object_map, _ = _flat_scene((30, 40), [(3, 3, 4, 4), (18, 20, 27, 36)])
    objects, skipped = scene_objects([object_map], min_area=10)
    assert [o.object_id for o in objects] == [2] and skipped == {"below_min_area": 1}


def test_settings_reject_bad_values() -> None:
    with pytest.raises(ValueError, match="--max-clicks"):
        NocSettings(max_clicks=0)
    with pytest.raises(ValueError, match=r"1\.\.1000"):
        NocSettings(max_clicks=100000)
    with pytest.raises(ValueError, match="--iou"):
        NocSettings(iou_thresholds=(0.0,))
    with pytest.raises(ValueError, match="--iou"):
        NocSettings(iou_thresholds=(1.2,))
    with pytest.raises(ValueError, match="refinement"):
        NocSettings(refine="graphcut")


def test_grabcut_improves_a_rough_prediction_of_a_colour_separable_object() -> None:
    rng = np.random.default_rng(0)
    h, w = 60, 80
    gt = np.zeros((h, w), np.uint8)
    cv2.circle(gt, (40, 30), 18, 1, -1)
    gt = gt.astype(bool)
    image = np.where(gt[..., None], (200, 40, 40), (30, 60, 200)).astype(np.int16)
    image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    rough = np.zeros_like(gt)
    rough[18:42, 28:52] = True  # a square inside the disk: under-segmented
    clicks = [Click(30, 40, True)]

    def iou(m: np.ndarray) -> float:
        return (m & gt).sum() / (m | gt).sum()

    refined = grabcut_refine(image, rough, clicks)
    assert iou(rough) < 0.75 and iou(refined) > 0.95
    # Degenerate seeds (one label only) come back as the seed mask, without an OpenCV error.
    assert grabcut_refine(image, np.ones_like(gt), clicks).all()
    # Seed labels: radius-5 disks, sure background wins where a negative disk overlaps a positive one.
    seed = seed_mask(rough, [Click(30, 40, True), Click(30, 47, False)])
    assert seed[30, 35] == cv2.GC_FGD and seed[30, 42] == cv2.GC_BGD and seed[30, 52] == cv2.GC_BGD
    assert seed[20, 30] == cv2.GC_PR_FGD and seed[5, 5] == cv2.GC_PR_BGD
    assert seed[25, 40] == cv2.GC_FGD and seed[30, 34] == cv2.GC_PR_FGD  # radius 5: distance 5 in, 6 out


def test_grabcut_refinement_in_the_engine_is_deterministic_across_batch_sizes() -> None:
    objects, _ = _scenes(seed=5)
    settings = NocSettings(max_clicks=3, refine="grabcut")
    one = sorted(evaluate_objects(objects[:6], BoxPredictor(4), settings, batch_size=1), key=lambda g: g.index)
    many = sorted(evaluate_objects(objects[:6], BoxPredictor(4), settings, batch_size=6, workers=3),
                  key=lambda g: g.index)
    assert one == many
    plain = sorted(evaluate_objects(objects[:6], BoxPredictor(4), NocSettings(max_clicks=3), batch_size=6),
                   key=lambda g: g.index)
    assert [g.ious for g in plain] != [g.ious for g in one]  # refinement changed something


def _tiny_model() -> torch.nn.Module:
    from ifcn.trainer.models import ModelConfig, build_model

    # "mean" init of the click channels: an untrained network whose output still depends on the clicks.
    config = ModelConfig(backbone="resnet18", stride=8, in_channels=5, num_classes=1, weights="none",
                         first_layer_init="mean")
    return build_model(config).eval()


def test_batched_and_one_at_a_time_logs_are_identical_with_a_real_network() -> None:
    from ifcn.trainer.inference import Predictor

    rng = np.random.default_rng(11)
    maps, images = zip(*(random_scene(rng, s, 2) for s in [(32, 40), (40, 32), (32, 40)]), strict=True)
    objects, _ = scene_objects(maps, images)
    model = _tiny_model()
    settings = NocSettings(max_clicks=3)
    invariant = Predictor(model, "interactive", CPU, batch_invariant=True)
    one = sorted(evaluate_objects(objects, invariant, settings, batch_size=1), key=lambda g: g.index)
    many = sorted(evaluate_objects(objects, invariant, settings, batch_size=len(objects)), key=lambda g: g.index)
    assert len(one) >= 5 and one == many
    assert len({g.ious for g in one}) > 1  # the network's predictions do vary
    # Default kernels: per-sample probabilities agree with one-at-a-time ones up to last-bit differences.
    fast = Predictor(model, "interactive", CPU)
    batch = [o for o in objects if o.shape == objects[0].shape]
    images_t = torch.from_numpy(np.stack([o.image for o in batch])).permute(0, 3, 1, 2)
    clicks = [[Click(10, 10 + i, True), Click(2, 3, False)] for i in range(len(batch))]
    together = fast(images_t, clicks)
    alone = torch.cat([fast(images_t[i:i + 1], clicks[i:i + 1]) for i in range(len(batch))])
    assert torch.allclose(together, alone, atol=1e-5, rtol=0)
