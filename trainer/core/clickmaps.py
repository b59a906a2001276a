"""Click channels (spec §3), computed from padded click coordinates on the device that trains or predicts.

Both encodings of an `InputSpec` start from the squared Euclidean distance (in input pixels) from each pixel to the
nearest valid click of the sample: `distance` clips it at `clip` (255) and divides by it (no valid click gives 1.0
everywhere); `disk` is 1.0 within `disk_radius` of a click, else 0.0 (no click: 0.0). Every formulation below
computes the same
float32 squared distances, `(y - cy)² + (x - cx)²`, takes their minimum (exact), clips at 255² and takes the square
root, so they agree bit for bit (a test checks it); they differ only in cost:

- `per_sample` (the CPU's): a running minimum over each sample's *valid* clicks only, one (H, W) plane at a time,
  written straight into the output. About 0.05 ms per click on a 384² map, a few times cheaper than OpenCV's exact
  transform of the rasterised clicks; beyond `EDT_CLICKS` clicks on the pixel grid that transform is cheaper and
  takes over (its distances squared and rounded to the exact integers, so the bits stay the same).
- `chunked` (the GPU's): the same running minimum vectorised over the batch, `SLOT_CHUNK` padded click slots at a
  time, so temporary memory does not grow with the padded click count and no host synchronisation is needed.
- `dense` (exported and compiled graphs): all slots at once, (B, K, H, W), with no Python loop, so a traced or
  exported graph keeps the click count dynamic; `torch.compile` fuses it into one reduction.

`distance_maps` picks the formulation from the device and whether a graph is being captured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ifcn.distance import edt
from ifcn.trainer.core.input_spec import InputSpec

#: The default spec (interactive, distance maps clipped at 255).
DEFAULT_SPEC = InputSpec()
#: Above this many valid clicks (on the pixel grid) a CPU map is rasterised and OpenCV's exact transform runs: at 384²
#: on one core it costs about as much as this many running-minimum steps (`python -m bench.bench_loader --maps-only`).
EDT_CLICKS = 48
#: Padded click slots reduced together by the device formulation: its temporary memory is this many maps.
SLOT_CHUNK = 8

SquaredFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


def _squared_offsets(coords: torch.Tensor, size: int) -> torch.Tensor:
    """(..., size) squared offsets (i - c)² of every pixel index i from each coordinate c, in float32."""
    grid = torch.arange(size, device=coords.device, dtype=torch.float32)
    return (grid - coords.float().unsqueeze(-1)).square()


def _on_grid(points: torch.Tensor, height: int, width: int) -> bool:
    """Whether every (y, x) is an integer pixel inside the map (the clicks a rasterised transform can represent)."""
    inside = (points >= 0).all() and (points[:, 0] < height).all() and (points[:, 1] < width).all()
    return bool(inside) and bool((points == points.round()).all())


def _edt_squared(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Exact squared distances to the nearest of `points` (integer pixels) with OpenCV's exact transform.

    OpenCV's float32 distances may differ from the true value in the last bit; squared and rounded they are the
    exact integers (errors far below 0.5 at these sizes), i.e. the running minimum's values bit for bit.
    """
    free = np.ones((height, width), bool)
    yx = points.long().numpy()
    free[yx[:, 0], yx[:, 1]] = False
    squared = np.square(edt(free))
    return torch.from_numpy(np.rint(squared, out=squared))


def per_sample_squared(clicks: torch.Tensor, valid: torch.Tensor, out: torch.Tensor) -> None:
    """Squared distance maps into `out` (B, 1, H, W), sample by sample over its valid clicks only (CPU)."""
    height, width = out.shape[-2:]
    scratch = torch.empty(height, width, dtype=torch.float32)
    for i in range(valid.shape[0]):
        points = clicks[i][valid[i]].float()
        plane = out[i, 0]
        if len(points) > EDT_CLICKS and _on_grid(points, height, width):
            plane.copy_(_edt_squared(points, height, width))
            continue
        plane.fill_(float("inf"))
        dy, dx = _squared_offsets(points[:, 0], height), _squared_offsets(points[:, 1], width)
        for k in range(len(points)):
            torch.add(dy[k].view(height, 1), dx[k].view(1, width), out=scratch)
            torch.minimum(plane, scratch, out=plane)


