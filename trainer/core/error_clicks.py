"""The standard clicker (spec §6) batched in torch, on any device: the next click of many objects at once.

The same rule and the same clicks as the evaluator's numpy clicker (`trainer/evaluation/clicker.py: standard_click`,
tests check it): exact squared Euclidean depth of the false-negative and false-positive masks, the image border
counting as boundary (a 1-pixel zero pad), already-clicked pixels never clicked again; the click goes to the first
row-major pixel of the deepest error, positive only when the false negatives are strictly deeper. It lives in the
trainer so that training with clicks from the model's own errors can use it as well as the NoC engine on a GPU.

`squared_depth` is an exact separable transform: distances along each column by two cumulative scans, then, along
each row, the minimum over horizontal offsets d of g(x ± d)² + d², stopped once d² reaches the largest depth left.
The number of row passes is the depth of the deepest region (in pixels), whatever the image size.
"""

from __future__ import annotations

import torch

#: The standard protocol's foreground threshold on probabilities (RITM's, spec §6): foreground = p > 0.49.
STANDARD_THRESHOLD = 0.49
#: Row-pass iterations between two checks of the stopping rule (each check waits for the device).
_CHECK_EVERY = 4


def squared_depth(masks: torch.Tensor) -> torch.Tensor:
    """(B, H, W) bool -> (B, H, W) int32: squared distance of each True pixel to the nearest False pixel or to the
    outside of the image (1 pixel beyond the border); 0 on False pixels."""
    h, w = masks.shape[1:]
    rows = torch.arange(h, device=masks.device, dtype=torch.int32).view(1, h, 1)
    outside = ~masks
    above = torch.where(outside, rows, -1).cummax(dim=1).values  # last False row at or above, or the border (-1)
    below = torch.where(outside, rows, h).flip(1).cummin(dim=1).values.flip(1)  # first at or below, or h
    column = torch.minimum(rows - above, below - rows).square_()
    cols = torch.arange(w, device=masks.device, dtype=torch.int32)
    border = torch.minimum(cols + 1, w - cols).square_().view(1, 1, w)  # the outside columns -1 and w
    depth = torch.minimum(column, border)
    offset = 1
    while offset < w:
        if offset % _CHECK_EVERY == 1 and offset * offset >= int(depth.max()):
            break  # an offset d adds d² to a non-negative term: no pixel can get closer any more
        d2 = offset * offset
        torch.minimum(depth[..., offset:], column[..., :-offset] + d2, out=depth[..., offset:])
        torch.minimum(depth[..., :-offset], column[..., offset:] + d2, out=depth[..., :-offset])
        offset += 1
    return depth


def standard_clicks(gt: torch.Tensor, pred: torch.Tensor, ignore: torch.Tensor,
                    clicked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The next standard click of each object: (found, positive, y, x), each (B,), from (B, H, W) bool masks.

    `found` is False where no unclicked error pixel is left (then the other values are meaningless).
    """
    valid = ~ignore
    errors = torch.cat([gt & ~pred & valid, ~gt & pred & valid])  # false negatives, then false positives
    depth = squared_depth(errors).masked_fill_(clicked.repeat(2, 1, 1), 0).flatten(1)
    deepest, where = depth.max(dim=1)  # the first maximal index in row-major order
    b, w = gt.shape[0], gt.shape[2]
    positive = deepest[:b] > deepest[b:]
    flat = torch.where(positive, where[:b], where[b:])
    found = (deepest[:b] > 0) | (deepest[b:] > 0)
    return found, positive, flat // w, flat % w
