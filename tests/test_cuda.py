"""The CUDA code paths (issue 11): mixed precision and channels_last training steps, torch.compile, batched NoC on the
device (with the batched device clicker), the device's distance channels, and a GPU-written checkpoint used on the CPU.

Marked `cuda` and skipped without a CUDA device; `pytest -m cuda` runs only these (`bench/gpu.sh` does, first).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bench.bench_train import synthetic_batch
from ifcn.trainer.core.checkpoint import load_model
from ifcn.trainer.core.clickmaps import SLOT_CHUNK, distance_maps
from ifcn.trainer.evaluation.noc import NocSettings, evaluate_objects
from ifcn.trainer.inference import Predictor
from ifcn.trainer.loop import training_step
from ifcn.trainer.models import ModelConfig, build_model
from tests.eval_data import make_val_shards, random_scene, scene_objects

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


def _model() -> torch.nn.Module:
    # "mean" init of the click channels: the output depends on the clicks even untrained.
    return build_model(ModelConfig(backbone="resnet18", stride=8, in_channels=5, num_classes=1, weights="none",
                                   first_layer_init="mean"))


def _losses(model: torch.nn.Module, batch: dict[str, torch.Tensor], precision: str, channels_last: bool,
            steps: int = 3) -> list[float]:
    net = copy.deepcopy(model).to(CUDA)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")  # as the trainer sets it up
    return [float(training_step(net, optimizer, scaler, batch, task="interactive", device=CUDA, precision=precision,
                                channels_last=channels_last)) for _ in range(steps)]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_channels_last_steps_give_finite_losses_close_to_fp32(precision: str) -> None:
    torch.manual_seed(0)
    model, batch = _model(), synthetic_batch(4, 96)
    reference = _losses(model, batch, "fp32", channels_last=False)
    losses = _losses(model, batch, precision, channels_last=True)
    assert all(math.isfinite(v) for v in reference + losses)
    assert losses == pytest.approx(reference, rel=0.05)


def test_compiled_model_gives_the_eager_outputs() -> None:
    torch.manual_seed(0)
    model = _model().to(CUDA).eval()
    x = torch.randn(2, 5, 96, 128, device=CUDA)
    with torch.inference_mode():
        eager = model(x)
        compiled = torch.compile(model)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=2e-3)


def test_batched_noc_on_the_device_equals_one_object_at_a_time() -> None:
    rng = np.random.default_rng(11)
    maps, images = zip(*(random_scene(rng, s, 2) for s in [(48, 64), (64, 48), (48, 64)]), strict=True)
    objects, _ = scene_objects(maps, images)
    torch.manual_seed(0)
    predictor = Predictor(_model(), "interactive", CUDA, batch_invariant=True)
    settings = NocSettings(max_clicks=4)
    one = sorted(evaluate_objects(objects, predictor, settings, batch_size=1), key=lambda g: g.index)
    many = sorted(evaluate_objects(objects, predictor, settings, batch_size=len(objects)), key=lambda g: g.index)
    assert len(one) >= 5 and one == many
    assert len({g.ious for g in one}) > 1  # the predictions do vary
    # The standard clicker ran batched on the device; the per-object CPU clicker gives the same logs.
    cpu_clicks = evaluate_objects(objects, predictor, settings, batch_size=len(objects), device_clicker=False)
    assert sorted(cpu_clicks, key=lambda g: g.index) == one


def test_distance_channels_on_the_device_equal_the_cpu_ones_and_do_not_grow_with_padding() -> None:
    g = torch.Generator().manual_seed(0)
    clicks = torch.randint(-3, 140, (6, 24, 2), generator=g)  # some slots outside the map: padding garbage
    valid = torch.rand(6, 24, generator=g) < 0.6
    valid[0] = False  # a sample without clicks
    cpu = distance_maps(clicks, valid, 97, 131)
    for formulation in (None, "dense"):
        on_device = distance_maps(clicks.to(CUDA), valid.to(CUDA), 97, 131, formulation=formulation)
        torch.testing.assert_close(on_device.cpu(), cpu, rtol=0, atol=1e-6)

    def peak(slots: int) -> int:
        c = torch.randint(0, 384, (64, slots, 2), device=CUDA)
        v = torch.zeros(64, slots, dtype=torch.bool, device=CUDA)
        v[:, :8] = True
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        distance_maps(c, v, 384, 384)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base

    one_map = 64 * 384 * 384 * 4
    assert peak(8 * SLOT_CHUNK) < peak(SLOT_CHUNK) + one_map // 2  # only the small (B, K, H) offsets grow
    assert peak(SLOT_CHUNK) <= (SLOT_CHUNK + 3) * one_map


def _tensors(value: object) -> list[torch.Tensor]:
    """Every tensor in a nested checkpoint state."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    return []


def test_a_checkpoint_trained_on_the_gpu_evaluates_on_the_cpu(tmp_path: Path) -> None:
    from ifcn.trainer.evaluation.eval_cli import main as evaluate
    from ifcn.trainer.train_cli import main as train

    shards = make_val_shards(tmp_path / "shards")
    result = CliRunner().invoke(train, ["--shards", str(shards), "--task", "interactive", "--arch", "resnet18",
                                        "--weights", "none", "--epochs", "1", "--batch-size", "2", "--crop", "32",
                                        "--workers", "0", "--device", "cuda", "--precision", "bf16",
                                        "--channels-last", "--no-progress", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    checkpoint = tmp_path / "run" / "last.pt"
    on_gpu = load_model(checkpoint, CUDA).model
    on_cpu, _, _, state = load_model(checkpoint, CPU)
    assert "optimizer" in state and all(t.device == CPU for t in _tensors(state))  # optimizer, RNG states too
    x = torch.randn(1, 5, 40, 56)
    with torch.inference_mode():
        torch.testing.assert_close(on_cpu(x), on_gpu(x.to(CUDA)).cpu(), rtol=1e-3, atol=1e-3)
    result = CliRunner().invoke(evaluate, ["noc", "--checkpoint", str(checkpoint), "--shards", str(shards),
                                           "--device", "cpu", "--max-clicks", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
