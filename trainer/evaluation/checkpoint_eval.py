"""The typed entry points behind `ifcn-eval` (the CLI validates options and calls exactly one of these; tests too).

`run_noc` is the interactive protocol of spec §6; `run_iou` and `run_miou` reuse the trainer's validation
(`ifcn.trainer.evaluation.validation`) so a number printed here is the number the trainer logged.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ifcn.cli_options import progress as report_progress
from ifcn.labels import class_names
from ifcn.outputs import earlier_report, move_aside
from ifcn.shards.manifest import ShardSet, resolve_shards
from ifcn.trainer.core.checkpoint import load_for
from ifcn.trainer.core.device import resolve_device
from ifcn.trainer.core.precision import check_precision
from ifcn.trainer.evaluation.baselines import BaselinePredictor
from ifcn.trainer.evaluation.datasets import resolve_datasets
from ifcn.trainer.evaluation.noc import NocSettings, evaluate_objects, summarize
from ifcn.trainer.evaluation.objects import iter_objects
from ifcn.trainer.evaluation.report import (
    REPORT_FILES,
    noc_table,
    summary_figures,
    write_combined,
    write_report,
    write_table,
)
from ifcn.trainer.evaluation.semantic_report import (
    SEMANTIC_REPORT_FILES,
    format_scores,
    semantic_summary,
    write_semantic_report,
)
from ifcn.trainer.evaluation.validation import validate_interactive, validate_semantic
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.crf import CrfParams, crf_labels, require_crf
from ifcn.trainer.inference.zoom import ZoomIn, ZoomSettings
from ifcn.trainer.models.model_config import ModelConfig


def _shards_provenance(shards: ShardSet) -> dict[str, Any]:
    return {"manifest_id": shards.manifest.id if shards.manifest else None, "shards": list(shards.locations)}


def _provenance(checkpoint: Path, config: ModelConfig, state: dict[str, Any], shards: ShardSet) -> dict[str, Any]:
    return {"checkpoint": str(checkpoint), "task": state.get("task"), "model_config": config.to_dict(),
            "checkpoint_manifest_id": state.get("manifest_id"), **_shards_provenance(shards)}


def expected_objects(shards: ShardSet, limit: int | None) -> int | None:
    """How many objects NoC will evaluate, for its progress total: the manifest's objects (with clicks or skipped by
    `ifcn-prep`: every object of the object maps), at most `limit`; `limit` (or None) without a manifest."""
    if shards.manifest is None:
        return limit
    totals = shards.manifest.totals
    found = totals.objects + sum(totals.skipped_objects.values())
    return found if limit is None else min(found, limit)


def run_noc(checkpoint: Path | None, shards: str | Path | Sequence[str | Path], settings: NocSettings, *,
            device: str = "auto", batch_size: int = 8, limit: int | None = None, precision: str = "fp32",
            out: Path | None = None, label: str | None = None, batch_invariant: bool = False, workers: int = 1,
            progress: bool = False, check_digest: bool = True, overwrite: bool = False,
            baseline: str | None = None) -> dict[str, Any]:
    """Evaluate NoC on every object of each dataset (`[NAME=]LOCATION` values, at most `limit` objects each) with
    the model of `checkpoint`, or with the no-learning `baseline` (`ifcn.trainer.evaluation.baselines`, on the CPU;
    give one of the two); write the reports into `out` when given (an earlier report there is refused, or moved
    aside with `overwrite`).

    `batch_invariant` selects convolution kernels whose results do not depend on the batch size (slower), so the
    logs equal those of `batch_size=1` bit for bit. `workers` threads share the clicker and refinement work.
    Returns `{"label", "settings", "datasets": {name: summary}, "dataset_order", "table"}`. A dataset's summary
    (what its summary.json holds) has NoC/NoF/never-reached per threshold, the mIoU curve, seconds per click, every
    setting, the model config and the manifest ids. One dataset: its report goes into `out` itself; several: into
    `out/NAME/`, beside the combined summary, the table and the plot with a curve per dataset. An `out` holding an
    earlier report is refused before any work, or with `overwrite` its files are moved into `out/previous-<time>/`.
    """
    if (checkpoint is None) == (baseline is None):
        raise ValueError("give --checkpoint (a trained model) or --baseline (no model), not both or neither")
    datasets = resolve_datasets([shards] if isinstance(shards, str | Path) else shards)
    names = (*REPORT_FILES, *([] if len(datasets) == 1 else [d.name for d in datasets]))
    previous = [] if out is None else earlier_report(Path(out), names, overwrite=overwrite)
    predictor: Predictor | ZoomIn | BaselinePredictor
    if checkpoint is not None:
        dev = resolve_device(device)
        check_precision(precision, dev)
        model, config, spec, state = load_for("noc", checkpoint, dev)
        predictor = Predictor(model, "interactive", dev, precision, batch_invariant, spec=spec)
        if settings.zoom_in:
            predictor = ZoomIn(predictor, ZoomSettings(target=settings.zoom_in))
        ckpt = Path(checkpoint)
        name = f"{ckpt.parent.name}/{ckpt.stem}" if ckpt.parent.name else ckpt.stem
        default_label = f"{name} {config.name}"

        def provenance(shards: ShardSet) -> dict[str, Any]:
            return _provenance(ckpt, config, state, shards)
    else:
        if settings.zoom_in:
            raise ValueError("--zoom-in crops a model's input; the --baseline works on the whole image: leave it out")
        predictor = BaselinePredictor(str(baseline), workers)
        dev, default_label = predictor.device, f"{baseline} baseline (no model)"

        def provenance(shards: ShardSet) -> dict[str, Any]:
            return {"baseline": baseline, **_shards_provenance(shards)}
    if previous:
        move_aside(Path(out), previous)
    label = label or (default_label + ("" if settings.refine == "none" else f" +{settings.refine}")
                      + (f" +zoom {settings.zoom_in}" if settings.zoom_in else ""))
    run_settings = {**dataclasses.asdict(settings), "iou_thresholds": list(settings.iou_thresholds),
                    "strict_iou": settings.strict, "batch_size": batch_size, "limit": limit, "device": str(dev),
                    "precision": precision, "batch_invariant": batch_invariant, "workers": workers,
                    "sample_checksums": check_digest,
                    "crf": CrfParams().to_dict() if settings.refine == "crf" else None}
    summaries: dict[str, dict[str, Any]] = {}
    for dataset in datasets:
        skipped: Counter = Counter()
        objects = iter_objects(dataset.shards, settings.min_area, limit, skipped, check_digest=check_digest)
        start = time.perf_counter()
        logs = list(report_progress(evaluate_objects(objects, predictor, settings, batch_size, workers),
                                    total=expected_objects(dataset.shards, limit), desc=dataset.name, unit="objects",
                                    bar=progress))
        summaries[dataset.name] = summary = {
            "command": "noc", "label": label, "dataset": dataset.name,
            **provenance(dataset.shards),
            "settings": run_settings, "skipped_objects": dict(skipped),
            **summary_figures(summarize(logs, settings)),
            "total_seconds": time.perf_counter() - start,
        }
        if out is not None:
            write_report(Path(out) if len(datasets) == 1 else Path(out) / dataset.name, summary, logs)
    combined = {"command": "noc", "label": label, "checkpoint": None if checkpoint is None else str(checkpoint),
                "baseline": baseline, "settings": run_settings,
                "datasets": summaries, "dataset_order": list(summaries), "table": noc_table(summaries)}
    if out is not None:
        if len(datasets) == 1:
            write_table(Path(out), combined["table"])
        else:
            write_combined(Path(out), combined)
    return combined


def run_iou(checkpoint: Path, shards: str | Path, *, device: str = "auto", batch_size: int = 8,
            limit: int | None = None, precision: str = "fp32", check_digest: bool = True) -> dict[str, Any]:
    """First-pass IoU with the shards' own click pairs (the trainer's validation IoU); `limit` caps images."""
    shard_set = resolve_shards(shards)
    dev = resolve_device(device)
    check_precision(precision, dev)
    model, config, spec, state = load_for("iou", checkpoint, dev)
    result = validate_interactive(model, shard_set, dev, batch_size=batch_size, limit=limit, precision=precision,
                                  check_digest=check_digest, spec=spec)
    return {"command": "iou", **_provenance(Path(checkpoint), config, state, shard_set), **result}


def run_miou(checkpoint: Path, shards: str | Path, *, device: str = "auto", batch_size: int = 8,
             limit: int | None = None, precision: str = "fp32", out: Path | None = None,
             check_digest: bool = True, crf: CrfParams | None = None,
             overwrite: bool = False) -> tuple[dict[str, Any], str]:
    """Semantic mIoU, pixel accuracy and per-class IoU over the split (`limit` caps images), of the argmax or, with
    `crf`, of the dense CRF's labels at each image's own size.

    Returns (summary, printable table); with `out`, writes semantic.json and the row-normalised confusion.png (an
    earlier report there is refused, or with `overwrite` moved into `out/previous-<time>/`).
    """
    if crf is not None:
        require_crf()
    shard_set = resolve_shards(shards)
    previous = [] if out is None else earlier_report(Path(out), SEMANTIC_REPORT_FILES, overwrite=overwrite)
    dev = resolve_device(device)
    check_precision(precision, dev)
    model, config, _, state = load_for("miou", checkpoint, dev)
    if previous:
        move_aside(Path(out), previous)
    refine = None if crf is None else (lambda image, probs: crf_labels(image, probs, crf))
    matrix = validate_semantic(model, shard_set, dev, config.num_classes, batch_size=batch_size, limit=limit,
                               precision=precision, check_digest=check_digest, refine=refine)
    scores = matrix.scores()
    names = class_names(config.num_classes)
    counts = matrix.matrix.cpu().numpy()
    summary = {"command": "miou", **_provenance(Path(checkpoint), config, state, shard_set), "limit": limit,
               "crf": None if crf is None else crf.to_dict(), **semantic_summary(scores, counts, names)}
    if out is not None:
        write_semantic_report(Path(out), summary, counts, names)
    return summary, format_scores(scores, names)

