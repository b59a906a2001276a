"""Reading shards in `ifcn-train` and `ifcn-eval`: sample checksums, batches independent of the workers, manifests
that must describe their shards, corrupt masks named (from issue 13; each test failed on the code before the fix).

4. Flipped bytes of the same size: trained on to exit 0 before; now the per-sample sha256 stops `ifcn-train` with
   the shard and key named (`--no-sample-checksums` is the opt-out for shards verified already).
6. `--resume` with another `--workers`: a different model before (the data order depended on the worker count);
   now 0, 1 and 2 workers give the same batches and the resumed model equals the uninterrupted one.
7. A manifest that does not describe its shards (inflated per-shard counts made the trainer repeat data; totals
   that are not the shards' sums; a shard path leaving the folder; clicks outside the image): refused by the
   trainer and the evaluator with a message naming the shard.
9. A mask that is not a PNG inside a shard (its digest consistent): a traceback before; now the trainer and the
   evaluator name the shard and the key.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ifcn.shards.check import check_shards
from ifcn.shards.manifest import load_manifest, resolve_shards
from ifcn.shards.records import ClickPair, ImageClicks, Sample
from ifcn.trainer.core.checkpoint import load_checkpoint
from ifcn.trainer.data import AugmentConfig, TrainStream, make_loader, steps_per_epoch
from ifcn.trainer.evaluation.eval_cli import main as eval_main
from ifcn.trainer.train import TrainConfig, train
from ifcn.trainer.train_cli import main as train_main
from tests.eval_data import make_checkpoint, make_val_shards
from tests.shard_sets import edit_manifest, shard_samples, write_set

TRAIN = ["--arch", "resnet18", "--weights", "none", "--crop", "32", "--batch-size", "4", "--workers", "0",
         "--device", "cpu", "--epochs", "1", "--no-progress"]


def _train(shards: str | Path, out: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(train_main, ["--shards", str(shards), "--out", str(out), *TRAIN, *extra])
    return result.exit_code, result.output


def _eval(command: str, shards: str | Path, checkpoint: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(eval_main, [command, "--checkpoint", str(checkpoint), "--shards", str(shards),
                                            "--device", "cpu", *(("--max-clicks", "1") if command == "noc" else ()),
                                            *extra])
    return result.exit_code, result.output


def _refused(code: int, output: str, *named: str) -> None:
    """A clean refusal: exit 1 and one message (no traceback) that holds every name in `named`."""
    assert code == 1 and "Traceback" not in output, output
    assert all(n in output for n in named), output


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "interactive.pt", "interactive")


# 4 -------------------------------------------------------------------------------------------------------------


def _flip_bytes(shard: Path, member: str) -> None:
    """Invert 4 bytes in the middle of one member's data: the shard keeps its size and its tar headers."""
    with tarfile.open(shard) as tar:
        info = tar.getmember(member)
    data = bytearray(shard.read_bytes())
    middle = info.offset_data + info.size // 2
    data[middle:middle + 4] = bytes(b ^ 0xFF for b in data[middle:middle + 4])
    shard.write_bytes(bytes(data))


def test_flipped_bytes_stop_training_by_default(train_shards: Path, tmp_path: Path) -> None:
    shards = Path(shutil.copytree(train_shards, tmp_path / "shards"))
    victim = shards / load_manifest(shards).shards[1].path
    key = shard_samples(shards)[1][1].key  # not a shard's first sample: caught while streaming, not at the start
    _flip_bytes(victim, f"{key}.jpg")
    code, output = _train(shards, tmp_path / "run")
    _refused(code, output, victim.name, key, "sha256")
    assert not (tmp_path / "run" / "last.pt").exists()
    code, output = _train(shards, tmp_path / "trusted", "--no-sample-checksums")  # the user vouches for the bytes
    assert code == 0, output


# 6 -------------------------------------------------------------------------------------------------------------


def test_batches_do_not_depend_on_the_number_of_workers(train_shards: Path) -> None:
    infos = check_shards(resolve_shards(train_shards), "interactive")
    steps = steps_per_epoch(sum(i.items for i in infos), 1, 4)
    runs = []
    for workers in (0, 1, 2):
        stream = TrainStream(infos, "interactive", AugmentConfig(32), 4, steps, seed=4, workers=workers,
                             shuffle_items=8, chunk_items=5)
        stream.set_epoch(1)
        runs.append(list(make_loader(stream)))
    assert len(runs[0]) == steps and steps > 2 * 2  # several batch groups, so two workers share the epoch
    for other in runs[1:]:
        assert all(torch.equal(a[k], b[k]) for a, b in zip(runs[0], other, strict=True) for k in a)


