"""The demo's HTTP app: a page to select objects by clicking, over a JSON API documented at /openapi.json.

Every prediction goes through the public `Predictor` (one at a time: the forward pass and any GrabCut, at most
`grabcut_side` pixels on a side, hold a lock, so two tabs never oversubscribe the CPU); at most `max_decodes` images
are decoded at once, each refused from its header when over `max_megapixels`. Bad requests get a 4xx with a message
that says what to do, never a 500: unknown sessions 404, clicks outside the image or non-numbers 422, non-images
415, corrupt images 400, oversized uploads 413 (as soon as the body passes the limit), unknown `Host` names 400,
cross-origin changes 403 (`ifcn.trainer.web`). Images of the `--images` folder are opened by file name only, and only
names listed from that folder are accepted, so no request reaches a file outside it. Images with a long side over
`max_side` are shown and predicted downscaled (the response says so); the downloaded mask is at the photo's size.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import cv2
import numpy as np
from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ifcn.cli_options import MAX_SIDE
from ifcn.errors import InputError
from ifcn.trainer.core.clicks import Click
from ifcn.trainer.demo.history import DEFAULT_CAPACITY
from ifcn.trainer.demo.sessions import Session, SessionStore
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.grabcut import grabcut_refine_at_most
from ifcn.trainer.inference.images import (
    DEFAULT_MAX_MEGAPIXELS,
    decode_user_photo,
    full_size,
    list_images,
    max_pixels_of,
    read_image,
)
from ifcn.trainer.inference.zoom import ZoomSettings, interactive_zoom
from ifcn.trainer.web import json_errors
from ifcn.trainer.web.body_limit import BodyLimitMiddleware
from ifcn.trainer.web.hosts import AllowedHostsMiddleware, allowed_hosts
from ifcn.trainer.web.origin import SameOriginMiddleware
from ifcn.trainer.web.slots import Slots

STATIC = Path(__file__).parent / "static"
#: HTTP status of each image-reading error kind.
STATUS_OF_KIND = {"not_an_image": 415, "corrupt_image": 400, "too_many_pixels": 413, "unreadable": 403}
#: Room for the multipart framing (boundaries, part headers) of an upload, on top of `--max-upload-mb`.
MULTIPART_SLACK = 64 * 1024


@dataclass(frozen=True)
class DemoSettings:
    """Server settings: the image folder, the size and work limits, the mask threshold, how many sessions and
    previous predictions are kept, the host names answered (`ifcn.trainer.web.hosts.allowed_hosts`)."""

    images: Path | None = None
    max_side: int = MAX_SIDE
    max_upload_mb: float = 64.0
    threshold: float = 0.5
    max_sessions: int = 32
    max_megapixels: float = DEFAULT_MAX_MEGAPIXELS
    max_decodes: int = 2
    prev_mask_history: int = DEFAULT_CAPACITY
    grabcut_side: int = 1024
    allowed_hosts: frozenset[str] = allowed_hosts("127.0.0.1")
    #: Zoom-in inference (`ifcn.trainer.inference.zoom`): later clicks predicted on a view of this long side around
    #: the object, whole-image passes at most twice that; 0 = off (every click on the whole image).
    zoom_in: int = 400

    def __post_init__(self) -> None:
        if self.images is not None and not Path(self.images).is_dir():
            raise ValueError(f"--images {self.images}: not a folder; pass a folder of images (or leave it out and "
                             "upload images in the page)")
        if self.max_side < 32:
            raise ValueError(f"--max-side must be at least 32 pixels, got {self.max_side}")
        if self.max_upload_mb <= 0:
            raise ValueError(f"--max-upload-mb must be positive, got {self.max_upload_mb}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"--threshold must lie in [0, 1), got {self.threshold}")
        max_pixels_of(self.max_megapixels)
        for flag, value, least in (("--max-decodes", self.max_decodes, 1),
                                   ("--prev-mask-history", self.prev_mask_history, 1),
                                   ("--grabcut-side", self.grabcut_side, 32)):
            if value < least:
                raise ValueError(f"{flag} must be at least {least}, got {value}")
        if not self.allowed_hosts:
            raise ValueError("no allowed host: pass --allowed-host NAME (the name users open the page by)")
        interactive_zoom(self.zoom_in)

    @property
    def zoom(self) -> ZoomSettings | None:
        """The zoom-in of every click, or None when off."""
        return interactive_zoom(self.zoom_in)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class ClickModel(BaseModel):
    """A click in pixels of the session's image (after any downscaling): row y, column x, and its sign."""

    y: int = Field(description="row, 0 at the top")
    x: int = Field(description="column, 0 at the left")
    positive: bool = Field(True, description="true adds to the object, false removes from it")


class OpenImage(BaseModel):
    image: str = Field(description="a file name listed by GET /api/images")


