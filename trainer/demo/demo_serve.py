"""`ifcn-eval demo`: load an interactive checkpoint and serve the page with uvicorn (127.0.0.1 unless told)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import uvicorn

from ifcn.trainer.core.checkpoint import load_for
from ifcn.trainer.core.device import resolve_device
from ifcn.trainer.demo.demo_app import DemoSettings, create_app
from ifcn.trainer.inference import Predictor


def load_predictor(checkpoint: Path, device: str) -> tuple[Predictor, str, torch.device]:
    """The interactive checkpoint as a `Predictor` on `device`, its model name and the device (semantic refused)."""
    dev = resolve_device(device)
    model, config, spec, _ = load_for("demo", checkpoint, dev)
    # NHWC convolutions: oneDNN runs them ~15 % faster on the CPU, which is where most demos run.
    return Predictor(model, "interactive", dev, channels_last=dev.type == "cpu", spec=spec), config.name, dev


def run_demo(checkpoint: Path, settings: DemoSettings, *, host: str = "127.0.0.1", port: int = 8000,
             device: str = "auto", log: Callable[[str], None] = print) -> None:
    """Serve the demo until interrupted; refuses a semantic checkpoint before binding the port."""
    predictor, name, dev = load_predictor(checkpoint, device)
    app = create_app(predictor, settings)
    shown = f"[{host}]" if ":" in host else host
    log(f"ifcn demo: {name} from {checkpoint} on {dev}; open http://{shown}:{port}/ (Ctrl-C stops)")
    log(f"answering the host names {', '.join(sorted(settings.allowed_hosts))} (--allowed-host NAME adds one)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
