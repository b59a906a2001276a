"""One source image to one shard `Sample`: its stored image bytes, both index maps as PNG, and the sampled clicks.

The image's generator comes from (seed, key) only, so a sample does not depend on which shard or worker made it.
"""

from __future__ import annotations

from ifcn.pipeline.click_sampling import ClickConfig, image_rng, sample_image_clicks
from ifcn.pipeline.sources import SourceImage
from ifcn.shards.records import Sample, encode_mask


def make_sample(image: SourceImage, config: ClickConfig, seed: int) -> Sample:
    """Sample the clicks of every object of `image` and pack the shard record; the image is never re-encoded."""
    rng = image_rng(seed, image.key)
    clicks = sample_image_clicks(image.key, image.object_map, image.class_map, config, rng, name=image.name)
    return Sample(image.key, image.image, encode_mask(image.class_map), encode_mask(image.object_map), clicks)
