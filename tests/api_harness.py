"""A real gateway (in-process Gateway, real broker) with its API on uvicorn in a thread, for the API tests."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from edge_config import load_config
from gateway.api import auth, create_app
from gateway.app import Gateway
from gateway.core import incidents as inc
from gateway.install.mosquitto import free_port
from tests.conftest import write_site

API_YAML = """
api:
  sse_heartbeat_s: {heartbeat}
  rate_limits: {{auth_failures: {failures}, auth_window_s: 60}}
"""


def write_api_site(
    directory: Path, broker_port: int, *, heartbeat: float = 15, failures: int = 1000, **kw: Any
) -> Path:
    path = write_site(directory, broker_port, **kw)
    with path.open("a", encoding="utf-8") as f:
        f.write(API_YAML.format(heartbeat=heartbeat, failures=failures))
    return path


class ApiServer:
    def __init__(self, site: Path, db: Path) -> None:
        self.cfg = load_config(site)
        self.db = db
        self.gw = Gateway(self.cfg, store_path=db)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.server: uvicorn.Server | None = None
        self.app: Any = None

    def start(self) -> ApiServer:
        self.gw.start()
        self.app = app = create_app(self.gw)
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=2)
        )
        server = self.server

        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve()

        self._thread = threading.Thread(target=lambda: asyncio.run(run()), daemon=True, name="uvicorn")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("API did not start")
            time.sleep(0.02)
        deadline = time.monotonic() + 15
        while not self.gw.broker_connected and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.server is not None:
            loop = self._loop
            if loop is not None and loop.is_running():
                asyncio.run_coroutine_threadsafe(self.app.state.close_streams(), loop).result(5)
            self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(15)
        self.gw.stop()

    # --- helpers -------------------------------------------------------------------------------
    def token(
        self, role: str, *, grids: Iterable[str] = (), compounds: Iterable[str] = (), name: str | None = None
    ) -> str:
        _row, token = auth.cli_create(self.db, role=role, name=name or role, grids=grids, compounds=compounds)
        return token

    def client(self, token: str | None = None, timeout: float = 10) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=timeout)

    def raise_incident(self, trig: inc.Trigger) -> str:
        store = inc.IncidentStore(self.cfg.gateway.id, self.gw.config_rev)

        def write(conn: sqlite3.Connection, result: Any, now: int) -> str:
            return store.raise_or_repeat(conn, result, trig, now).incident_id

        return str(self.gw.pipeline.call(write).result(10))

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()


def trigger(
    key: str,
    category: str,
    type_: str,
    severity: str,
    *,
    grid: str | None,
    compound: str | None = "cp1",
    building: str | None = None,
    unit: str | None = None,
    resident: str | None = None,
    devices: Iterable[str] = (),
    reading: dict[str, Any] | None = None,
) -> inc.Trigger:
    return inc.Trigger(
        key=key,
        category=category,
        type=type_,
        severity=severity,
        ts_ms=int(time.time() * 1000),
        devices=list(devices),
        location=inc.Location(grid=grid, compound=compound, building=building, unit=unit),
        resident_id=resident,
        reading=reading,
    )
