"""`ifcn-eval annotate` and `ifcn-eval annotate-export` (registered on the `ifcn-eval` group by its `eval_cli`).

Thin commands: options checked here, the work done by `run_annotate` and `export_project`, which the tests call too.
"""

from __future__ import annotations

from pathlib import Path

import click

from ifcn.cli_options import (
    device_option,
    max_side_option,
    renamed_option,
    server_options,
    threshold_option,
    user_errors,
    zoom_in_option,
)


@click.command()
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Interactive checkpoint written by `ifcn-train` (RUN_DIR/best.pt).")
@click.option("--images", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="Folder of the images to annotate (files directly inside it).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Project folder: created, or reopened where it was left. Every finished object is saved at once.")
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Text file, one label a line (default: VOC's 20 classes; a reopened project keeps its own).")
@server_options(port=8000)
@device_option()
@max_side_option()
@renamed_option("--infer-side", "--max-side", "max_side", type=click.IntRange(min=32))
@threshold_option()
@zoom_in_option(first_click=True)
@click.option("--overlay-side", type=click.IntRange(min=32), default=2048, show_default=True,
              help="Long side of the mask overlays sent to the page (saved and exported masks are full size).")
def annotate(checkpoint: Path, images: Path, out: Path, labels: Path | None, host: str, port: int, device: str,
             max_side: int, threshold: float, allowed_host: tuple[str, ...], zoom_in: int,
             overlay_side: int) -> None:
    """Annotate a folder of images object by object in a web page; export with `ifcn-eval annotate-export`."""
    from ifcn.trainer.annotate.annotate_app import AnnotateSettings
    from ifcn.trainer.annotate.annotate_serve import run_annotate
    from ifcn.trainer.web.hosts import allowed_hosts

    with user_errors():
        settings = AnnotateSettings(max_side, threshold, allowed_hosts=allowed_hosts(host, allowed_host),
                                    zoom_in=zoom_in, overlay_side=overlay_side)
        run_annotate(checkpoint, images, out, labels, settings, host=host, port=port, device=device, log=click.echo)


@click.command("annotate-export")
@click.option("--project", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="The --out folder of `ifcn-eval annotate`.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Export folder: VOC2012/ and annotations/instances_SPLIT.json.")
@click.option("--format", "formats", type=click.Choice(["voc", "coco"]), multiple=True, default=("voc", "coco"),
              show_default=True, help="Repeat for several.")
@click.option("--split", default="train", show_default=True, help="Split name of the VOC list and the COCO file.")
def annotate_export(project: Path, out: Path, formats: tuple[str, ...], split: str) -> None:
    """Export the annotated images (with objects, or marked done) at their stored size and orientation."""
    from ifcn.trainer.annotate.project_export import export_project

    with user_errors():
        summary = export_project(project, out, tuple(formats), split)
    click.echo(f"exported {summary.images} images, {summary.objects} objects ({summary.hidden} hidden entirely by "
               "later objects, left out)")
    if summary.voc_root is not None:
        click.echo(f"VOC: ifcn-prep sample --voc-root {summary.voc_root} --split {split} --out SHARDS")
    if summary.coco_json is not None:
        click.echo(f"COCO: ifcn-prep sample --source coco --coco-images {summary.image_folder} "
                   f"--coco-json {summary.coco_json} --out SHARDS")


@click.command("label-studio-backend")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="Interactive checkpoint written by `ifcn-train`.")
@server_options(port=9090)
@device_option()
@click.option("--files-root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT, for tasks with /data/local-files/ images.")
@click.option("--label-studio-url", default=None, help="Label Studio's address, for uploaded images (/data/upload).")
@click.option("--api-key", envvar="LABEL_STUDIO_API_KEY", default=None,
              help="Label Studio access token (or LABEL_STUDIO_API_KEY), for uploaded images.")
@max_side_option()
@renamed_option("--infer-side", "--max-side", "max_side", type=click.IntRange(min=32))
@threshold_option()
def label_studio_backend(checkpoint: Path, host: str, port: int, device: str, files_root: Path | None,
                         label_studio_url: str | None, api_key: str | None, max_side: int, threshold: float,
                         allowed_host: tuple[str, ...]) -> None:
    """Serve a Label Studio ML backend: smart keypoints in, a brush mask out (add it in Label Studio's Model page)."""
    import uvicorn

    from ifcn.trainer.annotate.labelstudio import BackendSettings, create_labelstudio_app
    from ifcn.trainer.demo.demo_serve import load_predictor
    from ifcn.trainer.web.hosts import allowed_hosts

    with user_errors():
        predictor, name, dev = load_predictor(checkpoint, device)
        settings = BackendSettings(files_root, label_studio_url, api_key, max_side, threshold, f"ifcn-{name}",
                                   allowed_hosts(host, allowed_host))
        app = create_labelstudio_app(predictor, settings)
    click.echo(f"ifcn Label Studio ML backend: {name} on {dev}; add http://{host}:{port} as a model in Label Studio")
    uvicorn.run(app, host=host, port=port, log_level="warning")


#: The commands `ifcn.trainer.evaluation.eval_cli` adds to `ifcn-eval`.
ANNOTATE_COMMANDS = (annotate, annotate_export, label_studio_backend)
