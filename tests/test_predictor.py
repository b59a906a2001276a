"""The public inference API: `ifcn.Predictor` for both tasks, its input checks, GrabCut, tiny images, lazy import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.core.inputs import PREV, batch_input
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.grabcut import grabcut_refine
from ifcn.trainer.inference.zoom import ZoomSettings
from tests.demo_data import make_demo_checkpoint, sample_image
from tests.eval_data import make_checkpoint

CLICKS = [(36, 48, True), (5, 6, False), (60, 20, True)]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("predictor")
    return {"interactive": make_demo_checkpoint(root / "interactive.pt"),
            "semantic": make_checkpoint(root / "semantic.pt", "semantic")}


@pytest.fixture(scope="module")
def interactive(checkpoints: dict[str, Path]) -> Predictor:
    return Predictor.from_checkpoint(checkpoints["interactive"], device="cpu")


def test_public_import_is_lazy_so_ifcn_stays_torch_free() -> None:
    code = ("import sys, ifcn, ifcn.shards.reader; assert 'torch' not in sys.modules, 'torch imported'; "
            "from ifcn import Predictor; assert 'torch' in sys.modules; "
            "from ifcn.trainer.inference import Predictor as P; assert Predictor is P; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        import ifcn

        _ = ifcn.Nope


def test_predict_is_the_network_on_the_input_contract(interactive: Predictor) -> None:
    image = sample_image(0)
    probability = interactive.predict(image, CLICKS)
    assert probability.shape == image.shape[:2] and probability.dtype == np.float32
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    assert 0.05 < (probability > 0.5).mean() < 0.95  # calibrated: neither empty nor full
    # The same numbers by hand from batch_input: (y, x, positive) tuples are read as Click(y, x, positive).
    batch = {"image": torch.from_numpy(image)[None],
             "pos": torch.tensor([[[36.0, 48.0], [60.0, 20.0]]]), "pos_valid": torch.ones(1, 2, dtype=torch.bool),
             "neg": torch.tensor([[[5.0, 6.0]]]), "neg_valid": torch.ones(1, 1, dtype=torch.bool)}
    with torch.no_grad():
        expected = torch.sigmoid(interactive.model(batch_input(batch, torch.device("cpu"))))[0, 0].numpy()
    np.testing.assert_allclose(probability, expected, atol=1e-6, rtol=0)
    as_clicks = interactive.predict(image, [Click(*c) for c in CLICKS])
    np.testing.assert_array_equal(probability, as_clicks)
    assert not np.array_equal(probability, interactive.predict(image, CLICKS[:1]))  # clicks matter


def test_predict_batch_is_what_the_noc_engine_calls(interactive: Predictor) -> None:
    images = np.stack([sample_image(0), sample_image(1)])
    clicks = [[Click(36, 48, True)], [Click(30, 40, True), Click(2, 2, False)]]
    batched = interactive(torch.from_numpy(images).permute(0, 3, 1, 2), clicks)
    assert batched.shape == (2, *images.shape[1:3])
    for i in range(2):
        np.testing.assert_allclose(batched[i].numpy(), interactive.predict(images[i], clicks[i]), atol=1e-5, rtol=0)


def test_grabcut_refinement_is_an_argument(interactive: Predictor) -> None:
    image = sample_image(0)
    refined = interactive.predict(image, CLICKS, grabcut=True, threshold=0.5)
    clicks = [Click(*c) for c in CLICKS]
    expected = grabcut_refine(image, interactive.predict(image, CLICKS) > 0.5, clicks)
    assert refined.dtype == bool
    np.testing.assert_array_equal(refined, expected)


@pytest.mark.parametrize("size", [(1, 1), (20, 33), (31, 64)])
def test_images_smaller_than_the_network_minimum_work(interactive: Predictor, size: tuple[int, int]) -> None:
    image = sample_image(3, size)
    probability = interactive.predict(image, [(0, 0, True)])
    assert probability.shape == size and np.isfinite(probability).all()


def test_bad_inputs_are_refused_with_a_message(interactive: Predictor, checkpoints: dict[str, Path]) -> None:
    image = sample_image(0)
    with pytest.raises(ValueError, match=r"click \(y=72, x=3\) lies outside the 72x96 image"):
        interactive.predict(image, [(72, 3, True)])
    with pytest.raises(ValueError, match="outside"):
        interactive.predict(image, [(0, -1, False)])
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB"):
        interactive.predict(image[:, :, :2], [])
    with pytest.raises(ValueError, match=r"a click is a Click or a \(y, x, positive\) tuple"):
        interactive.predict(image, [(1, 2)])
    with pytest.raises(ValueError, match="needs one click list per image"):
        interactive.predict_batch(torch.from_numpy(image).permute(2, 0, 1)[None])
    semantic = Predictor.from_checkpoint(checkpoints["semantic"], device="cpu")
    with pytest.raises(ValueError, match="semantic checkpoint takes no clicks"):
        semantic.predict(image, CLICKS)


def test_semantic_predict_gives_class_probabilities(checkpoints: dict[str, Path]) -> None:
    semantic = Predictor.from_checkpoint(checkpoints["semantic"], device="cpu")
    assert semantic.task == "semantic" and semantic.num_classes == 21
    probs = semantic.predict(sample_image(2, (37, 51)))
    assert probs.shape == (21, 37, 51) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


def test_a_prev_mask_model_takes_the_previous_probabilities(interactive: Predictor, tmp_path: Path) -> None:
    """A `--prev-mask` checkpoint's sixth channel is `prev` (zeros when not given), built by the same batch_input."""
    predictor = Predictor.from_checkpoint(make_demo_checkpoint(tmp_path / "prev.pt", prev_mask=True), device="cpu")
    assert predictor.prev_mask and not interactive.prev_mask
    image = sample_image(1)
    first = predictor.predict(image, CLICKS[:1])
    second = predictor.predict(image, CLICKS[:2], prev=first)
    batch = {"image": torch.from_numpy(image)[None], "pos": torch.tensor([[[36.0, 48.0]]]),
             "pos_valid": torch.ones(1, 1, dtype=torch.bool), "neg": torch.tensor([[[5.0, 6.0]]]),
             "neg_valid": torch.ones(1, 1, dtype=torch.bool), PREV: torch.from_numpy(first)[None]}
    with torch.no_grad():
        expected = torch.sigmoid(predictor.model(batch_input(batch, torch.device("cpu"), predictor.spec)))[0, 0]
    np.testing.assert_allclose(second, expected.numpy(), atol=1e-6, rtol=0)
    assert np.abs(second - predictor.predict(image, CLICKS[:2])).max() > 1e-3  # the channel is used
    np.testing.assert_array_equal(predictor.predict(image, CLICKS[:2], prev=np.zeros(image.shape[:2])),
                                  predictor.predict(image, CLICKS[:2]))
    tiny = sample_image(2, (20, 33))
    assert predictor.predict(tiny, [(3, 4, True)], prev=np.full((20, 33), 0.5)).shape == (20, 33)
    with pytest.raises(ValueError, match="shape"):
        predictor.predict(image, CLICKS, prev=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no previous-mask channel"):
        interactive.predict(image, CLICKS, prev=first)


def test_predictor_is_listed_by_dir_ifcn() -> None:
    import ifcn

    assert "Predictor" in dir(ifcn)


def test_every_image_form_gives_the_same_prediction(interactive: Predictor) -> None:
    from PIL import Image

    image = sample_image(0)
    expected = interactive.predict(image, CLICKS)
    forms = [Image.fromarray(image), image.astype(np.float32) / 255, torch.from_numpy(image).permute(2, 0, 1),
             torch.from_numpy(image).permute(2, 0, 1).float() / 255,
             np.concatenate([image, np.full((*image.shape[:2], 1), 255, np.uint8)], axis=2)]  # RGBA
    for form in forms:
        np.testing.assert_allclose(interactive.predict(form, CLICKS), expected, atol=1e-6, rtol=0)
    grey = image[:, :, 0]
    np.testing.assert_array_equal(interactive.predict(grey, CLICKS),
                                  interactive.predict(np.repeat(grey[:, :, None], 3, axis=2), CLICKS))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        interactive.predict(image.astype(np.float32), CLICKS)  # floats in 0..255: a clear error, not garbage


def test_threshold_none_gives_probabilities_and_a_float_gives_a_bool_mask(interactive: Predictor) -> None:
    image = sample_image(0)
    probability = interactive.predict(image, CLICKS)
    mask = interactive.predict(image, CLICKS, threshold=0.3)
    assert probability.dtype == np.float32 and mask.dtype == bool
    np.testing.assert_array_equal(mask, probability > 0.3)
    refined = interactive.predict(image, CLICKS, threshold=0.3, grabcut=True)
    assert refined.dtype == bool
    np.testing.assert_array_equal(refined, grabcut_refine(image, probability > 0.3, [Click(*c) for c in CLICKS]))
    assert interactive.predict(image, CLICKS, grabcut=True).dtype == bool  # default threshold 0.5


def test_predict_batch_takes_the_same_images_and_clicks_as_predict(interactive: Predictor) -> None:
    images = [sample_image(0), sample_image(1)]
    clicks = [CLICKS, [Click(10, 12, True)]]
    batch = interactive.predict_batch(images, clicks).numpy()
    for i in range(2):
        np.testing.assert_allclose(batch[i], interactive.predict(images[i], clicks[i]), atol=1e-5, rtol=0)


def test_any_torch_device_string_is_accepted(checkpoints: dict[str, Path]) -> None:
    predictor = Predictor.from_checkpoint(checkpoints["interactive"], device=torch.device("cpu"))
    assert predictor.device == torch.device("cpu")
    with pytest.raises(ValueError, match="no such device"):
        Predictor.from_checkpoint(checkpoints["interactive"], device="cuda:7" if torch.cuda.is_available() else
                                  "cuda:0")
    with pytest.raises(ValueError, match="not a torch device"):
        Predictor.from_checkpoint(checkpoints["interactive"], device="gpu please")


def test_zoom_in_predicts_later_clicks_on_a_view_and_returns_the_full_size(interactive: Predictor) -> None:
    image = np.ascontiguousarray(np.tile(sample_image(0), (4, 4, 1)))  # a larger photo
    h, w = image.shape[:2]
    seen: list[tuple[int, int]] = []
    hook = interactive.model.register_forward_pre_hook(lambda _, args: seen.append(tuple(args[0].shape[-2:])))
    try:
        first = interactive.predict(image, CLICKS[:1], zoom=ZoomSettings(target=64))
        both = interactive.predict(image, CLICKS[:2], prev=first, zoom=ZoomSettings(target=64))
    finally:
        hook.remove()
    assert first.shape == both.shape == (h, w)
    assert seen[0] == (h, w) and max(seen[1]) == 64  # the first click sees the photo, the second the object's view
    # At scale 1 (the view is the whole image at its own size) zoom-in is whole-image prediction.
    whole = ZoomSettings(target=max(h, w), min_side=max(h, w))
    zoomed = interactive.predict(image, CLICKS, prev=first, zoom=whole)
    assert np.array_equal(zoomed, interactive.predict(image, CLICKS))


def test_segment_anything_style_points_are_clicks_in_x_y_order(interactive: Predictor) -> None:
    image = sample_image(0)
    coords = np.array([[x, y] for y, x, _ in CLICKS], dtype=np.float32)  # SAM: (x, y)
    labels = np.array([int(positive) for _, _, positive in CLICKS])  # SAM: 1 positive, 0 negative
    assert np.array_equal(interactive.predict(image, point_coords=coords, point_labels=labels),
                          interactive.predict(image, CLICKS))
    with pytest.raises(ValueError, match="not both"):
        interactive.predict(image, CLICKS, point_coords=coords, point_labels=labels)
    with pytest.raises(ValueError, match=r"1 \(positive\) or 0"):
        interactive.predict(image, point_coords=coords, point_labels=[1, -1, 1])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        interactive.predict(image, point_coords=coords[:, :1], point_labels=labels)
