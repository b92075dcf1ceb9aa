"""Ingest benchmark: the whole pipeline against a bare paho subscriber, in one run.

    .venv/bin/python bench/ingest.py [--messages N] [--devices 1000]

1. Starts a private Mosquitto with deploy/mosquitto.conf (persistence, queues, in-flight 1000).
2. Ceiling: a bare paho-mqtt 2 subscriber process (QoS 1, persistent session, automatic
   acknowledgement, only counts) while a separate publisher process sends N messages.
3. Gateway: the full pipeline (drivers, routing, group commit with synchronous=FULL, PUBACK after
   commit, rule processors as wired in gateway.app.Gateway) in its own process, with the same
   publisher sending the same N messages, on a fresh broker: on the first one the bare
   subscriber's persistent session kept a copy of every message the gateway was sent, and the
   broker wrote them all to its persistence file every second during the measurement.
Throughput is messages / (last commit - first commit) on the consumer side, for both. Latency
is publish -> commit of every message: one publisher and one session keep MQTT's order, so the
k-th committed message is the k-th published one. RSS is the gateway process's peak (VmHWM).

The publisher keeps at most WINDOW (2,000) messages unacknowledged: 1,000 in flight at the
broker as before, 1,000 more queued in paho. It used to queue all N in paho at once; MQTT packet
identifiers are 16 bits, so past 65,535 outstanding paho refused the rest, unnoticed, and the
default 100,000 hung (issue 23). A send time is now taken when a message enters that window,
not when it entered paho's unlimited queue, so the saturation phase's publish -> commit figure
(printed, not in RESULT) no longer counts time spent in the publisher's own queue.

Every count is checked: each phase's publisher got a PUBACK for every message and its consumer
received or committed exactly that many, and at the end every published message is stored
exactly once (RESULT lost= and duplicates=; either non-zero fails the run). Every wait ends, when
what it waits for stops arriving for 30 s (bench/_wait.py), with a message naming what did not
arrive and the broker's $SYS counters, and the bench exits non-zero.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._wait import STALL_S, BenchFailed, broker_counters, exit_on_sigterm, receive, wait_for  # noqa: E402


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


# Messages published and not yet acknowledged, at most. MQTT packet identifiers are 16 bits and
# paho refuses (MQTT_ERR_QUEUE_SIZE) a publish whose identifier is still outstanding: the publisher
# used to hand all N messages to paho's unlimited queue at once, so past 65,535 unacknowledged
# ones every publish whose identifier was still taken was refused, unchecked, and never sent
# (issue 23: ~66,000 of 100,000 reached the broker; both processes then waited for the rest).
# 1,000 in flight at the broker, as before, plus 1,000 ready in paho's queue.
WINDOW = 2000
# A backstop for each report a phase waits for; a child ends its own waits after STALL_S without
# progress, long before this.
PHASE_LIMIT_S = 300.0


def publisher(port: int, messages: list[tuple[str, bytes]], rate: float, go: Connection, out: Connection) -> None:
    """Publish everything QoS 1, as fast as the broker takes it (rate 0) or paced at ``rate``
    messages per second, with at most WINDOW unacknowledged; report send times and PUBACKs."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    n = len(messages)
    acked = 0
    slots = threading.Semaphore(WINDOW)

    def on_publish(c: object, u: object, mid: int, rc: object, p: object) -> None:
        nonlocal acked
        acked += 1  # only paho's network thread writes it
        slots.release()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", clean_session=True)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)  # bounded by WINDOW below
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if not go.poll(60):
            raise BenchFailed("the publisher waited 60 s for the bench's go")
        go.recv()
        sent = []
        start = time.time()
        for i, (topic, payload) in enumerate(messages):
            if rate:
                delay = start + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
            if not slots.acquire(timeout=STALL_S):
                raise BenchFailed(
                    f"the publisher waited {STALL_S:.0f} s for a PUBACK to send message {i + 1} of {n}; "
                    f"{acked} acknowledged; {broker_counters(port)}"
                )
            sent.append(time.time())
            rc = c.publish(topic, payload, qos=1).rc
            if rc != paho.MQTT_ERR_SUCCESS:
                raise BenchFailed(f"paho refused message {i + 1} of {n}: {paho.error_string(rc)}")
        wait_for("PUBACKs at the publisher", lambda: acked, n, why=lambda: broker_counters(port))
    finally:
        c.disconnect()
        c.loop_stop()
    out.send((sent, acked))


