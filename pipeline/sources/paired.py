"""Layouts of one image folder and one mask folder, each mask one object matched to its image by file stem (RITM's
reader of GrabCut, Berkeley and DAVIS). They have no split files and no classes: the split `all` is every image.

The sources differ in their folder names and in how a mask's levels become an object and ignore pixels (a rule that
also refuses unexpected values); this module does the rest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ifcn.errors import InputError
from ifcn.keys import name_to_key
from ifcn.pipeline.sources import ImageRef, Listing, SourceImage, SourceSpec, classless_map
from ifcn.pipeline.sources.files import (
    IMAGE_SUFFIXES,
    check_size,
    find_by_stem,
    list_files,
    read_image,
    read_mask_levels,
)
from ifcn.pipeline.synth import SynthConfig, SynthImage, image_ids, image_number, render_image

SPLIT = "all"
#: (levels of one mask as H×W uint8, the mask's path, the image key) -> object map (0, 1, 255 ignore); raises
#: InputError naming the path for values the layout does not have.
MaskRule = Callable[[np.ndarray, Path, str], np.ndarray]
#: Writes one synthetic image and its mask: (images folder, masks folder, key, rendered image, config).
SynthWriter = Callable[[Path, Path, str, SynthImage, SynthConfig], None]


@dataclass(frozen=True)
class PairedFolderSource:
    """A source of `<root>/<images>/<stem>.<ext>` images and `<root>/<masks>/<stem>.<ext>` one-object masks; the
    stem is the image's name, whatever characters it holds (`ifcn.keys` makes the shard key)."""

    name: str
    images: str
    masks: str
    #: The mask file ending the release uses, named in the error of a missing mask.
    mask_suffix: str
    synth_folder: str
    #: How to get the dataset (the fix of a missing folder).
    get: str
    rule: MaskRule
    synth_writer: SynthWriter
    splits: tuple[str, ...] = (SPLIT,)

    @property
    def restore(self) -> str:
        return f"restore the file from the {self.name} release, or remove the image and its mask"

    def default_split(self, spec: SourceSpec) -> str | None:
        return SPLIT

    def list_split(self, spec: SourceSpec, split: str) -> Listing:
        root = Path(spec.root or ".")
        if not root.is_dir():
            raise InputError(root, "does not exist or is not a folder", self.get, kind="missing_folder")
        root = root.resolve()
        missing = [name for name in (self.images, self.masks) if not (root / name).is_dir()]
        if missing:
            raise InputError(root / missing[0], f"missing folder(s) {', '.join(m + '/' for m in missing)} of the "
                             f"{self.name} layout under {root}", self.get, kind="missing_folder")
        images = find_by_stem(list_files(root / self.images, self.get), IMAGE_SUFFIXES)
        masks = find_by_stem(list_files(root / self.masks, self.get), IMAGE_SUFFIXES)
        if not images:
            raise InputError(root / self.images, "holds no image (.jpg, .png, .bmp or .tif file)", self.get,
                             kind="empty_split")
        refs = [self._ref(root, stem, names, masks.get(stem, [])) for stem, names in images.items()]
        orphans = sorted(set(masks) - set(images))
        notes = (f"note: {len(orphans)} mask(s) in {root / self.masks} have no image of the same stem and are not "
                 f"used: {', '.join(orphans[:5])}{' ...' if len(orphans) > 5 else ''}",) if orphans else ()
        return Listing(root, split, tuple(refs), notes)

    def _ref(self, root: Path, stem: str, names: list[str], masks: list[str]) -> ImageRef:
        image, key = root / self.images / names[0], name_to_key(stem)
        problem = None
        if len(names) > 1:
            problem = InputError(image, f"{len(names)} images have the stem {stem!r} ({', '.join(names)}), so a mask "
                                 "cannot be matched to one", "keep one image per stem", kind="duplicate_id", key=key)
        elif len(masks) > 1:
            problem = InputError(root / self.masks / masks[0], f"{len(masks)} masks have the stem {stem!r} "
                                 f"({', '.join(masks)})", "keep one mask per image", kind="duplicate_id", key=key)
        elif not masks:
            problem = InputError(root / self.masks / f"{stem}{self.mask_suffix}", f"missing mask of image {image} "
                                 "(masks are matched to images by file stem)", self.restore, kind="missing_file",
                                 key=key)
        return ImageRef(key, (names[0], masks[0] if masks else ""), problem, stem)

    def load(self, root: Path, ref: ImageRef) -> SourceImage:
        image_name, mask_name = ref.data
        image_path, mask_path = root / self.images / image_name, root / self.masks / mask_name
        image = read_image(image_path, ref.key, self.restore)
        levels = read_mask_levels(mask_path, ref.key, self.restore)
        check_size(image_path, image, mask_path, levels, ref.key, self.restore)
        object_map = self.rule(levels, mask_path, ref.key)
        return SourceImage(ref.key, image.data, object_map, classless_map(object_map), (image_path, mask_path),
                           ref.name)

    def write_synthetic(self, folder: Path, config: SynthConfig) -> None:
        """Every image of the config (train and val: these layouts have one split), rendered without void, with its
        largest object as the mask's one object."""
        config = dataclasses.replace(config, void_width=0, void_object_prob=0.0)
        images, masks = folder / self.images, folder / self.masks
        images.mkdir(parents=True)
        masks.mkdir(parents=True)
        train, val = image_ids(config)
        for key in sorted(train + val):
            self.synth_writer(images, masks, key, render_image(config, image_number(key)), config)


def largest_object(object_map: np.ndarray) -> np.ndarray:
    """The mask of the object (id 1..254) with the most pixels; all False when there is none."""
    counts = np.bincount(object_map.ravel(), minlength=256)
    counts[[0, 255]] = 0
    return object_map == int(counts.argmax()) if counts.any() else np.zeros(object_map.shape, bool)
