"""Drain rate of the sync outbox against VictoriaMetrics, next to a bare influxdb-client ceiling.

    .venv/bin/python bench/sync_drain.py [--points N] [--batch-size B] [--quota-mb Q]

1. Builds a backlog of N telemetry points in a fresh store through the outbox processor (the same
   code the pipeline runs), with the central store down.
2. Starts VictoriaMetrics and drains with the sender thread; meanwhile raises an incident event
   every 100 ms (committed through the outbox like the pipeline does) and measures commit -> 2xx.
   The drain ends when no telemetry is left unsent (``outbox_totals``). Accepted batches are
   acknowledged by id range and their rows deleted afterwards by the sender's clean-up (see
   cloud_sync/sender.py): the time until the last row is gone is measured and printed too, and the
   sender's CPU time over drain + clean-up is printed next to the bare client's.
3. Verifies the count in VictoriaMetrics (points stored == points sent, every incident event).
4. On a fresh VictoriaMetrics, a bare influxdb-client SYNCHRONOUS loop writes the same line
   protocol in the same batch size (pre-joined, no store): the ceiling.
Last line: RESULT drain_points_per_s=... ceiling_points_per_s=... ratio=... incident_during_drain_p99_ms=...
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._wait import exit_on_sigterm, wait_for  # noqa: E402
from cloud_sync.targets import V2Target, WriteOutcome  # noqa: E402
from gateway.core import store as st  # noqa: E402
from tests.sync_helpers import NON_PERSONAL, Feeder  # noqa: E402
from tests.sync_servers import VictoriaMetrics, free_port  # noqa: E402


class TimedTarget(V2Target):
    """Records when each incident event (by seq) was accepted (2xx)."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.accepted: dict[int, float] = {}

    def write(self, body: bytes) -> WriteOutcome:
        out = super().write(body)
        if out.ok and body.startswith(b"edge_incident"):
            t = time.monotonic()
            for line in body.split(b"\n"):
                if line.startswith(b"edge_incident"):
                    self.accepted[int(line.split(b",seq=")[1].split(b"i")[0])] = t
        return out


