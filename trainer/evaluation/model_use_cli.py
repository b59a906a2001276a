"""`ifcn-eval demo`, `export` and `predict`: using a trained model (registered on the `ifcn-eval` group by `eval_cli`).

Thin commands: each checks its options and calls one typed function (`run_demo`, `export_checkpoint`, ...), which
the tests call too. Heavy imports (torch, the web server) happen inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ifcn.cli_options import (
    device_option,
    max_side_option,
    no_progress_option,
    on_error_option,
    server_options,
    threshold_option,
    user_errors,
    zoom_in_option,
)
from ifcn.trainer.evaluation.crf_options import crf_options

if TYPE_CHECKING:
    from ifcn.trainer.inference.crf import CrfParams

#: Mirrors `ifcn.trainer.inference.images.DEFAULT_MAX_MEGAPIXELS` (not imported: `--help` loads no PIL or torch).
_MAX_MEGAPIXELS = click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True), default=100.0,
                               show_default=True, help="Images with more pixels (read from the file's header, before "
                               "decoding) are refused; at most 178 (PIL's own limit).")

#: `ifcn-eval predict --max-side` default (see the README's measurement of whole, downscaled and tiled prediction).
_CHECKPOINT = click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
                           help="Checkpoint written by `ifcn-train` (RUN_DIR/best.pt).")
_DEVICE = device_option()


@click.command()
@_CHECKPOINT
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder whose images the page lists (only files directly inside it are served).")
@server_options(port=8000)
@_DEVICE
@max_side_option()
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=64.0, show_default=True,
              help="Larger uploads are refused (HTTP 413).")
@threshold_option()
@click.option("--max-sessions", type=click.IntRange(min=1), default=32, show_default=True,
              help="Sessions (browser tabs) kept; the least recently used is forgotten first.")
@_MAX_MEGAPIXELS
@click.option("--max-decodes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Images decoded at once (each may take 3 bytes per pixel and more); other requests wait.")
@click.option("--prev-mask-history", type=click.IntRange(min=1), default=4, show_default=True,
              help="Previous predictions a --prev-mask model's session keeps (undoing further replays the clicks).")
@click.option("--grabcut-side", type=click.IntRange(min=32), default=1024, show_default=True,
              help="GrabCut refines a copy downscaled to this long side, its mask upsampled (bounds its time).")
@zoom_in_option(first_click=True)
def demo(checkpoint: Path, images: Path | None, host: str, port: int, device: str, max_side: int,
         max_upload_mb: float, threshold: float, max_sessions: int, max_megapixels: float, max_decodes: int,
         prev_mask_history: int, grabcut_side: int, allowed_host: tuple[str, ...], zoom_in: int) -> None:
    """Serve a web page to select objects by clicking (left: add, right or shift+left: remove).

    The page works offline; its JSON API is described at /openapi.json and usable without the page.
    """
    from ifcn.trainer.demo.demo_app import DemoSettings
    from ifcn.trainer.demo.demo_serve import run_demo
    from ifcn.trainer.web.hosts import allowed_hosts

    with user_errors():
        settings = DemoSettings(images, max_side, max_upload_mb, threshold, max_sessions, max_megapixels,
                                max_decodes, prev_mask_history, grabcut_side, allowed_hosts(host, allowed_host),
                                zoom_in)
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
    from ifcn.trainer.inference.model_export import export_checkpoint

    with user_errors():
        info = export_checkpoint(checkpoint, fmt, out, with_clicks)
    click.echo(f"wrote {out} ({fmt}, {info['task']} {info['graph']} graph); inputs: "
               + "; ".join(f"{k} {v}" for k, v in info["inputs"].items()))


@click.command()
@_CHECKPOINT
@click.option("--images", required=True,
              help="A folder of images, one image file, or a glob pattern (quote it: 'photos/**/*.jpg').")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder (created): one file per image and classes.json.")
@click.option("--format", "fmt", type=click.Choice(["palette", "index", "overlay"]), default="palette",
              show_default=True, help="palette: VOC-coloured palette PNG holding the class indices (like VOC's "
              "SegmentationClass); index: grey PNG of class indices; overlay: JPEG of the colours over the photo "
              "with a legend.")
@max_side_option(zero_means="every image at full size")
@click.option("--tile", type=click.IntRange(min=0), default=0, show_default=True,
              help="Predict in square tiles of this many pixels (after any downscaling), blended over --overlap; "
                   "0 = one pass per image.")
@click.option("--overlap", type=click.IntRange(min=0), default=64, show_default=True,
              help="Pixels shared by neighbouring tiles (less than half a tile).")
@_DEVICE
@on_error_option("Files that are not readable images")
@_MAX_MEGAPIXELS
@no_progress_option()
@crf_options
def predict(checkpoint: Path, images: str, out: Path, fmt: str, max_side: int, tile: int, overlap: int, device: str,
            on_error: str, max_megapixels: float, no_progress: bool, crf: CrfParams | None) -> None:
    """Segment images of any size with a semantic checkpoint: VOC-coloured masks, index masks or overlays."""
    from ifcn.trainer.inference.predict_images import SUMMARY_NAME, run_predict
    from ifcn.trainer.inference.semantic_segmentation import Sizing

    with user_errors():
        sizing = Sizing(max_side or None, tile or None, overlap)
        summary = run_predict(checkpoint, images, out, fmt=fmt, sizing=sizing, device=device, on_error=on_error,
                              max_megapixels=max_megapixels, progress=not no_progress,
                              log=lambda m: click.echo(m, err=True), crf=crf)
    refined = "" if crf is None else f", dense CRF {crf.iterations} iterations"
    click.echo(f"{len(summary['images'])} images segmented ({sizing.describe()}{refined}), "
               f"{len(summary['skipped'])} skipped; "
               f"wrote {out} ({fmt}) and {out / SUMMARY_NAME}")


#: The commands `eval_cli` adds to `ifcn-eval`.
USE_COMMANDS = (demo, export, predict)
