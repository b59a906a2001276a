"""The annotation server's HTTP app: the page (`static/`) over a JSON API (documented at /docs, served offline).

Per tab, a draft holds the object in progress (`drafts`); finishing it writes the object to the project folder at
once (`store`). Prediction reuses the demo's pieces: the public `Predictor`, one forward pass at a time (a lock, as in
the demo), the same image reading and its 4xx statuses. A click bumps the draft's version before it waits for the
network: a request that a newer one overtook while waiting answers at once with `superseded: true` instead of
predicting, so clicks supersede each other rather than queue. Only names listed from `--images` are opened.
"""

from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from ifcn.cli_options import MAX_SIDE
from ifcn.errors import InputError
from ifcn.trainer.annotate.drafts import Draft, DraftStore, current_mask, extended_probs
from ifcn.trainer.annotate.store import AnnotatedObject, ProjectStore, new_object_id, now_ns
from ifcn.trainer.demo.demo_app import STATUS_OF_KIND, mask_png
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.images import fit_size, list_images, read_image
from ifcn.trainer.inference.zoom import ZoomSettings, interactive_zoom
from ifcn.trainer.web import json_errors
from ifcn.trainer.web.body_limit import BodyLimitMiddleware
from ifcn.trainer.web.hosts import AllowedHostsMiddleware, allowed_hosts
from ifcn.trainer.web.origin import SameOriginMiddleware

STATIC = Path(__file__).parent / "static"
#: Largest brush radius in image pixels.
MAX_RADIUS = 500
#: Largest request body: JSON only (a brush stroke of 10000 points is about 200 kB).
MAX_BODY_BYTES = 4 * 2**20


@dataclass(frozen=True)
class AnnotateSettings:
    """Server settings: the long side the network sees, the mask threshold, how many drafts (tabs) are kept."""

    max_side: int = MAX_SIDE
    threshold: float = 0.5
    max_drafts: int = 32
    allowed_hosts: frozenset[str] = allowed_hosts("127.0.0.1")
    #: Zoom-in inference on the inference image (`ifcn.trainer.inference.zoom`): clicks after an object's first are
    #: predicted on a view of this long side around it, first clicks at most twice that; 0 = off.
    zoom_in: int = 400
    #: The long side of the mask overlays the page is sent (it stretches them over the image).
    overlay_side: int = 2048

    def __post_init__(self) -> None:
        if self.max_side < 32:
            raise ValueError(f"--max-side must be at least 32 pixels, got {self.max_side}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"--threshold must lie in [0, 1), got {self.threshold}")
        interactive_zoom(self.zoom_in)
        if self.overlay_side < 32:
            raise ValueError(f"--overlay-side must be at least 32 pixels, got {self.overlay_side}")

    @property
    def zoom(self) -> ZoomSettings | None:
        """The zoom-in of every click, or None when off."""
        return interactive_zoom(self.zoom_in)


class ClickIn(BaseModel):
    x: int = Field(description="column in full-size image pixels, 0 at the left")
    y: int = Field(description="row, 0 at the top")
    positive: bool = Field(True, description="true adds to the object, false removes from it")


class StrokeIn(BaseModel):
    points: list[tuple[float, float]] = Field(min_length=1, max_length=10000, description="[x, y] image pixels")
    radius: float = Field(gt=0, le=MAX_RADIUS, description="brush radius in image pixels")
    erase: bool = Field(False, description="true erases pixels from the object")


class DraftIn(BaseModel):
    image: str = Field(description="a file name listed by GET /api/project")
    label: str | None = Field(None, description="the object's label (default: the first)")
    object: str | None = Field(None, description="redo this finished object: its clicks and strokes are loaded")


class LabelIn(BaseModel):
    label: str


class DoneIn(BaseModel):
    done: bool


def alpha_png(mask: np.ndarray, side: int) -> str:
    """Data URL of a white PNG whose alpha is the mask, at most `side` px long: the page tints it with any colour and
    stretches it over the image (encoding a 12-megapixel PNG per click took a second; saved masks stay full size)."""
    alpha = mask.astype(np.uint8) * 255
    h, w = alpha.shape
    if max(h, w) > side:
        th, tw = fit_size(h, w, side)
        alpha = cv2.resize(alpha, (tw, th), interpolation=cv2.INTER_AREA)
    pixels = np.full((*alpha.shape, 4), 255, np.uint8)
    pixels[..., 3] = alpha
    ok, data = cv2.imencode(".png", pixels, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return "data:image/png;base64," + base64.b64encode(data.tobytes()).decode()


def object_info(obj: AnnotatedObject) -> dict[str, Any]:
    ys, xs = np.nonzero(obj.mask)
    bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)] if xs.size \
        else [0, 0, 0, 0]
    return {"id": obj.id, "label": obj.label, "created": obj.created, "area": int(obj.mask.sum()), "bbox": bbox,
            "clicks": sum("points" not in a for a in obj.actions)}


