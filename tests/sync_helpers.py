"""Shared by the sync tests: a site with a sync section, an outbox fed in-process, counts."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from cloud_sync.outbox import OutboxProcessor
from cloud_sync.sender import Sender
from drivers.base import Reading
from edge_config import load_config
from gateway.core import store as st
from gateway.core.contract import BatchResult, Resolved
from gateway.core.incidents import IncidentStore, Location, Trigger
from gateway.ingest.routing import build_routing
from tests.conftest import write_site

NON_PERSONAL = ("door-b1", "park-01", "park-fire", "acc-b2")


def sync_yaml(url: str, **kw: Any) -> str:
    opts = {
        "enabled": "true",
        "url": url,
        "batch_size": 200,
        "max_batch_age_s": 0.2,
        "heartbeat_s": 1,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.5,
        "timeout_s": 5,
        **kw,
    }
    return "sync:\n" + "".join(f"  {k}: {v}\n" for k, v in opts.items())


def site_with_sync(directory: Path, url: str, mqtt_port: int = 1883, **kw: Any) -> Path:
    path = write_site(directory, mqtt_port)
    with path.open("a", encoding="utf-8") as f:
        f.write(sync_yaml(url, **kw))
    return path


class Feeder:
    """Drives an OutboxProcessor the way the pipeline does (one transaction per batch)."""

    def __init__(self, url: str, env: dict[str, str] | None = None, **kw: Any) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="edge-sync-")
        self.dir = Path(self._tmp.name)
        self.cfg_path = site_with_sync(self.dir, url, **kw)
        self.cfg = load_config(self.cfg_path, env=env) if env is not None else load_config(self.cfg_path)
        self.db = self.dir / "gateway.db"
        self.store = st.Store(self.db, st.Quota(256 * 1024 * 1024, 8 * 1024 * 1024))
        self.routing = build_routing(self.cfg)
        self.proc = OutboxProcessor(self.cfg)
        self.incidents = IncidentStore(self.cfg.gateway.id)
        self.telemetry = 0
        self.n_incidents = 0

    def sender(self, **kw: Any) -> Sender:
        return Sender(self.db, self.cfg.sync, shared=self.proc, **kw)

    def batch(
        self, readings: list[tuple[str, dict[str, Any], int]], incidents: int = 0, now: int | None = None
    ) -> None:
        """Commit readings (device id, values, ts_ms) and ``incidents`` new incidents in one transaction."""
        now = now or st.now_ms()
        result = BatchResult()
        for dev_id, values, ts in readings:
            dev = self.routing.by_id[dev_id]
            flags = st.FLAG_PERSONAL if dev.resident_id else 0
            result.resolved.append(Resolved(dev, Reading(dev.address, "state", values, ts), ts, now, flags, 0))
        c = self.store.conn
        c.execute("BEGIN IMMEDIATE")
        for _ in range(incidents):
            self.n_incidents += 1
            # Same building, category and millisecond for all: the points must still be distinct.
            self.incidents.raise_or_repeat(
                c,
                result,
                Trigger(
                    key=f"door-b1|forced|{self.n_incidents}",
                    category="security",
                    type="door_forced",
                    severity="major",
                    ts_ms=now,
                    devices=("door-b1",),
                    location=Location(building="b1"),
                ),
                now,
            )
        self.proc.process(c, result, now)
        self.proc.after(c, result, now)
        c.execute("COMMIT")
        self.telemetry += sum(1 for d, _, _ in readings if d in NON_PERSONAL)

    def tick(self, now: int) -> None:
        c = self.store.conn
        c.execute("BEGIN IMMEDIATE")
        self.proc.tick(c, BatchResult(), now)
        c.execute("COMMIT")

    def q(self, sql: str, *args: Any) -> Any:
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()

    def outbox_rows(self) -> int:
        return int(self.q("SELECT count(*) FROM outbox")[0][0])

    def event_seqs(self) -> set[int]:
        return {int(r[0]) for r in self.q("SELECT seq FROM incident_events")}

    def close(self) -> None:
        self.store.close()
        self._tmp.cleanup()


def readings(n: int, start_ms: int, same_ms_every: int = 7) -> list[tuple[str, dict[str, Any], int]]:
    """n readings over the non-personal devices; every ``same_ms_every``-th repeats the previous ms."""
    out = []
    ts = start_ms
    for i in range(n):
        if i % same_ms_every:
            ts += 1
        dev = NON_PERSONAL[i % len(NON_PERSONAL)] if i % 3 else NON_PERSONAL[0]
        out.append((dev, {"battery": 50 + i % 50, "contact": bool(i % 2), "rssi": -60.5, "note": f"n{i}"}, ts))
    return out
