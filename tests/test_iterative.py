"""Iterative click training (`--iterative`, issue 12) and the previous-mask channel (`--prev-mask`): the extra clicks
are the evaluator's, no gradient flows through the extra rounds, the draws are seeded, bad values are refused, and a
`--prev-mask` run trains, resumes and is evaluated end to end."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ifcn.labels import VOID
from ifcn.trainer.core.checkpoint import load_checkpoint
from ifcn.trainer.core.clicks import Click
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.core.inputs import PREV, batch_input, network_input
from ifcn.trainer.evaluation.checkpoint_eval import run_iou, run_noc
from ifcn.trainer.evaluation.clicker import standard_click
from ifcn.trainer.evaluation.noc import NocSettings, run_batch
from ifcn.trainer.evaluation.objects import EvalObject
from ifcn.trainer.iterative import IterativeSettings, click_rounds, default_prob
from ifcn.trainer.loop import training_step
from ifcn.trainer.models import ModelConfig, build_model
from ifcn.trainer.models.transfer import transfer_weights
from ifcn.trainer.train import TrainConfig, train
from ifcn.trainer.train_cli import main
from ifcn.trainer.train_resume import resume_mismatches

#: The input contract of a `--prev-mask` model.
PREV_SPEC = InputSpec(prev_mask=True)

CPU = torch.device("cpu")
TINY = {"arch": "resnet18", "weights": "none", "crop": 64, "batch_size": 4, "workers": 0, "device": "cpu",
        "progress": False, "log_every": 5}


def _batch(seed: int, b: int = 4, size: int = 48) -> dict[str, torch.Tensor]:
    """A collated interactive batch: a box object per sample, void and padding (255) around it, one positive click
    inside the object and, for half the samples, one negative click in the background."""
    rng = np.random.default_rng(seed)
    target = np.zeros((b, size, size), np.uint8)
    pos = np.zeros((b, 8, 2), np.int32)
    neg = np.zeros((b, 8, 2), np.int32)
    pos_valid = np.zeros((b, 8), bool)
    neg_valid = np.zeros((b, 8), bool)
    for i in range(b):
        y0, x0 = rng.integers(4, size // 2, 2)
        h, w = rng.integers(8, size // 2, 2)
        target[i, y0:y0 + h, x0:x0 + w] = 1
        target[i, y0 + h:y0 + h + 2, x0:x0 + w] = VOID  # a void band under the object
        target[i, :, size - 3:] = VOID  # crop padding
        pos[i, 0] = (y0 + h // 2, x0 + w // 2)
        pos_valid[i, 0] = True
        if i % 2:
            neg[i, 0] = (size - 4, 2)
            neg_valid[i, 0] = True
    return {"image": torch.from_numpy(rng.integers(0, 256, (b, size, size, 3), dtype=np.uint8)),
            "target": torch.from_numpy(target), "pos": torch.from_numpy(pos), "pos_valid": torch.from_numpy(pos_valid),
            "neg": torch.from_numpy(neg), "neg_valid": torch.from_numpy(neg_valid)}


class DiskModel(torch.nn.Module):
    """Foreground within 10 px of a positive click unless a negative click is nearer, so its predictions have errors
    of both signs; with the previous-mask channel, a previous probability above 0.9 stays foreground. Has a
    BatchNorm, to tell eval from train mode."""

    def __init__(self, prev_mask: bool):
        super().__init__()
        self.prev_mask = prev_mask
        self.norm = torch.nn.BatchNorm2d(1)
        self.calls: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.clone())
        pos, neg = x[:, 3:4] * 255, x[:, 4:5] * 255
        logits = torch.minimum(neg - pos, 10 - pos)
        if self.prev_mask:
            logits = torch.where(x[:, 5:6] > 0.9, 5.0, logits)
        return logits + 0 * self.norm(logits)


@torch.no_grad()
def _probs(x: torch.Tensor, prev_mask: bool) -> torch.Tensor:
    """What `DiskModel` predicted for the input `x`, as probabilities (B, H, W)."""
    return torch.sigmoid(DiskModel(prev_mask).eval()(x)[:, 0])


def _clicks(batch: dict[str, torch.Tensor], i: int) -> list[Click]:
    """Sample i's valid clicks, positive then negative, in slot order."""
    return [Click(int(y), int(x), sign == "pos") for sign in ("pos", "neg")
            for (y, x), valid in zip(batch[sign][i].tolist(), batch[f"{sign}_valid"][i].tolist(), strict=True)
            if valid]