def chunked_squared(clicks: torch.Tensor, valid: torch.Tensor, out: torch.Tensor) -> None:
    """Squared distance maps into `out` (B, 1, H, W), vectorised over the batch, `SLOT_CHUNK` slots at a time.

    Padded slots get infinite row offsets, so they never win the minimum: no data-dependent shapes, no host sync.
    """
    height, width = out.shape[-2:]
    dy = _squared_offsets(clicks[..., 0], height).masked_fill_(~valid.unsqueeze(-1), float("inf"))  # (B, K, H)
    dx = _squared_offsets(clicks[..., 1], width)  # (B, K, W)
    plane = out[:, 0]
    plane.fill_(float("inf"))
    for start in range(0, valid.shape[1], SLOT_CHUNK):
        part = dy[:, start:start + SLOT_CHUNK, :, None] + dx[:, start:start + SLOT_CHUNK, None, :]
        torch.minimum(plane, part.amin(dim=1), out=plane)


def dense_squared(clicks: torch.Tensor, valid: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Squared distance maps (B, 1, H, W) of all K slots at once ((B, K, H, W) in memory) with no Python loop, so a
    traced or exported graph keeps the click count dynamic. The formulation of the first implementation."""
    b, k = valid.shape
    if k == 0:
        return torch.full((b, 1, height, width), float("inf"), device=clicks.device)
    dy = _squared_offsets(clicks[..., 0], height).view(b, k, height, 1)
    dx = _squared_offsets(clicks[..., 1], width).view(b, k, 1, width)
    return (dy + dx).masked_fill(~valid.view(b, k, 1, 1), float("inf")).amin(dim=1, keepdim=True)


def _dense_into(clicks: torch.Tensor, valid: torch.Tensor, out: torch.Tensor) -> None:
    out.copy_(dense_squared(clicks, valid, *out.shape[-2:]))


#: The formulations by name; each writes squared distances (inf without a click) into a (B, 1, H, W) float32 `out`.
FORMULATIONS: dict[str, SquaredFn] = {"per_sample": per_sample_squared, "chunked": chunked_squared,
                                      "dense": _dense_into}


def capturing_graph() -> bool:
    """Whether this call is being traced, exported or compiled (then only loop-free code may run)."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling()


def _finish(squared: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """Squared distances -> the spec's encoding (in place): distance clipped at `clip` / `clip`, or 0/1 disks."""
    if spec.click_encoding == "disk":
        return squared.copy_(squared <= spec.disk_radius ** 2)
    return squared.clamp_(max=spec.clip * spec.clip).sqrt_().div_(spec.clip)


def distance_maps(clicks: torch.Tensor, valid: torch.Tensor, height: int, width: int, *,
                  out: torch.Tensor | None = None, formulation: str | None = None,
                  spec: InputSpec = DEFAULT_SPEC) -> torch.Tensor:
    """The click channel of `spec`'s encoding: by default the distance from every pixel to the nearest valid click,
    clipped at 255 and divided by 255 (disks: 1.0 within the radius of a click).

    clicks: (B, K, 2) float or int (y, x) in pixels of the network input; valid: (B, K) bool, False for padding.
    Returns (B, 1, H, W) float32 on the clicks' device; a sample with no valid click gets 1.0 everywhere ("far
    everywhere"). `out` (a (B, 1, H, W) float32 view, e.g. a channel of the network input) receives the maps without
    a copy. `formulation` forces one of `FORMULATIONS` (tests, benchmarks); by default graphs being captured get
    `dense`, the CPU `per_sample` and other devices `chunked`.
    """
    if formulation is None and capturing_graph():
        maps = _finish(dense_squared(clicks, valid, height, width), spec)
        return maps if out is None else out.copy_(maps)
    if formulation is None:
        formulation = "per_sample" if clicks.device.type == "cpu" else "chunked"
    if out is None:
        out = torch.empty(valid.shape[0], 1, height, width, device=clicks.device)
    FORMULATIONS[formulation](clicks, valid, out)
    return _finish(out, spec)


def interaction_channels(pos: torch.Tensor, pos_valid: torch.Tensor, neg: torch.Tensor, neg_valid: torch.Tensor,
                         height: int, width: int, *, out: torch.Tensor | None = None,
                         spec: InputSpec = DEFAULT_SPEC) -> torch.Tensor:
    """The two click channels of `spec`, positive then negative: (B, 2, H, W), written into `out` when given."""
    if out is None:
        if capturing_graph():
            return torch.cat([distance_maps(pos, pos_valid, height, width, spec=spec),
                              distance_maps(neg, neg_valid, height, width, spec=spec)], 1)
        out = torch.empty(pos_valid.shape[0], 2, height, width, device=pos.device)
    distance_maps(pos, pos_valid, height, width, out=out[:, 0:1], spec=spec)
    distance_maps(neg, neg_valid, height, width, out=out[:, 1:2], spec=spec)
    return out
