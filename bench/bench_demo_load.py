"""Load test of the demo server: concurrent uploads of a large photo and clicks, one 13000² PNG bomb among them.

Run (from the repository root): `python -m bench.bench_demo_load [--requests 200] [--concurrency 4]
[--photo 4000x3000] [--clicks-per-photo 4] [--max-side 512] [--json out.json]`.
Starts `ifcn-eval demo` (as users start it, CPU, a fixed untrained checkpoint) on a free 127.0.0.1 port, then
`--concurrency` clients over loopback send `--requests` requests in all: each client uploads a textured JPEG of
`--photo` and clicks `--clicks-per-photo` times on it (seeded positions, alternating signs), again until its share is
sent; the first client starts with a 13000x13000 grey PNG (~160 KB). Reports p50/p95 latency per request kind, the
status codes, and the server's peak resident memory (VmHWM of its process) at idle and after the load.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import time
import uuid
from pathlib import Path
from subprocess import DEVNULL, Popen
from tempfile import TemporaryDirectory

import cv2
import numpy as np

from tests.demo_data import grey_png, make_demo_checkpoint
from tests.ports import free_port

BOMB_SIDE = 13000
START_TIMEOUT_S = 120


def photo_jpeg(height: int, width: int, seed: int) -> bytes:
    """A textured photo-like JPEG (noise under a few filled shapes), deterministic per seed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(width // 20, width // 5)), int(rng.integers(height // 20, height // 5)))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, rng.integers(0, 255, 3).tolist(), -1)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return data.tobytes()


def multipart(name: str, data: bytes, content_type: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (Linux VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc: this benchmark needs Linux")


def start_server(checkpoint: Path, port: int, max_side: int) -> Popen:
    command = [str(Path(sys.executable).with_name("ifcn-eval")), "demo", "--checkpoint", str(checkpoint),
               "--port", str(port), "--device", "cpu", "--max-side", str(max_side)]
    process = Popen(command, stdout=DEVNULL, stderr=DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/images")
            if conn.getresponse().status == 200:
                return process
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the demo server did not start")
        time.sleep(0.3)


def client(port: int, steps: int, photo: bytes, bomb: bytes | None, clicks_per_photo: int, seed: int,
           records: list[tuple[str, int, float]]) -> None:
    """Send `steps` requests on one keep-alive connection, recording (kind, status, seconds) of each."""
    rng = np.random.default_rng(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def send(kind: str, method: str, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        start = time.perf_counter()
        conn.request(method, path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        data = response.read()
        records.append((kind, response.status, time.perf_counter() - start))
        return response.status, data

    sent = 0
    if bomb is not None:
        send("bomb upload", "POST", "/api/sessions/upload", *multipart("bomb.png", bomb, "image/png"))
        sent += 1
    while sent < steps:
        status, data = send("upload", "POST", "/api/sessions/upload", *multipart("photo.jpg", photo, "image/jpeg"))
        sent += 1
        if status != 200:
            continue
        state = json.loads(data)
        for k in range(min(clicks_per_photo, steps - sent)):
            click = {"y": int(rng.integers(0, state["height"])), "x": int(rng.integers(0, state["width"])),
                     "positive": k % 2 == 0}
            send("click", "POST", f"/api/sessions/{state['id']}/clicks", json.dumps(click).encode(),
                 "application/json")
            sent += 1


def summary(records: list[tuple[str, int, float]]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for kind in ("upload", "click", "bomb upload", "all"):
        rows = [r for r in records if kind in ("all", r[0])]
        if not rows:
            continue
        seconds = np.array([r[2] for r in rows])
        statuses: dict[str, int] = {}
        for r in rows:
            statuses[str(r[1])] = statuses.get(str(r[1]), 0) + 1
        out[kind] = {"n": len(rows), "statuses": statuses, "p50_ms": float(np.percentile(seconds, 50) * 1000),
                     "p95_ms": float(np.percentile(seconds, 95) * 1000)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--photo", default="4000x3000", help="WIDTHxHEIGHT of the uploaded JPEG")
    parser.add_argument("--clicks-per-photo", type=int, default=4)
    parser.add_argument("--max-side", type=int, default=512, help="the server's --max-side")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    width, height = (int(v) for v in args.photo.lower().split("x"))
    photo = photo_jpeg(height, width, 0)
    bomb = grey_png(BOMB_SIDE, BOMB_SIDE)
    with TemporaryDirectory() as tmp:
        checkpoint = make_demo_checkpoint(Path(tmp) / "demo.pt")
        port = free_port()
        server = start_server(checkpoint, port, args.max_side)
        try:
            idle_mb = peak_rss_mb(server.pid)
            records: list[tuple[str, int, float]] = []
            share = [args.requests // args.concurrency + (i < args.requests % args.concurrency)
                     for i in range(args.concurrency)]
            threads = [threading.Thread(target=client, args=(port, share[i], photo, bomb if i == 0 else None,
                                                             args.clicks_per_photo, i, records))
                       for i in range(args.concurrency)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - start
            peak_mb = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=60)
    result = {"requests": len(records), "concurrency": args.concurrency, "photo": f"{width}x{height}",
              "photo_kb": len(photo) // 1024, "bomb_kb": len(bomb) // 1024, "max_side": args.max_side,
              "wall_s": wall, "server_peak_rss_mb_idle": idle_mb, "server_peak_rss_mb": peak_mb,
              "kinds": summary(records)}
    print(f"{result['requests']} requests, {args.concurrency} concurrent, {wall:.1f} s; photo {width}x{height} JPEG "
          f"({result['photo_kb']} KB), one {BOMB_SIDE}² PNG ({result['bomb_kb']} KB); server --max-side "
          f"{args.max_side}")
    print(f"server peak RSS: {idle_mb:.0f} MB idle, {peak_mb:.0f} MB after the load")
    print("| request | n | status codes | p50 ms | p95 ms |\n|---|---:|---|---:|---:|")
    for kind, row in result["kinds"].items():
        codes = ", ".join(f"{code}: {count}" for code, count in sorted(row["statuses"].items()))
        print(f"| {kind} | {row['n']} | {codes} | {row['p50_ms']:.0f} | {row['p95_ms']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
