"""The demo's limits under hostile input (from issue 21, items 9-12, 14, 18): pixel bombs refused from the header, a
bounded number of decodes at once, uploads cut off while they arrive, bounded `--prev-mask` history, GrabCut at a
bounded size one at a time, non-finite numbers answered 422, and only allowed `Host` names and same-origin changes."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from PIL import Image

import ifcn.trainer.demo.demo_app as demo_app
from ifcn.trainer.demo.demo_app import MULTIPART_SLACK, DemoSettings, create_app
from ifcn.trainer.evaluation.eval_cli import main
from ifcn.trainer.inference import Predictor
from ifcn.trainer.inference.predict_images import run_predict
from ifcn.trainer.web.hosts import allowed_hosts, host_name
from tests.demo_data import DEMO_HOST, demo_client, grey_png, make_demo_checkpoint, sample_image, write_images
from tests.eval_data import make_checkpoint

#: Long enough that requests started together overlap inside the spied call.
HOLD_S = 0.3


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("demo_hostile")
    images = write_images(root / "images")
    return {"root": root, "images": images,
            "predictor": Predictor.from_checkpoint(make_demo_checkpoint(root / "fixed.pt"), device="cpu")}


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(client: Any, data: bytes, name: str = "photo.png", **headers: str) -> Any:
    return client.post("/api/sessions/upload", files={"file": (name, data, "image/png")}, headers=headers)


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@contextmanager
def _most_at_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Iterator[list[int]]:
    """Wrap `owner.name` so that each call lasts at least HOLD_S; yields [the most calls seen running at once]."""
    original: Callable[..., Any] = getattr(owner, name)
    lock, running, most = threading.Lock(), [0], [0]

    def spy(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(HOLD_S)
            return original(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(owner, name, spy)
    yield most


def _in_threads(calls: list[Callable[[], Any]]) -> list[Any]:
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


# -- item 9: pixel bombs and decodes at once --------------------------------------------------------------------


def test_a_pixel_bomb_is_refused_from_its_header_before_decoding(setup: dict) -> None:
    """A PNG claiming 13000x13000 (169 MP, under PIL's own bomb limit) holding one row: refused from its header as
    too many pixels (413). Today PIL decodes it (over 1 GB) and the demo downscales it to a 4096² session."""
    client = demo_client(create_app(setup["predictor"]))
    response = _upload(client, grey_png(13000, 13000, rows=1), "bomb.png")
    assert response.status_code == 413, response.text
    assert "13000x13000 is 169.0 megapixels" in response.json()["detail"]
    assert "--max-megapixels" in response.json()["detail"]
    small = demo_client(create_app(setup["predictor"], DemoSettings(images=setup["images"], max_megapixels=0.005)))
    assert small.post("/api/sessions", json={"image": "img-0.jpg"}).status_code == 413  # 96x72 > 5000 pixels
    assert _upload(small, _png(sample_image(0, (50, 60)))).status_code == 200


def test_at_most_max_decodes_images_are_decoded_at_once(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(setup["predictor"], DemoSettings(max_decodes=2))
    data = _png(sample_image(1))
    with _most_at_once(monkeypatch, demo_app, "decode_user_photo") as most:
        responses = _in_threads([lambda: _upload(demo_client(app), data) for _ in range(6)])
    assert [r.status_code for r in responses] == [200] * 6
    assert most[0] <= 2


def test_predict_refuses_images_over_max_megapixels_unread(setup: dict) -> None:
    semantic = make_checkpoint(setup["root"] / "semantic.pt", "semantic")
    photos = setup["root"] / "photos"
    photos.mkdir()
    (photos / "bomb.png").write_bytes(grey_png(13000, 13000, rows=1))
    (photos / "small.png").write_bytes(_png(sample_image(3)))
    out = setup["root"] / "segmented"
    summary = run_predict(semantic, photos, out, device="cpu", max_megapixels=1, log=lambda m: None)
    assert list(summary["images"]) == [str(photos / "small.png")]
    assert summary["skipped"] == [{"path": str(photos / "bomb.png"), "kind": "too_many_pixels",
                                   "reason": "13000x13000 is 169.0 megapixels, over the limit of 1"}]
    for command in (["demo"], ["predict", "--images", str(photos), "--out", str(setup["root"] / "never")]):
        result = CliRunner().invoke(main, [*command, "--checkpoint", str(semantic), "--max-megapixels", "500"])
        assert result.exit_code != 0 and "--max-megapixels must lie in (0, 178" in result.output, result.output
    assert not (setup["root"] / "never").exists()


# -- item 10: the upload limit while the body arrives ------------------------------------------------------------


def _asgi_post(app: FastAPI, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST /api/sessions/upload with `chunks` as the body, straight to the ASGI app; (status, chunks read)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/sessions/upload", "raw_path": b"/api/sessions/upload", "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 50000), "server": (DEMO_HOST, 8000),
             "headers": [(b"host", DEMO_HOST.encode()), *headers]}
    read, status = [0], [0]

    async def receive() -> dict:
        if read[0] < len(chunks):
            read[0] += 1
            return {"type": "http.request", "body": chunks[read[0] - 1], "more_body": read[0] < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]

    asyncio.run(app(scope, receive, send))
    return status[0], read[0]


def test_an_upload_over_the_limit_is_cut_off_while_it_arrives(setup: dict) -> None:
    """A 10 MB chunked upload against --max-upload-mb 0.25: 413 after the first chunks past the limit; a declared
    Content-Length over it: 413 before any is read. (Today the whole body is read, and spooled to disk, first.)"""
    app = create_app(setup["predictor"], DemoSettings(max_upload_mb=0.25))
    boundary = b"xyzzy"
    head = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'
    chunk = 64 * 1024
    body = head + bytes(10 * 2**20) + b"\r\n--" + boundary + b"--\r\n"
    chunks = [body[i:i + chunk] for i in range(0, len(body), chunk)]
    multipart = [(b"content-type", b"multipart/form-data; boundary=" + boundary)]
    status, read = _asgi_post(app, chunks, multipart)
    assert status == 413
    assert read * chunk <= 0.25 * 2**20 + MULTIPART_SLACK + chunk, f"read {read} of {len(chunks)} chunks"
    status, read = _asgi_post(app, chunks, [*multipart, (b"content-length", str(len(body)).encode())])
    assert (status, read) == (413, 0)


# -- item 11: bounded previous-prediction history ----------------------------------------------------------------


def test_prev_mask_history_is_bounded_and_undo_past_it_gives_the_same_masks(setup: dict) -> None:
    predictor = Predictor.from_checkpoint(make_demo_checkpoint(setup["root"] / "prev.pt", prev_mask=True),
                                          device="cpu")
    app = create_app(predictor, DemoSettings(images=setup["images"], prev_mask_history=2))
    client = demo_client(app)
    sid = client.post("/api/sessions", json={"image": "img-0.jpg"}).json()["id"]
    image = _decoded(client.get(f"/api/sessions/{sid}/image").content)
    clicks = [(30, 50, True), (10, 8, False), (50, 70, True), (40, 20, False), (20, 60, True)]
    expected, prev = [], None
    for k, (y, x, positive) in enumerate(clicks, 1):
        client.post(f"/api/sessions/{sid}/clicks", json={"y": y, "x": x, "positive": positive})
        prev = predictor.predict(image, clicks[:k], prev=prev, zoom=DemoSettings().zoom)
        expected.append(prev > 0.5)
        assert len(app.state.sessions.get(sid).history) <= 2
    for k in range(len(clicks) - 1, 0, -1):  # undo down to one click: past the two kept maps
        client.post(f"/api/sessions/{sid}/undo")
        mask = _decoded(client.get(f"/api/sessions/{sid}/mask.png").content) > 0
        np.testing.assert_array_equal(mask, expected[k - 1])
        assert len(app.state.sessions.get(sid).history) <= 2


# -- item 12: GrabCut at a bounded size, one at a time -----------------------------------------------------------


def test_grabcut_runs_downscaled_and_one_at_a_time(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(setup["predictor"], DemoSettings(images=setup["images"], grabcut_side=48))
    client = demo_client(app)
    sizes: list[tuple[int, ...]] = []
    grabcut = cv2.grabCut
    monkeypatch.setattr(cv2, "grabCut", lambda image, *rest: (sizes.append(image.shape), grabcut(image, *rest))[1])
    sessions = [client.post("/api/sessions", json={"image": f"img-{i % 2}.jpg"}).json()["id"] for i in range(3)]
    for sid in sessions:
        client.patch(f"/api/sessions/{sid}", json={"grabcut": True})
    with _most_at_once(monkeypatch, cv2, "grabCut") as most:
        responses = _in_threads([lambda s=sid: client.post(f"/api/sessions/{s}/clicks", json={"y": 36, "x": 48})
                                 for sid in sessions])
    assert [r.status_code for r in responses] == [200] * 3
    assert most[0] == 1
    assert sizes and all(max(shape[:2]) <= 48 for shape in sizes)
    mask = _decoded(client.get(f"/api/sessions/{sessions[0]}/mask.png").content)
    assert mask.shape == (72, 96) and 0 < (mask > 0).sum() < mask.size


# -- item 14: non-finite and huge numbers ------------------------------------------------------------------------


def test_nan_inf_and_huge_numbers_are_422_with_a_message(setup: dict) -> None:
    client = demo_client(create_app(setup["predictor"], DemoSettings(images=setup["images"])))
    sid = client.post("/api/sessions", json={"image": "img-0.jpg"}).json()["id"]
    json_header = {"Content-Type": "application/json"}
    for body, words in (('{"y": NaN, "x": 1}', ("body.y", "nan", "finite")),
                        ('{"y": 1e400, "x": 1}', ("body.y", "inf", "finite")),
                        ('{"y": 5, "x": -Infinity}', ("body.x", "-inf", "finite")),
                        ('{"y": 1e30, "x": 1}', ("body.y", "maximum size")),
                        ('{"y": 123456789012345678901234567890, "x": 1}', ("outside the 96x72 image",))):
        response = client.post(f"/api/sessions/{sid}/clicks", content=body, headers=json_header)
        assert response.status_code == 422, (body, response.text)
        for word in words:
            assert word in response.json()["detail"], (body, response.json())
    response = client.patch(f"/api/sessions/{sid}", content='{"grabcut": NaN}', headers=json_header)
    assert response.status_code == 422 and "body.grabcut" in response.json()["detail"]
    assert client.get(f"/api/sessions/{sid}").json()["clicks"] == []


# -- item 18: host names and origins -----------------------------------------------------------------------------


def test_allowed_hosts_are_the_bound_address_and_the_added_names() -> None:
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("0.0.0.0", ["demo.lan", "10.0.0.5:8000"]) == {"0.0.0.0", "127.0.0.1", "localhost", "::1",
                                                                       "demo.lan", "10.0.0.5"}
    assert allowed_hosts("10.0.0.5") == {"10.0.0.5"}
    assert [host_name(h) for h in ("LocalHost:8000", "[::1]:8000", "::1", "a.b")] == ["localhost", "::1", "::1", "a.b"]


def test_other_host_names_are_refused(setup: dict) -> None:
    """DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends `Host: evil.example`."""
    app = create_app(setup["predictor"], DemoSettings(images=setup["images"]))
    client = demo_client(app)
    for host in ("evil.example", "evil.example:8000", "127.0.0.1.evil.example"):
        response = client.get("/api/images", headers={"Host": host})
        assert response.status_code == 400, host
        assert "--allowed-host" in response.json()["detail"] and host.split(":")[0] in response.json()["detail"]
    for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000"):
        assert client.get("/api/images", headers={"Host": host}).status_code == 200, host
    lan = demo_client(create_app(setup["predictor"], DemoSettings(allowed_hosts=allowed_hosts("0.0.0.0",
                                                                                              ["demo.lan"]))))
    assert lan.get("/api/images", headers={"Host": "demo.lan:8000"}).status_code == 200
    assert lan.get("/api/images", headers={"Host": "evil.example"}).status_code == 400
    anyone = demo_client(create_app(setup["predictor"], DemoSettings(allowed_hosts=allowed_hosts("127.0.0.1",
                                                                                                 ["*"]))))
    assert anyone.get("/api/images", headers={"Host": "evil.example"}).status_code == 200


def test_cross_origin_uploads_and_changes_are_refused(setup: dict) -> None:
    client = demo_client(create_app(setup["predictor"], DemoSettings(images=setup["images"])))
    data = _png(sample_image(2))
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Origin": "http://127.0.0.1:9999"},
                    {"Sec-Fetch-Site": "cross-site"}):
        response = _upload(client, data, **headers)
        assert response.status_code == 403 and "cross-origin" in response.json()["detail"], headers
    same = {"Origin": f"http://{DEMO_HOST}", "Sec-Fetch-Site": "same-origin"}
    sid = _upload(client, data, **same).json()["id"]
    assert _upload(client, data).status_code == 200  # curl and scripts send no Origin
    evil = {"Origin": "http://evil.example"}
    assert client.post(f"/api/sessions/{sid}/clicks", json={"y": 1, "x": 1}, headers=evil).status_code == 403
    assert client.delete(f"/api/sessions/{sid}", headers=evil).status_code == 403
    assert client.post("/api/sessions", json={"image": "img-0.jpg"}, headers=evil).status_code == 403
    assert client.post(f"/api/sessions/{sid}/clicks", json={"y": 1, "x": 1}, headers=same).status_code == 200
    assert client.get(f"/api/sessions/{sid}").json()["clicks"] == [{"y": 1, "x": 1, "positive": True}]


def test_demo_cli_passes_the_new_limits(setup: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[DemoSettings] = []
    monkeypatch.setattr("ifcn.trainer.demo.demo_serve.run_demo",
                        lambda checkpoint, settings, **kw: seen.append(settings))
    result = CliRunner().invoke(main, ["demo", "--checkpoint", str(setup["root"] / "fixed.pt"), "--host", "0.0.0.0",
                                       "--allowed-host", "demo.lan", "--max-megapixels", "20", "--max-decodes", "3",
                                       "--prev-mask-history", "5", "--grabcut-side", "512"])
    assert result.exit_code == 0, result.output
    settings = seen[0]
    assert (settings.max_megapixels, settings.max_decodes, settings.prev_mask_history, settings.grabcut_side) == (
        20.0, 3, 5, 512)
    assert {"demo.lan", "0.0.0.0", "127.0.0.1"} <= settings.allowed_hosts


def test_sessions_and_drafts_are_bounded_and_forget_the_least_recently_used() -> None:
    """One LRU store (`trainer/web/lru.py`) bounds the demo's sessions and the annotation tool's drafts: a session
    used recently survives newer ones, the least recently used is forgotten (then answered as unknown)."""
    from ifcn.trainer.annotate.drafts import DraftStore
    from ifcn.trainer.demo.sessions import SessionStore

    image = np.zeros((8, 8, 3), np.uint8)
    sessions = SessionStore(capacity=2)
    drafts = DraftStore(capacity=2)
    a, b = sessions.create("a", image, (8, 8)), sessions.create("b", image, (8, 8))
    assert sessions.get(a.id) is a  # a is now the most recent
    c = sessions.create("c", image, (8, 8))
    assert len(sessions) == 2 and sessions.get(b.id) is None and sessions.get(a.id) is a and sessions.get(c.id) is c
    assert sessions.delete(a.id) and not sessions.delete(a.id) and len(sessions) == 1
    d, e = drafts.create("x", image, 64, "cat"), drafts.create("y", image, 64, "dog")
    drafts.get(d.id)
    drafts.create("z", image, 64, "cat")
    assert drafts.get(e.id) is None and drafts.get(d.id) is d
    with pytest.raises(ValueError, match="capacity"):
        SessionStore(capacity=0)


def test_our_pixel_limit_replaces_pils_decompression_bomb_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """An image the user allowed with --max-megapixels decodes without PIL's DecompressionBombWarning (from 89 MP;
    simulated here by lowering PIL's threshold); without our limit, PIL's warning is left alone."""
    import warnings

    from PIL import Image as PILImage

    from ifcn.trainer.inference.images import decode_user_photo

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 1000)  # 40x40 = 1600 px: over PIL's, under twice it
    data = grey_png(40, 40)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        decode_user_photo(data, "plain.png")
    assert any(issubclass(w.category, PILImage.DecompressionBombWarning) for w in seen)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loaded = decode_user_photo(data, "allowed.png", max_pixels=2000)
    assert loaded.rgb.shape == (40, 40, 3)
    assert not any(issubclass(w.category, PILImage.DecompressionBombWarning) for w in seen)
