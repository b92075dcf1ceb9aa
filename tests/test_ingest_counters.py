"""The store's counters are exact after a kill -9 (issue 23, item 4; docs/api.md "Counters").

They are written in the same transaction as what they count, so whatever survives a crash, the
counters agree with it: every telemetry message below becomes exactly one reading, and a message
the broker redelivers after the crash (committed, never acknowledged) is counted as a duplicate.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import GatewayProcess, TrackedPublisher, count_readings, wait_until
from tests.test_ingest_durability import DEVICES, make_messages


@pytest.fixture
def site(tmp_path: Path, private_broker: Mosquitto) -> Path:
    return write_site(tmp_path, private_broker.port, devices=DEVICES)


def store_counts(db: Path) -> tuple[dict[str, int], int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        counters = {str(k): int(v) for k, v in conn.execute("SELECT name, value FROM counters")}
        readings = int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
        dead = int(conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
    finally:
        conn.close()
    return counters, readings, dead


def test_counters_match_the_stored_rows_after_kill9(
    tmp_path: Path, private_broker: Mosquitto, site: Path, api_port: int
) -> None:
    db = tmp_path / "gateway.db"
    gw = GatewayProcess(site, db, tmp_path, api_port).start()
    messages = make_messages(site, 8000, seed=11)
    pub = TrackedPublisher("127.0.0.1", private_broker.port)
    killed = threading.Event()

    def progress(n: int) -> None:
        if n == 3000 and not killed.is_set():
            gw.kill9()
            killed.set()

    pub.publish_all(messages, on_progress=progress)
    assert killed.is_set()
    crash_counters, crash_readings, _ = store_counts(db)
    gw.start()  # the broker hands the queued session over
    total = sum(pub.acked.values())
    assert total == len(messages)
    assert wait_until(lambda: count_readings(db) >= total, 60), f"{count_readings(db)} of {total} stored"
    # Killed again, this time right after the last commit: nothing may be left to write later.
    gw.kill9()
    counters, readings, dead = store_counts(db)
    assert readings == total and dead == 0
    per_driver = sum(v for k, v in counters.items() if k.startswith("messages.") and k != "messages_committed")
    assert per_driver == readings, f"messages.<driver> add up to {per_driver} for {readings} stored readings"
    assert counters["messages_committed"] - counters.get("duplicates_skipped", 0) == readings, counters
    # At the first crash too, the counters held exactly what had been stored by then.
    crash_per_driver = sum(
        v for k, v in crash_counters.items() if k.startswith("messages.") and k != "messages_committed"
    )
    assert crash_per_driver == crash_readings, f"{crash_per_driver} counted, {crash_readings} stored at the crash"