class SessionSettings(BaseModel):
    grabcut: bool = Field(description="refine each prediction with GrabCut seeded by it and the clicks")


class ImageList(BaseModel):
    images: list[str]


class SessionState(BaseModel):
    """Everything the page shows: the clicks in order, the last mask (PNG data URL, 255 = object) and its time."""

    id: str
    name: str
    width: int
    height: int
    original_width: int
    original_height: int
    clicks: list[ClickModel]
    grabcut: bool
    threshold: float
    prediction_ms: float | None = Field(description="server time of the last prediction, milliseconds")
    mask: str = Field(description="data:image/png;base64 of the current mask (grey, 255 = object)")
    message: str | None = None


def png_bytes(array: np.ndarray) -> bytes:
    """PNG of a grey (H, W) uint8 or an RGB (H, W, 3) uint8 array (fast compression: it is sent, not stored)."""
    pixels = array[..., ::-1] if array.ndim == 3 else array
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return data.tobytes()


def mask_png(mask: np.ndarray) -> bytes:
    return png_bytes(mask.astype(np.uint8) * 255)


def _state(session: Session, threshold: float) -> SessionState:
    h, w = session.size
    message = None
    if session.size != session.original_size:
        oh, ow = session.original_size
        message = (f"shown and predicted at {w}x{h} (the server's --max-side; clicks use it); the downloaded mask "
                   f"is at the photo's {ow}x{oh}")
    return SessionState(
        id=session.id, name=session.name, width=w, height=h, original_width=session.original_size[1],
        original_height=session.original_size[0], grabcut=session.grabcut, threshold=threshold,
        clicks=[ClickModel(y=c.y, x=c.x, positive=c.positive) for c in session.clicks],
        prediction_ms=session.prediction_ms, message=message,
        mask="data:image/png;base64," + base64.b64encode(mask_png(session.current_mask())).decode())


def _input_error(e: InputError) -> HTTPException:
    return HTTPException(STATUS_OF_KIND.get(e.kind, 400), str(e))


