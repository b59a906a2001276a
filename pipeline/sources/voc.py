"""PASCAL VOC 2012 segmentation (spec §1): `JPEGImages/<id>.jpg`, `SegmentationClass/<id>.png`,
`SegmentationObject/<id>.png`, `ImageSets/Segmentation/{train,val,trainval}.txt`.

Masks are read as raw palette indices (a colour conversion destroys the ids); images keep their stored bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib.resources import files
from pathlib import Path

from ifcn.errors import InputError
from ifcn.keys import name_to_key
from ifcn.palette import save_index_png
from ifcn.pipeline.sources import ImageRef, Listing, SourceImage, SourceSpec
from ifcn.pipeline.sources.files import (
    check_class_indices,
    check_size,
    list_files,
    missing_file,
    read_id_list,
    read_image,
    read_index_mask,
)
from ifcn.pipeline.synth import SYNTH_MARKER, SynthConfig, encode_jpeg, image_ids, image_number, render_image

SPLITS = ("train", "val", "trainval")
IMAGES, CLASSES, OBJECTS, SETS = "JPEGImages", "SegmentationClass", "SegmentationObject", "ImageSets/Segmentation"
LAYOUT = (IMAGES, CLASSES, OBJECTS, SETS)
NUM_CLASSES = 21  # background + 20 object classes; 255 = void
VOC_TAR = "VOCtrainval_11-May-2012.tar"
GET_VOC = (f"download {VOC_TAR} and extract it (tar xf {VOC_TAR}) so that VOCdevkit/VOC2012/ with JPEGImages/, "
           "SegmentationClass/, SegmentationObject/ and ImageSets/Segmentation/ exists, then pass VOCdevkit/VOC2012 "
           "(or a folder above it)")
RESTORE = f"restore the original file from {VOC_TAR} (or regenerate the synthetic set), or remove the id from the split"


def find_voc_root(path: Path | str) -> Path:
    """The VOC2012 folder, given it, its `VOCdevkit` parent or the folder holding `VOCdevkit`; its layout checked."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "does not exist or is not a folder", GET_VOC, kind="missing_folder")
    candidates = (path / "VOCdevkit" / "VOC2012", path / "VOC2012")
    root = next((c for c in candidates if c.is_dir()), path)
    if root is path and not any((path / name.split("/")[0]).is_dir() for name in LAYOUT):
        raise InputError(path, "holds no VOC 2012 data: expected VOCdevkit/VOC2012/, VOC2012/ or JPEGImages/, "
                         "SegmentationClass/, SegmentationObject/ and ImageSets/Segmentation/ inside it",
                         GET_VOC, kind="missing_folder")
    missing = [name for name in LAYOUT if not (root / name).is_dir()]
    if missing:
        raise InputError(root / missing[0], f"missing folder(s) {', '.join(m + '/' for m in missing)} of the VOC 2012 "
                         f"layout under {root}", GET_VOC, kind="missing_folder")
    return root


def read_split(root: Path, split: str) -> list[str]:
    """The ids of `ImageSets/Segmentation/<split>.txt` in file order (blank lines ignored); bad lists raise."""
    folder = Path(root) / SETS
    if split not in SPLITS:
        raise InputError(folder / f"{split}.txt", f"unknown split {split!r}", "split must be train, val or trainval",
                         kind="bad_split")
    if not folder.is_dir():
        raise InputError(folder, "missing folder", GET_VOC, kind="missing_folder")
    return read_id_list(folder / f"{split}.txt", GET_VOC)


def image_paths(root: Path, key: str) -> tuple[Path, Path, Path]:
    """The JPEG, class mask and object mask paths of image `key`."""
    root = Path(root)
    return root / IMAGES / f"{key}.jpg", root / CLASSES / f"{key}.png", root / OBJECTS / f"{key}.png"


