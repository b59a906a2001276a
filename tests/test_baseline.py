"""`ifcn-eval noc --baseline grabcut`: GrabCut from the clicks alone, no model, in the same engine and table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import cv2
import torch
from click.testing import CliRunner

from ifcn.shards.manifest import resolve_shards
from ifcn.trainer.evaluation.checkpoint_eval import run_noc
from ifcn.trainer.evaluation.clicker import Click
from ifcn.trainer.evaluation.eval_cli import main as eval_main
from ifcn.trainer.evaluation.noc import NocSettings, evaluate_objects, summarize
from ifcn.trainer.evaluation.objects import iter_objects
from ifcn.trainer.inference.grabcut import click_seed_mask
from tests.eval_data import make_val_shards


class Nothing:
    """Nothing at all: an empty mask whatever the clicks."""

    device = torch.device("cpu")

    def __call__(self, images: torch.Tensor, clicks: Sequence[Sequence[Click]]) -> torch.Tensor:
        return torch.zeros(images.shape[0], *images.shape[2:])


def test_the_seed_is_a_box_around_the_positives_with_sure_disks() -> None:
    mask = click_seed_mask((100, 100), [Click(20, 30, True), Click(25, 35, False)], radius=2, margin=0.1)
    assert mask[20, 30] == cv2.GC_FGD and mask[25, 35] == cv2.GC_BGD  # the clicks' disks are sure
    assert mask[10, 20] == mask[30, 40] == cv2.GC_PR_FGD  # the box grown by 10 px on every side is probable
    assert mask[9, 30] == mask[20, 41] == mask[90, 90] == cv2.GC_BGD  # beyond it, sure background
    assert (click_seed_mask((8, 8), [Click(3, 3, False)]) == cv2.GC_BGD).all()  # no positive click: no object


def test_grabcut_baseline_runs_without_a_model_and_beats_nothing_at_all(tmp_path: Path) -> None:
    shards = make_val_shards(tmp_path / "val")
    settings = NocSettings(max_clicks=5)
    result = run_noc(None, shards, settings, baseline="grabcut", out=tmp_path / "report", workers=2)
    [summary] = result["datasets"].values()
    objects = list(iter_objects(resolve_shards(shards)))
    nothing = summarize(list(evaluate_objects(iter(objects), Nothing(), settings, 8, 1)), settings)
    assert summary["num_objects"] == len(objects) > 0 and summary["baseline"] == "grabcut"
    assert all(b > n + 0.3 for b, n in zip(summary["miou_curve"], nothing.miou_curve, strict=True))
    assert summary["noc"]["85"] < nothing.noc[0.85] == 5
    assert json.loads((tmp_path / "report" / "summary.json").read_text())["label"] == "grabcut baseline (no model)"


def test_the_cli_takes_a_baseline_or_a_checkpoint(tmp_path: Path) -> None:
    shards = str(make_val_shards(tmp_path / "val"))
    done = CliRunner().invoke(eval_main, ["noc", "--baseline", "grabcut", "--shards", shards, "--max-clicks", "2",
                                          "--no-progress"])
    assert done.exit_code == 0 and "grabcut baseline (no model)" in done.output
    assert "| dataset | objects | NoC@85" in done.output
    neither = CliRunner().invoke(eval_main, ["noc", "--shards", shards])
    assert neither.exit_code == 2 and "give --checkpoint (a trained model) or --baseline" in neither.output
    both = CliRunner().invoke(eval_main, ["noc", "--baseline", "grabcut", "--checkpoint", shards + "/manifest.json",
                                          "--shards", shards])
    assert both.exit_code == 2 and "not both or neither" in both.output
