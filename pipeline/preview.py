"""`ifcn-prep inspect`: draw one shard sample to a PNG, so that a user can see what the sampler made of an object.

Drawn with the shared plotting helpers (matplotlib's object API on an Agg canvas), so it works on servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ifcn.outputs import check_outputs
from ifcn.plotting import DPI, blank_figure, is_own_png, save_png
from ifcn.shards.manifest import MANIFEST_NAME, ShardSet, resolve_shards
from ifcn.shards.reader import read_shard
from ifcn.shards.records import ObjectClicks, Sample

STRATEGY_NAMES = {1: "background band", 2: "other objects", 3: "boundary cover"}
#: Output width at least this many pixels (small images are scaled up so that the title fits), plus a title band.
MIN_WIDTH_PX = 640
TITLE_PX = 48


@dataclass(frozen=True)
class View:
    """What was drawn: the sample's key, the object (None when the image has no object with clicks), the pair."""

    key: str
    object_id: int | None
    pair: int | None
    strategy: int | None
    title: str


def find_sample(shards: str | Path | ShardSet, key: str | None = None) -> Sample:
    """The sample `key` (its shard key or its name in the dataset) of a shard set (folder, manifest or pattern, or
    one resolved already); without a key, the first sample of all."""
    shard_set = shards if isinstance(shards, ShardSet) else resolve_shards(shards)
    shards = shard_set.where if isinstance(shards, ShardSet) else shards
    for location in shard_set.locations:
        for sample in read_shard(location):
            if key is None or key in (sample.key, sample.clicks.name):
                return sample
    if key is None:
        raise ValueError(f"{shards}: the shards hold no sample")
    raise ValueError(f"{shards}: no sample with key {key!r}; leave out --key to draw the first sample")


def _choose(sample: Sample, object_id: int | None) -> ObjectClicks | None:
    kept = {o.id: o for o in sample.clicks.objects}
    if object_id is None:
        return next(iter(kept.values()), None)
    if object_id in kept:
        return kept[object_id]
    skipped = {s.id: s.reason for s in sample.clicks.skipped}
    why = f"it was skipped ({skipped[object_id]})" if object_id in skipped else "no such object"
    raise ValueError(f"{sample.key}: object {object_id} has no clicks: {why}; pass --object with one of {sorted(kept)}")


def output_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) in pixels of the PNG drawn for an image of `height` × `width`."""
    scale = max(1.0, MIN_WIDTH_PX / width)
    return round(width * scale), round(height * scale) + TITLE_PX


def draw_sample(sample: Sample, png: Path, object_id: int | None = None, pair: int = 0) -> View:
    """Draw the image, the object's outline (yellow), positive clicks (green) and negative clicks (red) of `pair`."""
    image = sample.image()
    height, width = image.shape[:2]
    obj = _choose(sample, object_id)
    if obj is not None and not 0 <= pair < len(obj.pairs):
        raise ValueError(f"{sample.key}: object {obj.id} has pairs 0..{len(obj.pairs) - 1}, not {pair}; choose --pair "
                         "within them")
    out_w, out_h = output_size(height, width)
    fig = blank_figure(out_w / DPI, out_h / DPI)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - TITLE_PX / out_h))
    ax.imshow(image, interpolation="nearest", aspect="auto")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()
    if obj is None:
        view = View(sample.key, None, None, None, f"{sample.clicks.name} · no object with clicks")
    else:
        mask = (sample.object_map() == obj.id).astype(np.float32)
        ax.contour(mask, levels=[0.5], colors="yellow", linewidths=1.5)
        chosen = obj.pairs[pair]
        for points, colour in ((chosen.pos, "lime"), (chosen.neg, "red")):
            if points:
                ys, xs = zip(*points, strict=True)
                ax.scatter(xs, ys, s=60, c=colour, edgecolors="black", linewidths=1.0, zorder=3)
        title = (f"{sample.clicks.name} · object {obj.id} (class {obj.cls}, {obj.area} px)"
                 f" · pair {pair} (0..{len(obj.pairs) - 1})"
                 f" · strategy {chosen.strategy} ({STRATEGY_NAMES.get(chosen.strategy, '?')})")
        view = View(sample.key, obj.id, pair, chosen.strategy, title)
    fig.text(0.5, 1.0 - TITLE_PX / 2 / out_h, view.title, ha="center", va="center", fontsize=10)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    save_png(fig, png, tight=False)
    return view


def inspect_output(shards: str | Path, png: Path, key: str | None = None, object_id: int | None = None,
                   pair: int = 0) -> View:
    """Find a sample in the shards and draw it to `png`, which may not be one of the shards, their manifest or another
    file that is not a figure of this tool."""
    shard_set = resolve_shards(shards)
    inputs = [*shard_set.locations, shards, Path(shards) / MANIFEST_NAME]
    check_outputs([Path(png)], flag="--out", inputs=inputs, ours=is_own_png)
    return draw_sample(find_sample(shard_set, key), png, object_id, pair)
