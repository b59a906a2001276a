"""The NoC protocol (spec §6): objects advance click by click together, one batched forward per step.

Objects are grouped by image size and cut into batches of at most `batch_size` in reading order; within a batch,
every step computes each object's next click (on the CPU, object by object; for the standard clicker on a GPU, all
at once on the device), runs ONE forward for the objects that got a click, then thresholds, optionally refines, and
scores them. Each object's clicks depend only on its own masks and predictions,
so `batch_size=1` (one object at a time) runs the same code path and, with a batch-independent predictor, gives the
same logs. When the clicker finds no unclicked error pixel (the prediction is already perfect, up to pixels
already clicked), the step records no click and the object keeps its prediction and IoU.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from ifcn.trainer.core.clicks import Click
from ifcn.trainer.core.error_clicks import STANDARD_THRESHOLD, standard_clicks
from ifcn.trainer.core.metrics import foreground_iou
from ifcn.trainer.evaluation.clicker import CLICKERS, get_clicker
from ifcn.trainer.evaluation.objects import EvalObject
from ifcn.trainer.evaluation.predictor_protocol import BatchPredictor
from ifcn.trainer.inference.crf import crf_foreground, require_crf
from ifcn.trainer.inference.grabcut import grabcut_refine

T = TypeVar("T")
Refiner = Callable[[np.ndarray, np.ndarray, Sequence[Click], float], np.ndarray]


def _grabcut(image: np.ndarray, prob: np.ndarray, clicks: Sequence[Click], threshold: float) -> np.ndarray:
    """GrabCut seeded by the thresholded prediction: it needs a mask, not probabilities."""
    return grabcut_refine(image, prob > threshold, clicks)


#: `--refine` choices: post-processing of each prediction (image, foreground probability, clicks, threshold) -> mask.
#: crf: the two-label dense CRF with its default settings (`ifcn.trainer.inference.crf.CrfParams`).
REFINERS: dict[str, Refiner | None] = {"none": None, "grabcut": _grabcut, "crf": crf_foreground}


#: Most clicks per object a run may make: the protocol uses 20, and every click costs a forward pass per object.
MAX_CLICKS_LIMIT = 1000


@dataclass(frozen=True)
class NocSettings:
    """Every protocol setting of a NoC run (recorded in summary.json).

    `threshold` 0.49 is RITM's (foreground = probability > 0.49), so that standard-protocol numbers compare with the
    published tables.
    """

    max_clicks: int = 20
    iou_thresholds: tuple[float, ...] = (0.85, 0.90)
    clicker: str = "standard"
    threshold: float = STANDARD_THRESHOLD
    refine: str = "none"
    min_area: int = 0
    #: Zoom-in inference (`ifcn.trainer.inference.zoom`): after the first click, each object is predicted on a crop
    #: around it whose long side is this many pixels; 0 = off (the whole image every click).
    zoom_in: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.max_clicks <= MAX_CLICKS_LIMIT:
            raise ValueError(f"--max-clicks must lie in 1..{MAX_CLICKS_LIMIT} (got {self.max_clicks}); the protocol "
                             "uses 20")
        if not self.iou_thresholds or any(not 0.0 < t <= 1.0 for t in self.iou_thresholds):
            raise ValueError(f"--iou values must lie in (0, 1] (got {list(self.iou_thresholds)})")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"--threshold must lie in [0, 1) (got {self.threshold})")
        get_clicker(self.clicker)
        if self.refine not in REFINERS:
            raise ValueError(f"unknown refinement {self.refine!r}; choose one of {sorted(REFINERS)}")
        if self.refine == "crf":
            require_crf()
        if self.min_area < 0:
            raise ValueError(f"--min-area must be at least 0 (got {self.min_area})")
        if self.zoom_in and not 32 <= self.zoom_in <= 4096:
            raise ValueError(f"--zoom-in must be 0 (off) or a long side in 32..4096 px (got {self.zoom_in})")

    @property
    def strict(self) -> bool:
        """Whether an object counts as done at IoU > t (the seed's clicker) rather than IoU >= t."""
        return CLICKERS[self.clicker].strict


@dataclass(frozen=True)
class ObjectLog:
    """What one object went through: the click of each step (None = no click left) and the IoU after it.

    `seconds` is the object's share of its batch's wall time.
    """

    index: int
    key: str
    object_id: int
    cls: int
    area: int
    clicks: tuple[Click | None, ...]
    ious: tuple[float, ...]
    seconds: float = field(default=0.0, compare=False)
    name: str = ""  # the image's name in its dataset; the key when not given

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.key)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "name": self.name, "object_id": self.object_id, "class": self.cls, "area": self.area,
                "clicks": [None if c is None else c.to_json() for c in self.clicks], "ious": list(self.ious)}


