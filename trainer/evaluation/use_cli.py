"""`ifcn-eval demo`, `export` and `predict`: using a trained model (registered on the `ifcn-eval` group by `cli`).

Thin commands: each checks its options and calls one typed function (`run_demo`, `export_checkpoint`, ...), which
the tests call too. Heavy imports (torch, the web server) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from ifcn.trainer.evaluation.cli_errors import user_errors

_CHECKPOINT = click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
                           help="Checkpoint written by `ifcn-train` (RUN_DIR/best.pt).")
_DEVICE = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
                       help="auto = CUDA when available.")


@click.command()
@_CHECKPOINT
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder whose images the page lists (only files directly inside it are served).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes the demo to your network.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@_DEVICE
@click.option("--max-side", type=click.IntRange(min=32), default=4096, show_default=True,
              help="Images with a longer side are downscaled to it (the page says so).")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=64.0, show_default=True,
              help="Larger uploads are refused (HTTP 413).")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.5, show_default=True,
              help="Mask = foreground probability > threshold.")
@click.option("--max-sessions", type=click.IntRange(min=1), default=32, show_default=True,
              help="Sessions (browser tabs) kept; the least recently used is forgotten first.")
def demo(checkpoint: Path, images: Path | None, host: str, port: int, device: str, max_side: int,
         max_upload_mb: float, threshold: float, max_sessions: int) -> None:
    """Serve a web page to select objects by clicking (left: add, right or shift+left: remove).

    The page works offline; its JSON API is described at /openapi.json and usable without the page.
    """
    from ifcn.trainer.demo.app import DemoSettings
    from ifcn.trainer.demo.serve import run_demo

    with user_errors():
        settings = DemoSettings(images, max_side, max_upload_mb, threshold, max_sessions)
        run_demo(checkpoint, settings, host=host, port=port, device=device, log=click.echo)


@click.command()
@_CHECKPOINT
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True,
              help="onnx (checked with onnxruntime) or torchscript (torch.jit, deprecated by PyTorch).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Output file.")
@click.option("--with-clicks", is_flag=True,
              help="Interactive only: the graph takes uint8 RGB images and click coordinate lists and computes the "
                   "distance channels itself (otherwise it takes the 5-channel network input).")
def export(checkpoint: Path, fmt: str, out: Path, with_clicks: bool) -> None:
    """Export the network with dynamic batch, height and width; the input contract goes into the file's metadata."""
    from ifcn.trainer.inference.export import export_checkpoint

    with user_errors():
        info = export_checkpoint(checkpoint, fmt, out, with_clicks)
    click.echo(f"wrote {out} ({fmt}, {info['task']} {info['graph']} graph); inputs: "
               + "; ".join(f"{k} {v}" for k, v in info["inputs"].items()))


#: The commands `cli` adds to `ifcn-eval`.
USE_COMMANDS = (demo, export)
