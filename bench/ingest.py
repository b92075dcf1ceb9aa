"""Ingest benchmark: the whole pipeline against a bare paho subscriber, in one run.

    .venv/bin/python bench/ingest.py [--messages N] [--devices 1000]

1. Starts a private Mosquitto with deploy/mosquitto.conf (persistence, queues, in-flight 1000).
2. Ceiling: a bare paho-mqtt 2 subscriber process (QoS 1, persistent session, automatic
   acknowledgement, only counts) while a separate publisher process sends N messages.
3. Gateway: the full pipeline (drivers, routing, group commit with synchronous=FULL, PUBACK after
   commit, rule processors as wired in gateway.app.Gateway) in its own process, with the same
   publisher sending the same N messages.
Throughput is messages / (last commit - first commit) on the consumer side, for both. Latency
is publish -> commit of every message: one publisher and one session keep MQTT's order, so the
k-th committed message is the k-th published one. RSS is the gateway process's peak (VmHWM).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def io_write_bytes() -> int:
    """Bytes this process caused to be written to storage (/proc/self/io write_bytes)."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def make_messages(site: Path, n: int, seed: int = 7) -> list[tuple[str, bytes]]:
    from edge_config import load_config
    from gateway.install import traffic

    devs = traffic.sim_devices(load_config(site))
    rng = random.Random(seed)
    return [traffic.telemetry(rng.choice(devs), rng) for _ in range(n)]


def publisher(port: int, messages: list[tuple[str, bytes]], rate: float, go: Connection, out: Connection) -> None:
    """Publish everything QoS 1, as fast as the broker takes it (rate 0) or paced at ``rate``
    messages per second; report send times and PUBACKs."""
    import threading

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    acked = 0
    done = threading.Event()
    lock = threading.Lock()

    def on_publish(c: object, u: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == len(messages):
                done.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", clean_session=True)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    go.recv()
    sent = []
    start = time.time()
    for i, (topic, payload) in enumerate(messages):
        if rate:
            delay = start + i / rate - time.time()
            if delay > 0:
                time.sleep(delay)
        sent.append(time.time())
        c.publish(topic, payload, qos=1)
    done.wait(600)
    c.disconnect()
    c.loop_stop()
    out.send((sent, acked))


def bare_subscriber(
    port: int, topics: list[str], expect: int, ready: Connection, out: Connection, client_id: str = "bench-bare"
) -> None:
    """The ceiling: paho-mqtt, QoS 1, persistent session, automatic acknowledgement, counts only."""
    import threading

    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    count = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(c: object, u: object, msg: object) -> None:
        nonlocal count, first, last
        count += 1
        now = time.time()
        if count == 1:
            first = now
        last = now
        if count >= expect:
            done.set()

    def on_connect(c: paho.Client, u: object, f: object, rc: object, p: object) -> None:
        c.subscribe([(t, 1) for t in topics])

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_message = on_message
    c.on_connect = on_connect
    c.on_subscribe = lambda *a: ready.send("ready")
    c.connect("127.0.0.1", port)
    c.loop_start()
    if expect == 0:  # only register the persistent session
        time.sleep(0.5)
    done.wait(600 if expect else 0)
    c.disconnect()
    c.loop_stop()
    out.send((count, first, last, vm_hwm_mb()))


def gateway_proc(site: str, expect: int, ready: Connection, out: Connection, _unused: object = None) -> None:
    """The full gateway pipeline in its own process; reports commit times and peak RSS."""
    from edge_config import load_config
    from gateway.app import Gateway
    from gateway.core.contract import BatchResult

    cfg = load_config(site)
    gw = Gateway(cfg)
    commits: list[tuple[float, int]] = []
    total = 0

    def on_commit(r: BatchResult) -> None:
        nonlocal total
        if r.committed:
            total += r.committed
            commits.append((time.time(), total))

    gw.add_listener(on_commit)
    io_start = io_write_bytes()
    gw.start()
    deadline = time.time() + 20
    while not gw.broker_connected and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # subscriptions acknowledged
    ready.send("ready")
    deadline = time.time() + 600
    while total < max(expect, 0) and time.time() < deadline:
        time.sleep(0.05)
    gw.stop()
    out.send((commits, total, vm_hwm_mb(), io_write_bytes() - io_start))


def drain(
    ctx: mp.context.SpawnContext,
    target: object,
    args_register: tuple,
    args_drain: tuple,  # type: ignore[type-arg]
    port: int,
    messages: list[tuple[str, bytes]],
) -> object:
    """Consumer-bound comparison: the consumer registers its persistent session and leaves, the
    backlog is queued at the broker, then the consumer returns and drains it alone."""
    for args in (args_register, None, args_drain):
        if args is None:
            queue_backlog(port, messages)
            continue
        _ready_r, ready_w = ctx.Pipe(duplex=False)
        out_r, out_w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=target, args=(*args[:-1], ready_w, out_w, *args[-1:]))  # type: ignore[arg-type]
        p.start()
        result = out_r.recv()
        p.join()
    return result


