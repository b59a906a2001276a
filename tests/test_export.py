"""`ifcn-eval export`: ONNX (run by onnxruntime on the CPU) and TorchScript against PyTorch for a ResNet, AlexNet and a
probed (non-seed) backbone, at sizes and batch sizes other than the traced ones; the with-clicks graph against
`Predictor.predict`; the input contract in the files' metadata; bad options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from ifcn.trainer.core.checkpoint import save_checkpoint
from ifcn.trainer.core.clicks import Click, click_tensors
from ifcn.trainer.core.input_spec import IMAGENET_MEAN
from ifcn.trainer.core.inputs import batch_input
from ifcn.trainer.evaluation.eval_cli import main
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.model_export import CLICK_INPUTS, PREV_INPUT, export_model, read_contract
from tests.demo_data import calibrated_model
from tests.eval_data import make_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")  # still works

BACKBONES = ("resnet18", "alexnet", "regnet_x_400mf")  # seed ResNet, seed AlexNet (conv fc6/fc7), probed taps
TOLERANCE = 1e-4
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Predictor, dict[str, Path]]]:
    """Each backbone's calibrated interactive model, exported as the network in both formats; resnet18 also with
    clicks, its ONNX file through the CLI."""
    root = tmp_path_factory.mktemp("export")
    out: dict[str, tuple[Predictor, dict[str, Path]]] = {}
    for backbone in BACKBONES:
        model = calibrated_model(backbone)
        predictor = Predictor(model, "interactive", CPU)
        files = {fmt: root / f"{backbone}.{fmt}" for fmt in ("onnx", "torchscript")}
        for fmt, path in files.items():
            export_model(predictor, fmt, path)
        out[backbone] = (predictor, files)
    predictor, files = out["resnet18"]
    checkpoint = root / "resnet18.pt"
    save_checkpoint(checkpoint, {"model_config": predictor.config.to_dict(), "task": "interactive",
                                 "model": predictor.model.state_dict()})
    files["clicks-onnx"] = root / "resnet18-clicks.onnx"
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(checkpoint), "--format", "onnx", "--out",
                                       str(files["clicks-onnx"]), "--with-clicks"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "pos_valid" in result.output
    files["clicks-torchscript"] = root / "resnet18-clicks.torchscript"
    export_model(predictor, "torchscript", files["clicks-torchscript"], with_clicks=True)
    return out


def _random_case(seed: int, batch: int, height: int, width: int) -> tuple[torch.Tensor, list[list[Click]]]:
    """uint8 (B, 3, H, W) images and 0-4 random clicks of each sign per image."""
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, (batch, 3, height, width), dtype=np.uint8))
    clicks = [[Click(int(rng.integers(height)), int(rng.integers(width)), bool(rng.integers(2)))
               for _ in range(int(rng.integers(0, 9)))] for _ in range(batch)]
    return images, clicks


def _network_input(images: torch.Tensor, clicks: list[list[Click]]) -> torch.Tensor:
    batch = {"image": images.permute(0, 2, 3, 1)}
    batch.update(click_tensors(clicks, CPU))
    return batch_input(batch, CPU)


CASES = [(1, 2, 70, 90), (2, 3, 33, 47), (3, 1, 96, 64)]  # (seed, batch, height, width): none is the traced shape


@pytest.mark.parametrize("backbone", BACKBONES)
def test_network_graphs_match_pytorch(exported: dict, backbone: str) -> None:
    predictor, files = exported[backbone]
    session = ort.InferenceSession(str(files["onnx"]), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(files["torchscript"]))
    for seed, batch, height, width in CASES:
        images, clicks = _random_case(seed, batch, height, width)
        expected = predictor.predict_batch(images, clicks).numpy()
        x = _network_input(images, clicks)
        (onnx_out,) = session.run(None, {"input": x.numpy()})
        with torch.no_grad():
            script_out = scripted(x).numpy()
        assert onnx_out.shape == script_out.shape == (batch, height, width)
        assert np.abs(onnx_out - expected).max() < TOLERANCE
        assert np.abs(script_out - expected).max() < TOLERANCE


def _click_feed(images: torch.Tensor, clicks: list[list[Click]]) -> dict[str, np.ndarray]:
    feed = {"image": images.permute(0, 2, 3, 1).contiguous(), **click_tensors(clicks, CPU)}
    return {name: feed[name].numpy() for name in CLICK_INPUTS}


def test_with_clicks_graphs_equal_the_api(exported: dict) -> None:
    predictor, files = exported["resnet18"]
    session = ort.InferenceSession(str(files["clicks-onnx"]), providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(files["clicks-torchscript"]))
    for seed, batch, height, width in [*CASES, (4, 2, 40, 40)]:
        images, clicks = _random_case(seed, batch, height, width)
        feed = _click_feed(images, clicks)
        (onnx_out,) = session.run(None, feed)
        with torch.no_grad():
            script_out = scripted(*(torch.from_numpy(feed[n]) for n in CLICK_INPUTS)).numpy()
        for i in range(batch):
            api = predictor.predict(images[i].permute(1, 2, 0).numpy(), clicks[i])
            assert np.abs(onnx_out[i] - api).max() < TOLERANCE
            assert np.abs(script_out[i] - api).max() < TOLERANCE


def test_the_input_contract_is_in_the_metadata(exported: dict) -> None:
    _, files = exported["resnet18"]
    for name in ("onnx", "torchscript"):
        contract = read_contract(files[name])
        assert contract["graph"] == "network" and contract["task"] == "interactive"
        assert contract["channels"] == ["R", "G", "B", "positive_distance", "negative_distance"]
        assert contract["rgb_normalisation"]["mean"] == pytest.approx([m * 255 for m in IMAGENET_MEAN])
        assert contract["click_channels"]["clip"] == 255 and contract["click_channels"]["no_click_value"] == 1
        assert contract["model"]["backbone"] == "resnet18" and list(contract["inputs"]) == ["input"]
    for name in ("clicks-onnx", "clicks-torchscript"):
        contract = read_contract(files[name])
        assert contract["graph"] == "with_clicks" and set(contract["inputs"]) == set(CLICK_INPUTS)
    session = ort.InferenceSession(str(files["clicks-onnx"]), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", "height", "width", 3]


def test_semantic_export_and_bad_options(tmp_path: Path) -> None:
    semantic = make_checkpoint(tmp_path / "semantic.pt", "semantic")
    out = tmp_path / "semantic.torchscript"
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(semantic), "--format", "torchscript",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    predictor = Predictor.from_checkpoint(semantic, device="cpu")
    images, _ = _random_case(7, 2, 45, 61)
    with torch.no_grad():
        got = torch.jit.load(str(out))(batch_input({"image": images.permute(0, 2, 3, 1)}, CPU))
    assert got.shape == (2, 21, 45, 61)
    assert torch.abs(got - predictor.predict_batch(images)).max() < TOLERANCE
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(semantic), "--format", "torchscript",
                                       "--out", str(tmp_path / "x.pt"), "--with-clicks"])
    assert result.exit_code == 1 and "--with-clicks needs an interactive checkpoint" in result.output
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(semantic), "--format", "torchscript",
                                       "--out", str(tmp_path / "missing" / "x.pt")])
    assert result.exit_code == 1 and "does not exist" in result.output
    result = CliRunner().invoke(main, ["export", "--checkpoint", str(semantic), "--format", "tflite",
                                       "--out", str(out)])
    assert result.exit_code == 2 and "tflite" in result.output


def test_a_prev_mask_model_exports_with_its_previous_probability_input(tmp_path: Path) -> None:
    """The sixth channel in the network graph and the `prev` input of the with-clicks graph, both formats."""
    predictor = Predictor(calibrated_model(prev_mask=True), "interactive", CPU)
    images, clicks = _random_case(7, 2, 48, 64)
    prev = torch.rand(2, 48, 64, generator=torch.Generator().manual_seed(7))
    feed = {**_click_feed(images, clicks), PREV_INPUT: prev.numpy()}
    names = (*CLICK_INPUTS, PREV_INPUT)
    for fmt in ("onnx", "torchscript"):
        path = tmp_path / f"prev-clicks.{fmt}"
        info = export_model(predictor, fmt, path, with_clicks=True)
        assert info == read_contract(path) and info["channels"][-1] == "previous_probability"
        assert PREV_INPUT in info["inputs"] and info["model"]["in_channels"] == 6
        if fmt == "onnx":
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            (out,) = session.run(None, feed)
        else:
            with torch.no_grad():
                out = torch.jit.load(str(path))(*(torch.from_numpy(feed[n]) for n in names)).numpy()
        for i in range(2):
            api = predictor.predict(images[i].permute(1, 2, 0).numpy(), clicks[i], prev=prev[i].numpy())
            assert np.abs(out[i] - api).max() < TOLERANCE