@pytest.mark.parametrize("prev_mask", [False, True])
def test_extra_clicks_are_the_evaluator_clickers_on_the_same_predictions(prev_mask: bool) -> None:
    batch, rounds = _batch(seed=1), 4
    model = DiskModel(prev_mask)
    model.train()
    out = click_rounds(model, batch, rounds, device=CPU, spec=InputSpec(prev_mask=prev_mask))
    assert model.training and len(model.calls) == rounds
    # Replay with the evaluator's numpy clicker, one sample at a time, on the predictions the model made.
    gt, ignore = batch["target"].numpy() == 1, batch["target"].numpy() == VOID
    expected = [_clicks(batch, i) for i in range(len(gt))]
    seen_negative = False
    for r, x in enumerate(model.calls):
        if prev_mask:  # the previous round's probabilities, zeros at the first round
            previous = torch.zeros_like(x[:, 5]) if r == 0 else _probs(model.calls[r - 1], True)
            torch.testing.assert_close(x[:, 5], previous, rtol=0, atol=0)
        probs = _probs(x, prev_mask).numpy()
        for i in range(len(gt)):
            clicked = np.zeros(gt[i].shape, bool)
            for c in expected[i]:
                clicked[c.y, c.x] = True
            click = standard_click(gt[i], probs[i] > 0.49, ignore[i], clicked)
            if click is not None:
                expected[i].insert(sum(c.positive for c in expected[i]) if click.positive else len(expected[i]), click)
                seen_negative |= not click.positive
    assert seen_negative
    assert [_clicks(out, i) for i in range(len(gt))] == expected
    assert out["pos"].shape[1] == out["neg"].shape[1] == 8 + rounds
    if prev_mask:
        torch.testing.assert_close(out[PREV], _probs(model.calls[-1], True), rtol=0, atol=0)
    else:
        assert PREV not in out


def test_no_gradient_flows_through_the_extra_rounds() -> None:
    """A step with extra rounds has the gradients of a plain step on its final click set (and previous-mask channel),
    and its rounds ran in eval mode: BatchNorm's running statistics moved only in the trained forward."""
    config = ModelConfig("resnet18", 8, in_channels=6, first_layer_init="mean")  # prev channel weights non-zero
    batch = _batch(seed=2, size=64)
    iterative, plain = build_model(config, seed=0), build_model(config, seed=0)
    final = click_rounds(build_model(config, seed=0), batch, 3, device=CPU, spec=PREV_SPEC)  # a third copy's rounds
    assert (final["pos_valid"][:, 8:] | final["neg_valid"][:, 8:]).any()
    losses, grads, buffers = [], [], []
    for model, step_batch, rounds in ((iterative, batch, 3), (plain, final, 0)):
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        losses.append(training_step(model, optimizer, scaler, step_batch, task="interactive", device=CPU,
                                    spec=PREV_SPEC, extra_rounds=rounds))
        assert model.training
        grads.append({n: p.grad for n, p in model.named_parameters()})
        buffers.append(dict(model.named_buffers()))
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)
    for name, grad in grads[1].items():
        torch.testing.assert_close(grads[0][name], grad, rtol=0, atol=0, msg=name)
    for name, buffer in buffers[1].items():
        torch.testing.assert_close(buffers[0][name], buffer, rtol=0, atol=0, msg=name)