def latencies(commits: list[tuple[float, int]], sent: list[float]) -> list[float]:
    """publish -> commit of every message, in ms (k-th committed is the k-th published)."""
    lat = []
    k = 0
    for t_commit, cum in commits:
        while k < cum and k < len(sent):
            lat.append((t_commit - sent[k]) * 1000)
            k += 1
    return sorted(lat)


def queue_backlog(port: int, messages: list[tuple[str, bytes]]) -> None:
    """Publish everything while the consumer is away; the broker queues it for its session.

    One connection with 1,000 QoS-1 messages in flight (paho.mqtt.publish.multiple opened one per
    5,000 messages and waited for each batch: ~5,000 msg/s, a minute for 300,000)."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    done = threading.Semaphore(0)
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-backlog-{os.getpid()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(2000)  # publish() blocks-free; we wait on acks below instead
    c.on_publish = lambda *_: done.release()
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        window = 1500  # published and not yet acknowledged
        for i, (t, p) in enumerate(messages):
            if i >= window:
                done.acquire()
            if c.publish(t, p, qos=1).rc != paho.MQTT_ERR_SUCCESS:
                raise RuntimeError("the backlog publisher lost its connection")
        for _ in range(min(window, len(messages))):
            if not done.acquire(timeout=60):
                raise RuntimeError("the broker stopped acknowledging the backlog")
    finally:
        c.loop_stop()
        c.disconnect()


def stored_count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])
    finally:
        conn.close()


def run_phase(
    ctx: mp.context.SpawnContext,
    target: object,
    args: tuple,
    port: int,  # type: ignore[type-arg]
    messages: list[tuple[str, bytes]],
    rate: float = 0.0,
) -> tuple[object, list[float], int]:
    ready_r, ready_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    consumer = ctx.Process(target=target, args=(*args, ready_w, out_w))  # type: ignore[arg-type]
    consumer.start()
    if not ready_r.poll(60):
        raise SystemExit("consumer did not get ready")
    ready_r.recv()
    go_r, go_w = ctx.Pipe(duplex=False)
    pout_r, pout_w = ctx.Pipe(duplex=False)
    pub = ctx.Process(target=publisher, args=(port, messages, rate, go_r, pout_w))
    pub.start()
    time.sleep(0.5)
    go_w.send("go")
    sent, acked = pout_r.recv()
    result = out_r.recv()
    pub.join()
    consumer.join()
    return result, sent, acked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--latency-rate", type=float, default=1000.0, help="paced phase: messages per second")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--group-commit-ms", type=int, default=200, help="store.group_commit_ms of the site")
    args = ap.parse_args()

    from bench._site import write_bench_site
    from gateway.install.mosquitto import Mosquitto

    ctx = mp.get_context("spawn")
    n = args.messages
    per = args.devices // 10
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "broker").start()
        try:
            site = write_bench_site(
                work,
                broker.port,
                zigbee=per * 4,
                lorawan=per * 3,
                native=per * 3,
                group_commit_ms=args.group_commit_ms,
            )
            messages = make_messages(site, n)
            topics = ["zigbee2mqtt/#", "application/+/device/+/event/up", "edge/v1/devices/+/+"]
            print(
                f"site: {args.devices} devices; {n} messages, mixed Zigbee2MQTT / ChirpStack / native; "
                f"group_commit_ms={args.group_commit_ms}",
                flush=True,
            )

            (count, first, last, bare_rss), _sent, bare_acked = run_phase(  # type: ignore[misc]
                ctx, bare_subscriber, (broker.port, topics, n), broker.port, messages
            )
            ceiling = (count - 1) / (last - first) if last > first else 0.0
            print(
                f"ceiling: bare paho subscriber received {count} of {n} (publisher got {bare_acked} PUBACKs), "
                f"{ceiling:,.0f} msg/s, rss {bare_rss:.1f} MB",
                flush=True,
            )

            (commits, total, rss, _io), sent, acked = run_phase(  # type: ignore[misc]
                ctx, gateway_proc, (str(site), n), broker.port, messages
            )
            t_first, t_last = commits[0][0], commits[-1][0]
            first_batch = commits[0][1]
            rate = (total - first_batch) / (t_last - t_first) if t_last > t_first else 0.0
            sat_lat = latencies(commits, sent)
            print(
                f"gateway at saturation: {rate:,.0f} msg/s over {len(commits)} commits "
                f"(mean {total / len(commits):.0f} msgs/commit); publish->commit p50 "
                f"{statistics.median(sat_lat):.0f} ms (queueing: the publisher outruns the consumer), "
                f"peak rss {rss:.1f} MB",
                flush=True,
            )
            stored_sat = stored_count(work / "gateway.db")
            if stored_sat != acked:
                print(f"MISMATCH: {acked} acknowledged to the publisher, {stored_sat} stored", flush=True)

            # Latency at a sustainable rate (what an alarm sees on a busy site).
            paced = make_messages(site, int(args.latency_rate * args.latency_seconds), seed=11)
            (commits2, total2, rss2, _io2), sent2, acked2 = run_phase(  # type: ignore[misc]
                ctx, gateway_proc, (str(site), len(paced)), broker.port, paced, args.latency_rate
            )
            lat = latencies(commits2, sent2)
            p50 = statistics.median(lat)
            p99 = lat[int(len(lat) * 0.99) - 1]
            print(
                f"gateway paced at {args.latency_rate:.0f} msg/s: publish->commit p50 {p50:.1f} ms, "
                f"p99 {p99:.1f} ms, max {lat[-1]:.1f} ms, peak rss {rss2:.1f} MB",
                flush=True,
            )
            rss = max(rss, rss2)
            acked += acked2
            total += total2
            # Consumer-bound: each drains the same queued backlog with no publisher competing for
            # CPU, each on a fresh broker (so no other persistent session queues a copy of it).
            backlog = messages[: min(n, 40_000)]
            broker_b = Mosquitto(work / "broker-drain-bare").start()
            try:
                _, d_first, d_last, _ = drain(  # type: ignore[misc]
                    ctx,
                    bare_subscriber,
                    (broker_b.port, topics, 0, "bench-bare-drain"),
                    (broker_b.port, topics, len(backlog), "bench-bare-drain"),
                    broker_b.port,
                    backlog,
                )
            finally:
                broker_b.stop()
            bare_drain = (len(backlog) - 1) / (d_last - d_first)
            # The gateway's own broker restarts empty on the same port (the site file names it).
            broker.stop()
            broker = Mosquitto(work / "broker-drain-gw", port=broker.port).start()
            d_commits, d_total, _, _ = drain(  # type: ignore[misc]
                ctx,
                gateway_proc,
                (str(site), 0, None),
                (str(site), len(backlog), None),
                broker.port,
                backlog,
            )
            gw_drain = (d_total - d_commits[0][1]) / (d_commits[-1][0] - d_commits[0][0])
            print(
                f"backlog drain ({len(backlog)} queued, no publisher running): gateway {gw_drain:,.0f} msg/s, "
                f"bare paho {bare_drain:,.0f} msg/s, ratio {gw_drain / bare_drain:.2f}",
                flush=True,
            )
            stored = stored_count(work / "gateway.db")
            acked += len(backlog)
            total += d_total
            lost = acked - stored
            print(
                f"counts: published {n + len(paced) + len(backlog)}, acknowledged to the publisher {acked}, "
                f"committed by the gateway {total}, found stored {stored}",
                flush=True,
            )
            ratio = rate / ceiling if ceiling else 0.0
            print(
                f"RESULT ingest_msgs_per_s={rate:.0f} ceiling_msgs_per_s={ceiling:.0f} ratio={ratio:.2f} "
                f"p99_commit_ms={p99:.1f} rss_mb={rss:.1f} lost={max(lost, 0)}"
            )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
