"""A store that has lived a week (bench/pi_budget.py): readings of every device and open incidents.

Start-up must not be timed on an empty file: a gateway restarts onto a store holding its
retention's worth of readings, its device registry and the incidents still being worked. The
readings are written straight into the readings table (they are a week old: the central store
has had them, so they are not in the sync outbox); the open incidents go through the gateway's
own incident store and stage chain (tickets dispatch them, the outbox carries their events),
inside ``Pipeline.call`` like every other write.
"""

from __future__ import annotations

import json
import random
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core import store as st
from gateway.core.contract import BatchResult
from gateway.core.incidents import IncidentStore, Location, Trigger

if TYPE_CHECKING:
    from edge_config import SiteConfig

CHUNK = 100_000


def _values(kind: str, rng: random.Random) -> str:
    if "door" in kind or kind == "access_controller":
        v: dict[str, Any] = {"contact": rng.random() < 0.9, "battery": rng.randint(40, 100)}
    elif kind == "parking_sensor":
        v = {"vehicle_present": rng.random() < 0.6, "battery": rng.randint(30, 100), "temperature": rng.randint(-5, 35)}
    elif kind in ("presence_sensor", "fall_radar", "camera"):
        v = {"presence": rng.random() < 0.5}
    else:
        v = {"battery": rng.randint(35, 100), "linkquality": rng.randint(20, 255)}
    return json.dumps(v, separators=(",", ":"))


def _rows(devices: list[Any], n: int, start_ms: int, end_ms: int, rev: int, seed: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    pool = {d.type: [_values(d.type, rng) for _ in range(64)] for d in devices}
    step = (end_ms - start_ms) / max(1, n)
    for i in range(n):
        d = devices[rng.randrange(len(devices))]
        t = start_ms + int(i * step)
        flags = st.FLAG_PERSONAL if d.resident_id else 0
        key = (i & 0xFFFF) << 32 | zlib.crc32(i.to_bytes(8, "big"))
        yield (t, t, d.id, "state", pool[d.type][i & 63], flags, key, rev, d.resident_id)


def seed(cfg: SiteConfig, db: Path, *, readings: int, days: float, incidents: int) -> dict[str, int]:
    """Fill ``db`` (created by the gateway's own code) and return what it holds."""
    from gateway.app import Gateway

    gw = Gateway(cfg, store_path=db)
    devices = list(gw.routing.by_id.values())
    now = st.now_ms()
    start = now - int(days * 86_400_000)
    rev = gw.config_rev
    rows = _rows(devices, readings, start, now - 60_000, rev, seed=25)
    gw.pipeline.start()
    try:
        left = readings
        while left > 0:
            chunk = [next(rows) for _ in range(min(CHUNK, left))]
            left -= len(chunk)

            def write(c: sqlite3.Connection, r: BatchResult, now_ms: int, chunk: list[tuple[Any, ...]] = chunk) -> None:
                c.executemany(
                    "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev, resident_id)"
                    " VALUES (?,?,?,?,?,?,?,?,?)",
                    chunk,
                )

            gw.pipeline.call(write).result(timeout=300)
        store = IncidentStore(cfg.gateway.id, rev)
        doors = [d for d in devices if d.type == "door_contact"][:incidents]

        def raise_open(c: sqlite3.Connection, r: BatchResult, now_ms: int) -> None:
            for i, d in enumerate(doors):
                store.raise_or_repeat(
                    c,
                    r,
                    Trigger(
                        key=f"{d.id}|door_held_open|seed",
                        category="security",
                        type="door_held_open",
                        severity="minor",
                        ts_ms=now_ms - i * 3_600_000,
                        devices=(d.id,),
                        location=Location(building=d.building),
                    ),
                    now_ms,
                )

        gw.pipeline.call(raise_open).result(timeout=60)
    finally:
        gw.pipeline.stop()
        gw.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        gw.store.close()
    conn = sqlite3.connect(db)
    try:
        n = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM readings").fetchone()
        open_states = "('new', 'dispatched', 'accepted')"
        open_n = conn.execute(f"SELECT count(*) FROM incidents WHERE state IN {open_states}").fetchone()[0]
    finally:
        conn.close()
    return {"readings": int(n[0]), "max_reading_id": int(n[1]), "open_incidents": int(open_n)}