def guard(app: FastAPI, hosts: frozenset[str], same_origin: bool = True) -> None:
    """The demo's protections (`ifcn.trainer.web`): JSON errors as messages, a body limit, cross-origin changes refused
    (`same_origin`: off for server-to-server callers), and only the allowed `Host` names answered."""
    json_errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES,
                       message=f"the request is larger than {MAX_BODY_BYTES >> 20} MB")
    if same_origin:
        app.add_middleware(SameOriginMiddleware)
    app.add_middleware(AllowedHostsMiddleware, hosts=hosts)  # added last: runs first


def create_annotate_app(predictor: Predictor, store: ProjectStore,
                        settings: AnnotateSettings | None = None) -> FastAPI:
    """The ASGI app annotating `store`'s image folder with an interactive `predictor`."""
    settings = settings or AnnotateSettings()
    if predictor.task != "interactive":
        raise ValueError("annotating needs an interactive checkpoint (RGB + click channels), but this one is semantic")
    drafts = DraftStore(settings.max_drafts)
    predict_lock = threading.Lock()
    app = FastAPIOffline(title="ifcn annotation", redoc_url=None,  # /docs: Swagger UI from local files
                         description="Annotate a folder of images object by object: clicks and a brush make a draft, "
                                     "finishing it saves the object (label + full-size mask) to the project "
                                     "folder.")
    guard(app, settings.allowed_hosts)

    def images() -> dict[str, Path]:
        return {p.name: p for p in list_images(store.images) if p.resolve().is_relative_to(store.images)}

    def image_path(name: str) -> Path:
        path = images().get(name)
        if path is None:
            raise HTTPException(404, f"no image named {name!r} in {store.images} (GET /api/project lists them)")
        return path

    def load(name: str) -> np.ndarray:
        try:
            return read_image(image_path(name)).rgb
        except InputError as e:
            raise HTTPException(STATUS_OF_KIND.get(e.kind, 400), str(e)) from None

    def draft_of(draft_id: str) -> Draft:
        draft = drafts.get(draft_id)
        if draft is None:
            raise HTTPException(404, f"unknown or expired draft {draft_id!r}: start one with POST /api/drafts")
        return draft

    def object_of(image: str, object_id: str) -> AnnotatedObject:
        image_path(image)
        obj = store.get(image, object_id)
        if obj is None:
            raise HTTPException(404, f"image {image!r} has no object {object_id!r}")
        return obj

    def label_checked(label: str) -> str:
        if label not in store.labels:
            raise HTTPException(422, f"unknown label {label!r}; the project's labels are {list(store.labels)}")
        return label

    def state(draft: Draft, superseded: bool = False) -> dict[str, Any]:
        mask = current_mask(draft, settings.threshold)
        h, w = draft.size
        return {"id": draft.id, "image": draft.image_name, "width": w, "height": h, "label": draft.label,
                "editing": draft.editing, "version": draft.version, "superseded": superseded,
                "clicks": draft.clicks(), "actions": len(draft.actions), "can_redo": bool(draft.undone),
                "area": int(mask.sum()), "prediction_ms": draft.prediction_ms,
                "mask": alpha_png(mask, settings.overlay_side)}

    def changed(draft: Draft, change: Any) -> dict[str, Any]:
        """Apply `change(draft)` under the draft's lock, then predict unless a newer change overtakes it."""
        with draft.lock:
            change(draft)
            draft.version += 1
            mine = draft.version
        with predict_lock:
            with draft.lock:
                if draft.version != mine:
                    return state(draft, superseded=True)
                clicks, probs = draft.small_clicks(), list(draft.probs)
            start = time.perf_counter()
            probs = extended_probs(draft.small, clicks, probs, predictor, settings.zoom)
            with draft.lock:
                if draft.small_clicks()[:len(clicks)] == clicks:
                    draft.probs = probs
                    draft.prediction_ms = (time.perf_counter() - start) * 1000
                return state(draft, superseded=draft.version != mine)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/project", summary="Labels, images, and which are done (progress)")
    def project() -> dict[str, Any]:
        names = sorted(images())
        rows = [{"name": n, "objects": len(store.objects(n)), "done": store.is_done(n)} for n in names]
        return {"labels": list(store.labels), "images": rows, "done": sum(r["done"] for r in rows),
                "total": len(rows), "max_side": settings.max_side}

    @app.get("/api/images/{image}/image", summary="The image as the page shows it (EXIF orientation applied)",
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    def image_pixels(image: str) -> Response:
        _ok, data = cv2.imencode(".jpg", cv2.cvtColor(load(image), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        return Response(data.tobytes(), media_type="image/jpeg")

    @app.get("/api/images/{image}/objects", summary="The image's finished objects in paint order (later on top)")
    def objects(image: str) -> list[dict[str, Any]]:
        image_path(image)
        return [object_info(o) for o in store.objects(image)]

    @app.get("/api/images/{image}/objects/{object_id}/mask.png", summary="An object's full-size mask (255 = object)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def object_mask(image: str, object_id: str) -> Response:
        return Response(mask_png(object_of(image, object_id).mask), media_type="image/png")

    @app.get("/api/images/{image}/objects/{object_id}/overlay", summary="An object's mask as a tintable alpha PNG")
    def object_overlay(image: str, object_id: str) -> dict[str, str]:
        return {"mask": alpha_png(object_of(image, object_id).mask, settings.overlay_side)}

    @app.get("/api/images/{image}/objects/{object_id}/cutout.png",
             summary="The object cut out: RGBA PNG of its bounding box, transparent outside it",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def cutout(image: str, object_id: str) -> Response:
        obj = object_of(image, object_id)
        x, y, w, h = object_info(obj)["bbox"]
        if not w:
            raise HTTPException(409, f"object {object_id!r} is empty: nothing to cut out")
        rgba = np.dstack([load(image), obj.mask.astype(np.uint8) * 255])[y:y + h, x:x + w]
        _ok, data = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
        return Response(data.tobytes(), media_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="{obj.label}-{obj.id}.png"'})

    @app.patch("/api/images/{image}/objects/{object_id}", summary="Relabel a finished object")
    def relabel(image: str, object_id: str, body: LabelIn) -> dict[str, Any]:
        obj = object_of(image, object_id)
        updated = AnnotatedObject(obj.id, label_checked(body.label), obj.created, obj.mask, obj.actions)
        store.save(image, updated)
        return object_info(updated)

    @app.delete("/api/images/{image}/objects/{object_id}", status_code=204, summary="Delete a finished object")
    def delete(image: str, object_id: str) -> Response:
        object_of(image, object_id)
        store.delete(image, object_id)
        return Response(status_code=204)

    @app.put("/api/images/{image}/done", summary="Mark the image done (or not)")
    def done(image: str, body: DoneIn) -> dict[str, bool]:
        image_path(image)
        store.set_done(image, body.done)
        return {"done": body.done}

    @app.post("/api/drafts", summary="Start an object on an image (or redo a finished one)")
    def open_draft(body: DraftIn) -> dict[str, Any]:
        label = label_checked(body.label) if body.label is not None else store.labels[0]
        obj = object_of(body.image, body.object) if body.object is not None else None
        draft = drafts.create(body.image, load(body.image), settings.max_side, obj.label if obj else label)
        if obj is None:
            return state(draft)
        draft.editing = obj.id

        def replay(d: Draft) -> None:
            d.actions = [dict(a) for a in obj.actions]
        return changed(draft, replay)

    @app.get("/api/drafts/{draft_id}", summary="The draft's clicks and current mask")
    def get_draft(draft_id: str) -> dict[str, Any]:
        draft = draft_of(draft_id)
        with draft.lock:
            return state(draft)

    @app.post("/api/drafts/{draft_id}/clicks", summary="Add a click and predict",
              responses={422: {"description": "click outside the image"}})
    def click(draft_id: str, body: ClickIn) -> dict[str, Any]:
        draft = draft_of(draft_id)
        h, w = draft.size
        if not (0 <= body.y < h and 0 <= body.x < w):
            raise HTTPException(422, f"click (x={body.x}, y={body.y}) lies outside the {w}x{h} image: x must be in "
                                     f"[0, {w - 1}] and y in [0, {h - 1}]")

        def add(d: Draft) -> None:
            d.actions.append({"x": body.x, "y": body.y, "positive": body.positive})
            d.undone.clear()
        return changed(draft, add)

    @app.post("/api/drafts/{draft_id}/strokes", summary="Brush: add (or erase) pixels of the object")
    def stroke(draft_id: str, body: StrokeIn) -> dict[str, Any]:
        draft = draft_of(draft_id)

        def add(d: Draft) -> None:
            d.actions.append({"points": [list(p) for p in body.points], "radius": body.radius, "erase": body.erase})
            d.undone.clear()
        return changed(draft, add)

    @app.post("/api/drafts/{draft_id}/undo", summary="Undo the last click or stroke")
    def undo(draft_id: str) -> dict[str, Any]:
        def pop(d: Draft) -> None:
            if d.actions:
                d.undone.append(d.actions.pop())
        return changed(draft_of(draft_id), pop)

    @app.post("/api/drafts/{draft_id}/redo", summary="Redo the last undone click or stroke")
    def redo(draft_id: str) -> dict[str, Any]:
        def push(d: Draft) -> None:
            if d.undone:
                d.actions.append(d.undone.pop())
        return changed(draft_of(draft_id), push)

    @app.post("/api/drafts/{draft_id}/reset", summary="Remove every click and stroke")
    def reset(draft_id: str) -> dict[str, Any]:
        def clear(d: Draft) -> None:
            d.undone.extend(reversed(d.actions))
            d.actions.clear()
        return changed(draft_of(draft_id), clear)

    @app.patch("/api/drafts/{draft_id}", summary="Set the draft's label")
    def set_label(draft_id: str, body: LabelIn) -> dict[str, Any]:
        draft = draft_of(draft_id)
        with draft.lock:
            draft.label = label_checked(body.label)
            return state(draft)

    @app.post("/api/drafts/{draft_id}/finish", summary="Save the object to the project; the draft starts a new one",
              responses={409: {"description": "empty object"}})
    def finish(draft_id: str) -> dict[str, Any]:
        draft = draft_of(draft_id)
        with predict_lock, draft.lock:
            draft.probs = extended_probs(draft.small, draft.small_clicks(), draft.probs, predictor, settings.zoom)
            mask = current_mask(draft, settings.threshold)
            if not mask.any():
                raise HTTPException(409, "the object is empty: click on it (or brush it) before finishing")
            old = store.get(draft.image_name, draft.editing) if draft.editing else None
            obj = AnnotatedObject(draft.editing or new_object_id(), draft.label, old.created if old else now_ns(),
                                  mask, tuple(draft.actions))
            store.save(draft.image_name, obj)
            draft.editing, draft.actions, draft.undone, draft.probs = None, [], [], []
            draft.version += 1
            return {"object": object_info(obj), "draft": state(draft)}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