def test_rounds_are_drawn_from_the_seed_epoch_step_and_rank() -> None:
    settings = IterativeSettings(3, default_prob(3), seed=5)
    draws = [settings.rounds(1, step) for step in range(4000)]
    assert draws == [settings.rounds(1, step) for step in range(4000)]  # a resumed run draws the same
    counts = np.bincount(draws, minlength=4)
    assert len(counts) == 4 and (np.abs(counts - 1000) < 150).all()  # uniform in 0..N, as RITM draws
    assert draws != [IterativeSettings(3, 0.75, seed=5, rank=1).rounds(1, s) for s in range(4000)]
    assert draws != [settings.rounds(2, step) for step in range(4000)]
    assert {IterativeSettings(3, 1.0, seed=0).rounds(1, s) for s in range(200)} == {1, 2, 3}
    assert {IterativeSettings(3, 0.0, seed=0).rounds(1, s) for s in range(200)} == {0}


def test_prev_mask_input_channel() -> None:
    batch = _batch(seed=3)
    five = batch_input(batch, CPU)
    zeros = batch_input(batch, CPU, PREV_SPEC)
    prev = torch.rand(batch["target"].shape, generator=torch.Generator().manual_seed(0))
    six = batch_input({**batch, PREV: prev}, CPU, PREV_SPEC)
    assert five.shape[1] == 5 and zeros.shape[1] == six.shape[1] == 6
    torch.testing.assert_close(six[:, :5], five, rtol=0, atol=0)
    assert torch.equal(six[:, 5], prev) and not zeros[:, 5].any()
    with pytest.raises(ValueError, match="interactive"):
        network_input(batch["image"].permute(0, 3, 1, 2), prev=prev)


@pytest.mark.parametrize("init", ["zero", "mean"])
def test_init_from_an_interactive_model_adds_the_prev_mask_channel(init: str) -> None:
    five = build_model(ModelConfig("resnet18", 8, in_channels=5), seed=1)
    six = build_model(ModelConfig("resnet18", 8, in_channels=6, first_layer_init=init), seed=2)
    report = transfer_weights(six, five.state_dict(), init)
    assert report.adapted == ("backbone.body.conv1.weight",) and not report.reinitialised
    old, new = five.state_dict()["backbone.body.conv1.weight"], six.state_dict()["backbone.body.conv1.weight"]
    torch.testing.assert_close(new[:, :5], old, rtol=0, atol=0)
    expected = old[:, :3].mean(1) if init == "mean" else torch.zeros_like(old[:, 0])
    torch.testing.assert_close(new[:, 5], expected)


class RecordingPredictor:
    """A previous-mask predictor that records the `prev` it is given and predicts prev + 0.3 (capped at 1)."""

    prev_mask = True

    def __init__(self) -> None:
        self.device = CPU
        self.given: list[torch.Tensor] = []

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]],
                 prev: torch.Tensor | None = None) -> torch.Tensor:
        assert prev is not None and prev.shape == (images.shape[0], *images.shape[2:])
        self.given.append(prev.clone())
        return (prev + 0.3).clamp(max=1.0)


def test_noc_feeds_each_objects_previous_probabilities() -> None:
    gt = np.zeros((12, 12), bool)
    gt[3:9, 3:9] = True
    objects = [EvalObject(i, "k", i + 1, 1, int(gt.sum()), np.zeros((12, 12, 3), np.uint8), gt, np.zeros_like(gt))
               for i in range(2)]
    predictor = RecordingPredictor()
    run_batch(objects, predictor, NocSettings(max_clicks=3))
    assert [float(p.max()) for p in predictor.given] == pytest.approx([0.0, 0.3, 0.6])
    assert all(p.shape[0] == 2 for p in predictor.given)


@pytest.mark.parametrize(("settings", "message"), [
    ({"iterative": -1}, "--iterative must lie in 0..20"),
    ({"iterative": 21}, "--iterative must lie in 0..20"),
    ({"iterative": 3, "iterative_prob": 1.5}, "--iterative-prob must lie in"),
    ({"iterative_prob": 0.5}, "pass --iterative N too"),
    ({"task": "semantic", "iterative": 3}, "--task semantic has neither"),
    ({"task": "semantic", "prev_mask": True, "iterative": 1}, "--task semantic has neither"),
    ({"prev_mask": True}, "--prev-mask needs --iterative"),
])
def test_bad_iterative_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(shards="s", out="o", **settings)


