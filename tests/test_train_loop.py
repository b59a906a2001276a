"""Losses, metrics, schedules, validation and a short training run of the trainer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ifcn.shards.manifest import resolve_shards
from ifcn.trainer.core.checkpoint import load_checkpoint, load_model
from ifcn.trainer.core.metrics import ConfusionMatrix, foreground_iou
from ifcn.trainer.evaluation.validation import eval_items, validate_interactive, validate_semantic
from ifcn.trainer.losses import interactive_loss, semantic_loss
from ifcn.trainer.models import ModelConfig, build_model
from ifcn.trainer.run_files import read_metrics
from ifcn.trainer.schedule import Schedule
from ifcn.trainer.train import TrainConfig, train

TINY = {"arch": "resnet18", "weights": "none", "crop": 64, "batch_size": 4, "workers": 0, "device": "cpu",
        "progress": False, "log_every": 5}


def test_confusion_matrix_matches_numpy() -> None:
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, (3, 17, 19))
    target[rng.random(target.shape) < 0.2] = 255
    pred = rng.integers(0, 5, target.shape)
    cm = ConfusionMatrix(5, "cpu")
    cm.update(torch.from_numpy(pred[:2]), torch.from_numpy(target[:2]))
    cm.update(torch.from_numpy(pred[2:]), torch.from_numpy(target[2:]))
    keep = target != 255
    expected = np.zeros((5, 5), np.int64)
    np.add.at(expected, (target[keep], pred[keep]), 1)
    np.testing.assert_array_equal(cm.matrix.numpy(), expected)
    scores = cm.scores()
    inter = np.diag(expected)
    iou = inter / (expected.sum(0) + expected.sum(1) - inter)
    np.testing.assert_allclose(scores.per_class_iou, iou)
    assert scores.miou == pytest.approx(iou.mean())
    assert scores.pixel_accuracy == pytest.approx(inter.sum() / keep.sum())


def test_confusion_scores_skip_absent_classes() -> None:
    cm = ConfusionMatrix(4, "cpu")
    cm.update(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 0]))
    scores = cm.scores()
    assert math.isnan(scores.per_class_iou[2]) and math.isnan(scores.per_class_iou[3])
    assert scores.per_class_iou[:2] == pytest.approx((2 / 3, 1 / 2))
    assert scores.miou == pytest.approx((2 / 3 + 1 / 2) / 2) and scores.pixel_accuracy == pytest.approx(0.75)
    with pytest.raises(ValueError, match="outside"):
        cm.update(torch.tensor([4]), torch.tensor([0]))


def test_foreground_iou_ignores_void_and_counts_empty_as_perfect() -> None:
    pred = torch.zeros(3, 4, 4, dtype=torch.bool)
    target = torch.zeros_like(pred)
    ignore = torch.zeros_like(pred)
    pred[0, :2] = True  # 8 px predicted
    target[0, 1:3] = True  # 8 px target, 4 in common -> 4 / 12
    ignore[1, 0] = True
    pred[1, 0] = True  # a false positive on void only: still perfect
    pred[2, 0, 0] = True  # one false positive, empty target: 0
    iou = foreground_iou(pred, target, ignore)
    assert iou.tolist() == pytest.approx([4 / 12, 1.0, 0.0])


def test_losses_ignore_void_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8)
    target = torch.randint(0, 2, (2, 8, 8), dtype=torch.uint8)
    target[:, :3] = 255
    keep = target != 255
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0][keep], target[keep].float())
    assert interactive_loss(logits, target) == pytest.approx(float(expected))
    changed = logits.clone()
    changed[:, :, :3] = 50.0  # anything on ignored pixels
    assert interactive_loss(changed, target) == pytest.approx(float(expected))
    scores = torch.randn(2, 21, 8, 8)
    classes = torch.randint(0, 21, (2, 8, 8), dtype=torch.uint8)
    classes[:, 5:] = 255
    ce = torch.nn.functional.cross_entropy(scores, classes.long(), ignore_index=255)
    assert semantic_loss(scores, classes) == pytest.approx(float(ce))
    assert semantic_loss(scores, torch.full_like(classes, 255)) == 0.0  # no NaN on an all-void batch


def test_schedules() -> None:
    warm = Schedule("none", 100, warmup_steps=10)
    assert [warm(s) for s in (0, 4, 9, 10, 99)] == pytest.approx([0.1, 0.5, 1.0, 1.0, 1.0])
    poly = Schedule("poly", 100)
    assert poly(0) == 1.0 and poly(50) == pytest.approx(0.5**0.9) and poly(100) == 0.0
    cosine = Schedule("cosine", 110, warmup_steps=10)
    assert cosine(10) == 1.0 and cosine(60) == pytest.approx(0.5) and cosine(110) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="warmup"):
        Schedule("poly", 10, warmup_steps=10)


class _Constant(torch.nn.Module):
    """Predicts the same logits for every pixel: class 0 (semantic) or foreground (interactive)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.channels, *x.shape[2:])
        out[:, 0] = 1.0
        return out


