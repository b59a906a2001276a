"""`ifcn-eval annotate`: open (or create) the project, load the checkpoint as the demo does, serve with uvicorn."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import uvicorn

from ifcn.trainer.annotate.annotate_app import AnnotateSettings, create_annotate_app
from ifcn.trainer.annotate.project_labels import read_labels
from ifcn.trainer.annotate.store import ProjectStore
from ifcn.trainer.demo.demo_serve import load_predictor


def open_project(images: Path, out: Path, labels: Path | None) -> ProjectStore:
    """The project folder `out` for the images of `images` (created, or reopened where it was left)."""
    if not Path(images).is_dir():
        raise ValueError(f"--images {images}: not a folder; pass the folder of images to annotate")
    return ProjectStore(out, images, read_labels(labels) if labels is not None else None)


def run_annotate(checkpoint: Path, images: Path, out: Path, labels: Path | None, settings: AnnotateSettings, *,
                 host: str = "127.0.0.1", port: int = 8000, device: str = "auto",
                 log: Callable[[str], None] = print) -> None:
    """Serve the annotation page until interrupted; bad folders, labels or checkpoints stop before the port opens."""
    store = open_project(images, out, labels)
    predictor, name, dev = load_predictor(checkpoint, device)
    app = create_annotate_app(predictor, store, settings)
    shown = f"[{host}]" if ":" in host else host
    log(f"ifcn annotate: {name} from {checkpoint} on {dev}; {len(store.labels)} labels; saving to {out}; open "
        f"http://{shown}:{port}/ (Ctrl-C stops; finished objects are already saved)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
