"""The dense CRF (`ifcn.trainer.inference.crf`, extra [crf]): its output, that it moves a blurred boundary onto a
colour edge, the refusal without the extra, and `--crf` / `--refine crf` on `predict`, `miou` and `noc`."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.evaluation.eval_cli import main
from ifcn.trainer.evaluation.noc import NocSettings
from ifcn.trainer.inference.crf import CrfParams, crf_foreground, crf_labels, dense_crf, require_crf
from tests.demo_data import sample_image
from tests.eval_data import make_checkpoint, make_val_shards

#: The tests that run the solver; CI installs the extra (in `dev`), so they run there.
needs_crf = pytest.mark.skipif(importlib.util.find_spec("pydensecrf") is None,
                               reason="the [crf] extra (pydensecrf2) is not installed")

#: The constructed case: a sharp colour edge at column EDGE, a network whose boundary is blurred and lies at BLURRED.
H, W, EDGE, BLURRED = 24, 48, 20, 27


def _edge_case() -> tuple[np.ndarray, np.ndarray]:
    """An image dark left of EDGE and bright right of it (a little noise), and a foreground probability (right of
    the edge = class 1) that ramps smoothly through 0.5 at column BLURRED."""
    rng = np.random.default_rng(0)
    image = np.where(np.arange(W)[None, :, None] < EDGE, 40, 210) + rng.integers(-6, 7, (H, W, 3))
    ramp = 1.0 / (1.0 + np.exp(-(np.arange(W) - BLURRED + 0.5) / 3.0))
    return image.astype(np.uint8), np.tile(ramp, (H, 1)).astype(np.float32)


def _run(*args: str | Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("crf")
    return {"shards": make_val_shards(root / "val"),
            "interactive": make_checkpoint(root / "interactive.pt", "interactive"),
            "semantic": make_checkpoint(root / "semantic.pt", "semantic")}


@needs_crf
def test_marginals_and_labels_have_the_image_size_and_valid_classes() -> None:
    rng = np.random.default_rng(1)
    image = sample_image(3, (30, 41))
    probs = rng.dirichlet(np.ones(5), (30, 41)).transpose(2, 0, 1).astype(np.float32)
    marginals = dense_crf(image, probs)
    assert marginals.shape == (5, 30, 41) and marginals.dtype == np.float32
    np.testing.assert_allclose(marginals.sum(0), 1.0, atol=1e-4)
    labels = crf_labels(image, probs)
    assert labels.shape == (30, 41) and labels.dtype == np.uint8 and labels.max() < 5
    with pytest.raises(ValueError, match="uint8 RGB image of the probabilities' size"):
        dense_crf(image[:, :40], probs)


@needs_crf
def test_the_crf_moves_a_blurred_boundary_onto_the_colour_edge() -> None:
    image, fg = _edge_case()
    probs = np.stack([1.0 - fg, fg])
    before = probs.argmax(0)
    assert (before[:, EDGE:BLURRED] == 0).all()  # the network's boundary lies 7 columns right of the edge
    after = crf_labels(image, probs)
    expected = np.broadcast_to((np.arange(W) >= EDGE).astype(np.uint8), (H, W))
    np.testing.assert_array_equal(after, expected)
    # Without pairwise terms the CRF is the network's own argmax.
    np.testing.assert_array_equal(crf_labels(image, probs, CrfParams(gaussian_weight=0, bilateral_weight=0)), before)


@needs_crf
def test_the_two_label_crf_refines_an_interactive_mask_and_keeps_the_clicks() -> None:
    image, fg = _edge_case()
    expected = np.broadcast_to(np.arange(W) >= EDGE, (H, W))
    np.testing.assert_array_equal(crf_foreground(image, fg, [Click(12, 40, True)], 0.49), expected)
    # A negative click inside the network's foreground stays background, with its disk.
    refined = crf_foreground(image, fg, [Click(12, 40, True), Click(12, 44, False)], 0.49)
    assert not refined[12, 44] and refined[12, 30]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"--crf-iters must lie in 1\.\.100"):
        CrfParams(iterations=0)
    with pytest.raises(ValueError, match="bilateral_srgb must be positive"):
        CrfParams(bilateral_srgb=0)


def test_without_the_extra_every_crf_option_is_refused_with_the_install_command(
        inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pydensecrf", None)  # `import pydensecrf...` now raises ImportError
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    with pytest.raises(ValueError, match=r"pip install -e \"\.\[crf\]\".*C/C\+\+ compiler"):
        require_crf()
    with pytest.raises(ValueError, match="pydensecrf2"):
        NocSettings(refine="crf")
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), sample_image(2, (32, 40)))
    commands = [("predict", "--checkpoint", inputs["semantic"], "--images", tmp_path / "in", "--out", tmp_path / "o",
                 "--device", "cpu", "--crf"),
                ("miou", "--checkpoint", inputs["semantic"], "--shards", inputs["shards"], "--device", "cpu", "--crf"),
                ("noc", "--checkpoint", inputs["interactive"], "--shards", inputs["shards"], "--device", "cpu",
                 "--refine", "crf")]
    for args in commands:
        code, output = _run(*args)
        assert code == 1 and "pip install" in output and "build-essential python3-dev" in output, output
    assert not (tmp_path / "o").exists()  # refused before anything was written


@needs_crf
def test_predict_with_crf_writes_valid_labels_and_records_the_settings(inputs: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    cv2.imwrite(str(tmp_path / "in" / "a.png"), sample_image(4, (50, 70)))
    code, output = _run("predict", "--checkpoint", inputs["semantic"], "--images", tmp_path / "in", "--out",
                        tmp_path / "o", "--device", "cpu", "--no-progress", "--format", "index", "--crf",
                        "--crf-iters", "3", "--max-side", "40")
    assert code == 0 and "dense CRF 3 iterations" in output, output
    labels = cv2.imread(str(tmp_path / "o" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (50, 70) and labels.max() <= 20
    summary = json.loads((tmp_path / "o" / "classes.json").read_text())
    assert summary["crf"] == CrfParams(iterations=3).to_dict()


@needs_crf
def test_miou_with_crf_records_the_settings_and_without_pairwise_terms_equals_plain_miou(
        inputs: dict[str, Path], tmp_path: Path) -> None:
    base = ("miou", "--checkpoint", inputs["semantic"], "--shards", inputs["shards"], "--device", "cpu")
    assert _run(*base, "--out", tmp_path / "plain")[0] == 0
    code, output = _run(*base, "--out", tmp_path / "flat", "--crf", "--crf-gaussian-weight", "0",
                        "--crf-bilateral-weight", "0", "--crf-iters", "2")
    assert code == 0, output
    plain, flat = (json.loads((tmp_path / n / "semantic.json").read_text()) for n in ("plain", "flat"))
    assert plain["crf"] is None
    assert flat["crf"] == CrfParams(iterations=2, gaussian_weight=0, bilateral_weight=0).to_dict()
    assert flat["confusion"] == plain["confusion"]
    code, output = _run(*base, "--crf-iters", "2")
    assert code == 2 and "--crf-iters set the dense CRF's settings; add --crf" in output


@needs_crf
def test_noc_refine_crf_runs_and_records_the_settings(inputs: dict[str, Path], tmp_path: Path) -> None:
    code, output = _run("noc", "--checkpoint", inputs["interactive"], "--shards", inputs["shards"], "--device", "cpu",
                        "--max-clicks", "2", "--limit", "2", "--refine", "crf", "--no-progress", "--out", tmp_path)
    assert code == 0 and "refine crf" in output, output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["refine"] == "crf" and summary["settings"]["crf"] == CrfParams().to_dict()
