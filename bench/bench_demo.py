"""Click-to-mask latency of the demo server, HTTP included: p50 and p95 per click.

Run: `python bench/bench_demo.py [--device cpu|cuda|auto] [--arch resnet18] [--size 500x375] [--clicks 40]
[--json out.json]`.
Serves `create_app` (the app `ifcn-eval demo` runs) with uvicorn on a free 127.0.0.1 port in this process, uploads
one textured image of `--size`, then times `--clicks` POST /api/sessions/{id}/clicks requests from the client's side
over one keep-alive connection: JSON in, prediction, PNG mask encoding, JSON out. Clicks alternate positive and
negative at seeded random pixels; every 20 clicks the session is reset, so click counts stay in the range people use.
An untrained FCN-8s (weights none) is timed: the speed is that of a trained one. `--json` writes the figures
(`bench/gpu.sh` collects them on a GPU machine).
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import torch
import uvicorn

from ifcn.trainer.core.device import resolve_device
from ifcn.trainer.demo.demo_app import DemoSettings, create_app, png_bytes
from ifcn.trainer.inference import Predictor
from ifcn.trainer.models import ModelConfig, build_model

RESET_EVERY = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app: object, port: int) -> uvicorn.Server:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the demo server did not start within 60 s")
        time.sleep(0.05)
    return server


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
            content_type: str = "application/json") -> dict:
    conn.request(method, path, body=body, headers={"Content-Type": content_type} if body is not None else {})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:300]!r}")
    return json.loads(data)


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "ifcn-bench-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    parser.add_argument("--arch", default="resnet18", help="backbone of the FCN-8s")
    parser.add_argument("--size", default="500x375", help="image WIDTHxHEIGHT")
    parser.add_argument("--clicks", type=int, default=40, help="timed clicks (after 3 warm-up clicks)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    device = resolve_device(args.device)
    model = build_model(ModelConfig(backbone=args.arch, stride=8, in_channels=5, num_classes=1, weights="none"))
    predictor = Predictor(model, "interactive", device, channels_last=device.type == "cpu")  # as `ifcn-eval demo`
    port = free_port()
    server = start_server(create_app(predictor, DemoSettings()), port)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body, content_type = multipart("bench.png", png_bytes(image))
    sid = request(conn, "POST", "/api/sessions/upload", body, content_type)["id"]
    latencies, server_ms = [], []
    for n in range(args.clicks + 3):
        if n % RESET_EVERY == 0:
            request(conn, "POST", f"/api/sessions/{sid}/reset", b"")
        click = {"y": int(rng.integers(height)), "x": int(rng.integers(width)), "positive": n % 2 == 0}
        start = time.perf_counter()
        state = request(conn, "POST", f"/api/sessions/{sid}/clicks", json.dumps(click).encode())
        if n >= 3:
            latencies.append((time.perf_counter() - start) * 1000)
            server_ms.append(state["prediction_ms"])
    server.should_exit = True
    figures = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
               else "cpu", "torch_threads": torch.get_num_threads(), "arch": f"{args.arch}-8s",
               "image": f"{width}x{height}", "clicks": args.clicks,
               "p50_ms": float(np.percentile(latencies, 50)), "p95_ms": float(np.percentile(latencies, 95)),
               "prediction_p50_ms": float(np.percentile(server_ms, 50)), "torch": torch.__version__}
    print(f"{figures['arch']} {figures['image']} on {figures['device_name']} ({figures['torch_threads']} threads), "
          f"{args.clicks} clicks: click-to-mask p50 {figures['p50_ms']:.1f} ms, p95 {figures['p95_ms']:.1f} ms "
          f"(server prediction p50 {figures['prediction_p50_ms']:.1f} ms)")
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
