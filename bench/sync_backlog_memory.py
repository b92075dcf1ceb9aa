"""The gateway's RSS while the central store is down for an hour, next to the same gateway with no outage.

    .venv/bin/python bench/sync_backlog_memory.py [--minutes 60] [--rate R] [--publish-rate P]
    quick:           --minutes 5
    the issue's run: --rate 1000 --minutes 5   (1,000 msg/s, 5 minutes down)

Site: edge_config/examples/community.yaml (514 devices), with this run's broker and store and a sync
section pointing at a local VictoriaMetrics (tests/sync_servers.py). Messages: its devices' own
payload formats (gateway/install/traffic.py), ``rate x 60 x minutes`` of them. The rate defaults
to the community simulator's (``edge-gateway simulate --rate``, read from the simulator): its day
curve changes the mix of messages, not their rate, so that is also its peak. The hour's messages
are published faster (``--publish-rate``, QoS 1) so that the hour takes minutes; the count and
both rates are printed.

1. No outage (the ceiling): ``python -m gateway run`` (the API included) with VictoriaMetrics up;
   publish; wait until every message is committed and nothing is left to send. Peak RSS = VmHWM.
2. Outage: a fresh store, nothing listening at the central store's address; the same messages;
   peak RSS over the outage. Then VictoriaMetrics starts on that address and the backlog drains:
   drain time, and the peak RSS over outage + drain.
3. Checks, both runs: every message committed; VictoriaMetrics holds exactly the telemetry points
   written (committed readings - not sent (residents' devices, empty) - thinned) and every
   incident event.
Last line: RESULT rss_outage_mb=... rss_no_outage_mb=... limit_mb=100 drain_s=... messages=... thinned=...
"""

from __future__ import annotations

import argparse
import inspect
import os
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edge_config import load_config  # noqa: E402
from gateway.install import traffic  # noqa: E402
from gateway.install.mosquitto import Mosquitto  # noqa: E402
from gateway.install.simulator import Simulator  # noqa: E402
from tests.support import GatewayProcess  # noqa: E402
from tests.sync_servers import VictoriaMetrics, free_port  # noqa: E402

COMMUNITY = ROOT / "edge_config" / "examples" / "community.yaml"
LIMIT_MB = 100.0
FLAG_PERSONAL = 4  # gateway.core.store.FLAG_PERSONAL (not imported: the bench reads the store as SQL)


def simulator_rate() -> float:
    return float(inspect.signature(Simulator.__init__).parameters["rate"].default)


def site(work: Path, mqtt_port: int, sync_port: int) -> Path:
    """community.yaml with this run's broker, store and central store (quota as shipped: 64 MiB)."""
    text = COMMUNITY.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(mqtt:\n  host: .*\n)  port: \d+", rf"\g<1>  port: {mqtt_port}", text, count=1)
    text = re.sub(r"(?m)^  path: \./data/gateway\.db", f"  path: {work / 'gateway.db'}", text, count=1)
    # The store keeps every reading of the hour (~120 bytes each) as well as the outbox.
    text = re.sub(r"(?m)^(store:\n(?:  .*\n)*?)  quota_mb: \d+", r"\g<1>  quota_mb: 4096", text, count=1)
    text += f"\nsync:\n  enabled: true\n  url: http://127.0.0.1:{sync_port}\n  backoff_max_s: 5\n"
    path = work / "site.yaml"
    path.write_text(text, encoding="utf-8")
    os.chmod(path, 0o600)  # residents' personal data (privacy.config_permissions)
    return path


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, MB."""
    got = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                got[line[:5]] = int(line.split()[1]) / 1024
    return got["VmRSS"], got["VmHWM"]


def wait(what: str, done: Callable[[], bool], timeout: float, progress: Callable[[], str]) -> None:
    """Poll ``done``; on timeout stop the bench naming what did not arrive and how far it got."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"FAILED: {what} within {timeout:.0f} s ({progress()})")
        time.sleep(0.5)


