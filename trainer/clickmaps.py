"""Click distance channels (spec §3), computed on the device from padded click coordinates.

With at most a few dozen clicks per sample, computing min-distance maps from the coordinate list on the GPU is
cheaper than storing or transferring rasterised maps. Used by the trainer and the evaluator alike.
"""

from __future__ import annotations

import torch

CLIP = 255.0


def distance_maps(clicks: torch.Tensor, valid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Distance from every pixel to the nearest click, clipped at 255 and divided by 255.

    clicks: (B, K, 2) float or int (y, x) in pixels of the network input; valid: (B, K) bool, False for padding.
    Returns (B, 1, H, W) float32; a sample with no valid click gets 1.0 everywhere ("far everywhere").
    """
    device = clicks.device
    b, k = valid.shape
    if k == 0:
        return torch.ones(b, 1, height, width, device=device)
    ys = torch.arange(height, device=device, dtype=torch.float32).view(1, 1, height, 1)
    xs = torch.arange(width, device=device, dtype=torch.float32).view(1, 1, 1, width)
    cy = clicks[..., 0].float().view(b, k, 1, 1)
    cx = clicks[..., 1].float().view(b, k, 1, 1)
    d2 = (ys - cy).square() + (xs - cx).square()  # (B, K, H, W)
    d2 = d2.masked_fill(~valid.view(b, k, 1, 1), float("inf"))
    dist = d2.amin(dim=1, keepdim=True).sqrt()
    return dist.clamp_(max=CLIP).div_(CLIP)


def interaction_channels(pos: torch.Tensor, pos_valid: torch.Tensor, neg: torch.Tensor, neg_valid: torch.Tensor,
                         height: int, width: int) -> torch.Tensor:
    """The two extra input channels, positive then negative: (B, 2, H, W)."""
    return torch.cat([distance_maps(pos, pos_valid, height, width), distance_maps(neg, neg_valid, height, width)], 1)