def create_app(predictor: Predictor, settings: DemoSettings | None = None) -> FastAPI:
    """The ASGI app serving the page and the API for an interactive `predictor` (default settings if None)."""
    settings = settings or DemoSettings()
    if predictor.task != "interactive":
        raise ValueError("the demo needs an interactive checkpoint (RGB + click channels), but this one is semantic: "
                         "segment images with `ifcn-eval predict --checkpoint CK --images DIR --out DIR`")
    store = SessionStore(settings.max_sessions, settings.prev_mask_history)
    predict_lock = threading.Lock()
    decode_slots = Slots(settings.max_decodes)
    max_pixels = max_pixels_of(settings.max_megapixels)
    folder = Path(settings.images).resolve() if settings.images is not None else None
    app = FastAPI(title="ifcn interactive segmentation", docs_url=None, redoc_url=None,
                  description="Click on an object, get its mask. Create a session from an image (upload or a "
                              "file of the server's --images folder), add clicks, read or download the mask.")
    app.state.sessions = store  # for tests and tools that inspect the server's memory
    json_errors.install(app)
    too_large = (f"the request is larger than the server's limit of {settings.max_upload_mb:g} MB; downscale the "
                 "image or restart the demo with a larger --max-upload-mb")
    # The last one added runs first: hosts, then origin, then the body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_upload_bytes + MULTIPART_SLACK, message=too_large)
    app.add_middleware(SameOriginMiddleware)
    app.add_middleware(AllowedHostsMiddleware, hosts=settings.allowed_hosts)

    def session_of(session_id: str) -> Session:
        session = store.get(session_id)
        if session is None:
            raise HTTPException(404, f"unknown or expired session {session_id!r}: create one with POST /api/sessions "
                                     "or /api/sessions/upload")
        return session

    zoom = settings.zoom
    #: A `--prev-mask` network sees its previous prediction; zoom-in finds the object in it.
    keeps_history = predictor.prev_mask or zoom is not None

    def predict(session: Session) -> SessionState:
        """Predict with the session's clicks (caller holds the session's lock); no click = empty mask. A
        `--prev-mask` network sees its prediction before the last click, as in training and NoC evaluation (undone
        clicks take their predictions with them); with zoom-in, clicks after the first are predicted on a view
        around the object that prediction shows."""
        clicks = session.clicks
        if not clicks:
            session.history.truncate(0)
            session.mask, session.prediction_ms = None, None
            return _state(session, settings.threshold)
        start = time.perf_counter()
        with predict_lock:
            prev = None
            if keeps_history:
                prev = session.history.previous(clicks, lambda c, p: predictor.predict(session.image, c, prev=p,
                                                                                        zoom=zoom))
            probs = predictor.predict(session.image, clicks, prev=prev, zoom=zoom)
            if keeps_history:
                session.history.append(len(clicks), probs)
            session.mask = probs > settings.threshold
            if session.grabcut:
                session.mask = grabcut_refine_at_most(session.image, session.mask, clicks, settings.grabcut_side)
        session.prediction_ms = (time.perf_counter() - start) * 1000
        return _state(session, settings.threshold)

    def folder_images() -> dict[str, Path]:
        """The folder's images by file name; links leading out of the folder are left out."""
        if folder is None:
            return {}
        return {p.name: p for p in list_images(folder) if p.resolve().is_relative_to(folder)}

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/api/images", response_model=ImageList, summary="Images of the server's --images folder")
    def images() -> ImageList:
        return ImageList(images=sorted(folder_images()))

    @app.post("/api/sessions", response_model=SessionState, summary="Start a session on an image of the folder")
    def open_image(body: OpenImage) -> SessionState:
        path = folder_images().get(body.image)
        if path is None:
            where = "the server has no --images folder" if folder is None else "GET /api/images lists the names"
            raise HTTPException(404, f"no image named {body.image!r} ({where}); upload it with /api/sessions/upload")
        try:
            with decode_slots:
                loaded = read_image(path, settings.max_side, max_pixels=max_pixels)
        except InputError as e:
            raise _input_error(e) from None
        return _state(store.create(path.name, loaded.rgb, loaded.original_size), settings.threshold)

    @app.post("/api/sessions/upload", response_model=SessionState, summary="Start a session on an uploaded image")
    def upload(file: Annotated[UploadFile, File(description="JPEG, PNG, BMP, GIF, TIFF or WebP")]) -> SessionState:
        limit = settings.max_upload_bytes
        data = file.file.read(limit + 1)
        name = Path(file.filename or "upload").name
        if len(data) > limit:
            raise HTTPException(413, f"{name}: larger than the server's limit of {settings.max_upload_mb:g} MB; "
                                     "downscale it or restart the demo with a larger --max-upload-mb")
        try:
            with decode_slots:
                loaded = decode_user_photo(data, name, settings.max_side, max_pixels=max_pixels)
        except InputError as e:
            raise _input_error(e) from None
        return _state(store.create(name, loaded.rgb, loaded.original_size), settings.threshold)

    @app.get("/api/sessions/{session_id}", response_model=SessionState, summary="The session's clicks and mask")
    def state(session_id: str) -> SessionState:
        return _state(session_of(session_id), settings.threshold)

    @app.delete("/api/sessions/{session_id}", status_code=204, summary="Forget a session")
    def close(session_id: str) -> Response:
        if not store.delete(session_id):
            session_of(session_id)
        return Response(status_code=204)

    @app.get("/api/sessions/{session_id}/image", summary="The session's image as PNG (what the clicks refer to)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def image(session_id: str) -> Response:
        return Response(png_bytes(session_of(session_id).image), media_type="image/png")

    @app.get("/api/sessions/{session_id}/mask.png",
             summary="Download the current mask at the photo's own size (grey PNG, 255 = object)",
             response_class=Response, responses={200: {"content": {"image/png": {}}}})
    def mask(session_id: str) -> Response:
        session = session_of(session_id)
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(session.name).stem) or "image"
        full = full_size(session.current_mask().astype(np.float32), session.original_size) > 0.5
        return Response(mask_png(full), media_type="image/png",
                        headers={"Content-Disposition": f'attachment; filename="{stem}-mask.png"'})

    @app.post("/api/sessions/{session_id}/clicks", response_model=SessionState,
              summary="Add a click and predict", responses={422: {"description": "click outside the image"}})
    def add_click(session_id: str, body: ClickModel) -> SessionState:
        session = session_of(session_id)
        h, w = session.size
        if not (0 <= body.y < h and 0 <= body.x < w):
            raise HTTPException(422, f"click (y={body.y}, x={body.x}) lies outside the {w}x{h} image: y must be in "
                                     f"[0, {h - 1}] and x in [0, {w - 1}]")
        with session.lock:
            session.clicks.append(Click(body.y, body.x, body.positive))
            return predict(session)

    @app.post("/api/sessions/{session_id}/undo", response_model=SessionState, summary="Remove the last click")
    def undo(session_id: str) -> SessionState:
        session = session_of(session_id)
        with session.lock:
            if session.clicks:
                session.clicks.pop()
            return predict(session)

    @app.post("/api/sessions/{session_id}/reset", response_model=SessionState, summary="Remove every click")
    def reset(session_id: str) -> SessionState:
        session = session_of(session_id)
        with session.lock:
            session.clicks.clear()
            return predict(session)

    @app.patch("/api/sessions/{session_id}", response_model=SessionState, summary="Change settings (GrabCut)")
    def configure(session_id: str, body: SessionSettings) -> SessionState:
        session = session_of(session_id)
        with session.lock:
            session.grabcut = body.grabcut
            return predict(session)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