def publish(port: int, messages: list[tuple[str, bytes]], rate: float) -> float:
    """QoS 1, paced at ``rate``, at most 1,500 unacknowledged; returns the achieved msg/s."""
    acks = threading.Semaphore(0)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sync-mem-{os.getpid()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.on_publish = lambda *_: acks.release()
    c.connect("127.0.0.1", port)
    c.loop_start()
    window = 1500
    t0 = time.monotonic()
    try:
        for i, (topic, payload) in enumerate(messages):
            if i >= window and not acks.acquire(timeout=120):
                raise SystemExit(f"FAILED: the broker acknowledged only {i - window} of {len(messages)} messages")
            ahead = i / rate - (time.monotonic() - t0)
            if ahead > 0.005:
                time.sleep(ahead)
            if c.publish(topic, payload, qos=1).rc != paho.MQTT_ERR_SUCCESS:
                raise SystemExit(f"FAILED: the publisher lost its broker connection after {i} messages")
        for k in range(min(window, len(messages))):
            if not acks.acquire(timeout=120):
                raise SystemExit(f"FAILED: the broker did not acknowledge the last {window - k} messages")
    finally:
        c.loop_stop()
        c.disconnect()
    return len(messages) / (time.monotonic() - t0)


class Store:
    """Read-only looks at the gateway's store (WAL: never in the writer's way)."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def q(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    def counter(self, name: str) -> int:
        got = self.q(f"SELECT value FROM counters WHERE name='{name}'")
        return int(got[0][0]) if got else 0

    def meta(self, key: str) -> str | None:
        got = self.q(f"SELECT value FROM meta WHERE key='{key}'")
        return str(got[0][0]) if got else None

    def unsent(self) -> int:
        return int(self.q("SELECT coalesce(sum(rows), 0) FROM outbox_totals")[0][0])


def run(
    label: str, args: argparse.Namespace, messages: list[tuple[str, bytes]], mqtt_port: int, outage: bool
) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix=f"bench-sync-mem-{label}-"))
    sync_port = free_port()
    cfg = site(work, mqtt_port, sync_port)
    vm = VictoriaMetrics(port=sync_port)
    if not outage:
        vm.start()
    store = Store(work / "gateway.db")
    gw = GatewayProcess(cfg, work / "gateway.db", work, free_port()).start()
    assert gw.proc is not None
    pid = gw.proc.pid
    n = len(messages)
    out: dict[str, float] = {}
    try:
        time.sleep(2.0)  # MQTT sessions subscribed
        t0 = time.monotonic()
        out["publish_rate"] = publish(mqtt_port, messages, args.publish_rate)
        wait(
            f"{label}: the gateway did not commit all {n} messages",
            lambda: store.counter("messages_committed") >= n,
            args.timeout,
            lambda: f"{store.counter('messages_committed')} committed",
        )
        out["ingest_s"] = time.monotonic() - t0
        if outage:
            out["rss_during_outage"] = rss_mb(pid)[1]
            backlog = store.unsent()
            print(
                f"  {label}: {n} messages committed in {out['ingest_s']:.0f} s with the central store down; "
                f"unsent points {backlog}, thinned {store.counter('sync_thinned')}; "
                f"RSS now {rss_mb(pid)[0]:.1f} MB, peak {out['rss_during_outage']:.1f} MB",
                flush=True,
            )
            vm.start()
            t1 = time.monotonic()
        wait(
            f"{label}: the outbox did not drain to the central store",
            lambda: store.unsent() == 0,
            args.timeout,
            lambda: f"{store.unsent()} points unsent, last error: {store.meta('sync_last_error')}",
        )
        if outage:
            out["drain_s"] = time.monotonic() - t1
        rss_now, out["rss_peak"] = rss_mb(pid)
        print(f"  {label}: nothing left to send; RSS now {rss_now:.1f} MB, peak {out['rss_peak']:.1f} MB", flush=True)
    finally:
        gw.stop()
    # checks: what the central store holds
    readings = int(store.q("SELECT count(*) FROM readings")[0][0])
    out["thinned"] = store.counter("sync_thinned")
    expected = readings - store.counter("sync_not_sent") - int(out["thinned"])
    seqs = sorted(int(r[0]) for r in store.q("SELECT seq FROM incident_events"))
    points = vm.settled_points("edge_telemetry", expected, timeout=120)
    got_seqs = sorted(int(v) for _, _, v in vm.settled_samples("edge_incident_seq", len(seqs), timeout=60))
    vm.close()
    ok = points == expected and got_seqs == seqs
    print(
        f"  {label}: readings {readings}, not sent {store.counter('sync_not_sent')}, thinned {int(out['thinned'])}: "
        f"VictoriaMetrics holds {points} telemetry points (expected {expected}), "
        f"{len(got_seqs)}/{len(seqs)} incident events -> {'OK' if ok else 'MISMATCH'}",
        flush=True,
    )
    out["ok"] = float(ok)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the outage (default 60; quick: 5)")
    ap.add_argument("--rate", type=float, default=simulator_rate(), help="messages per second of the community")
    ap.add_argument("--publish-rate", type=float, default=2000.0, help="how fast the outage's messages are replayed")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds each wait may take")
    args = ap.parse_args()
    cfg = load_config(COMMUNITY)
    devices = traffic.sim_devices(cfg)
    rng = random.Random(23)
    n = int(args.rate * 60 * args.minutes)
    messages = [traffic.telemetry(rng.choice(devices), rng) for _ in range(n)]
    print(
        f"site {COMMUNITY.name}: {len(devices)} devices; {args.minutes:g} min at {args.rate:g} msg/s = {n} messages, "
        f"published at up to {args.publish_rate:g} msg/s; limit {LIMIT_MB:g} MB",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-sync-mem-broker-") as bdir:
        broker = Mosquitto(Path(bdir)).start()
        try:
            base = run("no outage", args, messages, broker.port, outage=False)
            down = run("outage", args, messages, broker.port, outage=True)
        finally:
            broker.stop()
    ok = bool(base["ok"]) and bool(down["ok"])
    print(
        f"published at {base['publish_rate']:.0f} / {down['publish_rate']:.0f} msg/s; "
        f"peak RSS: no outage {base['rss_peak']:.1f} MB, outage {down['rss_during_outage']:.1f} MB, "
        f"outage + drain {down['rss_peak']:.1f} MB (limit {LIMIT_MB:g} MB); drain {down['drain_s']:.1f} s; "
        f"checks {'OK' if ok else 'FAILED'}"
    )
    print(
        f"RESULT rss_outage_mb={down['rss_peak']:.1f} rss_no_outage_mb={base['rss_peak']:.1f} limit_mb={LIMIT_MB:g} "
        f"drain_s={down['drain_s']:.1f} messages={n} thinned={int(down['thinned'])}"
    )
    return 0 if ok and down["rss_peak"] <= LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
