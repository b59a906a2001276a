"""The loop of item 2: annotate through the API → `annotate-export` (VOC + COCO) → `ifcn-prep sample` → `verify` →
one training step; the exported masks equal what the API reports, at the file's stored size and orientation (an
EXIF-rotated photo included)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps
from pycocotools import mask as coco_mask

from ifcn.pipeline.prep_cli import main as prep_main
from ifcn.trainer.annotate.store import ProjectStore
from ifcn.trainer.evaluation.eval_cli import main as eval_main
from ifcn.trainer.inference import Predictor
from ifcn.trainer.train_cli import main as train_main
from tests.annotate_data import add_object, annotate_client, ok, png_mask
from tests.demo_data import make_demo_checkpoint, sample_image, write_images

ROTATED = "turned.jpg"


def _write_rotated(path: Path) -> None:
    """A 160x120 stored JPEG whose EXIF says "rotate 90° clockwise to view" (orientation 6): shown 120x160."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(sample_image(5, (120, 160))).save(path, format="JPEG", quality=95, exif=exif)


def _invoke(main, *args: str | Path) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _shown_map(client, image: str) -> np.ndarray:
    """What the API reports: the objects' masks painted in the listed (paint) order, ids 1..N."""
    out = None
    for i, obj in enumerate(ok(client.get(f"/api/images/{image}/objects")), 1):
        mask = png_mask(client.get(f"/api/images/{image}/objects/{obj['id']}/mask.png").content)
        out = np.zeros(mask.shape, np.uint8) if out is None else out
        out[mask] = i
    return out


def test_annotate_export_sample_verify_train(tmp_path: Path, dask_address: str) -> None:
    images = write_images(tmp_path / "images", 2, (120, 160))
    _write_rotated(images / ROTATED)
    checkpoint = make_demo_checkpoint(tmp_path / "interactive.pt")
    client = annotate_client(Predictor.from_checkpoint(checkpoint, device="cpu"), images, tmp_path / "project")
    add_object(client, "img-0.jpg", "cat", [(80, 60, True)])
    add_object(client, "img-0.jpg", "dog", [(20, 20, True), (80, 60, False)],
               [{"points": [[5, 100], [60, 100]], "radius": 6, "erase": False}])
    add_object(client, "img-1.jpg", "person", [(80, 60, True)])
    add_object(client, ROTATED, "bird", [(60, 30, True)])  # x, y on the shown (upright) image, 120 wide

    export = tmp_path / "export"
    printed = _invoke(eval_main, "annotate-export", "--project", tmp_path / "project", "--out", export)
    assert "exported 3 images, 4 objects" in printed
    voc = export / "VOC2012"
    labels = ProjectStore.open(tmp_path / "project").labels
    for name in ("img-0.jpg", "img-1.jpg", ROTATED):
        stem = Path(name).stem
        objects = Image.open(voc / "SegmentationObject" / f"{stem}.png")
        assert objects.mode == "P" and objects.size == Image.open(images / name).size  # stored size
        shown = _shown_map(client, name)
        assert np.array_equal(np.asarray(ImageOps.exif_transpose(Image.open(images / name)).size[::-1]), shown.shape)
        # orientation 6 is shown turned 90° clockwise (PIL's ROTATE_270); the PNG itself holds the stored pixels
        turned = objects.transpose(Image.Transpose.ROTATE_270) if name == ROTATED else objects
        assert np.array_equal(np.asarray(turned), shown)
        classes = np.asarray(Image.open(voc / "SegmentationClass" / f"{stem}.png"))
        listed = ok(client.get(f"/api/images/{name}/objects"))
        for i, obj in enumerate(listed, 1):
            assert (classes[np.asarray(objects) == i] == labels.index(obj["label"]) + 1).all()
    assert (voc / "JPEGImages" / "img-0.jpg").read_bytes() == (images / "img-0.jpg").read_bytes()
    assert (voc / "ImageSets/Segmentation/train.txt").read_text().split() == ["img-0", "img-1", "turned"]

    coco = json.loads((export / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(labels)
    by_file = {i["file_name"]: i for i in coco["images"]}
    for name in ("img-0.jpg", ROTATED):
        stored = np.asarray(Image.open(voc / "SegmentationObject" / f"{Path(name).stem}.png"))
        anns = [a for a in coco["annotations"] if a["image_id"] == by_file[name]["id"]]
        for i, ann in enumerate(anns, 1):
            rle = {"size": ann["segmentation"]["size"], "counts": ann["segmentation"]["counts"].encode()}
            assert np.array_equal(coco_mask.decode(rle).astype(bool), stored == i)

    shards = tmp_path / "shards"
    common = ["--pairs", "1", "--min-area", "10", "--no-progress", "--scheduler", dask_address]
    _invoke(prep_main, "sample", "--voc-root", voc, "--split", "train", "--out", shards / "voc", *common)
    _invoke(prep_main, "sample", "--source", "coco", "--coco-images", images, "--coco-json",
            export / "annotations" / "instances_train.json", "--out", shards / "coco", *common)
    for name in ("voc", "coco"):
        _invoke(prep_main, "verify", shards / name)  # exit 0: checksums, counts, clicks inside, sizes
        totals = json.loads((shards / name / "manifest.json").read_text())["totals"]
        # every exported object reached the sampler (an untrained model's thin sliver may have no click candidate)
        assert totals["images"] == 3 and totals["objects"] + sum(totals["skipped_objects"].values()) == 4, totals
        assert totals["objects"] >= 3
    printed = _invoke(train_main, "--shards", shards / "voc", "--out", tmp_path / "run", "--arch", "resnet18",
                      "--weights", "none", "--crop", "64", "--batch-size", "2", "--workers", "0", "--device", "cpu",
                      "--epochs", "1", "--no-progress")
    assert (tmp_path / "run" / "last.pt").is_file(), printed


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_back(orientation: int, tmp_path: Path) -> None:
    from ifcn.trainer.annotate.project_export import stored_orientation

    stored = (np.arange(12 * 20).reshape(12, 20) % 7).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="PNG", exif=exif)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(buffer)))
    assert np.array_equal(stored_orientation(shown, orientation), stored)
