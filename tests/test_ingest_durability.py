"""Nothing accepted is lost: broker restarts, gateway kill -9, commit failures, redeliveries.

Every test publishes through a real Mosquitto with QoS 1 and records which messages the broker
acknowledged (PUBACK). Payloads carry no sequence ids. At the end, every acknowledged message
must be in the store exactly once: the multiset of stored readings is compared with the multiset
of acknowledged messages decoded by the same driver (messages the publisher abandoned on a
disconnect may be stored zero or one time).
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_config import load_config
from gateway.app import Gateway
from gateway.core.contract import BaseStage, BatchResult
from gateway.core.store import FLAG_RETAINED
from gateway.ingest.pipeline import _dumps
from gateway.ingest.routing import build_routing
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.conftest import write_site
from tests.support import GatewayProcess, TrackedPublisher, count_readings, stored_messages, wait_until

# 60 ordinary devices across the three drivers (none life-safety, so one session carries all).
DEVICES = (
    [
        (f"door-{i}", "zigbee2mqtt", f"0x00158d00000{i:05x}", f"b1/door{i}", "door_contact", "location: {building: b1}")
        for i in range(20)
    ]
    + [
        (
            f"park-{i}",
            "chirpstack",
            f"70b3d57ed00{i:05x}",
            None,
            "parking_sensor",
            f"location: {{parking_space: p{i:02d}}}",
        )
        for i in range(20)
    ]
    + [(f"acc-{i}", "native", f"acc-{i}", None, "access_controller", "location: {building: b2}") for i in range(20)]
)


def make_messages(cfg_path: Path, n: int, seed: int) -> list[tuple[str, bytes]]:
    cfg = load_config(cfg_path)
    devs = traffic.sim_devices(cfg)
    rng = random.Random(seed)
    return [traffic.telemetry(rng.choice(devs), rng) for _ in range(n)]


def expected_keys(cfg_path: Path) -> Callable[[str, bytes], tuple[str, str]]:
    """What the store must hold for a published message: (device id, canonical values JSON)."""
    routing = build_routing(load_config(cfg_path))

    def key(topic: str, payload: bytes) -> tuple[str, str]:
        spec = routing.driver_for(topic)
        assert spec is not None, topic
        (r,) = spec.decode(topic, payload)
        dev = routing.resolve(spec.name, r.device)
        assert dev is not None, r.device
        return dev.id, _dumps(r.values)

    return key


def check_exactly_once(cfg_path: Path, db: Path, pub: TrackedPublisher) -> tuple[int, int]:
    expected = expected_keys(cfg_path)

    def key(m: tuple[str, bytes]) -> tuple[str, str]:
        return expected(*m)

    acked: Counter[tuple[str, str]] = Counter()
    for m, n in pub.acked.items():
        acked[key(m)] += n
    maybe: Counter[tuple[str, str]] = Counter()
    for m, n in pub.abandoned.items():
        maybe[key(m)] += n
    stored = stored_messages(db)
    missing = {k: acked[k] - stored[k] for k in acked if stored[k] < acked[k]}
    extra = {k: stored[k] - acked[k] - maybe[k] for k in stored if stored[k] > acked[k] + maybe[k]}
    assert not missing, f"{sum(missing.values())} acknowledged messages are not in the store"
    assert not extra, f"{sum(extra.values())} messages stored more than once"
    return sum(acked.values()), sum(stored.values())


@pytest.fixture
def site(tmp_path: Path, private_broker: Mosquitto) -> Path:
    return write_site(tmp_path, private_broker.port, devices=DEVICES)


def test_gateway_kill9_mid_stream_loses_nothing(
    tmp_path: Path, private_broker: Mosquitto, site: Path, api_port: int
) -> None:
    db = tmp_path / "gateway.db"
    gw = GatewayProcess(site, db, tmp_path, api_port).start()
    messages = make_messages(site, 6000, seed=1)
    pub = TrackedPublisher("127.0.0.1", private_broker.port)
    killed = threading.Event()

    def progress(n: int) -> None:
        if n == 2500 and not killed.is_set():
            gw.kill9()
            killed.set()

    pub.publish_all(messages, on_progress=progress, pace=0.0)
    assert killed.is_set()
    gw.start()  # same client ids: the broker hands over the queued session
    total = sum(pub.acked.values())
    assert total == 6000 - sum(pub.abandoned.values())
    assert wait_until(lambda: count_readings(db) >= total, 60), f"{count_readings(db)} of {total} stored"
    gw.stop()
    acked, stored = check_exactly_once(site, db, pub)
    assert acked == stored == 6000


def test_broker_restart_mid_stream_loses_nothing(tmp_path: Path, private_broker: Mosquitto, site: Path) -> None:
    cfg = load_config(site)
    gw = Gateway(cfg)
    gw.start()
    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        messages = make_messages(site, 5000, seed=2)
        pub = TrackedPublisher("127.0.0.1", private_broker.port)
        restarted = threading.Event()

        def progress(n: int) -> None:
            if n == 2000 and not restarted.is_set():
                private_broker.restart()  # SIGTERM: mosquitto writes its persistence file
                restarted.set()

        pub.publish_all(messages, on_progress=progress)
        assert restarted.is_set()
        total = sum(pub.acked.values())
        db = Path(cfg.store.path)
        assert wait_until(lambda: count_readings(db) >= total, 60), f"{count_readings(db)} of {total}"
        assert wait_until(lambda: gw.broker_connected, 10)
        assert gw.sessions[0].connects >= 2, "the gateway should have reconnected"
    finally:
        gw.stop()
    check_exactly_once(site, db, pub)


def test_commit_failures_then_redelivery_lose_nothing(tmp_path: Path, private_broker: Mosquitto, site: Path) -> None:
    """Commits fail (I/O error); the messages stay unacknowledged; the connection drops, the
    broker redelivers them (DUP); they are stored exactly once."""
    cfg = load_config(site)
    gw = Gateway(cfg)
    gw.start()
    db = Path(cfg.store.path)
    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        gw.pipeline.faults.fail_next = 5
        pub = TrackedPublisher("127.0.0.1", private_broker.port)
        pub.publish_all(make_messages(site, 300, seed=3))
        assert wait_until(lambda: gw.pipeline.faults.fail_next == 0, 10)
        # Drop the gateway's connection: held messages can no longer be acknowledged on it.
        private_broker.restart()
        total = sum(pub.acked.values())
        assert wait_until(lambda: count_readings(db) >= total, 30), f"{count_readings(db)} of {total}"
        assert wait_until(lambda: gw.broker_connected, 10)
    finally:
        gw.stop()
    check_exactly_once(site, db, pub)


def test_redelivery_after_commit_before_ack_is_not_stored_twice(
    tmp_path: Path, private_broker: Mosquitto, site: Path
) -> None:
    """The crash window between COMMIT and PUBACK: the broker redelivers with DUP set."""
    cfg = load_config(site)
    gw = Gateway(cfg)
    swallowed: list[int] = []
    real_ack = gw._ack

    def lossy_ack(session: int, items: list) -> None:  # type: ignore[type-arg]
        if len(swallowed) < 200:
            swallowed.extend(i.mid for i in items)  # committed, never acknowledged
            return
        real_ack(session, items)

    gw.pipeline.acker = lossy_ack
    gw.start()
    db = Path(cfg.store.path)
    try:
        assert wait_until(lambda: gw.broker_connected, 10)
        pub = TrackedPublisher("127.0.0.1", private_broker.port)
        pub.publish_all(make_messages(site, 150, seed=4))
        assert wait_until(lambda: count_readings(db) >= 150, 20)
        private_broker.restart()  # new connection: the broker resends every unacknowledged message
        assert wait_until(lambda: gw.broker_connected, 10)
        with sqlite3.connect(db) as conn:
            assert wait_until(
                lambda: (
                    (conn.execute("SELECT value FROM counters WHERE name='duplicates_skipped'").fetchone() or (0,))[0]
                    >= 1
                ),
                20,
            )
    finally:
        gw.stop()
    assert swallowed
    acked, stored = check_exactly_once(site, db, pub)
    assert stored == acked == 150


def test_retained_state_is_old_state_not_a_new_event(tmp_path: Path, private_broker: Mosquitto, site: Path) -> None:
    import paho.mqtt.publish as publish

    publish.single(
        "zigbee2mqtt/b1/door1/availability",
        json.dumps({"state": "offline"}),
        qos=1,
        retain=True,
        hostname="127.0.0.1",
        port=private_broker.port,
    )
    cfg = load_config(site)
    db = Path(cfg.store.path)
    for _ in range(3):  # three starts: the broker replays the retained message on every subscribe
        gw = Gateway(cfg)
        gw.start()
        assert wait_until(lambda gw=gw: gw.broker_connected, 10)
        assert wait_until(lambda: count_readings(db) >= 1, 10)
        gw.stop()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT device_id, flags FROM readings").fetchall()
        replays = conn.execute("SELECT value FROM counters WHERE name='retained_replays'").fetchone()
        online = conn.execute("SELECT online FROM devices WHERE device_id='door-1'").fetchone()
    assert len(rows) == 1 and rows[0][0] == "door-1", "stored once"
    assert rows[0][1] & FLAG_RETAINED, "flagged as retained (old state)"
    assert replays is not None and replays[0] >= 2
    assert online == (0,)


class _SlowStage(BaseStage):
    """A stage that takes 5 ms per transaction: the pipeline falls behind a broker backlog."""

    def after(self, conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
        time.sleep(0.005)


def test_backlog_drain_is_bounded_in_memory_and_loses_nothing(
    tmp_path: Path, private_broker: Mosquitto, site: Path
) -> None:
    """After an outage the broker holds a backlog and sends faster than the pipeline commits.
    The queue between a session's network thread and the pipeline stays within ``queue_max``
    (the network thread waits: TCP back-pressure to the broker), and every message is stored once."""
    cfg = load_config(site)
    gw = Gateway(cfg, stages=[_SlowStage()])
    gw.start()
    db = Path(cfg.store.path)
    assert wait_until(lambda: gw.broker_connected, 10)
    gw.stop()  # the persistent session stays at the broker, which queues what follows
    pub = TrackedPublisher("127.0.0.1", private_broker.port)
    pub.publish_all(make_messages(site, 4000, seed=6))
    total = sum(pub.acked.values())
    gw = Gateway(cfg, stages=[_SlowStage()])
    gw.pipeline.queue_max = 200
    deepest = 0
    draining = threading.Event()
    draining.set()

    def watch() -> None:
        nonlocal deepest
        while draining.is_set():
            deepest = max(deepest, gw.pipeline._q_tele.qsize())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    gw.start()
    try:
        assert wait_until(lambda: count_readings(db) >= total, 90), f"{count_readings(db)} of {total}"
    finally:
        draining.clear()
        watcher.join(5)
        gw.stop()
    assert gw.pipeline.queue_waits > 0, "the backlog should have filled the queue at least once"
    assert deepest <= 200 + 1, f"{deepest} messages queued in memory, bound 200"
    check_exactly_once(site, db, pub)
