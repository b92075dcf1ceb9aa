"""Real central stores on loopback for the sync tests (and bench/sync_drain.py).

- :class:`VictoriaMetrics`: accepts InfluxDB v2 writes (``/api/v2/write``; ignores bucket/org; a string
  field is stored as 0, so counts use the numeric ones).
- :class:`InfluxDB1`: ``influxd`` 1.x with a generated config in a temp dir (the v1 /write target).
- :class:`FakeInfluxV2`: a local HTTP server answering as the InfluxDB v2 API documents, for the
  replies no real server here gives on demand (401, 413, 429 + Retry-After).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return True
        time.sleep(0.1)
    return False


class ServerMissing(RuntimeError):
    pass


class VictoriaMetrics:
    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self.exe = shutil.which("victoria-metrics")
        if self.exe is None:
            raise ServerMissing("victoria-metrics executable (Debian package victoria-metrics)")
        self._tmp = None if data_dir is not None else tempfile.TemporaryDirectory(prefix="edge-vm-")
        self.dir = data_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> VictoriaMetrics:
        self.log = open(self.dir / "vm.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                self.exe or "victoria-metrics",
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.dir / 'data'}",
                "-dedup.minScrapeInterval=1ms",
                "-search.latencyOffset=0s",
                "-retentionPeriod=100y",
                "-search.disableCache",
                "-loggerLevel=ERROR",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if not _wait_http(f"{self.url}/health", 30, self.proc):
            raise RuntimeError(f"victoria-metrics did not start: {(self.dir / 'vm.log').read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def flush(self) -> None:
        httpx.get(f"{self.url}/internal/force_flush", timeout=30)

    def export(self, match: str) -> list[dict[str, Any]]:
        self.flush()
        r = httpx.post(f"{self.url}/api/v1/export", data={"match[]": match}, timeout=120)
        r.raise_for_status()
        return [json.loads(line) for line in r.text.splitlines() if line.strip()]

    def points(self, measurement: str) -> set[tuple[tuple[tuple[str, str], ...], int]]:
        """Distinct (tags, ms timestamp) over every field of ``measurement`` = points stored."""
        out: set[tuple[tuple[tuple[str, str], ...], int]] = set()
        for s in self.export(f'{{__name__=~"{measurement}_.*"}}'):
            labels = tuple(sorted((k, v) for k, v in s["metric"].items() if k != "__name__"))
            out.update((labels, ts) for ts in s["timestamps"])
        return out

    def settled_points(self, measurement: str, expected: int, timeout: float = 30.0) -> int:
        """Count of points once it reaches ``expected`` (or the last count after ``timeout``).
        VictoriaMetrics makes freshly ingested data searchable with a delay, longer after a restart."""
        deadline = time.monotonic() + timeout
        while True:
            n = len(self.points(measurement))
            if n >= expected or time.monotonic() > deadline:
                return n
            time.sleep(0.5)

    def settled_samples(
        self, metric: str, expected: int, timeout: float = 30.0
    ) -> list[tuple[dict[str, str], int, float]]:
        deadline = time.monotonic() + timeout
        while True:
            out = self.samples(metric)
            if len(out) >= expected or time.monotonic() > deadline:
                return out
            time.sleep(0.5)

    def samples(self, metric: str) -> list[tuple[dict[str, str], int, float]]:
        out = []
        for s in self.export(f'{{__name__="{metric}"}}'):
            out.extend((s["metric"], ts, v) for ts, v in zip(s["timestamps"], s["values"], strict=True))
        return out


INFLUXD_CONF = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {auth}
  log-enabled = false
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
"""


class InfluxDB1:
    def __init__(self, *, auth: bool = False) -> None:
        self.exe = shutil.which("influxd")
        if self.exe is None:
            raise ServerMissing("influxd executable (Debian package influxdb)")
        self._tmp = tempfile.TemporaryDirectory(prefix="edge-influx1-")
        self.dir = Path(self._tmp.name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.auth = auth
        (self.dir / "influxdb.conf").write_text(
            INFLUXD_CONF.format(rpc=free_port(), dir=self.dir, port=self.port, auth="true" if auth else "false")
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> InfluxDB1:
        log = open(self.dir / "influxd.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.exe or "influxd", "-config", str(self.dir / "influxdb.conf")], stdout=log, stderr=subprocess.STDOUT
        )
        if not _wait_http(f"{self.url}/ping", 30, self.proc):
            raise RuntimeError(f"influxd did not start: {(self.dir / 'influxd.log').read_text()[-2000:]}")
        return self

    def query(self, q: str, db: str | None = None, auth: tuple[str, str] | None = None) -> Any:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        r = httpx.post(f"{self.url}/query", params=params, auth=auth, timeout=30)
        r.raise_for_status()
        return r.json()

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        res = self.query(q, db)["results"][0]
        out: list[dict[str, Any]] = []
        for s in res.get("series", []):
            for v in s["values"]:
                out.append(dict(zip(s["columns"], v, strict=True)) | {"_tags": s.get("tags", {})})
        return out

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._tmp.cleanup()


class FakeInfluxV2:
    """Answers POST /api/v2/write as InfluxDB 2 documents it; ``script`` decides each reply.

    ``script(body_lines) -> (status, headers, json_body)``; default: 204 and keep the lines.
    """

    def __init__(self) -> None:
        self.received: list[list[str]] = []  # every request's lines
        self.requests: list[tuple[str, dict[str, str]]] = []  # every request's path (with query) and headers
        self.stored: dict[str, str] = {}  # series+timestamp -> line (what a real server would keep)
        self.script: Callable[[list[str]], tuple[int, dict[str, str], dict[str, Any] | None]] | None = None
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n).decode()
                lines = [x for x in body.split("\n") if x]
                with fake.lock:
                    fake.received.append(lines)
                    fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                    status, headers, payload = (204, {}, None) if fake.script is None else fake.script(lines)
                    if 200 <= status < 300:
                        for line in lines:
                            head, _, ts = line.rpartition(" ")
                            fake.stored[head.split(" ", 1)[0] + " " + ts] = line
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