def thread_cpu(sender: object) -> Callable[[], float]:
    """CPU seconds used so far by the sender's threads (the loop and its HTTP poster), read from
    /proc: a measure that does not depend on how busy the other core is."""
    import os

    tids: set[int] = set()

    def read() -> float:
        for t in threading.enumerate():
            if t.name.startswith("cloud-sync") and t.native_id is not None:
                tids.add(t.native_id)
        total = 0
        for tid in tids:
            try:
                with open(f"/proc/self/task/{tid}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime + stime, clock ticks
            except OSError:
                continue  # that thread has ended (its time is no longer counted)
        return total / os.sysconf("SC_CLK_TCK")

    read()
    return read


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(0.99 * (len(v) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument(
        "--quota-mb",
        type=float,
        default=4096,
        help="sync.quota_mb; acknowledged rows are cleaned up during the drain once they pass a quarter of it",
    )
    args = ap.parse_args()
    exit_on_sigterm()
    n, bs = args.points, args.batch_size

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    f = Feeder(url, batch_size=bs, quota_mb=args.quota_mb, max_batch_age_s=0.5, heartbeat_s=3600)
    f.store.set_page_limit(life_safety=True)
    # 1. backlog (store down)
    t0 = time.perf_counter()
    now = st.now_ms() - n
    chunk = 5000
    for k in range(0, n, chunk):
        rs = [
            (
                NON_PERSONAL[i % 4],
                {"battery": float(i % 100), "contact": bool(i & 1), "rssi": -70 - i % 30},
                now + i,
            )
            for i in range(k, min(n, k + chunk))
        ]
        f.batch(rs, now=st.now_ms())
    build_s = time.perf_counter() - t0
    backlog = f.outbox_rows()
    mb = f.q("SELECT bytes FROM outbox_totals WHERE prio=2")[0][0] / 1048576
    print(
        f"backlog: {backlog} points ({mb:.0f} MiB accounted, quota {args.quota_mb:g} MiB) built in {build_s:.1f}s"
        f" ({backlog / build_s:,.0f}/s)",
        flush=True,
    )

    # 2. drain
    vm = VictoriaMetrics(port=port).start()
    target = TimedTarget(url, token="", org="", bucket="b", timeout_s=30)
    sender = f.sender(target=target)
    raised: dict[int, float] = {}
    stop = threading.Event()

    def incidents() -> None:
        while not stop.wait(0.1):
            before = f.event_seqs_max()
            f.batch([], incidents=1)
            seq = f.event_seqs_max()
            if seq > before:
                raised[seq] = time.monotonic()
            sender.wake()

    def event_seqs_max() -> int:
        return int(f.store.conn.execute("SELECT coalesce(max(seq), 0) FROM incident_events").fetchone()[0])

    f.event_seqs_max = event_seqs_max  # type: ignore[attr-defined]
    lock_feed = threading.Thread(target=incidents, daemon=True)
    t1 = time.perf_counter()
    sender.start()
    sender_cpu = thread_cpu(sender)
    lock_feed.start()
    ro = sqlite3.connect(f"file:{f.db}?mode=ro", uri=True, timeout=30)

    def scalar(sql: str) -> int:
        return int(ro.execute(sql).fetchone()[0])

    def last_error() -> str:
        return f"the sender's last write error: {sender.last_error}"

    unsent = "SELECT rows FROM outbox_totals WHERE prio=2"
    what = "telemetry points accepted by VictoriaMetrics"
    wait_for(what, lambda: backlog - scalar(unsent), backlog, poll_s=0.01, why=last_error)
    drain_s = time.perf_counter() - t1
    stop.set()
    lock_feed.join()
    sender.flush = True
    left = scalar("SELECT count(*) FROM outbox")
    what = "accepted outbox rows deleted"
    wait_for(what, lambda: left - scalar("SELECT count(*) FROM outbox"), left, poll_s=0.01, why=last_error)
    cleanup_s = time.perf_counter() - t1 - drain_s
    cpu_s = sender_cpu()
    sender.stop()
    drain_rate = backlog / drain_s
    lat = [(target.accepted[s] - t) * 1000 for s, t in raised.items() if s in target.accepted]
    missing_ack = [s for s in raised if s not in target.accepted]
    print(
        f"drain: {backlog} points in {drain_s:.2f}s = {drain_rate:,.0f}/s; incidents raised during drain: "
        f"{len(raised)}, p99 raise->2xx {p99(lat):.1f} ms, max {max(lat or [0]):.1f} ms",
        flush=True,
    )
    print(
        f"clean-up: last accepted row deleted {cleanup_s:.2f}s after the drain ended; "
        f"sender threads' CPU over drain + clean-up {cpu_s:.2f}s",
        flush=True,
    )

    # 3. verify
    tele = vm.settled_points("edge_telemetry", n, timeout=180)
    seqs = sorted(int(v) for _, _, v in vm.settled_samples("edge_incident_seq", len(f.event_seqs()), timeout=60))
    ok = tele == n and seqs == sorted(f.event_seqs()) and not missing_ack
    print(
        f"verified: VictoriaMetrics holds {tele} telemetry points (sent {n}), "
        f"{len(seqs)}/{len(f.event_seqs())} incident events, {len(missing_ack)} raised during the drain never "
        f"accepted -> {'OK' if ok else 'MISMATCH'}",
        flush=True,
    )
    vm.close()

    # 4. ceiling: same lines, same batch size, bare client, fresh server
    f2 = Feeder(url, batch_size=bs, quota_mb=4096)
    for k in range(0, n, chunk):
        rs = [
            (
                NON_PERSONAL[i % 4],
                {"battery": float(i % 100), "contact": bool(i & 1), "rssi": -70 - i % 30},
                now + i,
            )
            for i in range(k, min(n, k + chunk))
        ]
        f2.batch(rs, now=st.now_ms())
    lines = [r[0] for r in f2.q("SELECT line FROM outbox WHERE prio=2 ORDER BY id")]
    f2.close()
    bodies = ["\n".join(lines[i : i + bs]).encode() for i in range(0, len(lines), bs)]
    del lines
    vm2 = VictoriaMetrics().start()
    from influxdb_client import InfluxDBClient, WritePrecision
    from influxdb_client.client.write_api import SYNCHRONOUS

    client = InfluxDBClient(url=vm2.url, token="", org="-", timeout=30_000)
    api = client.write_api(write_options=SYNCHRONOUS)
    t2 = time.perf_counter()
    c2 = time.thread_time()
    for body in bodies:
        api.write(bucket="b", org="-", record=body, write_precision=WritePrecision.NS)
    ceil_s = time.perf_counter() - t2
    ceil_cpu = time.thread_time() - c2
    client.close()
    vm2.close()
    ceiling = n / ceil_s
    print(
        f"ceiling: bare influxdb-client, {len(bodies)} batches of {bs}: {n} points in {ceil_s:.2f}s = {ceiling:,.0f}/s"
        f" (client CPU {ceil_cpu:.2f}s)"
    )
    f.close()
    print(
        f"RESULT drain_points_per_s={drain_rate:.0f} ceiling_points_per_s={ceiling:.0f} "
        f"ratio={drain_rate / ceiling:.3f} incident_during_drain_p99_ms={p99(lat):.1f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
