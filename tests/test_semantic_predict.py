"""`ifcn-eval predict` and the semantic side of `Predictor`: palette/index/overlay files, any image size, tiles and
downscaling against whole-image prediction, class shares, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image, JpegImagePlugin

from ifcn.labels import VOC_CLASSES
from ifcn.palette import VOC_PALETTE
from ifcn.trainer.evaluation.eval_cli import main
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.images import read_image
from ifcn.trainer.inference.render import class_shares, overlay_image
from ifcn.trainer.inference.semantic_segmentation import (
    Sizing,
    ramp,
    segment,
    tile_starts,
    tiled_logits,
    upsampled_argmax,
)
from ifcn.trainer.models.model_config import ModelConfig
from tests.demo_data import make_demo_checkpoint, sample_image
from tests.eval_data import make_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("semantic") / "semantic.pt", "semantic")


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, device="cpu")


def _save(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _predict(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["predict", "--device", "cpu", "--no-progress", *[str(a) for a in args]])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_palette_png_holds_the_argmax_with_the_voc_palette(checkpoint: Path, predictor: Predictor,
                                                           tmp_path: Path) -> None:
    image = sample_image(7, (60, 90))
    (tmp_path / "in").mkdir()
    _save(tmp_path / "in" / "scene.png", image)
    code, output = _predict("--checkpoint", checkpoint, "--images", tmp_path / "in", "--out", tmp_path / "out")
    assert code == 0, output
    written = Image.open(tmp_path / "out" / "scene.png")
    palette = written.getpalette()
    assert written.mode == "P" and len(palette) >= 21 * 3 and palette == VOC_PALETTE[:len(palette)]
    labels = np.asarray(written)
    np.testing.assert_array_equal(labels, predictor.predict(image).argmax(0))
    summary = json.loads((tmp_path / "out" / "classes.json").read_text())
    entry = summary["images"][str(tmp_path / "in" / "scene.png")]
    assert (entry["output"], entry["height"], entry["width"]) == ("scene.png", 60, 90)
    assert entry["class_shares"] == pytest.approx(class_shares(labels, VOC_CLASSES))
    assert sum(entry["class_shares"].values()) == pytest.approx(1.0)
    assert summary["skipped"] == [] and summary["format"] == "palette"


def test_index_and_overlay_formats(checkpoint: Path, predictor: Predictor, tmp_path: Path) -> None:
    image = sample_image(8, (96, 128))
    _save(tmp_path / "photo.jpg", image)
    code, output = _predict("--checkpoint", checkpoint, "--images", tmp_path / "photo.jpg", "--out", tmp_path / "i",
                            "--format", "index")
    assert code == 0, output
    index = Image.open(tmp_path / "i" / "photo.png")
    decoded = np.asarray(Image.open(tmp_path / "photo.jpg").convert("RGB"))
    assert index.mode == "L"
    np.testing.assert_array_equal(np.asarray(index), predictor.predict(decoded).argmax(0))
    code, output = _predict("--checkpoint", checkpoint, "--images", str(tmp_path / "*.jpg"), "--out", tmp_path / "o",
                            "--format", "overlay")
    assert code == 0, output
    overlay = Image.open(tmp_path / "o" / "photo.jpg")
    assert overlay.format == "JPEG" and overlay.size == (128, 96)


def test_overlay_paints_classes_and_draws_a_legend_of_those_present() -> None:
    image = np.full((120, 160, 3), 100, np.uint8)
    labels = np.zeros((120, 160), np.uint8)
    labels[60:, 80:] = 15  # person
    picture = np.asarray(overlay_image(image, labels, VOC_CLASSES)).astype(int)
    assert picture.shape == image.shape
    np.testing.assert_array_equal(picture[100, 20], [100, 100, 100])  # background untouched
    person = np.array(VOC_PALETTE[45:48])
    np.testing.assert_array_equal(picture[100, 140], np.round(0.5 * 100 + 0.5 * person))
    assert (picture[:20, :20] != 100).any()  # the legend box in the top-left corner
    tiny = overlay_image(image[:10, :10], labels[:10, :10], VOC_CLASSES)
    assert tiny.size == (10, 10)


@pytest.mark.parametrize("size", [(333, 501), (1, 1), (17, 3)])
def test_any_image_size(checkpoint: Path, tmp_path: Path, size: tuple[int, int]) -> None:
    (tmp_path / "in").mkdir()
    _save(tmp_path / "in" / "odd.png", sample_image(9, size))
    code, output = _predict("--checkpoint", checkpoint, "--images", tmp_path / "in", "--out", tmp_path / "out",
                            "--format", "overlay")
    assert code == 0, output
    assert Image.open(tmp_path / "out" / "odd.jpg").size == size[::-1]


def test_max_side_output_has_the_input_size(checkpoint: Path, predictor: Predictor, tmp_path: Path) -> None:
    image = sample_image(10, (150, 230))
    (tmp_path / "in").mkdir()
    _save(tmp_path / "in" / "big.png", image)
    code, output = _predict("--checkpoint", checkpoint, "--images", tmp_path / "in", "--out", tmp_path / "out",
                            "--max-side", "64")
    assert code == 0, output and "max side 64" in output
    labels = np.asarray(Image.open(tmp_path / "out" / "big.png"))
    assert labels.shape == (150, 230)
    small = read_image(tmp_path / "in" / "big.png", 64).rgb  # decoded at the network's size, labels at full size
    np.testing.assert_array_equal(labels, segment(predictor, small, Sizing(max_side=64), size=(150, 230)))


def test_large_jpegs_are_decoded_reduced_unless_an_overlay_needs_the_photo(checkpoint: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "in").mkdir()
    _save(tmp_path / "in" / "big.jpg", sample_image(11, (600, 800)))
    drafts: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str, size: tuple[int, int]) -> object:
        drafts.append(size)
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    for fmt in ("palette", "overlay"):
        code, output = _predict("--checkpoint", checkpoint, "--images", tmp_path / "in", "--out", tmp_path / fmt,
                                "--max-side", "100", "--format", fmt)
        assert code == 0, output
    assert drafts == [(100, 75)]  # palette only: the overlay decoded the whole photo
    assert Image.open(tmp_path / "palette" / "big.png").size == (800, 600)


def test_upsampled_argmax_in_bands_equals_interpolating_everything() -> None:
    logits = torch.randn(21, 13, 17, generator=torch.Generator().manual_seed(0))
    for size in ((40, 50), (13, 17), (100, 9), (7, 7)):
        full = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0].argmax(0).numpy()
        np.testing.assert_array_equal(upsampled_argmax(logits, size, band=6), full)


def test_tiles_cover_the_image_and_blend_exactly_for_a_local_model() -> None:
    assert tile_starts(100, 100, 16) == [0] and tile_starts(60, 100, 16) == [0]
    assert tile_starts(250, 100, 20) == [0, 80, 150]
    weights = ramp(80, 100, 250, 20)
    assert weights[0] == pytest.approx(1 / 21) and weights[20:80].min() == 1.0 and weights[-1] == pytest.approx(1 / 21)
    assert ramp(0, 100, 250, 20)[0] == 1.0  # the image's own border is not down-weighted
    # A pointwise (1x1 convolution) network sees nothing beyond a pixel: tiles must reproduce it exactly.
    local = torch.nn.Conv2d(3, 21, 1)
    local.config = ModelConfig(in_channels=3, num_classes=21)
    pointwise = Predictor(local, "semantic")
    image = sample_image(11, (100, 130))
    whole = pointwise.logits(pointwise.image_batch([image]))[0]
    torch.testing.assert_close(tiled_logits(pointwise, image, 48, 16), whole, atol=1e-5, rtol=1e-5)


def test_tiling_is_close_to_whole_image_prediction_with_a_real_network(predictor: Predictor) -> None:
    image = sample_image(12, (120, 150))
    whole = torch.softmax(predictor.logits(predictor.image_batch([image]))[0], 0)
    tiled = torch.softmax(tiled_logits(predictor, image, 96, 32), 0)
    difference = (whole - tiled).abs()
    assert difference.mean() < 0.02 and difference.max() < 0.25
    single = torch.softmax(tiled_logits(predictor, image, 160, 32), 0)  # one tile = the whole image
    torch.testing.assert_close(single, whole)


def test_bad_input(checkpoint: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    _save(folder / "good.png", sample_image(13, (40, 50)))
    (folder / "notes.txt").write_text("hello")
    jpeg = cv2.imencode(".jpg", sample_image(14, (40, 50)))[1].tobytes()
    (folder / "broken.jpg").write_bytes(jpeg[:len(jpeg) // 2])
    code, output = _predict("--checkpoint", checkpoint, "--images", folder, "--out", tmp_path / "out", "--on-error",
                            "skip")
    assert code == 0, output
    assert "skipped" in output and "notes.txt" in output and "broken.jpg" in output
    summary = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert len(summary["images"]) == 1
    assert {s["kind"] for s in summary["skipped"]} == {"not_an_image", "corrupt_image"}
    code, output = _predict("--checkpoint", checkpoint, "--images", folder, "--out", tmp_path / "f")  # fail: default
    assert code == 1 and "broken.jpg" in output and "corrupt" in output

    interactive = make_demo_checkpoint(tmp_path / "interactive.pt")
    code, output = _predict("--checkpoint", interactive, "--images", folder, "--out", tmp_path / "x")
    assert code == 1 and "task 'interactive'" in output and "ifcn-eval demo" in output
    (tmp_path / "empty").mkdir()
    code, output = _predict("--checkpoint", checkpoint, "--images", tmp_path / "empty", "--out", tmp_path / "x")
    assert code == 1 and "holds no file" in output
    code, output = _predict("--checkpoint", checkpoint, "--images", tmp_path / "nothing*.png", "--out", tmp_path / "x")
    assert code == 1 and "holds no file" in output
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, output = _predict("--checkpoint", checkpoint, "--images", folder, "--out", blocker / "sub")
    assert code == 1 and "cannot write there" in output
    code, output = _predict("--checkpoint", checkpoint, "--images", folder, "--out", tmp_path / "x", "--tile", "64",
                            "--overlap", "40")
    assert code == 1 and "--overlap must lie in [0, tile/2)" in output
    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    (only_bad / "a.txt").write_text("x")
    code, output = _predict("--checkpoint", checkpoint, "--images", only_bad, "--out", tmp_path / "y", "--on-error",
                            "skip")
    assert code == 1 and "none of the 1 files is a readable image" in output
