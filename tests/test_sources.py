"""Every source on its synthetic layout (exact maps, ignore pixels, class ids, untouched image bytes), every kind of bad
input (an error naming the file, or a recorded skip), and `ifcn-prep sample --source X` + `verify` for all six, then
one `ifcn-eval noc` call over the six datasets."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from ifcn.errors import InputError
from ifcn.labels import VOID
from ifcn.pipeline.click_sampling import ClickConfig
from ifcn.pipeline.orchestrate import SampleJob, run_sample
from ifcn.pipeline.prep_cli import main
from ifcn.pipeline.sample import make_sample
from ifcn.pipeline.sources import SOURCES, ImageRef, SourceSpec, classless_map, get_source
from ifcn.pipeline.sources.grabcut_berkeley import SYNTH_BAND_WIDTH
from ifcn.pipeline.sources.paired import largest_object
from ifcn.pipeline.synth import SynthImage, boundary_band, image_number, render_image
from ifcn.shards.manifest import load_manifest
from ifcn.shards.records import decode_dataset_image
from ifcn.trainer.evaluation.eval_cli import main as eval_main
from tests.conftest import SYNTH_TEST_CONFIG
from tests.eval_data import make_checkpoint

#: The val split of voc, sbd and coco; every image (train and val) of the one-split layouts.
EXPECTED_IMAGES = {"voc": 6, "sbd": 6, "coco": 6, "grabcut": 18, "berkeley": 18, "davis": 18}
#: How the layouts without VOC's void render their images.
NO_VOID = dataclasses.replace(SYNTH_TEST_CONFIG, void_width=0, void_object_prob=0.0)


def rendered(key: str, void: bool = False) -> SynthImage:
    return render_image(SYNTH_TEST_CONFIG if void else NO_VOID, image_number(key))


def image_file(name: str, root: Path, ref: ImageRef) -> Path:
    if name == "voc":
        return root / "JPEGImages" / f"{ref.key}.jpg"
    if name == "sbd":
        return root / "img" / f"{ref.key}.jpg"
    if name == "coco":
        return root / ref.data.file_name
    return root / get_source(name).images / ref.data[0]


def one_object(key: str) -> np.ndarray:
    return largest_object(rendered(key).object_map)


def grabcut_maps(key: str) -> tuple[np.ndarray, np.ndarray]:
    obj = one_object(key)
    band = boundary_band(obj.astype(np.uint8), SYNTH_BAND_WIDTH)
    object_map = np.where(band, VOID, obj).astype(np.uint8)
    return object_map, classless_map(object_map)


def one_object_maps(key: str) -> tuple[np.ndarray, np.ndarray]:
    object_map = one_object(key).astype(np.uint8)
    return object_map, classless_map(object_map)


#: The maps each source must read, from the renderer the synthetic layouts were written with.
EXPECTED_MAPS: dict[str, Callable[[str], tuple[np.ndarray, np.ndarray]]] = {
    "voc": lambda key: (rendered(key, void=True).object_map, rendered(key, void=True).class_map),
    "sbd": lambda key: (rendered(key).object_map, rendered(key).class_map),
    "grabcut": grabcut_maps,
    "berkeley": one_object_maps,
    "davis": one_object_maps,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_MAPS))
def test_each_source_reads_its_synthetic_layout_exactly(name: str, synth_layouts: dict[str, SourceSpec]) -> None:
    spec, source = synth_layouts[name], get_source(name)
    listing = source.list_split(spec, str(spec.split))
    assert listing.problems == [] and len(listing.refs) == EXPECTED_IMAGES[name]
    ignored = 0
    for ref in listing.refs:
        image = source.load(listing.root, ref)
        file = image_file(name, listing.root, ref)
        if file.suffix == ".bmp":  # stored losslessly as PNG
            assert image.image.startswith(b"\x89PNG")
            assert np.array_equal(decode_dataset_image(image.image), np.asarray(Image.open(file).convert("RGB")))
        else:
            assert image.image == file.read_bytes()  # the stored bytes, untouched
        object_map, class_map = EXPECTED_MAPS[name](ref.key)
        assert np.array_equal(image.object_map, object_map) and np.array_equal(image.class_map, class_map)
        ignored += int(np.count_nonzero(image.object_map == VOID))
        classes = set(np.unique(image.class_map).tolist()) - {0, VOID}
        assert classes <= set(range(1, 21)) if name in ("voc", "sbd") else classes == set()
    assert (ignored > 0) == (name in ("voc", "grabcut"))  # SBD, Berkeley and DAVIS have no ignore region
    if name == "grabcut":
        assert {Path(r.data[0]).suffix for r in listing.refs} == {".jpg", ".bmp"}


def test_coco_reads_polygons_rle_crowd_regions_and_category_ids(synth_layouts: dict[str, SourceSpec]) -> None:
    spec, source = synth_layouts["coco"], get_source("coco")
    listing = source.list_split(spec, "val2017")
    assert listing.problems == [] and len(listing.refs) == EXPECTED_IMAGES["coco"]
    annotations = json.loads(Path(str(spec.coco_json)).read_text())["annotations"]
    kinds = set()
    for ref in listing.refs:
        image = source.load(listing.root, ref)
        assert image.image == (listing.root / ref.data.file_name).read_bytes()
        anns = [a for a in annotations if a["image_id"] == int(ref.key)]
        objects = [a for a in anns if not a["iscrowd"]]
        ids = set(np.unique(image.object_map).tolist()) - {0, VOID}
        assert len(ids) == len(objects)
        assert set(np.unique(image.class_map).tolist()) - {0, VOID} == {a["category_id"] for a in objects}
        clicks = make_sample(image, ClickConfig(pairs=1, min_area=0), seed=0).clicks  # category ids kept as classes
        assert {o.cls for o in (*clicks.objects, *clicks.skipped)} == {a["category_id"] for a in objects}
        crowd = sum(a["area"] for a in anns if a["iscrowd"])
        assert np.count_nonzero(image.object_map == VOID) == crowd  # crowd regions (on background) are ignored
        truth = render_image(NO_VOID, int(ref.key)).object_map  # COCO keys are the image ids: the render numbers
        exact = 0
        for object_id in ids:  # each painted object lies where the renderer drew it: exactly for RLE, closely else
            painted = image.object_map == object_id
            drawn = truth == np.bincount(truth[painted]).argmax()
            iou = np.count_nonzero(painted & drawn) / np.count_nonzero(painted | drawn)
            assert iou > 0.8
            exact += iou == 1.0
        rle = [a for a in objects if isinstance(a["segmentation"], dict)]
        assert exact >= len(rle)
        kinds |= {"rle" if isinstance(a["segmentation"], dict) else "polygons" for a in objects}
    assert kinds == {"polygons", "rle"}
    assert any(a["iscrowd"] and isinstance(a["segmentation"]["counts"], list) for a in annotations)
    assert {Path(r.data.file_name).suffix for r in listing.refs} == {".jpg", ".png"}


# ---------------------------------------------------------------- bad input


def _copy(spec: SourceSpec, tmp_path: Path) -> SourceSpec:
    """A private copy of a layout (COCO: images and annotation file) to damage."""
    root = Path(shutil.copytree(Path(str(spec.root)), tmp_path / "data" / Path(str(spec.root)).name))
    coco_json = None
    if spec.coco_json is not None:
        coco_json = Path(shutil.copy(spec.coco_json, tmp_path / "instances.json"))
    return SourceSpec(spec.name, root, spec.split, coco_json)


def _first(spec: SourceSpec) -> ImageRef:
    return get_source(spec.name).list_split(spec, str(spec.split)).refs[0]


def _rm(rel: str) -> Callable[[SourceSpec], Path]:
    def damage(spec: SourceSpec) -> Path:
        path = Path(str(spec.root)) / rel.format(key=_first(spec).key)
        shutil.rmtree(path) if path.is_dir() else path.unlink()
        return path
    return damage


def _mat_without_gtinst(spec: SourceSpec) -> Path:
    path = Path(str(spec.root)) / "inst" / f"{_first(spec).key}.mat"
    scipy.io.savemat(path, {"GTcls": {"Segmentation": np.zeros((4, 4), np.uint8)}})
    return path


def _mat_of_another_size(spec: SourceSpec) -> Path:
    path = Path(str(spec.root)) / "inst" / f"{_first(spec).key}.mat"
    scipy.io.savemat(path, {"GTinst": {"Segmentation": np.zeros((7, 9), np.uint8), "Boundaries": np.zeros((0, 1)),
                                       "Categories": np.zeros((0, 1), np.uint8)}})
    return path


def _mask(spec: SourceSpec) -> Path:
    source, ref = get_source(spec.name), _first(spec)
    return Path(str(spec.root)) / source.masks / ref.data[1]


def _rm_mask(spec: SourceSpec) -> Path:
    path = _mask(spec)
    path.unlink()
    return path


def _mask_with_level(level: int) -> Callable[[SourceSpec], Path]:
    def damage(spec: SourceSpec) -> Path:
        path = _mask(spec)
        levels = np.asarray(Image.open(path).convert("L")).copy()
        levels[:4, :4] = level
        Image.fromarray(levels).save(path, format=Image.open(path).format)
        return path
    return damage


def _resized_mask(spec: SourceSpec) -> Path:
    path = _mask(spec)
    with Image.open(path) as mask:
        mask.resize((mask.width + 3, mask.height)).save(path, format=mask.format)
    return path


def _coco_edit(edit: Callable[[dict], None]) -> Callable[[SourceSpec], Path]:
    def damage(spec: SourceSpec) -> Path:
        path = Path(str(spec.coco_json))
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
        return path
    return damage


def _coco_missing_image(spec: SourceSpec) -> Path:
    path = Path(str(spec.root)) / _first(spec).data.file_name
    path.unlink()
    return path


def _coco_wrong_size(spec: SourceSpec) -> Path:
    _coco_edit(lambda d: d["images"][0].update(height=d["images"][0]["height"] + 1))(spec)
    return Path(str(spec.root)) / _first(spec).data.file_name


#: case -> (source, damage returning the file at fault, error kind, whether the error is one image's (then
#: `--on-error skip` records it and goes on) or the whole dataset's (then both policies stop)).
BAD_INPUT = {
    "sbd_missing_folder": ("sbd", _rm("inst"), "missing_folder", False),
    "sbd_missing_mat": ("sbd", _rm("inst/{key}.mat"), "missing_file", True),
    "sbd_mat_without_gtinst": ("sbd", _mat_without_gtinst, "bad_mat", True),
    "sbd_size_mismatch": ("sbd", _mat_of_another_size, "size_mismatch", True),
    "grabcut_missing_folder": ("grabcut", _rm("boundary_GT"), "missing_folder", False),
    "grabcut_missing_mask": ("grabcut", _rm_mask, "missing_file", True),
    "grabcut_unexpected_mask_value": ("grabcut", _mask_with_level(64), "bad_mask_value", True),
    "berkeley_unexpected_mask_value": ("berkeley", _mask_with_level(1), "bad_mask_value", True),
    "berkeley_size_mismatch": ("berkeley", _resized_mask, "size_mismatch", True),
    "davis_missing_folder": ("davis", _rm("img"), "missing_folder", False),
    "davis_missing_mask": ("davis", _rm_mask, "missing_file", True),
    "coco_image_file_missing": ("coco", _coco_missing_image, "missing_file", True),
    "coco_annotation_of_an_unlisted_image": (
        "coco", _coco_edit(lambda d: d["annotations"][0].update(image_id=999_999)), "bad_annotation", False),
    "coco_category_beyond_the_class_map": (
        "coco", _coco_edit(lambda d: d["categories"].append({"id": 300, "name": "x"})), "bad_category", False),
    "coco_image_of_another_size": ("coco", _coco_wrong_size, "size_mismatch", True),
    "coco_unusable_segmentation": (
        "coco", _coco_edit(lambda d: d["annotations"][0].update(segmentation={"counts": [5], "size": [1, 1]})),
        "bad_annotation", True),
}


def _job(spec: SourceSpec, out: Path, on_error: str, scheduler: str) -> SampleJob:
    return SampleJob(source=spec.name, root=spec.root, split=spec.split, coco_json=spec.coco_json, out=out,
                     clicks=ClickConfig(pairs=1), images_per_shard=64, on_error=on_error, scheduler=scheduler,
                     progress=False)


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_names_the_file_or_is_a_recorded_skip(case: str, synth_layouts: dict[str, SourceSpec],
                                                         tmp_path: Path, dask_address: str) -> None:
    name, damage, kind, per_image = BAD_INPUT[case]
    spec = _copy(synth_layouts[name], tmp_path)
    key = _first(spec).key
    bad = damage(spec)
    with pytest.raises(InputError) as info:
        run_sample(_job(spec, tmp_path / "failed", "fail", dask_address), log=lambda m: None)
    error = info.value
    assert (error.path, error.kind) == (str(bad), kind) and str(error).startswith(f"{bad}: ") and len(error.fix) > 20
    assert not (tmp_path / "failed" / "manifest.json").exists()
    if not per_image:
        with pytest.raises(InputError, match="Fix:"):
            run_sample(_job(spec, tmp_path / "skipped", "skip", dask_address), log=lambda m: None)
        return
    result = run_sample(_job(spec, tmp_path / "skipped", "skip", dask_address), log=lambda m: None)
    [skipped] = result.manifest.totals.skipped_images
    assert (skipped.key, skipped.file) == (key, str(bad)) and skipped.reason.startswith(f"{kind}: ")
    assert result.manifest.totals.images == EXPECTED_IMAGES[name] - 1


def test_low_box_fill_objects_are_skipped_only_when_asked(synth_layouts: dict[str, SourceSpec], tmp_path: Path,
                                                          dask_address: str) -> None:
    spec = synth_layouts["sbd"]
    counts = []
    for fill in (0.0, 0.6):
        job = dataclasses.replace(_job(spec, tmp_path / str(fill), "fail", dask_address),
                                  clicks=ClickConfig(pairs=1, min_box_fill=fill))
        counts.append(run_sample(job, log=lambda m: None).manifest.totals)
    assert "low_box_fill" not in counts[0].skipped_objects
    assert counts[1].skipped_objects["low_box_fill"] > 0
    seen = [t.objects + sum(t.skipped_objects.values()) for t in counts]
    assert seen[0] == seen[1] and counts[1].objects < counts[0].objects  # the same objects, more of them skipped


# ---------------------------------------------------------------- the CLI, all six layouts


def test_sample_verify_and_one_noc_table_for_every_layout_through_the_cli(
        synth_layouts: dict[str, SourceSpec], tmp_path: Path, dask_address: str) -> None:
    """The issue's whole path for every source: sample, verify, then ONE evaluation call giving one row per dataset."""
    assert set(synth_layouts) == set(SOURCES)
    for name, spec in synth_layouts.items():
        out = tmp_path / name
        args = ["sample", *spec.cli_args(), "--pairs", "1", "--out", out, "--no-progress", "--scheduler", dask_address]
        result = CliRunner().invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, (name, result.output)
        manifest = load_manifest(out)
        assert (manifest.source.name, manifest.source.split) == (name, spec.split)
        assert manifest.totals.images == EXPECTED_IMAGES[name] and manifest.totals.objects > 0
        assert bool(manifest.source.annotation_sha256) == (name == "coco")
        verified = CliRunner().invoke(main, ["verify", str(out)])
        assert verified.exit_code == 0 and "OK" in verified.output, (name, verified.output)
    checkpoint = make_checkpoint(tmp_path / "untrained.pt", "interactive")
    report = tmp_path / "noc"
    datasets = [arg for name in synth_layouts for arg in ("--shards", f"{name}={tmp_path / name}")]
    evaluated = CliRunner().invoke(eval_main, ["noc", "--checkpoint", str(checkpoint), *datasets, "--device", "cpu",
                                               "--max-clicks", "2", "--no-progress", "--out", str(report)])
    assert evaluated.exit_code == 0, evaluated.output
    rows = [line.split("|")[1:-1] for line in evaluated.output.splitlines() if line.startswith("| ")][2:]
    assert [row[0].strip() for row in rows] == list(synth_layouts)
    combined = json.loads((report / "summary.json").read_text())
    for name in synth_layouts:
        summary = json.loads((report / name / "summary.json").read_text())
        assert summary["num_objects"] == combined["datasets"][name]["num_objects"] > 0
        assert summary["manifest_id"] == load_manifest(tmp_path / name).id


def test_source_options_are_checked(synth_layouts: dict[str, SourceSpec], tmp_path: Path) -> None:
    root = synth_layouts["grabcut"].root
    for args, message in (
        (["--source", "sbd", "--root", root], "--split is required for --source sbd: one of train, val"),
        (["--source", "grabcut", "--root", root, "--split", "val"], "--split must be one of all for --source grabcut"),
        (["--source", "coco", "--coco-images", root], "--coco-json is required with --source coco"),
        (["--source", "sbd", "--voc-root", root, "--split", "val"], "--voc-root is the --root of --source voc"),
        (["--source", "davis"], "--root is required"),
        (["--source", "kitti", "--root", root], "Invalid value for '--source'"),
    ):
        result = CliRunner().invoke(main, ["sample", *map(str, args), "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert not (tmp_path / "out").exists()


def test_synth_writes_each_layout_through_the_cli(tmp_path: Path) -> None:
    for name, source in SOURCES.items():
        args = ["synth", str(tmp_path), "--layout", name, "--train-images", "2", "--val-images", "1",
                "--long-side", "64"]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0 and str(tmp_path / source.synth_folder) in result.output, result.output
        again = CliRunner().invoke(main, args)
        assert again.exit_code == 1 and "already exists" in again.output
