"""SBD, the Semantic Boundaries Dataset (Hariharan et al. 2011; spec §8): under `benchmark_RELEASE/dataset`,
`img/<id>.jpg`, `inst/<id>.mat`, `cls/<id>.mat`, `train.txt` (8498 ids) and `val.txt` (2857 ids).

The `.mat` files are MATLAB v5, read with `scipy.io.loadmat`: `GTinst` is a struct with `Segmentation` (H×W instance
ids), `Boundaries` and `Categories` (the class of each instance); `GTcls` has `Segmentation` (H×W class ids 0–20),
`Boundaries` and `CategoriesPresent`. SBD has no void band. RITM drops training objects that fill under 8 % of their
bounding box; here that is `--min-box-fill 0.08`, off by default, counted as a skip reason.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse

from ifcn.errors import InputError
from ifcn.keys import name_to_key
from ifcn.pipeline.sources import ImageRef, Listing, SourceImage, SourceSpec
from ifcn.pipeline.sources.files import (
    check_class_indices,
    check_size,
    list_files,
    missing_file,
    read_id_list,
    read_image,
)
from ifcn.pipeline.synth import SynthConfig, encode_jpeg, image_ids, image_number, render_image
from ifcn.pipeline.synth import boundary_band as label_band

SPLITS = ("train", "val")
IMAGES, INSTANCES, CLASSES = "img", "inst", "cls"
NUM_CLASSES = 21
GET_SBD = ("download benchmark.tgz (the Semantic Boundaries Dataset) and extract it so that "
           "benchmark_RELEASE/dataset/ holds img/, inst/, cls/, train.txt and val.txt, then pass that folder (or one "
           "above it) as --root")
RESTORE = "restore the file from the SBD release (benchmark.tgz), or remove the id from the split file"


def find_sbd_root(path: Path) -> Path:
    """The `dataset` folder, given it, `benchmark_RELEASE` or the folder holding `benchmark_RELEASE`; layout checked."""
    if not path.is_dir():
        raise InputError(path, "does not exist or is not a folder", GET_SBD, kind="missing_folder")
    root = next((c for c in (path / "benchmark_RELEASE" / "dataset", path / "dataset") if c.is_dir()), path)
    missing = [name for name in (IMAGES, INSTANCES, CLASSES) if not (root / name).is_dir()]
    if missing:
        raise InputError(root / missing[0], f"missing folder(s) {', '.join(m + '/' for m in missing)} of the SBD "
                         f"layout under {root}", GET_SBD, kind="missing_folder")
    return root


def mat_paths(root: Path, key: str) -> tuple[Path, Path, Path]:
    """The image, instance `.mat` and class `.mat` of `key`."""
    return root / IMAGES / f"{key}.jpg", root / INSTANCES / f"{key}.mat", root / CLASSES / f"{key}.mat"


def read_segmentation(path: Path, struct: str, key: str) -> np.ndarray:
    """The `Segmentation` field of struct `struct` in a MATLAB file, as H×W uint8; errors name the file."""
    try:
        contents = scipy.io.loadmat(path)
    except (FileNotFoundError, IsADirectoryError):
        raise missing_file(path, key, RESTORE) from None
    except Exception as error:  # scipy raises many types on hostile bytes; all mean "not a readable .mat"
        raise InputError(path, f"is not a readable MATLAB file ({type(error).__name__}: {error})", RESTORE,
                         kind="corrupt_mat", key=key) from None
    if struct not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise InputError(path, f"holds no {struct} struct (it holds {found})",
                         f"SBD's {path.parent.name}/ files hold a {struct} struct: {RESTORE}", kind="bad_mat", key=key)
    try:
        segmentation = np.asarray(contents[struct][0, 0]["Segmentation"])
    except (IndexError, KeyError, ValueError, TypeError):
        raise InputError(path, f"its {struct} struct has no Segmentation field", RESTORE, kind="bad_mat",
                         key=key) from None
    if segmentation.ndim != 2 or segmentation.dtype.kind not in "uif":
        raise InputError(path, f"its {struct}.Segmentation is not a 2-D numeric map ({segmentation.dtype}, shape "
                         f"{segmentation.shape})", RESTORE, kind="bad_mat", key=key)
    if segmentation.size and (segmentation.min() < 0 or segmentation.max() > 255
                              or not np.array_equal(segmentation, np.round(segmentation))):
        raise InputError(path, f"its {struct}.Segmentation holds values outside the whole numbers 0..255",
                         RESTORE, kind="bad_mat", key=key)
    return segmentation.astype(np.uint8)


class SbdSource:
    """`--source sbd --root benchmark_RELEASE/dataset --split train|val`."""

    name = "sbd"
    splits = SPLITS
    synth_folder = "benchmark_RELEASE/dataset"

    def default_split(self, spec: SourceSpec) -> str | None:
        return None

    def list_split(self, spec: SourceSpec, split: str) -> Listing:
        root = find_sbd_root(Path(spec.root or ".")).resolve()
        ids = read_id_list(root / f"{split}.txt", GET_SBD)
        present = {folder: list_files(root / folder, GET_SBD) for folder in (IMAGES, INSTANCES, CLASSES)}
        refs = []
        for name in ids:
            key = name_to_key(name)
            missing = [p for p in mat_paths(root, name) if p.name not in present[p.parent.name]]
            problem = missing_file(missing[0], key, RESTORE, f" listed in {split}.txt") if missing else None
            refs.append(ImageRef(key, problem=problem, name=name))
        return Listing(root, split, tuple(refs))

    def load(self, root: Path, ref: ImageRef) -> SourceImage:
        image_path, inst_path, cls_path = mat_paths(root, ref.name)
        image = read_image(image_path, ref.key, RESTORE)
        object_map = read_segmentation(inst_path, "GTinst", ref.key)
        class_map = read_segmentation(cls_path, "GTcls", ref.key)
        for path, segmentation in ((inst_path, object_map), (cls_path, class_map)):
            check_size(image_path, image, path, segmentation, ref.key, RESTORE)
        check_class_indices(cls_path, class_map, NUM_CLASSES, ref.key, RESTORE)
        return SourceImage(ref.key, image.data, object_map, class_map, (image_path, inst_path, cls_path), ref.name)

    def write_synthetic(self, folder: Path, config: SynthConfig) -> None:
        """JPEGs, `GTinst`/`GTcls` structs with every field of the release (sparse boundary cells included) and the
        two split files. SBD has no void: the images are rendered without the void band and void objects."""
        config = dataclasses.replace(config, void_width=0, void_object_prob=0.0)
        for name in (IMAGES, INSTANCES, CLASSES):
            (folder / name).mkdir(parents=True)
        train, val = image_ids(config)
        for key in sorted(train + val):
            image = render_image(config, image_number(key))
            image_path, inst_path, cls_path = mat_paths(folder, key)
            image_path.write_bytes(encode_jpeg(image.rgb, config.jpeg_quality))
            instances = [i for i in range(1, 255) if np.any(image.object_map == i)]
            classes = [int(image.class_map[image.object_map == i][0]) for i in instances]
            scipy.io.savemat(inst_path, {"GTinst": {
                "Segmentation": image.object_map,
                "Boundaries": _boundary_cells([image.object_map == i for i in instances]),
                "Categories": np.array(classes, np.uint8).reshape(-1, 1)}}, do_compression=True)
            scipy.io.savemat(cls_path, {"GTcls": {
                "Segmentation": image.class_map,
                "Boundaries": _boundary_cells([image.class_map == c for c in range(1, NUM_CLASSES)]),
                "CategoriesPresent": np.array(sorted(set(classes)), np.uint8).reshape(-1, 1)}}, do_compression=True)
        for split, ids in (("train", train), ("val", val)):
            (folder / f"{split}.txt").write_text("".join(f"{k}\n" for k in ids))


def _boundary_cells(masks: list[np.ndarray]) -> np.ndarray:
    """A MATLAB cell column of sparse logical boundary maps, one per mask (SBD's `Boundaries`)."""
    cells = np.empty((len(masks), 1), dtype=object)
    for i, mask in enumerate(masks):
        cells[i, 0] = scipy.sparse.csc_matrix(label_band(mask.astype(np.uint8), 1) & mask)
    return cells