def test_resume_with_other_workers_gives_the_uninterrupted_model(train_shards: Path, tmp_path: Path) -> None:
    base = {"shards": str(train_shards), "arch": "resnet18", "weights": "none", "crop": 32, "batch_size": 4,
            "device": "cpu", "progress": False, "seed": 1, "shuffle_items": 8, "chunk_items": 5}
    reference = train(TrainConfig(out=str(tmp_path / "reference"), epochs=2, workers=1, **base))
    train(TrainConfig(out=str(tmp_path / "resumed"), epochs=1, workers=0, **base))
    resumed = train(TrainConfig(out=str(tmp_path / "resumed"), epochs=2, workers=2, resume=True, **base))
    want, got = load_checkpoint(reference.last_checkpoint), load_checkpoint(resumed.last_checkpoint)
    assert got["step"] == want["step"] == 2 * reference.steps_per_epoch
    assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"])


# 7 -------------------------------------------------------------------------------------------------------------


def _copy(folder: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(folder, tmp_path / name))


def _outside_the_image(sample: Sample) -> Sample:
    """`sample` with one positive click below the image (the written digest covers it: only the decode can tell)."""
    clicks = sample.clicks
    obj = clicks.objects[0]
    pair = ClickPair(obj.pairs[0].strategy, ((clicks.height + 3, 0),), obj.pairs[0].neg)
    objects = (replace(obj, pairs=(pair, *obj.pairs[1:])), *clicks.objects[1:])
    return replace(sample, clicks=ImageClicks(clicks.key, clicks.height, clicks.width, objects, clicks.skipped))


def _faulty_sets(folder: Path, tmp_path: Path) -> dict[str, tuple[Path | str, tuple[str, ...]]]:
    """Each manifest fault of item 7 applied to a copy of `folder`: {name: (--shards value, names in the message)}."""
    manifest = load_manifest(folder)
    inflated = _copy(folder, tmp_path, "inflated")
    entry = manifest.shards[-1]
    edit_manifest(inflated, len(manifest.shards) - 1, pairs=entry.pairs + 12, objects=entry.objects + 4)
    totals = _copy(folder, tmp_path, "totals")
    edit_manifest(totals, 0, keep_totals=True, pairs=manifest.shards[0].pairs + 1)
    escaping = _copy(folder, tmp_path, "escaping")
    edit_manifest(escaping, 0, path=f"../{folder.name}/{manifest.shards[0].path}")
    parts = shard_samples(folder)
    k = max(i for i, s in enumerate(parts[-1]) if s.clicks.num_pairs)
    key = parts[-1][k].key
    parts[-1][k] = _outside_the_image(parts[-1][k])
    clicks = write_set(tmp_path / "clicks", parts, manifest)
    return {"inflated": (inflated, (entry.path, "manifest records")),
            "inflated, streamed": (f"pipe:cat {inflated / 'manifest.json'}", (entry.path, "manifest records")),
            "totals": (totals, ("manifest.json", "totals")),
            "escaping": (escaping, ("manifest.json", "not a plain file name")),
            "clicks": (clicks, (load_manifest(clicks).shards[-1].path, key, "outside"))}


def test_trainer_refuses_a_manifest_that_does_not_describe_its_shards(train_shards: Path, tmp_path: Path) -> None:
    for name, (shards, named) in _faulty_sets(train_shards, tmp_path).items():
        code, output = _train(shards, tmp_path / f"run {name}")
        _refused(code, output, *named)


def test_evaluator_refuses_a_manifest_that_does_not_describe_its_shards(checkpoint: Path, tmp_path: Path) -> None:
    val = make_val_shards(tmp_path / "val")
    assert _eval("noc", val, checkpoint)[0] == 0
    for name, (shards, named) in _faulty_sets(val, tmp_path).items():
        for command in ("noc", "iou"):
            code, output = _eval(command, shards, checkpoint)
            _refused(code, output, *named)
            assert name  # (the case, for the report of a failure)


# 9 -------------------------------------------------------------------------------------------------------------


def _with_bad_mask(folder: Path, out: Path, field: str) -> tuple[Path, str, str]:
    """A copy of the set whose last sample's `field` mask is not a PNG: (folder, shard file name, key)."""
    parts = shard_samples(folder)
    bad = parts[0][1]
    parts[0][1] = replace(bad, **{field: b"these bytes are no PNG"})
    written = write_set(out, parts, load_manifest(folder))
    return written, load_manifest(written).shards[0].path, bad.key


@pytest.mark.parametrize("task, field", [("semantic", "class_png"), ("interactive", "object_png")])
def test_trainer_names_the_shard_and_key_of_a_corrupt_mask(train_shards: Path, tmp_path: Path, task: str,
                                                             field: str) -> None:
    shards, shard, key = _with_bad_mask(train_shards, tmp_path / "bad", field)
    code, output = _train(shards, tmp_path / "run", "--task", task, "--workers", "1")
    _refused(code, output, shard, key, "PNG")


@pytest.mark.parametrize("command, field", [("noc", "class_png"), ("iou", "object_png")])
def test_evaluator_names_the_shard_and_key_of_a_corrupt_mask(checkpoint: Path, tmp_path: Path, command: str,
                                                               field: str) -> None:
    shards, shard, key = _with_bad_mask(make_val_shards(tmp_path / "val"), tmp_path / "bad", field)
    code, output = _eval(command, shards, checkpoint)
    _refused(code, output, shard, key, "PNG")
