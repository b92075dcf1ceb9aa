"""API benchmark: the HTTP API and live stream served by the same process as ingest.

    .venv/bin/python bench/api.py [--rate 2000] [--seconds 15] [--clients 50] [--saturate 40000]

Runs `python -m gateway run` (ingest + API in one process, as deployed) against a private Mosquitto
with the ~1,000-device bench site plus 200 SOS buttons, and from this process:

1. Latency under load: a publisher process sends telemetry at --rate msgs/s for --seconds while
   --clients SSE clients are connected; every 250 ms an SOS press from a fresh button is published.
   publish -> SSE event latency is measured for every client and every SOS (p50/p99), and the
   incident list (GET /api/v1/incidents?limit=50) is polled back to back (p50/p99).
2. Saturation: a fresh gateway, --saturate messages published as fast as the broker takes them,
   throughput = stored messages/s between 10 % and 90 % of the run (store rowids polled);
   once with no API clients, once with the SSE clients plus 4 busy API pollers (list, detail,
   devices, metrics). The drop is measured at saturation, not at a fixed rate.

Last line: RESULT list_p99_ms=... sse_p99_ms=... ingest_drop_pct=...
Goals: SSE p99 <= 100 ms, ingest drop <= 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._site import write_bench_site  # noqa: E402
from bench.ingest import make_messages, publisher  # noqa: E402

TOKEN = "cegw_bench-installer-token-0123456789abcdefghijklmnop"
SOS_DEVICES = 200


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def free_port() -> int:
    from gateway.mosquitto import free_port as fp

    return fp()


class GatewayProc:
    def __init__(self, site: Path, store: Path, port: int) -> None:
        env = {**os.environ, "EDGE_GATEWAY_INSTALLER_TOKEN": TOKEN}
        self.log = open(store.parent / "gateway.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway",
                "run",
                "--config",
                str(site),
                "--store",
                str(store),
                "--api-port",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{port}"
        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/readyz", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gateway did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class SosInjector:
    """Publishes an SOS press from a fresh button every ``every`` s; remembers when."""

    def __init__(self, port: int, site: Path, every: float = 0.25) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        from edge_config import load_config
        from gateway import traffic

        self.traffic = traffic
        self.devs = [d for d in traffic.sim_devices(load_config(site)) if d.type == "sos_button"]
        random.Random(3).shuffle(self.devs)
        self.sent: dict[str, float] = {}
        self.split: list[tuple[float, float]] = []
        self.every = every
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sos-{os.getpid()}")
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SosInjector:
        self._t.start()
        return self

    def _run(self) -> None:
        for dev in self.devs:
            if self._stop.wait(self.every):
                return
            topic, payload = self.traffic.sos_press(dev)
            self.sent[dev.id] = time.time()
            self.c.publish(topic, payload, qos=1)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(5)
        self.c.loop_stop()
        self.c.disconnect()


async def sse_client(base: str, latencies: list[float], sos: SosInjector | None, stop: asyncio.Event) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {TOKEN}"}
    timeout = httpx.Timeout(10, read=60)
    async with (
        httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout) as c,
        c.stream("GET", "/api/v1/stream") as r,
    ):
        event, data = "", ""
        async for line in r.aiter_lines():
            if stop.is_set():
                return
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and event == "incident" and data:
                now = time.time()
                msg = json.loads(data)
                if msg["kind"] == "created" and sos is not None:
                    for dev in msg["incident"].get("devices", []):
                        if dev in sos.sent:
                            latencies.append((now - sos.sent[dev]) * 1000)
                            # split: publish -> committed incident (ingest) vs commit -> received (API path)
                            created = msg["incident"]["created_ms"]
                            sos.split.append((created - sos.sent[dev] * 1000, now * 1000 - created))
                event, data = "", ""


async def poller(base: str, paths: list[str], latencies: list[float] | None, stop: asyncio.Event) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as c:
        i = 0
        while not stop.is_set():
            path = paths[i % len(paths)]
            i += 1
            t0 = time.perf_counter()
            r = await c.get(path)
            if r.status_code != 200:
                raise RuntimeError(f"{path}: {r.status_code}")
            if latencies is not None:
                latencies.append((time.perf_counter() - t0) * 1000)


def stored(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def start_publisher(port: int, messages: list[tuple[str, bytes]], rate: float) -> tuple[Any, Any, Any]:
    ctx = mp.get_context("spawn")
    go_r, go_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=publisher, args=(port, messages, rate, go_r, out_w))
    p.start()
    return p, go_w, out_r


async def phase_latency(
    args: argparse.Namespace, broker_port: int, site: Path, work: Path
) -> tuple[list[float], list[float]]:
    gw = GatewayProc(site, work / "lat.db", free_port())
    sse_lat: list[float] = []
    list_lat: list[float] = []
    stop = asyncio.Event()
    try:
        messages = make_messages(site, int(args.rate * args.seconds))
        sos = SosInjector(broker_port, site)
        clients = [asyncio.create_task(sse_client(gw.base, sse_lat, sos, stop)) for _ in range(args.clients)]
        await asyncio.sleep(1.0)  # all connected
        pub, go, out = start_publisher(broker_port, messages, args.rate)
        go.send(True)
        sos.start()
        poll = asyncio.create_task(poller(gw.base, ["/api/v1/incidents?limit=50"], list_lat, stop))
        await asyncio.to_thread(out.recv)
        await asyncio.sleep(1.0)  # last SOS events
        stop.set()
        sos.stop()
        pub.join(10)
        for t in [*clients, poll]:
            t.cancel()
        await asyncio.gather(*clients, poll, return_exceptions=True)
        ingest = [a for a, _ in sos.split]
        api = [b for _, b in sos.split]
        print(
            f"  split: publish->commit p50={pct(ingest, 50):.1f} p99={pct(ingest, 99):.1f} ms;"
            f" commit->SSE received p50={pct(api, 50):.1f} p99={pct(api, 99):.1f} ms",
            flush=True,
        )
    finally:
        gw.stop()
    return sse_lat, list_lat


async def phase_saturation(
    args: argparse.Namespace, broker_port: int, site: Path, work: Path, name: str, busy: bool
) -> float:
    db = work / f"{name}.db"
    gw = GatewayProc(site, db, free_port())
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        messages = make_messages(site, args.saturate, seed=11)
        sos = SosInjector(broker_port, site)
        if busy:
            tasks += [asyncio.create_task(sse_client(gw.base, [], None, stop)) for _ in range(args.clients)]
            paths = ["/api/v1/incidents?limit=50", "/api/v1/devices", "/metrics", "/api/v1/incidents?state=open"]
            tasks += [asyncio.create_task(poller(gw.base, paths[i:] + paths[:i], None, stop)) for i in range(4)]
            await asyncio.sleep(1.0)
        base = stored(db)
        pub, go, out = start_publisher(broker_port, messages, 0)
        go.send(True)
        sos.start()
        n = len(messages)
        lo, hi = base + n * 0.1, base + n * 0.9
        t_lo = t_hi = None
        c_lo = c_hi = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            c = await asyncio.to_thread(stored, db)
            now = time.monotonic()
            if t_lo is None and c >= lo:
                t_lo, c_lo = now, c
            if c >= hi:
                t_hi, c_hi = now, c
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(out.recv)
        pub.join(10)
        sos.stop()
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if t_lo is None or t_hi is None or t_hi <= t_lo:
            raise RuntimeError("saturation run did not finish")
        return (c_hi - c_lo) / (t_hi - t_lo)
    finally:
        gw.stop()


async def main_async(args: argparse.Namespace) -> None:
    from gateway.mosquitto import Mosquitto

    with (
        tempfile.TemporaryDirectory(prefix="bench-broker-") as bdir,
        tempfile.TemporaryDirectory(prefix="bench-api-") as wdir,
    ):
        broker = Mosquitto(Path(bdir)).start()
        work = Path(wdir)
        # The bench's own pollers and stream clients must not be throttled by the per-role limits.
        unlimited = ", ".join(
            f"{r}: 1000000"
            for r in (
                "installer",
                "central_platform",
                "property_staff",
                "eldercare_worker",
                "grid_worker",
                "community_office",
                "street_office",
                "department",
            )
        )
        site = write_bench_site(
            work, broker.port, sos=SOS_DEVICES, extra_yaml=f"api:\n  rate_limits: {{per_minute: {{{unlimited}}}}}\n"
        )
        try:
            sse_lat, list_lat = await phase_latency(args, broker.port, site, work)
            print(
                f"latency at {args.rate:.0f} msgs/s with {args.clients} SSE clients: "
                f"SSE publish->event n={len(sse_lat)} p50={pct(sse_lat, 50):.1f} ms p99={pct(sse_lat, 99):.1f} ms; "
                f"incident list n={len(list_lat)} p50={pct(list_lat, 50):.1f} ms p99={pct(list_lat, 99):.1f} ms",
                flush=True,
            )
            base = await phase_saturation(args, broker.port, site, work, "sat-base", busy=False)
            print(f"saturation, no API clients: {base:.0f} msgs/s", flush=True)
            busy = await phase_saturation(args, broker.port, site, work, "sat-busy", busy=True)
            print(f"saturation, {args.clients} SSE clients + 4 busy pollers: {busy:.0f} msgs/s", flush=True)
        finally:
            broker.stop()
    drop = max(0.0, (base - busy) / base * 100)
    print(f"RESULT list_p99_ms={pct(list_lat, 99):.1f} sse_p99_ms={pct(sse_lat, 99):.1f} ingest_drop_pct={drop:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--saturate", type=int, default=40000)
    args = ap.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
