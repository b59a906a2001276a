"""Zoom-in inference: the view around the object, exact crop/resize/paste at scale 1, masks at the image's size."""

from __future__ import annotations

import pytest
import torch

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.inference.zoom import View, ZoomIn, ZoomSettings, object_view, paste, view_clicks, zoomed


def C(y: int, x: int, positive: bool = True) -> Click:
    """A click, positive unless said."""
    return Click(y, x, positive)


def fake_predict(image: torch.Tensor, clicks, prev):
    """Depends on every input: pixel values, click positions and signs, the previous map."""
    h, w = image.shape[-2:]
    out = image.float().mean(0) / 255.0
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    for c in clicks:
        bump = torch.exp(-((yy - c.y) ** 2 + (xx - c.x) ** 2) / 50.0)
        out = out + (bump if c.positive else -bump)
    if prev is not None:
        out = out + 0.1 * prev
    return torch.sigmoid(out)


def image_of(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (3, h, w), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_scale_one_whole_image_view_equals_whole_image_prediction():
    image = image_of(60, 80)
    clicks = [C(30, 40), C(10, 70, False)]
    prev = torch.rand(60, 80, generator=torch.Generator().manual_seed(1))
    settings = ZoomSettings(target=80, min_side=80)
    view = object_view((60, 80), clicks, prev, settings)
    assert view == View(0, 60, 0, 80, 60, 80)
    assert torch.equal(zoomed(fake_predict, image, clicks, prev, settings), fake_predict(image, clicks, prev))


def test_first_click_sees_the_whole_image():
    image = image_of(50, 50)
    clicks = [C(25, 25)]
    assert object_view((50, 50), clicks, None, ZoomSettings()) is None
    assert torch.equal(zoomed(fake_predict, image, clicks, None, ZoomSettings()), fake_predict(image, clicks, None))


def test_view_covers_the_object_and_clicks_at_the_target_size_inside_the_image():
    prev = torch.zeros(3000, 4000)
    prev[1000:1200, 2000:2500] = 0.9
    clicks = [C(1100, 2200), C(1250, 2600), C(10, 10, False)]
    view = object_view((3000, 4000), clicks, prev, ZoomSettings(target=400, expansion=1.4, min_side=100))
    assert view.y0 <= 1000 and view.y1 > 1250 and view.x0 <= 2000 and view.x1 > 2600
    assert max(view.height, view.width) == 400
    assert (view.x1 - view.x0) == round(601 * 1.4)  # the box 2000..2600 grown by 1.4
    assert not view.contains(10, 10)  # a far negative click does not widen the view
    assert [c.positive for c in view_clicks(clicks, view)] == [True, True]


def test_view_near_the_border_shifts_inside_and_never_exceeds_the_image():
    view = object_view((100, 120), [C(2, 3), C(5, 6)], None, ZoomSettings(target=64, min_side=50))
    assert (view.y0, view.x0) == (0, 0) and (view.y1, view.x1) == (50, 50)
    small = object_view((40, 30), [C(2, 3), C(39, 29)], None, ZoomSettings(target=64, min_side=100))
    assert (small.y0, small.y1, small.x0, small.x1) == (0, 40, 0, 30)


def test_zoomed_mask_has_the_image_size_and_keeps_the_previous_map_outside_the_view():
    image = image_of(200, 300)
    prev = torch.full((200, 300), 0.25)
    prev[90:110, 140:160] = 0.8
    clicks = [C(100, 150), C(95, 155)]
    out = zoomed(fake_predict, image, clicks, prev, ZoomSettings(target=64, min_side=40))
    view = object_view((200, 300), clicks, prev, ZoomSettings(target=64, min_side=40))
    assert out.shape == (200, 300)
    outside = torch.ones(200, 300, dtype=torch.bool)
    outside[view.y0:view.y1, view.x0:view.x1] = False
    assert torch.equal(out[outside], prev[outside])
    assert not torch.equal(out[~outside], prev[~outside])


def test_clicks_map_onto_the_views_pixel_centres():
    view = View(10, 30, 20, 60, 40, 80)  # scale 2
    for y, x in [(10, 20), (29, 59), (20, 40), (17, 33)]:  # image pixel (y, x) covers view pixels 2 (y - y0) + {0, 1}
        vy, vx = view.to_view(y, x)
        assert vy - 2 * (y - 10) in (0, 1) and vx - 2 * (x - 20) in (0, 1)
    assert View(0, 10, 0, 10, 10, 10).to_view(7, 3) == (7, 3)


def test_paste_at_scale_one_is_a_copy_into_the_crop():
    prev = torch.zeros(10, 10)
    view = View(2, 6, 3, 8, 4, 5)
    probs = torch.rand(4, 5)
    out = paste(probs, view, prev)
    assert torch.equal(out[2:6, 3:8], probs) and torch.isclose(out.sum(), probs.sum())


def test_whole_image_passes_are_bounded_by_whole_side_and_returned_at_full_size():
    seen = []

    def recording(image, clicks, prev):
        seen.append(tuple(image.shape[-2:]))
        return fake_predict(image, clicks, prev)

    out = zoomed(recording, image_of(300, 400), [C(150, 200)], None, ZoomSettings(whole_side=100))
    assert seen == [(75, 100)] and out.shape == (300, 400)
    zoomed(recording, image_of(60, 80), [C(30, 40)], None, ZoomSettings(whole_side=100))
    assert seen[-1] == (60, 80)  # no larger than the bound: as it is


@pytest.mark.parametrize("bad", [dict(target=16), dict(expansion=0.5), dict(min_side=0), dict(whole_side=8)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError):
        ZoomSettings(**bad)


class RecordingBase:
    """A batch predictor that records the image sizes and clicks it is given."""

    device = torch.device("cpu")

    def __init__(self, prev_mask: bool) -> None:
        self.prev_mask = prev_mask
        self.calls: list[tuple[tuple[int, int], list, bool]] = []

    def __call__(self, images, clicks, prev=None):
        self.calls.append((tuple(images.shape[-2:]), [(c.y, c.x, c.positive) for c in clicks[0]], prev is not None))
        return torch.stack([fake_predict(image, row, None) for image, row in zip(images, clicks, strict=True)])


@pytest.mark.parametrize("prev_mask", [False, True])
def test_zoom_in_predictor_zooms_from_the_second_click_and_passes_prev_only_to_prev_mask_networks(prev_mask):
    base = RecordingBase(prev_mask)
    zoom = ZoomIn(base, ZoomSettings(target=64, min_side=20))
    images = image_of(300, 400)[None]
    prev = torch.zeros(1, 300, 400)
    first = zoom(images, [[C(150, 200)]], prev)
    second = zoom(images, [[C(150, 200), C(160, 210)]], first)
    assert first.shape == second.shape == (1, 300, 400)
    (size1, clicks1, prev1), (size2, clicks2, prev2) = base.calls
    assert size1 == (300, 400) and clicks1 == [(150, 200, True)]
    assert max(size2) == 64 and len(clicks2) == 2  # the view, with both clicks moved into it
    assert prev1 == prev2 == prev_mask
