"""Click distance channels (spec §3): every formulation against a brute-force reference and OpenCV's exact transform,
bit-identical to each other, written in place, and loop-free in traced graphs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ifcn.trainer.core import clickmaps
from ifcn.trainer.core.clickmaps import EDT_CLICKS, FORMULATIONS, distance_maps, interaction_channels
from ifcn.trainer.core.inputs import network_input, normalize_rgb

H, W = 37, 53


def _brute_force(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """min over clicks of the Euclidean distance, clipped at 255 and scaled, in float64 (1.0 without clicks)."""
    if not len(points):
        return np.ones((height, width))
    ys, xs = np.mgrid[:height, :width]
    d = np.sqrt(((ys[None] - points[:, 0, None, None]) ** 2 + (xs[None] - points[:, 1, None, None]) ** 2).min(0))
    return np.minimum(d, 255.0) / 255.0


def _opencv(points: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's exact Euclidean transform of the rasterised clicks, clipped and scaled (integer clicks only)."""
    if not len(points):
        return np.ones((height, width))
    free = np.ones((height, width), np.uint8)
    free[points[:, 0], points[:, 1]] = 0
    d = cv2.distanceTransform(free, cv2.DIST_L2, cv2.DIST_MASK_PRECISE).astype(np.float64)
    return np.minimum(d, 255.0) / 255.0