def test_validation_is_computed_at_full_resolution_with_void_ignored(val_shards: Path) -> None:
    shards = resolve_shards(val_shards)
    items = list(eval_items(shards, "interactive"))
    # Predicting "all foreground", an object's IoU is its area over the non-void pixels of its image.
    per_object = {(i.key, i.object_id): np.mean(i.target() == 1) / np.mean(i.target() != 255) for i in items}
    result = validate_interactive(_Constant(1), shards, "cpu", batch_size=3)
    assert result["objects"] == len(per_object) == result["pairs"]
    assert result["iou"] == pytest.approx(np.mean(list(per_object.values())))
    matrix = validate_semantic(_Constant(21), shards, "cpu").matrix
    classes = np.concatenate([i.target().ravel() for i in eval_items(shards, "semantic")])
    expected = np.bincount(classes[classes != 255], minlength=21)
    np.testing.assert_array_equal(matrix[:, 0].numpy(), expected)
    assert int(matrix[:, 1:].sum()) == 0


def test_batching_does_not_change_validation(val_shards: Path) -> None:
    model = build_model(ModelConfig("resnet18", 8, in_channels=5, num_classes=1), seed=1)
    shards = resolve_shards(val_shards)
    one = validate_interactive(model, shards, "cpu", batch_size=1, limit=4)
    many = validate_interactive(model, shards, "cpu", batch_size=8, limit=4)
    assert one["iou"] == pytest.approx(many["iou"], abs=1e-6) and one["objects"] == many["objects"] > 0


def test_short_interactive_run_learns_and_writes_its_files(train_shards: Path, val_shards: Path,
                                                            tmp_path: Path) -> None:
    config = TrainConfig(shards=str(train_shards), val_shards=str(val_shards), out=str(tmp_path / "run"), epochs=3,
                         seed=0, **TINY)
    result = train(config)
    epochs = [r for r in read_metrics(result.run_dir) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] - 0.05
    assert all(r["rank_steps"] == [result.steps_per_epoch] for r in epochs) and "val_iou" in epochs[-1]
    assert result.steps == 3 * result.steps_per_epoch
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["task"] == "interactive" and saved["steps_per_epoch"] == result.steps_per_epoch
    assert (result.run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    state = load_checkpoint(result.last_checkpoint)
    assert state["epoch"] == 3 and state["step"] == result.steps and state["manifest_id"]
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in state["model"])
    model_config = load_model(result.best_checkpoint).config
    assert model_config.in_channels == 5
    assert max(r["val_iou"] for r in epochs) == pytest.approx(result.best_metric)


def test_short_semantic_run(train_shards: Path, val_shards: Path, tmp_path: Path) -> None:
    config = TrainConfig(shards=str(train_shards), val_shards=str(val_shards), out=str(tmp_path / "run"),
                         task="semantic", epochs=1, schedule="poly", warmup_steps=1, clip_grad=1.0, **TINY)
    result = train(config)
    assert result.metric == "val_miou" and 0.0 <= result.best_metric <= 1.0
    state = load_checkpoint(result.last_checkpoint)
    assert state["model_config"]["num_classes"] == 21 and state["model_config"]["in_channels"] == 3
    assert state["scheduler"]["last_epoch"] == result.steps


def test_zero_epochs_validates_and_saves_the_initial_model(train_shards: Path, val_shards: Path,
                                                           tmp_path: Path) -> None:
    config = TrainConfig(shards=str(train_shards), val_shards=str(val_shards), out=str(tmp_path / "run"), epochs=0,
                         seed=3, **TINY)
    result = train(config)
    assert result.steps == 0
    (record,) = [r for r in read_metrics(result.run_dir) if r["kind"] == "epoch"]
    model, model_config, _, state = load_model(result.best_checkpoint)
    assert state["epoch"] == 0 and record["epoch"] == 0
    initial = build_model(model_config, seed=3)
    for name, tensor in initial.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, rtol=0, atol=0)
    expected = validate_interactive(initial.eval(), resolve_shards(val_shards), "cpu", batch_size=8)
    assert record["val_iou"] == pytest.approx(expected["iou"], abs=1e-6)
