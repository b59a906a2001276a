"""How often strategy-3 clicks repeat across the pairs of one object (issue 8 item 5, spec §2).

Run: `python bench/bench_strategy3_ties.py [--images 100] [--pairs 15] [--long-side 500]`. The object maps are the
synthetic VOC set's (`ifcn.pipeline.synth.render_image`, seed 0, rendered in memory); every object is sampled with the
default click config, and for each object with at least two strategy-3 pairs we count the strategy-3 clicks that also
occur (same pixel) in another of its strategy-3 pairs. The band `0 < dist_out < d` caps the distance, so many pixels
tie at the farthest-point maximum: breaking those ties by row order repeats most clicks, a random tie-break does not.
"""

from __future__ import annotations

import argparse
from collections import Counter

from ifcn.pipeline.click_sampling import ClickConfig, image_rng, sample_image_clicks
from ifcn.pipeline.synth import SynthConfig, render_image


def repetition(pairs: list[tuple[tuple[int, int], ...]]) -> tuple[int, int]:
    """(clicks that occur in another of the pairs, all clicks) over one object's strategy-3 pairs."""
    seen_in = Counter(p for clicks in pairs for p in set(clicks))
    return sum(1 for clicks in pairs for p in clicks if seen_in[p] > 1), sum(len(c) for c in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--long-side", type=int, default=500)
    args = parser.parse_args()
    synth = SynthConfig(train_images=args.images, val_images=0, seed=0, long_side=args.long_side)
    config = ClickConfig(pairs=args.pairs)
    repeated = total = objects = first_repeated = firsts = 0
    for number in range(1, args.images + 1):
        image = render_image(synth, number)
        clicks = sample_image_clicks(str(number), image.object_map, image.class_map, config, image_rng(0, str(number)))
        for obj in clicks.objects:
            s3 = [p.neg for p in obj.pairs if p.strategy == 3]
            if len(s3) < 2:
                continue
            r, t = repetition(s3)
            repeated, total, objects = repeated + r, total + t, objects + 1
            r, t = repetition([clicks[1:] for clicks in s3])  # the farthest-point picks only (the first is uniform)
            first_repeated, firsts = first_repeated + r, firsts + t
    print(f"{objects} objects with ≥ 2 strategy-3 pairs (of {args.pairs}), {total} strategy-3 clicks: "
          f"{100 * repeated / max(total, 1):.1f} % repeat in another pair of the same object "
          f"({100 * first_repeated / max(firsts, 1):.1f} % of the farthest-point picks)")


if __name__ == "__main__":
    main()
