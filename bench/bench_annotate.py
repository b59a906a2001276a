"""Click latency of the annotation API on a large and a small photo (issue 20 item 4: inference at a bounded size,
zoom-in after the first click, masks at full size).

Run (from the repository root): `python -m bench.bench_annotate [--clicks 12] [--max-side 1024] [--zoom-in 400]`.
In-process (FastAPI's TestClient, no network), CPU, ResNet-18 FCN-8s (the tests' fixed untrained checkpoint: the
time does not depend on the weights). Per photo size: one draft, `--clicks` clicks at seeded positions inside a
central box of a third of the photo's sides (where an annotator's clicks on one object fall; zoom-in's view follows
the clicks and the previous mask), alternating signs; each request's wall time (prediction at the bounded size,
resize to full size, threshold, brush replay, the mask overlay PNG) and the server's `prediction_ms`. Prints p50/p95
of both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from bench.bench_demo_load import photo_jpeg
from ifcn.cli_options import MAX_SIDE
from ifcn.trainer.annotate.annotate_app import AnnotateSettings, create_annotate_app
from ifcn.trainer.annotate.store import ProjectStore
from ifcn.trainer.inference import Predictor
from tests.demo_data import make_demo_checkpoint

SIZES = ((3000, 4000), (375, 500))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=12)
    parser.add_argument("--max-side", type=int, default=MAX_SIDE)
    parser.add_argument("--zoom-in", type=int, default=400, help="0 = off (every click on the whole --max-side image)")
    args = parser.parse_args()
    from fastapi.testclient import TestClient

    with TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        for h, w in SIZES:
            (root / "images" / f"{w}x{h}.jpg").write_bytes(photo_jpeg(h, w, 0))
        predictor = Predictor.from_checkpoint(make_demo_checkpoint(root / "ck.pt"), device="cpu", channels_last=True)
        settings = AnnotateSettings(max_side=args.max_side, zoom_in=args.zoom_in,
                                    allowed_hosts=frozenset({"testserver"}))
        client = TestClient(create_annotate_app(predictor, ProjectStore(root / "out", root / "images", None), settings))
        rng = np.random.default_rng(0)
        print("| photo | max side | zoom-in | clicks | request p50 ms | p95 | prediction p50 ms | p95 |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for h, w in SIZES:
            draft = client.post("/api/drafts", json={"image": f"{w}x{h}.jpg"}).json()
            walls, predictions = [], []
            for i in range(args.clicks + 1):
                x, y = int(rng.integers(w // 3, 2 * w // 3)), int(rng.integers(h // 3, 2 * h // 3))
                start = time.perf_counter()
                state = client.post(f"/api/drafts/{draft['id']}/clicks", json={"x": x, "y": y, "positive": i % 2 == 0})
                wall = (time.perf_counter() - start) * 1000
                if i:  # the first click warms the kernels up
                    walls.append(wall)
                    predictions.append(state.json()["prediction_ms"])
            p = lambda v, q: float(np.percentile(v, q))  # noqa: E731
            print(f"| {w}x{h} | {args.max_side} | {args.zoom_in} | {args.clicks} | {p(walls, 50):.0f} | "
                  f"{p(walls, 95):.0f} | {p(predictions, 50):.0f} | {p(predictions, 95):.0f} |")


if __name__ == "__main__":
    main()