def _map(pool: Executor | None, fn: Callable[..., T], jobs: Sequence[tuple]) -> list[T]:
    """`fn(*job)` for every job, in order; on the pool's threads when there is one."""
    return [fn(*job) for job in jobs] if pool is None else list(pool.map(lambda job: fn(*job), jobs))


class DeviceClicker:
    """The standard clicker for a whole batch at once on a device (`ifcn.trainer.core.error_clicks`): the same clicks as
    `standard_click`, without per-object CPU work. Keeps the ground truths and the clicked pixels on the device."""

    def __init__(self, objects: Sequence[EvalObject], device: torch.device) -> None:
        self.gt = torch.from_numpy(np.stack([o.gt for o in objects])).to(device)
        self.ignore = torch.from_numpy(np.stack([o.ignore for o in objects])).to(device)
        self.clicked = torch.zeros_like(self.gt)

    def __call__(self, preds: np.ndarray) -> list[Click | None]:
        """The next click of every object given the current predictions (n, H, W); marks the clicked pixels."""
        found, positive, ys, xs = standard_clicks(self.gt, torch.from_numpy(preds).to(self.gt.device), self.ignore,
                                                  self.clicked)
        hit = found.nonzero()[:, 0]
        self.clicked[hit, ys[hit], xs[hit]] = True
        return [Click(y, x, p) if f else None
                for f, p, y, x in zip(found.tolist(), positive.tolist(), ys.tolist(), xs.tolist(), strict=True)]


def use_device_clicker(settings: NocSettings, device: torch.device) -> bool:
    """The batched torch clicker serves the standard clicker on GPUs; on the CPU, OpenCV's transform per object is
    faster."""
    return settings.clicker == "standard" and device.type != "cpu"


def run_batch(objects: Sequence[EvalObject], predictor: BatchPredictor, settings: NocSettings,
              pool: Executor | None = None, device_clicker: bool | None = None) -> list[ObjectLog]:
    """Run the whole click loop for objects of one image size; returns their logs in the given order.

    `pool` spreads the per-object CPU work (clicker, refinement) over threads; OpenCV releases the GIL there. Each
    object's work depends on its own state only, so the results are the same with or without it. `device_clicker`
    forces (True) or forbids (False) the batched standard clicker on the predictor's device; by default
    `use_device_clicker` decides. Both give the same clicks.
    """
    start = time.perf_counter()
    shapes = {o.shape for o in objects}
    if len(shapes) != 1:
        raise ValueError(f"a batch needs objects of one image size, got {sorted(shapes)}")
    clicker = get_clicker(settings.clicker)
    if device_clicker is None:
        device_clicker = use_device_clicker(settings, predictor.device)
    if device_clicker and settings.clicker != "standard":
        raise ValueError(f"the device clicker implements the standard clicker, not {settings.clicker!r}")
    on_device = DeviceClicker(objects, predictor.device) if device_clicker else None
    refine = REFINERS[settings.refine]
    n, (h, w) = len(objects), objects[0].shape
    # Upload each image once; objects of the same image share it.
    slots: dict[int, int] = {}
    unique: list[np.ndarray] = []
    for o in objects:
        if id(o.image) not in slots:
            slots[id(o.image)] = len(unique)
            unique.append(o.image)
    images = torch.from_numpy(np.stack(unique)).permute(0, 3, 1, 2).contiguous().to(predictor.device)
    slot_of = torch.tensor([slots[id(o.image)] for o in objects], device=predictor.device)
    gts = torch.from_numpy(np.stack([o.gt for o in objects]))
    ignores = torch.from_numpy(np.stack([o.ignore for o in objects]))

    # A --prev-mask network also sees each object's previous probabilities (zeros before its first click).
    prev = torch.zeros(n, h, w, device=predictor.device) if getattr(predictor, "prev_mask", False) else None
    preds = np.zeros((n, h, w), bool)
    clicked = np.zeros((n, h, w), bool)
    clicks: list[list[Click]] = [[] for _ in objects]
    history: list[list[Click | None]] = [[] for _ in objects]
    ious: list[list[float]] = [[] for _ in objects]
    current = [0.0] * n
    for _ in range(settings.max_clicks):
        moved: list[int] = []
        if on_device is not None:
            found = on_device(preds)
        else:
            jobs = [(o.gt, preds[i], o.ignore, clicked[i]) for i, o in enumerate(objects)]
            found = _map(pool, clicker.next_click, jobs)
        for i, click in enumerate(found):
            history[i].append(click)
            if click is not None:
                clicks[i].append(click)
                clicked[i, click.y, click.x] = True
                moved.append(i)
        if moved:
            if prev is None:
                probs = predictor(images[slot_of[moved]], [clicks[i] for i in moved])
            else:
                probs = predictor(images[slot_of[moved]], [clicks[i] for i in moved], prev[moved])
                prev[moved] = probs
            if refine is None:
                preds[moved] = (probs > settings.threshold).cpu().numpy()
            else:
                host = probs.float().cpu().numpy()
                preds[moved] = _map(pool, refine, [(objects[i].image, host[j], clicks[i], settings.threshold)
                                                   for j, i in enumerate(moved)])
            step = foreground_iou(torch.from_numpy(preds[moved]), gts[moved], ignores[moved]).tolist()
            for j, i in enumerate(moved):
                current[i] = step[j]
        for i in range(n):
            ious[i].append(current[i])
    seconds = (time.perf_counter() - start) / n
    return [ObjectLog(o.index, o.key, o.object_id, o.cls, o.area, tuple(history[i]), tuple(ious[i]), seconds,
                      o.name)
            for i, o in enumerate(objects)]


