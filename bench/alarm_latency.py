"""Alarm latency under load: SOS press publish -> incident committed in the gateway's store.

    .venv/bin/python bench/alarm_latency.py [--quick] [--sos-devices 500] [--rate 2000]

Starts its own Mosquitto (recommended config), writes a site config with >= 500 Zigbee2MQTT SOS
buttons plus ordinary background devices, runs `python -m gateway run` as a subprocess, and a
background publisher process sending ordinary telemetry (real driver formats, QoS 1) at the
target rate. Then it presses every SOS button once in random order, plus repeats on some
(repeats must only raise the count), one press at a time, and measures publish -> the incident
event (created / repeated) being visible in the committed store (a read-only WAL reader polling
incident_events every ~1 ms; polling adds <= ~1 ms).

Prints what it checked, then the last line:
RESULT p50_ms=... p99_ms=... max_ms=... background_msgs_per_s=...
(background_msgs_per_s = background readings the gateway committed per second during the SOS phase.)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench._sos import press_seen  # noqa: E402
from bench._wait import BenchFailed, exit_on_sigterm  # noqa: E402
from gateway.install import traffic  # noqa: E402
from gateway.install.mosquitto import Mosquitto, free_port, wait_port  # noqa: E402


def site_yaml(port: int, n_sos: int, n_bg: int) -> tuple[str, list[traffic.SimDevice], list[traffic.SimDevice]]:
    sos: list[traffic.SimDevice] = []
    bg: list[traffic.SimDevice] = []
    lines: list[str] = []
    for i in range(n_sos):
        addr = f"0x00124b00{i:08x}"
        d = traffic.SimDevice(f"sos-{i:04d}", "zigbee2mqtt", addr, f"b{i % 10 + 1}/sos{i:04d}", "sos_button")
        sos.append(d)
        lines.append(
            f"  - {{id: {d.id}, driver: zigbee2mqtt, address: '{addr}', friendly_name: {d.friendly_name},"
            f" type: sos_button, location: {{building: b{i % 10 + 1}, area: 公共区域}}}}"
        )
    kinds = ["door_contact", "motion_sensor", "access_controller", "parking_sensor"]
    spaces = []
    for i in range(n_bg):
        kind = kinds[i % len(kinds)]
        b = f"b{i % 10 + 1}"
        if kind == "access_controller":
            d = traffic.SimDevice(f"acc-{i:04d}", "native", f"acc-{i:04d}", None, kind)
            loc = f"{{building: {b}}}"
        elif kind == "parking_sensor":
            d = traffic.SimDevice(f"park-{i:04d}", "chirpstack", f"70b3d57e{i:08x}", None, kind)
            spaces.append(f"        - {{id: s{i:04d}, kind: normal}}")
            loc = f"{{parking_space: s{i:04d}}}"
        else:
            d = traffic.SimDevice(f"z-{i:04d}", "zigbee2mqtt", f"0x00158d00{i:08x}", f"{b}/{kind}{i:04d}", kind)
            loc = f"{{building: {b}}}"
        bg.append(d)
        fn = f", friendly_name: {d.friendly_name}" if d.friendly_name else ""
        lines.append(
            f"  - {{id: {d.id}, driver: {d.driver}, address: '{d.address}'{fn}, type: {kind}, location: {loc}}}"
        )
    buildings = "\n".join(f"        - {{id: b{i}, name: {i}号楼, grid: g1, floors: 18}}" for i in range(1, 11))
    text = f"""\
version: 1
gateway: {{id: gw-bench, name: 基准网关}}
mqtt: {{host: 127.0.0.1, port: {port}}}
site:
  street: {{id: st1, name: 测试街道}}
  community: {{id: c1, name: 测试社区, households: 3000}}
  grids: [{{id: g1, name: 第一网格, households: 200, grid_worker: gw1}}]
  compounds:
    - id: cp1
      name: 和苑小区
      property_company: {{name: 和苑物业, duty_team: duty1}}
      buildings:
{buildings}
  parking_areas:
    - id: pa1
      name: 地面停车场
      compound: cp1
      spaces:
{chr(10).join(spaces) if spaces else "        - {id: s-none, kind: normal}"}
staff:
  - {{id: gw1, name: 网格员, role: grid_worker}}
  - {{id: ps1, name: 物业值班, role: property_staff}}