def _padded(rows: list[np.ndarray], k: int | None = None, fill: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, K, 2) int32 clicks and (B, K) validity; padding slots hold `fill` (garbage that must be ignored)."""
    k = max([len(r) for r in rows] + [1]) if k is None else k
    clicks = torch.full((len(rows), k, 2), fill, dtype=torch.int32)
    valid = torch.zeros(len(rows), k, dtype=torch.bool)
    for i, r in enumerate(rows):
        clicks[i, :len(r)] = torch.from_numpy(np.asarray(r, np.int32).reshape(-1, 2))
        valid[i, :len(r)] = True
    return clicks, valid


def _cases(height: int = H, width: int = W) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    corners = [(0, 0), (0, width - 1), (height - 1, 0), (height - 1, width - 1)]
    return {
        "random": np.stack([rng.integers(0, height, 9), rng.integers(0, width, 9)], 1),
        "border": np.array([*corners, (0, width // 2), (height // 2, width - 1)]),
        "repeated": np.array([(5, 6), (5, 6), (5, 6), (20, 30), (20, 30)]),
        "none": np.zeros((0, 2), np.int64),
        "one": np.array([(height // 3, width // 4)]),
        "hundred": np.stack([rng.integers(0, height, 100), rng.integers(0, width, 100)], 1),
    }


@pytest.mark.parametrize("formulation", sorted(FORMULATIONS))
def test_every_formulation_matches_brute_force_and_opencv(formulation: str) -> None:
    cases = _cases()
    clicks, valid = _padded(list(cases.values()))
    maps = distance_maps(clicks, valid, H, W, formulation=formulation)
    assert maps.shape == (len(cases), 1, H, W) and maps.dtype == torch.float32
    for i, (name, points) in enumerate(cases.items()):
        got = maps[i, 0].double().numpy()
        np.testing.assert_allclose(got, _brute_force(points, H, W), rtol=0, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(got, _opencv(points, H, W), rtol=0, atol=1e-6, err_msg=name)
    assert (maps[list(cases).index("none")] == 1.0).all()


def test_formulations_are_bit_identical_including_the_opencv_path_and_clipping() -> None:
    # 300 x 300 so distances pass the 255 clip; 100 clicks take the CPU's OpenCV path (> EDT_CLICKS), 10 do not.
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 300, (n, 2)) for n in (0, 1, 10, EDT_CLICKS + 1, 100)] + [np.array([(0, 0)])]
    clicks, valid = _padded(rows, k=104)
    maps = {name: distance_maps(clicks, valid, 300, 300, formulation=name) for name in FORMULATIONS}
    for name, m in maps.items():
        assert torch.equal(m, maps["dense"]), name
    assert maps["dense"][-1, 0, -1, -1] == 1.0  # 424 px from the only click: clipped at 255 -> 1.0
    np.testing.assert_allclose(maps["per_sample"][3, 0].double().numpy(), _brute_force(rows[3], 300, 300), atol=1e-6)


def test_sub_pixel_and_outside_clicks_follow_the_definition() -> None:
    # Coordinates that are not grid pixels (an exported graph may receive them) never take the rasterising path.
    points = np.array([(2.5, 3.25), (-4.0, 10.0), (H + 3.0, W - 1.0)] * 20)
    clicks = torch.from_numpy(points).float()[None]
    valid = torch.ones(1, len(points), dtype=torch.bool)
    expected = _brute_force(points, H, W)
    for name in FORMULATIONS:
        got = distance_maps(clicks, valid, H, W, formulation=name)[0, 0].double().numpy()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=name)


def test_no_slot_at_all_and_every_slot_padded() -> None:
    for k in (0, 5):
        clicks, valid = torch.zeros(3, k, 2), torch.zeros(3, k, dtype=torch.bool)
        for name in FORMULATIONS:
            assert torch.equal(distance_maps(clicks, valid, 4, 6, formulation=name), torch.ones(3, 1, 4, 6)), name


def test_device_formulation_chunks_do_not_depend_on_the_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [np.array([(1, 2), (30, 40)]), np.array([(10, 10)] * 3 + [(36, 52)])]
    reference = distance_maps(*_padded(rows), H, W, formulation="dense")
    for chunk in (1, 3, 8):
        monkeypatch.setattr(clickmaps, "SLOT_CHUNK", chunk)
        for k in (4, 9, 17):
            assert torch.equal(distance_maps(*_padded(rows, k=k), H, W, formulation="chunked"), reference)


def test_maps_are_written_into_the_given_view() -> None:
    clicks, valid = _padded([np.array([(3, 4)]), np.array([(8, 9), (1, 1)])])
    storage = torch.full((2, 5, H, W), -7.0)
    result = interaction_channels(clicks, valid, clicks.flip(-1) % H, valid, H, W, out=storage[:, 3:])
    assert result.data_ptr() == storage[:, 3:].data_ptr()
    assert (storage[:, :3] == -7.0).all()  # other channels untouched
    assert torch.equal(storage[:, 3:4], distance_maps(clicks, valid, H, W, formulation="dense"))


class _NetworkInput(torch.nn.Module):
    def forward(self, images: torch.Tensor, pos: torch.Tensor, pos_valid: torch.Tensor, neg: torch.Tensor,
                neg_valid: torch.Tensor) -> torch.Tensor:
        return network_input(images, pos, pos_valid, neg, neg_valid)


def test_network_input_is_the_same_eager_and_exported_with_dynamic_sizes_and_click_counts() -> None:
    # What an ONNX/TorchScript export of the input contract sees (torch.export, as the dynamo ONNX exporter uses).
    g = torch.Generator().manual_seed(0)

    def inputs(b: int, h: int, w: int, k_pos: int, k_neg: int) -> tuple[torch.Tensor, ...]:
        images = torch.randint(0, 256, (b, 3, h, w), dtype=torch.uint8, generator=g)
        out: list[torch.Tensor] = [images]
        for k in (k_pos, k_neg):
            yx = torch.stack([torch.randint(0, h, (b, k), generator=g), torch.randint(0, w, (b, k), generator=g)], -1)
            out += [yx.float(), torch.rand(b, k, generator=g) < 0.7]
        return tuple(out)

    example = inputs(2, H, W, 3, 2)
    eager = network_input(*example)
    assert eager.shape == (2, 5, H, W) and eager.is_contiguous()
    assert torch.equal(eager[:, :3], normalize_rgb(example[0]))
    assert torch.equal(eager[:, 3:4], distance_maps(example[1], example[2], H, W, formulation="dense"))
    b, h, w = torch.export.Dim("b"), torch.export.Dim("h", min=8), torch.export.Dim("w", min=8)
    kp, kn = torch.export.Dim("kp", min=1), torch.export.Dim("kn", min=1)
    dims = ({0: b, 2: h, 3: w}, {0: b, 1: kp}, {0: b, 1: kp}, {0: b, 1: kn}, {0: b, 1: kn})
    exported = torch.export.export(_NetworkInput(), example, dynamic_shapes=dims).module()
    other = inputs(3, 20, 31, 11, 1)  # other batch, size and padded click counts than at export time
    assert torch.equal(exported(*other), network_input(*other))