def evaluate_objects(objects: Iterable[EvalObject], predictor: BatchPredictor, settings: NocSettings,
                     batch_size: int, workers: int = 1, device_clicker: bool | None = None) -> Iterator[ObjectLog]:
    """Stream objects through `run_batch`, batching objects of the same image size in reading order.

    At most one partial batch per image size is held, so memory stays bounded on a split of any length. Logs come
    out in completion order; sort them by `index` for reading order. `workers` threads share the CPU work;
    `device_clicker` as in `run_batch`.
    """
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1 (got {batch_size})")
    if workers < 1:
        raise ValueError(f"--workers must be at least 1 (got {workers})")
    with ThreadPoolExecutor(workers) if workers > 1 else contextlib.nullcontext() as pool:
        pending: dict[tuple[int, int], list[EvalObject]] = {}
        for obj in objects:
            group = pending.setdefault(obj.shape, [])
            group.append(obj)
            if len(group) == batch_size:
                yield from run_batch(pending.pop(obj.shape), predictor, settings, pool, device_clicker)
        for group in pending.values():
            yield from run_batch(group, predictor, settings, pool, device_clicker)


def clicks_to_reach(ious: Sequence[float], threshold: float, strict: bool) -> int | None:
    """The first click count whose IoU reaches `threshold` (>=, or > when strict), None if none does.

    IoUs are float64 (`foreground_iou`), so an IoU of exactly 0.9 (e.g. 9/10) equals the threshold 0.9.
    """
    for k, iou in enumerate(ious, start=1):
        if iou > threshold or (not strict and iou == threshold):
            return k
    return None


@dataclass(frozen=True)
class NocSummary:
    """The figures of a run, per IoU target t: NoC@t (mean clicks, max_clicks for objects that never reach t),
    NoF@t as RITM counts it (objects whose NoC@t is max_clicks, including those that first reach t at the last
    click), the objects that never reach t; and the mIoU after each click."""

    num_objects: int
    noc: dict[float, float]
    nof: dict[float, int]
    never_reached: dict[float, int]
    miou_curve: tuple[float, ...]
    seconds_per_click: float


def summarize(logs: Sequence[ObjectLog], settings: NocSettings) -> NocSummary:
    """NoC, NoF, never-reached counts and the mIoU curve of a run's logs."""
    if not logs:
        raise ValueError("no object was evaluated: the shards hold no object (or --limit/--min-area excluded all)")
    noc: dict[float, float] = {}
    nof: dict[float, int] = {}
    never: dict[float, int] = {}
    for t in settings.iou_thresholds:
        reached = [clicks_to_reach(log.ious, t, settings.strict) for log in logs]
        counts = [settings.max_clicks if k is None else k for k in reached]
        noc[t] = float(np.mean(counts))
        nof[t] = sum(k == settings.max_clicks for k in counts)
        never[t] = sum(k is None for k in reached)
    curve = np.asarray([log.ious for log in logs], dtype=np.float64).mean(0)
    seconds = sum(log.seconds for log in logs) / (len(logs) * settings.max_clicks)
    return NocSummary(len(logs), noc, nof, never, tuple(float(v) for v in curve), seconds)
