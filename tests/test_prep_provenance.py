"""Shard provenance in `ifcn-prep` (`pipeline/provenance.py`): stale shards rebuilt and reported, manifests bounded
(from issue 21, numbered by its items; each test failed on the code before the fix).

5. A rerun of `sample` after the annotations changed rebuilds the shards built from the changed files and names them
   (or stops on a mask made invalid, naming it); `verify` reports such stale shards.
13. A manifest larger than the limit is refused with a clear error before it is read whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from ifcn.pipeline.prep_cli import main
from ifcn.shards.manifest import MANIFEST_NAME, load_manifest


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


def _remove_object(mask_path: Path, object_id: int) -> None:
    with Image.open(mask_path) as mask:
        pixels, palette = np.array(mask), mask.getpalette()
    pixels[pixels == object_id] = 0
    edited = Image.fromarray(pixels, mode="P")
    edited.putpalette(palette)
    edited.save(mask_path)


def test_changed_annotations_rebuild_their_shards_and_verify_reports_them(voc_copy: Path, tmp_path: Path,
                                                                                   dask_address: str) -> None:
    out = tmp_path / "shards"
    args = ["sample", "--voc-root", voc_copy, "--split", "val", "--pairs", "1", "--images-per-shard", "4",
            "--out", out, "--no-progress", "--scheduler", dask_address]
    assert invoke(*args).exit_code == 0
    before = load_manifest(out / MANIFEST_NAME)
    first = before.shards[0]
    key = first.first_key
    for name in ("SegmentationObject", "SegmentationClass"):
        _remove_object(voc_copy / name / f"{key}.png", 1)  # the user deletes an object from the annotation

    result = invoke("verify", out)
    assert result.exit_code == 1 and f"BAD {first.path}: stale: changed since it was built" in result.output
    assert f"SegmentationObject/{key}.png" in result.output

    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert f"{first.path}: rebuilt: changed since it was written" in result.output
    assert f"SegmentationClass/{key}.png" in result.output and "1 shards written, 1 kept" in result.output
    rebuilt = load_manifest(out / MANIFEST_NAME)
    assert rebuilt.shards[0].sha256 != first.sha256 and rebuilt.shards[1] == before.shards[1]
    assert invoke("verify", out).exit_code == 0

    (voc_copy / "SegmentationObject" / f"{key}.png").write_bytes(b"not a PNG any more")  # a mask made invalid
    result = invoke(*args)
    assert result.exit_code == 1 and f"SegmentationObject/{key}.png" in result.output
    assert "shards written" not in result.output


def test_a_huge_manifest_is_refused_before_it_is_read_whole(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import ifcn.shards.manifest as manifest

    monkeypatch.setattr(manifest, "MAX_MANIFEST_BYTES", 1000)  # stands for 64 MiB: an 800 MB file is the same case
    huge = tmp_path / "shards"
    huge.mkdir()
    with open(huge / MANIFEST_NAME, "wb") as f:
        f.truncate(1001)  # sparse: nothing to read, and a whole read would be the fault
    result = invoke("verify", huge)
    assert result.exit_code == 1
    assert f"{huge / MANIFEST_NAME}: larger than 1,000 bytes, the most a manifest may be" in result.output
