"""The network-input contract (`InputSpec`): stored in checkpoints, click encodings (distance maps, RITM's disks),
read back by the Predictor and NoC; and the normalised focal loss of `--loss nfl`."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ifcn.trainer.core.checkpoint import checkpoint_model_config, load_model, save_checkpoint
from ifcn.trainer.core.clickmaps import distance_maps, interaction_channels
from ifcn.trainer.core.input_spec import InputSpec
from ifcn.trainer.core.inputs import batch_input
from ifcn.trainer.evaluation import checkpoint_eval
from ifcn.trainer.evaluation.noc import NocSettings
from ifcn.trainer.inference import Predictor
from ifcn.trainer.losses import interactive_loss, normalized_focal_loss
from ifcn.trainer.train import TrainConfig
from tests.demo_data import calibrated_model, sample_image
from tests.eval_data import make_val_shards

DISK = InputSpec(click_encoding="disk", disk_radius=5)
CPU = torch.device("cpu")


def test_disk_channels_are_one_within_the_radius_of_a_click_and_zero_elsewhere() -> None:
    clicks = torch.tensor([[[10, 12], [0, 0]]], dtype=torch.int32)
    valid = torch.tensor([[True, False]])
    maps = distance_maps(clicks, valid, 30, 40, spec=DISK)[0, 0].numpy()
    yy, xx = np.mgrid[:30, :40]
    np.testing.assert_array_equal(maps, ((yy - 10) ** 2 + (xx - 12) ** 2 <= 25).astype(np.float32))
    none = distance_maps(clicks, torch.zeros(1, 2, dtype=torch.bool), 30, 40, spec=DISK)
    assert float(none.max()) == 0.0  # no click: no disk (distance maps give 1.0 instead)
    both = interaction_channels(clicks, valid, clicks, torch.zeros_like(valid), 30, 40, spec=DISK)
    assert both.shape == (1, 2, 30, 40) and float(both[0, 1].max()) == 0.0


def test_the_spec_round_trips_through_a_checkpoint_and_must_fit_the_model(tmp_path: Path) -> None:
    model = calibrated_model()
    path = tmp_path / "disk.pt"
    save_checkpoint(path, {"model_config": checkpoint_model_config(model.config, DISK), "task": "interactive",
                           "model": model.state_dict()})
    assert load_model(path).spec == DISK
    assert InputSpec.from_dict(DISK.to_dict()) == DISK and DISK.channels == 5
    assert InputSpec(prev_mask=True).channels == 6 and InputSpec(clicks=False).channels == 3
    with pytest.raises(ValueError, match="6 channels but the model takes 5"):
        checkpoint_model_config(model.config, InputSpec(prev_mask=True))
    with pytest.raises(ValueError, match="click_encoding"):
        InputSpec(click_encoding="gauss")


@pytest.fixture(scope="module")
def disk_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = calibrated_model()
    path = tmp_path_factory.mktemp("disk") / "disk.pt"
    save_checkpoint(path, {"model_config": checkpoint_model_config(model.config, DISK), "task": "interactive",
                           "model": model.state_dict(), "manifest_id": "fixed"})
    return path


def test_the_predictor_feeds_a_disk_model_disks(disk_checkpoint: Path) -> None:
    predictor = Predictor.from_checkpoint(disk_checkpoint, device="cpu")
    assert predictor.spec == DISK
    image, clicks = sample_image(0), [(36, 48, True), (5, 6, False)]
    batch = {"image": torch.from_numpy(image)[None], "pos": torch.tensor([[[36, 48]]]),
             "pos_valid": torch.ones(1, 1, dtype=torch.bool), "neg": torch.tensor([[[5, 6]]]),
             "neg_valid": torch.ones(1, 1, dtype=torch.bool)}
    with torch.no_grad():
        disks = torch.sigmoid(predictor.model(batch_input(batch, CPU, DISK)))[0, 0].numpy()
        distances = torch.sigmoid(predictor.model(batch_input(batch, CPU)))[0, 0].numpy()
    probability = predictor.predict(image, clicks)
    np.testing.assert_allclose(probability, disks, atol=1e-6, rtol=0)
    assert np.abs(probability - distances).max() > 1e-3


def test_noc_evaluates_a_disk_model_with_disks(disk_checkpoint: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    specs = []

    class Recording(Predictor):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            specs.append(self.spec)

    monkeypatch.setattr(checkpoint_eval, "Predictor", Recording)
    summary = checkpoint_eval.run_noc(disk_checkpoint, make_val_shards(tmp_path / "shards"), NocSettings(max_clicks=2),
                          device="cpu", limit=2)
    assert specs == [DISK] and summary["datasets"]


def test_training_settings_choose_the_encoding_and_the_loss() -> None:
    config = TrainConfig(shards="s", out="o", click_encoding="disk", disk_radius=3, loss="nfl")
    assert config.input_spec() == InputSpec(click_encoding="disk", disk_radius=3)
    assert TrainConfig(shards="s", out="o", task="semantic").input_spec().channels == 3
    with pytest.raises(ValueError, match="--click-encoding must be one of distance, disk"):
        TrainConfig(shards="s", out="o", click_encoding="gauss")
    with pytest.raises(ValueError, match="--task semantic has no clicks"):
        TrainConfig(shards="s", out="o", task="semantic", loss="nfl")


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_normalised_focal_loss_equals_the_hand_computation() -> None:
    logits = torch.tensor([[[[0.0, 2.0, -1.0, 5.0]]]])
    target = torch.tensor([[[1, 0, 0, 255]]], dtype=torch.uint8)  # the last pixel is void: left out
    terms = []
    for x, y in ((0.0, 1), (2.0, 0), (-1.0, 0)):
        p = _sigmoid(x)
        p_t = p if y else 1 - p
        terms.append(((1 - p_t) ** 2, -math.log(p_t)))
    weight_sum = sum(w for w, _ in terms)
    expected = sum(w * 3 / weight_sum * bce for w, bce in terms) / 3  # weights rescaled to sum to the 3 pixels
    assert float(normalized_focal_loss(logits, target)) == pytest.approx(expected, rel=1e-6)
    # Two images: each one's weights are rescaled on its own, then the sum is divided by all kept pixels.
    pair = normalized_focal_loss(torch.cat([logits, logits]), torch.cat([target, target]))
    assert float(pair) == pytest.approx(expected, rel=1e-6)


def test_normalised_focal_loss_decreases_under_training() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 16, 16, generator=generator)
    target = (x[:, 0] > 0).to(torch.uint8)
    net = torch.nn.Conv2d(3, 1, 3, padding=1)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    losses = []
    for _ in range(30):
        loss = normalized_focal_loss(net(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0] and all(b < a for a, b in zip(losses[::10], losses[10::10], strict=False))
    assert float(interactive_loss(net(x).detach(), target)) < math.log(2)  # the model it trained fits by BCE too
