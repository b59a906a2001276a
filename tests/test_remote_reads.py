"""Remote shard reads (`ifcn.shards.remote`, issue 21 item 8): a shard server that sends 2 KB and stalls no longer
blocks `ifcn-prep verify` or a reader (the trainer's and evaluator's) forever: no data for `--read-timeout` seconds
ends the transfer, it is retried a bounded number of times, and the error names the URL. The server is a local
thread; the old code failed this test by hanging (the test gives it 60 s, then fails)."""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from ifcn.errors import InputError
from ifcn.pipeline.prep_cli import main
from ifcn.shards.reader import read_shard
from ifcn.shards.remote import READ_TIMEOUT_ENV, RETRIES
from tests.eval_data import make_val_shards

STALL_AFTER = 2048


@contextlib.contextmanager
def stalling_server(root: Path, requests: Counter) -> Iterator[str]:
    """Serve `root`: JSON files whole, shards only their first 2 KB, then nothing until the test ends."""
    release = threading.Event()

    class Stalling(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            name = self.path.strip("/")
            requests[name] += 1
            data = (root / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if name.endswith(".json"):
                self.wfile.write(data)
                return
            self.wfile.write(data[:STALL_AFTER])
            self.wfile.flush()
            release.wait(60)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stalling)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_val_shards(tmp_path_factory.mktemp("stall") / "val")


def _in_a_thread(work, seconds: float = 60):
    """Run `work()` in a thread; fail (instead of hanging the suite) when it has not returned within `seconds`."""
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("value", _capture(work)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still blocked after {seconds} s"
    return outcome["value"]


def _capture(work):
    try:
        return work()
    except Exception as e:  # returned, so that the test thread sees it
        return e


def test_verify_of_a_stalling_server_stops_naming_the_url(shards: Path) -> None:
    requests: Counter = Counter()
    with stalling_server(shards, requests) as url:
        result = _in_a_thread(lambda: CliRunner().invoke(main, ["verify", f"{url}manifest.json",
                                                                "--read-timeout", "0.5"]))
    assert result.exit_code == 1
    assert f"BAD val-000000.tar: could not be read from {url}val-000000.tar" in result.output
    assert "no data for 0.5 s (--read-timeout)" in result.output
    assert requests["val-000000.tar"] == 1 + RETRIES  # retried, but not forever


def test_a_reader_of_a_stalling_server_stops_naming_the_url(shards: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(READ_TIMEOUT_ENV, "0.5")
    requests: Counter = Counter()
    with stalling_server(shards, requests) as url:
        error = _in_a_thread(lambda: list(read_shard(f"{url}val-000001.tar")))
    assert isinstance(error, InputError) and error.path == f"{url}val-000001.tar"
    assert "no data for 0.5 s" in error.reason and requests["val-000001.tar"] == 1 + RETRIES