def test_iterative_settings_are_not_resumable_changes() -> None:
    stored = TrainConfig(shards="s", out="o", iterative=3).to_dict()
    assert resume_mismatches(stored, TrainConfig(shards="s", out="o", iterative=3, iterative_prob=0.75)) == []
    assert resume_mismatches(stored, TrainConfig(shards="s", out="o", iterative=3, iterative_prob=0.5)) == [
        "--iterative-prob 0.5 (the run used 0.75)"]
    older = {k: v for k, v in TrainConfig(shards="s", out="o").to_dict().items()
             if k not in ("iterative", "iterative_prob", "prev_mask")}  # a run stored before the flags existed
    assert resume_mismatches(older, TrainConfig(shards="s", out="o")) == []
    assert resume_mismatches(older, TrainConfig(shards="s", out="o", iterative=1, prev_mask=True)) == [
        "--iterative 1 (the run used 0)", "--prev-mask True (the run used False)"]


def test_bad_iterative_flag_is_refused_by_the_cli(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--shards", "s", "--out", str(tmp_path / "run"), "--iterative", "3",
                                       "--iterative-prob", "-0.1"])
    assert result.exit_code == 2 and "--iterative-prob must lie in [0, 1]" in result.output
    assert not (tmp_path / "run").exists()


def test_prev_mask_run_trains_resumes_and_is_evaluated(train_shards: Path, val_shards: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = TrainConfig(shards=str(train_shards), val_shards=str(val_shards), out=str(out), epochs=1, seed=1,
                         iterative=2, iterative_prob=1.0, prev_mask=True, val_limit=2, **TINY)
    first = train(config)
    assert first.status == "done" and first.best_metric is not None
    resumed = train(TrainConfig(**{**config.to_dict(), "epochs": 2, "resume": True}))
    assert resumed.epochs == 2 and resumed.steps == 2 * first.steps_per_epoch
    state = load_checkpoint(resumed.last_checkpoint)
    assert state["model_config"]["in_channels"] == 6 and state["train_config"]["prev_mask"] is True
    assert state["model"]["backbone.body.conv1.weight"].shape[1] == 6
    result = CliRunner().invoke(main, ["--out", str(out), "--resume", "--epochs", "3", "--iterative", "1"])
    assert result.exit_code == 1 and "--iterative 1 (the run used 2)" in result.output
    summary = run_noc(resumed.best_checkpoint, val_shards, NocSettings(max_clicks=3), device="cpu", limit=3)
    figures = summary["datasets"][next(iter(summary["datasets"]))]
    assert figures["model_config"]["in_channels"] == 6 and len(figures["miou_curve"]) == 3
    assert run_iou(resumed.best_checkpoint, val_shards, device="cpu", limit=2)["objects"] > 0


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_rounds_on_the_gpu_add_the_cpus_clicks() -> None:
    """The extra rounds on CUDA (batched clicker on the device) add the clicks they add on the CPU; a bf16 +
    channels_last step with them gives a finite loss."""
    batch, cuda = _batch(seed=4), torch.device("cuda")
    on_cpu = click_rounds(DiskModel(True), batch, 3, device=CPU, spec=PREV_SPEC)
    on_gpu = click_rounds(DiskModel(True).to(cuda), batch, 3, device=cuda, spec=PREV_SPEC)
    assert [_clicks(on_gpu, i) for i in range(4)] == [_clicks(on_cpu, i) for i in range(4)]
    torch.testing.assert_close(on_gpu[PREV].cpu(), on_cpu[PREV])
    model = build_model(ModelConfig("resnet18", 8, in_channels=6, first_layer_init="mean")).to(cuda)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss = training_step(model, optimizer, torch.amp.GradScaler("cuda", enabled=False), _batch(seed=5, size=64),
                         task="interactive", device=cuda, precision="bf16", channels_last=True, spec=PREV_SPEC,
                         extra_rounds=3)
    assert np.isfinite(float(loss))
