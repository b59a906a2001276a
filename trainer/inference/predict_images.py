"""`ifcn-eval predict`: segment a folder (or a glob) of images with a semantic checkpoint and write one file each.

Every readable image gets a palette PNG, an index PNG or an overlay JPEG (`--format`) named after it, and
`classes.json` records each image's size, output file and class pixel shares. Files that are not images or cannot be
decoded are skipped with a message (`on_error="skip"`, recorded in the JSON) or stop the run (`"fail"`). The output
folder is created only once the images and the checkpoint are checked; no output may replace an input or a file
that an earlier `predict` there did not write (`ifcn.outputs.check_outputs`), and every file is written atomically.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ifcn.cli_options import progress as report_progress
from ifcn.errors import InputError
from ifcn.io import write_json
from ifcn.labels import class_names
from ifcn.outputs import check_outputs
from ifcn.trainer.core.checkpoint import load_for
from ifcn.trainer.core.device import resolve_device
from ifcn.trainer.inference.crf import CrfParams, require_crf
from ifcn.trainer.inference.images import DEFAULT_MAX_MEGAPIXELS, max_pixels_of, read_image
from ifcn.trainer.inference.predictor import Predictor
from ifcn.trainer.inference.render import FORMATS, SUFFIX, class_shares, write_output
from ifcn.trainer.inference.semantic_segmentation import Sizing, segment

SUMMARY_NAME = "classes.json"
ON_ERROR = ("skip", "fail")


def input_files(spec: str | Path) -> list[Path]:
    """The files of a folder (hidden ones left out) or of a glob pattern, sorted; an error when there are none."""
    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        where = f"the folder {path}"
    elif path.is_file():
        files, where = [path], str(path)
    else:
        files = sorted(Path(p) for p in glob.glob(str(spec), recursive=True) if Path(p).is_file())
        where = f"the pattern {spec!r}"
        if not files and not glob.has_magic(str(spec)):
            raise ValueError(f"--images {spec}: no such file or folder; pass a folder of images or a glob pattern")
    if not files:
        raise ValueError(f"--images: {where} holds no file; pass a folder of images or a glob pattern that matches")
    return files


def output_names(files: list[Path], fmt: str) -> dict[Path, str]:
    """A distinct output file name per input (compared case-blind, as some file systems do): its stem plus the
    format's suffix; when taken, the stem and extension (`photo.jpg` and `photo.png` give `photo.png` and
    `photo_png.png`), then its path below the inputs' common folder (`a/x.jpg`, `b/x.jpg` give `x.png`,
    `b_x_jpg.png`), then a number."""
    root = Path(os.path.commonpath([f.parent.absolute() for f in files]))
    names: dict[Path, str] = {}
    taken: set[str] = set()
    for f in files:
        relative = "_".join((*f.parent.absolute().relative_to(root).parts, f.stem))
        ext = f.suffix.lstrip(".")
        candidates = [f.stem, f"{f.stem}_{ext}", f"{relative}_{ext}"]
        name = next((c + SUFFIX[fmt] for c in candidates if (c + SUFFIX[fmt]).casefold() not in taken), None)
        n = 2
        while name is None or name.casefold() in taken:
            name, n = f"{relative}_{ext}-{n}{SUFFIX[fmt]}", n + 1
        taken.add(name.casefold())
        names[f] = name
    if len(taken | {SUMMARY_NAME}) != len(files) + 1:
        raise AssertionError("output_names: two inputs share an output name")  # the loop above rules it out
    return names


def recorded_outputs(out: Path) -> Callable[[Path], bool]:
    """Whether a file in `out` was written by an earlier `predict` there: `classes.json` and the outputs it lists."""
    try:
        summary = json.loads((Path(out) / SUMMARY_NAME).read_text())
        ours = {SUMMARY_NAME, *(entry["output"] for entry in summary["images"].values())}
        if summary.get("command") != "predict":
            ours = set()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        ours = set()
    return lambda path: path.parent == Path(out) and path.name in ours


def check_writable(out: Path) -> None:
    """Create `out` if needed and prove it takes files, before any prediction is made."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".ifcn-write-test-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise ValueError(f"--out {out}: cannot write there ({e.strerror}); choose a folder you can write to") from None


def run_predict(checkpoint: Path, images: str | Path, out: Path, *, fmt: str = "palette", sizing: Sizing | None = None,
                device: str = "auto", on_error: str = "skip", max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                progress: bool = False, log: Callable[[str], None] = print,
                crf: CrfParams | None = None) -> dict[str, Any]:
    """Segment every image of `images` into `out` (refined by a dense CRF with the settings `crf` when given);
    returns the summary written to `out/classes.json`. Images over `max_megapixels` are refused from their header
    (skipped or failing by `on_error`), never decoded."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if on_error not in ON_ERROR:
        raise ValueError(f"--on-error must be one of {ON_ERROR}, got {on_error!r}")
    sizing = sizing or Sizing()
    if crf is not None:
        require_crf()
    max_pixels = max_pixels_of(max_megapixels)
    files = input_files(images)
    out = Path(out)
    outputs = output_names(files, fmt)
    check_outputs([out / name for name in (*outputs.values(), SUMMARY_NAME)], flag="--out",
                  inputs=[*files, checkpoint], ours=recorded_outputs(out))
    dev = resolve_device(device)
    model, config, spec, _ = load_for("predict", Path(checkpoint), dev)
    check_writable(out)  # created only now that every input was checked
    predictor = Predictor(model, "semantic", dev, spec=spec)
    names = class_names(config.num_classes)
    results: dict[str, Any] = {}
    skipped: list[dict[str, str]] = []
    start = time.perf_counter()
    for path, name in report_progress(outputs.items(), total=len(outputs), desc="images", unit="images", bar=progress):
        try:
            # Only an overlay draws on the full-size photo; other outputs need the network's input and the size, so
            # a large JPEG is decoded reduced (libjpeg's 1/2, 1/4, 1/8 scaling), much faster and smaller.
            loaded = read_image(path, None if fmt == "overlay" else sizing.max_side, max_pixels=max_pixels)
        except InputError as e:
            if on_error == "fail":
                raise
            log(f"skipped {path}: {e.reason}")
            skipped.append({"path": str(path), "kind": e.kind, "reason": e.reason})
            continue
        labels = segment(predictor, loaded.rgb, sizing, crf, size=loaded.original_size)
        write_output(fmt, out / name, loaded.rgb, labels, names)
        results[str(path)] = {"output": name, "height": labels.shape[0], "width": labels.shape[1],
                              "class_shares": class_shares(labels, names)}
    summary = {"command": "predict", "checkpoint": str(checkpoint), "model_config": config.to_dict(),
               "format": fmt, "sizing": {"max_side": sizing.max_side, "tile": sizing.tile,
                                         "overlap": sizing.overlap},
               "crf": None if crf is None else crf.to_dict(),
               "device": str(dev), "seconds": time.perf_counter() - start, "images": results, "skipped": skipped}
    write_json(out / SUMMARY_NAME, summary)
    if not results:
        raise ValueError(f"--images {images}: none of the {len(files)} files is a readable image (see the messages "
                         f"above and {out / SUMMARY_NAME})")
    return summary