teams:
  - {{id: duty1, name: 物业值班组, kind: property_duty, members: [ps1], compound: cp1}}
devices:
{chr(10).join(lines)}
"""
    return text, sos, bg


def background(port: int, devices: list[traffic.SimDevice], rate: float, stop: Any, counts: Any) -> None:
    """Publishes ordinary telemetry at ``rate`` msg/s (QoS 1) until ``stop`` is set; ``counts``:
    published, acknowledged, refused by paho (e.g. more than 65,535 unacknowledged)."""
    rng = random.Random(7)
    acked = 0

    def on_publish(*_a: Any) -> None:
        nonlocal acked
        acked += 1

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-background", clean_session=True)
    c.max_inflight_messages_set(2000)
    c.max_queued_messages_set(0)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    sent = 0
    t0 = time.monotonic()
    pool = [traffic.telemetry(d, rng) for d in devices]  # steady values: ordinary, not flapping
    while not stop.is_set():
        due = int((time.monotonic() - t0) * rate)
        while sent < due:
            topic, payload = pool[sent % len(pool)]
            if c.publish(topic, payload, qos=1).rc != paho.MQTT_ERR_SUCCESS:
                counts[2] += 1
            sent += 1
        counts[0], counts[1] = sent, acked
        time.sleep(0.002)
    time.sleep(0.5)
    counts[0], counts[1] = sent, acked
    c.disconnect()
    c.loop_stop()


def readings_count(conn: sqlite3.Connection, after_id: int = 0) -> tuple[int, int]:
    """(max reading id, background readings - SOS devices excluded - after ``after_id``)."""
    top = int(conn.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()[0])
    bg = conn.execute(
        "SELECT count(*) FROM readings WHERE id > ? AND device_id NOT LIKE 'sos-%'", (after_id,)
    ).fetchone()[0]
    return top, int(bg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer presses (smoke run)")
    ap.add_argument("--sos-devices", type=int, default=500)
    ap.add_argument("--background-devices", type=int, default=400)
    ap.add_argument("--rate", type=float, default=2000.0, help="background msgs/s")
    ap.add_argument("--repeats", type=int, default=None, help="extra presses on already pressed devices")
    args = ap.parse_args(argv)
    exit_on_sigterm()
    n_sos = args.sos_devices if not args.quick else min(args.sos_devices, 500)
    repeats = args.repeats if args.repeats is not None else (20 if args.quick else 100)
    presses_distinct = n_sos if not args.quick else 100

    work = Path(tempfile.mkdtemp(prefix="edge-bench-"))
    broker = Mosquitto(work / "broker").start() if (work / "broker").mkdir() is None else None
    assert broker is not None
    text, sos, bg = site_yaml(broker.port, n_sos, args.background_devices)
    cfg_path = work / "site.yaml"
    cfg_path.write_text(text, encoding="utf-8")
    db = work / "gateway.db"
    api_port = free_port()
    log = open(work / "gateway.log", "wb")  # noqa: SIM115
    gw = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(cfg_path),
            "--store",
            str(db),
            "--api-port",
            str(api_port),
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stop = mp.get_context("spawn").Event()
    counts = mp.get_context("spawn").Array("q", 3)
    bgp = mp.get_context("spawn").Process(target=background, args=(broker.port, bg, args.rate, stop, counts))
    try:
        if not wait_port(api_port, 30):
            log_tail = (work / "gateway.log").read_text()[-2000:]
            raise BenchFailed(f"waited 30 s for the gateway's API port {api_port}; it did not open: {log_tail}")
        time.sleep(2.0)  # MQTT sessions subscribe
        reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
        bgp.start()
        time.sleep(3.0)  # warm-up under load

        pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-sos", clean_session=True)
        pub.connect("127.0.0.1", broker.port, 60)
        pub.loop_start()
        rng = random.Random(1)
        order = rng.sample(sos, presses_distinct)
        plan = order + [rng.choice(order) for _ in range(repeats)]
        rng.shuffle(plan[presses_distinct // 2 :])  # repeats interleaved in the second half
        last_seq = int(reader.execute("SELECT coalesce(max(seq), 0) FROM incident_events").fetchone()[0])
        inc_dev: dict[str, str] = {}
        latencies: list[float] = []
        missed: list[str] = []
        t_phase = time.monotonic()
        r_phase, _ = readings_count(reader)
        for dev in plan:
            topic, payload = traffic.sos_press(dev, rng)
            t_pub = time.perf_counter()
            pub.publish(topic, payload, qos=1)
            found = False
            deadline = t_pub + 5.0
            while not found and time.perf_counter() < deadline:
                rows = reader.execute(
                    "SELECT seq, incident_id, kind, data FROM incident_events WHERE seq > ? ORDER BY seq", (last_seq,)
                ).fetchall()
                t_seen = time.perf_counter()
                if rows:
                    last_seq = rows[-1][0]
                if press_seen(rows, inc_dev, dev.id):
                    latencies.append((t_seen - t_pub) * 1000)
                    found = True
                if not found:
                    time.sleep(0.0005)
            if not found:
                missed.append(dev.id)
            time.sleep(rng.uniform(0.002, 0.012))
        phase_s = time.monotonic() - t_phase
        time.sleep(1.0)
        _, bg_committed = readings_count(reader, r_phase)
        committed_rate = bg_committed / (phase_s + 1.0)
        stop.set()
        bgp.join(10)
        sent, acked, refused = counts[0], counts[1], counts[2]
        sos_rows = reader.execute(
            "SELECT count(*), coalesce(sum(count), 0), count(DISTINCT devices) FROM incidents WHERE type='sos'"
        ).fetchone()
        other = reader.execute("SELECT type, count(*) FROM incidents WHERE type != 'sos' GROUP BY type").fetchall()
        pub.loop_stop()
        pub.disconnect()
        reader.close()
    finally:
        stop.set()
        if bgp.is_alive():
            bgp.terminate()
        gw.send_signal(signal.SIGTERM)
        try:
            gw.wait(20)
        except subprocess.TimeoutExpired:
            gw.kill()
        log.close()
        broker.stop()

    distinct = len({d.id for d in plan})
    lat = sorted(latencies)
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] if lat else float("nan")
    print(f"work dir: {work}  cpus: {os.cpu_count()}")
    print(
        f"SOS devices configured: {n_sos}; presses published: {len(plan)} ({distinct} distinct devices, "
        f"{len(plan) - distinct} repeats); presses without a committed incident event within 5 s: {len(missed)}"
        + (f" ({', '.join(missed[:10])}{' ...' if len(missed) > 10 else ''})" if missed else "")
    )
    print(
        f"SOS incidents created: {sos_rows[0]} (expected {distinct}); sum of their counts: {sos_rows[1]} "
        f"(expected {len(plan)}); other incidents: {dict(other)}"
    )
    print(
        f"background: published {sent}, broker-acked {acked}, refused by paho {refused}, publisher exit code "
        f"{bgp.exitcode}; gateway committed {committed_rate:.0f} readings/s "
        f"during the {phase_s:.1f} s SOS phase (target {args.rate:.0f}/s)"
    )
    # The background load must have been there too: its publisher ran to the end, nothing refused.
    ok = sos_rows[0] == distinct and sos_rows[1] == len(plan) and not missed and refused == 0 and bgp.exitcode == 0
    print(f"checks: {'OK' if ok else 'FAILED'}")
    print(
        f"RESULT p50_ms={p50:.1f} p99_ms={p99:.1f} max_ms={max(lat) if lat else float('nan'):.1f} "
        f"background_msgs_per_s={committed_rate:.0f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