def bare_subscriber(
    port: int,
    topics: list[str],
    expect: int,
    ready: Connection,
    out: Connection,
    client_id: str = "bench-bare",
    stall_s: float = STALL_S,
) -> None:
    """The ceiling: paho-mqtt, QoS 1, persistent session, automatic acknowledgement, counts only.
    ``expect`` 0: only register the persistent session and leave."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    count = 0
    first = last = 0.0

    def on_message(c: object, u: object, msg: object) -> None:
        nonlocal count, first, last
        count += 1
        now = time.time()
        if count == 1:
            first = now
        last = now

    def on_connect(c: paho.Client, u: object, f: object, rc: object, p: object) -> None:
        c.subscribe([(t, 1) for t in topics])

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.on_message = on_message
    c.on_connect = on_connect
    c.on_subscribe = lambda *a: ready.send("ready")
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        if expect == 0:
            time.sleep(0.5)
        else:
            what = f"messages at the bare subscriber {client_id}"
            wait_for(what, lambda: count, expect, stall_s=stall_s, why=lambda: broker_counters(port))
    finally:
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
    try:
        wait_for(f"gateway connected to the broker on port {cfg.mqtt.port}", lambda: int(gw.broker_connected), 1)
        time.sleep(0.3)  # subscriptions acknowledged
        ready.send("ready")
        why = functools.partial(broker_counters, cfg.mqtt.port)
        wait_for("messages committed by the gateway", lambda: total, expect, why=why)
    finally:
        gw.stop()
    out.send((commits, total, vm_hwm_mb(), io_write_bytes() - io_start))


def finish(*procs: mp.process.BaseProcess | None, wait_s: float = 10.0) -> None:
    """Join the children; one still running after ``wait_s`` (a failed phase) is terminated."""
    for p in procs:
        if p is None or p.pid is None:
            continue
        p.join(wait_s)
        if p.is_alive():
            p.terminate()
            p.join(5)


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
        try:
            result = receive(out_r, p, f"the report of {target.__name__}", limit_s=PHASE_LIMIT_S)  # type: ignore[attr-defined]
        finally:
            finish(p)
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

    n = len(messages)
    acked = 0
    slots = threading.Semaphore(1500)  # published and not yet acknowledged (see WINDOW)

    def on_publish(*_: object) -> None:
        nonlocal acked
        acked += 1
        slots.release()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-backlog-{os.getpid()}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(2000)  # never reached: the slots above hold publish() back first
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    try:
        for i, (t, p) in enumerate(messages):
            if not slots.acquire(timeout=STALL_S):
                raise BenchFailed(
                    f"the backlog publisher waited {STALL_S:.0f} s for a PUBACK to send message {i + 1} of {n}; "
                    f"{acked} acknowledged; {broker_counters(port)}"
                )
            rc = c.publish(t, p, qos=1).rc
            if rc != paho.MQTT_ERR_SUCCESS:
                raise BenchFailed(f"paho refused backlog message {i + 1} of {n}: {paho.error_string(rc)}")
        wait_for("PUBACKs for the backlog", lambda: acked, n, why=lambda: broker_counters(port))
    finally:
        c.loop_stop()
        c.disconnect()


def check(ok: bool, message: str) -> None:
    if not ok:
        raise BenchFailed(message)


def stored_once(db: Path, published: list[tuple[str, bytes]]) -> tuple[int, int, int]:
    """(stored, missing, extra): readings in the store, published messages with no reading, and
    readings beyond one per published message. Each reading's msg_key ends with the crc32 of its
    message's topic and payload (gateway/ingest/pipeline.py msg_key), and each bench message
    yields one reading; equal multisets of crc32s mean every message was stored exactly once."""
    want = Counter(zlib.crc32(payload, zlib.crc32(topic.encode())) for topic, payload in published)
    conn = sqlite3.connect(db)
    try:
        have = Counter(key & 0xFFFFFFFF for (key,) in conn.execute("SELECT msg_key FROM readings"))
    finally:
        conn.close()
    return have.total(), (want - have).total(), (have - want).total()


def run_phase(
    ctx: mp.context.SpawnContext,
    target: object,
    args: tuple,
    port: int,  # type: ignore[type-arg]
    messages: list[tuple[str, bytes]],
    rate: float = 0.0,
) -> tuple[object, list[float], int]:
    """One consumer (``target``) and the publisher sending ``messages``; returns the consumer's
    report, the publisher's send times and its PUBACK count."""
    ready_r, ready_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    consumer = ctx.Process(target=target, args=(*args, ready_w, out_w))  # type: ignore[arg-type]
    go_r, go_w = ctx.Pipe(duplex=False)
    pout_r, pout_w = ctx.Pipe(duplex=False)
    pub = ctx.Process(target=publisher, args=(port, messages, rate, go_r, pout_w))
    ok = False
    try:
        consumer.start()
        receive(ready_r, consumer, "the consumer's ready signal", limit_s=60)
        pub.start()
        time.sleep(0.5)
        go_w.send("go")
        limit = PHASE_LIMIT_S + (len(messages) / rate if rate else 0.0)  # a paced phase takes its time
        sent, acked = receive(pout_r, pub, "the publisher's report", limit_s=limit)
        result = receive(out_r, consumer, "the consumer's report", limit_s=limit)
        ok = True
    finally:
        finish(pub, consumer, wait_s=10 if ok else 0)
    return result, sent, acked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--latency-rate", type=float, default=1000.0, help="paced phase: messages per second")
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--group-commit-ms", type=int, default=200, help="store.group_commit_ms of the site")
    args = ap.parse_args()
    exit_on_sigterm()

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
            check(
                count == n and bare_acked == n,
                f"ceiling: the bare subscriber got {count} of {n} messages, the "
                f"publisher {bare_acked} PUBACKs (each must be {n}: nothing lost, nothing twice)",
            )
            ceiling = (count - 1) / (last - first) if last > first else 0.0
            print(
                f"ceiling: bare paho subscriber received {count} of {n} (publisher got {bare_acked} PUBACKs), "
                f"{ceiling:,.0f} msg/s, rss {bare_rss:.1f} MB",
                flush=True,
            )

            # The gateway gets a fresh broker on the same port (the site file names it). On the same
            # broker the bare subscriber's persistent session kept a copy of every later message
            # (110,053 queued by the end of the paced phase, $SYS/broker/store/messages/count), which
            # the broker rewrote to its persistence file every second (autosave_interval 1) while
            # the gateway was being measured.
            broker.stop()
            broker = Mosquitto(work / "broker-gw", port=broker.port).start()
            (commits, total, rss, _io), sent, acked = run_phase(  # type: ignore[misc]
                ctx, gateway_proc, (str(site), n), broker.port, messages
            )
            check(
                total == n and acked == n, f"gateway at saturation: {total} of {n} messages committed, {acked} PUBACKs"
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

            # Latency at a sustainable rate (what an alarm sees on a busy site).
            paced = make_messages(site, int(args.latency_rate * args.latency_seconds), seed=11)
            (commits2, total2, rss2, _io2), sent2, acked2 = run_phase(  # type: ignore[misc]
                ctx, gateway_proc, (str(site), len(paced)), broker.port, paced, args.latency_rate
            )
            check(
                total2 == len(paced) and acked2 == len(paced),
                f"gateway paced: {total2} of {len(paced)} messages committed, {acked2} PUBACKs",
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
                d_count, d_first, d_last, _ = drain(  # type: ignore[misc]
                    ctx,
                    bare_subscriber,
                    (broker_b.port, topics, 0, "bench-bare-drain"),
                    (broker_b.port, topics, len(backlog), "bench-bare-drain"),
                    broker_b.port,
                    backlog,
                )
            finally:
                broker_b.stop()
            check(d_count == len(backlog), f"bare backlog drain: {d_count} of {len(backlog)} messages received")
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
            check(d_total == len(backlog), f"gateway backlog drain: {d_total} of {len(backlog)} messages committed")
            gw_drain = (d_total - d_commits[0][1]) / (d_commits[-1][0] - d_commits[0][0])
            print(
                f"backlog drain ({len(backlog)} queued, no publisher running): gateway {gw_drain:,.0f} msg/s, "
                f"bare paho {bare_drain:,.0f} msg/s, ratio {gw_drain / bare_drain:.2f}",
                flush=True,
            )
            published = messages + paced + backlog
            acked += len(backlog)  # queue_backlog fails unless every one was acknowledged
            total += d_total
            stored, lost, extra = stored_once(work / "gateway.db", published)
            print(
                f"counts: published {len(published)}, acknowledged to the publisher {acked}, "
                f"committed by the gateway {total}, found stored {stored}: "
                f"{lost} published and not stored, {extra} stored more than once",
                flush=True,
            )
            ratio = rate / ceiling if ceiling else 0.0
            print(
                f"RESULT ingest_msgs_per_s={rate:.0f} ceiling_msgs_per_s={ceiling:.0f} ratio={ratio:.2f} "
                f"p99_commit_ms={p99:.1f} rss_mb={rss:.1f} lost={lost} duplicates={extra}"
            )
            check(lost == 0 and extra == 0, f"the store lacks {lost} published messages and has {extra} extra readings")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