def check_files(root: Path, ids: list[str]) -> list[InputError]:
    """One error per id whose JPEG or masks are missing (or are folders): a cheap up-front check (three folder
    listings, no stat call per file), fast on network file systems with thousands of ids."""
    root = Path(root)
    present = {folder: list_files(root / folder, GET_VOC) for folder in (IMAGES, CLASSES, OBJECTS)}
    errors = []
    for key in ids:
        missing = [p for p in image_paths(root, key) if p.name not in present[p.parent.name]]
        if missing:
            others = f" (also missing: {', '.join(str(p) for p in missing[1:])})" if missing[1:] else ""
            errors.append(missing_file(missing[0], name_to_key(key), RESTORE, f" listed in the split{others}"))
    return errors


def load_voc_image(root: Path, name: str, num_classes: int = NUM_CLASSES) -> SourceImage:
    """Read and check image `name` (an id of a split file): its stored bytes (fully decoded once), masks as raw
    indices of its size."""
    key = name_to_key(name)
    jpg_path, class_path, object_path = image_paths(root, name)
    image = read_image(jpg_path, key, RESTORE)
    class_map = read_index_mask(class_path, key, RESTORE)
    object_map = read_index_mask(object_path, key, RESTORE)
    for path, mask in ((class_path, class_map), (object_path, object_map)):
        check_size(jpg_path, image, path, mask, key, RESTORE)
    check_class_indices(class_path, class_map, num_classes, key, RESTORE)
    return SourceImage(key, image.data, object_map, class_map, (jpg_path, class_path, object_path), name)


def reference_images(split: str) -> int | None:
    """Number of images of `split` in the official VOC 2012 release (`manifests/voc2012.json`), if it is a VOC split."""
    facts = json.loads(files("ifcn.manifests").joinpath("voc2012.json").read_text())
    split_facts = facts["splits"].get(split)
    return None if split_facts is None else int(split_facts["images"])


class VocSource:
    """`--source voc` (the default; `--voc-root` is its `--root`)."""

    name = "voc"
    splits = SPLITS
    synth_folder = "VOCdevkit/VOC2012"

    def default_split(self, spec: SourceSpec) -> str | None:
        return None

    def list_split(self, spec: SourceSpec, split: str) -> Listing:
        root = find_voc_root(Path(spec.root or ".")).resolve()
        ids = read_split(root, split)
        problems = {e.key: e for e in check_files(root, ids)}
        expected = reference_images(split)
        notes = ()
        if expected is not None and len(ids) != expected and not (root / SYNTH_MARKER).exists():  # synthetic: exempt
            notes = (f"warning: {root}: split {split!r} lists {len(ids)} images, VOC 2012 has {expected}; "
                     "this VOC copy may be incomplete",)
        refs = tuple(ImageRef(k, problem=problems.get(k), name=n) for n, k in ((n, name_to_key(n)) for n in ids))
        return Listing(root, split, refs, notes)

    def load(self, root: Path, ref: ImageRef) -> SourceImage:
        return load_voc_image(root, ref.name)

    def write_synthetic(self, folder: Path, config: SynthConfig) -> None:
        """JPEGs, palette PNG masks (VOC colour map, void band) and the three split files; plus the marker file that
        exempts the set from the reference-count warning."""
        dirs = {name: folder / name for name in (IMAGES, CLASSES, OBJECTS)}
        sets = folder / SETS
        for d in [*dirs.values(), sets]:
            d.mkdir(parents=True)
        train, val = image_ids(config)
        for key in sorted(train + val):
            image = render_image(config, image_number(key))
            (dirs[IMAGES] / f"{key}.jpg").write_bytes(encode_jpeg(image.rgb, config.jpeg_quality))
            save_index_png(image.class_map, dirs[CLASSES] / f"{key}.png")
            save_index_png(image.object_map, dirs[OBJECTS] / f"{key}.png")
        for split, ids in (("train", train), ("val", val), ("trainval", sorted(train + val))):
            (sets / f"{split}.txt").write_text("".join(f"{k}\n" for k in ids))
        (folder / SYNTH_MARKER).write_text(json.dumps(asdict(config), indent=2, sort_keys=True) + "\n")
