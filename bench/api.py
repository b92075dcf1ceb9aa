"""API benchmark: the HTTP API and live stream served by the same process as ingest.

    .venv/bin/python bench/api.py [--rate 2000] [--seconds 15] [--clients 50] [--saturate 600000]
                                  [--warmup 0.2] [--calm 10] [--window 2] [--settle 0.5]

Runs `python -m gateway run` (ingest + API in one process, as deployed) against a private Mosquitto
with the ~1,000-device bench site plus 200 SOS buttons, and from this process:

1. Latency under load: a publisher process sends telemetry at --rate msgs/s for --seconds while
   --clients SSE clients are connected; every 250 ms an SOS press from a fresh button is published.
   publish -> SSE event latency is measured for every client and every SOS (p50/p99; split into
   publish -> incident created, stamped by the gateway, and created -> received), and the
   incident list (GET /api/v1/incidents?limit=50) is polled back to back (p50/p99).
2. Saturation: a fresh gateway registers its persistent sessions and stops; --saturate messages are
   queued at the broker; the gateway comes back and drains them (consumer-bound: a live publisher
   process tops out near the gateway's own rate on 2 cores, so it cannot saturate it). Once
   --warmup of the backlog is stored and the start-up wave of incidents is over (fewer than
   --calm incidents opened in the last second), the drain is cut into alternating windows of --window
   seconds: no API clients, then the --clients SSE clients plus 4 busy API pollers (incident list,
   open incidents, devices, metrics), then none again, and so on, with --settle seconds between
   windows for the clients to connect or leave; throughput = stored messages/s (store rowids).
   An SOS press every 250 ms runs through every measured window, idle and busy alike (the busy
   clients' streams carry its incidents); the windows end when its 200 buttons are used up.
   Each busy window is compared with the mean of the idle windows on either side, and the drop
   is that of the median ratio. Neighbouring windows of one drain share the machine's background
   load, the broker's queue and the store's size; the earlier method (separate drains with and
   without clients, in rounds) saw single rounds swing by +-25 % on this shared machine.
   The drop is measured at saturation, not at a fixed rate. For each busy window the bench
   prints what the clients actually received (stream events/s and bytes, requests/s, streams that
   ended early), so a load that did not happen cannot pass for a light one.

Methodology. The clients run in this process, on the same 2 cores as the gateway, where real
phones would not take any of the gateway's CPU. So the stream clients are plain asyncio sockets
speaking HTTP/1.1 (as a browser's fetch() does; chunked framing decoded by hand): the load
clients read and count every byte without parsing it, and the measuring clients decode only the
frames that may be an SOS creation and take the time when the bytes arrive. (The earlier httpx
clients parsed every event of 50 streams and cost this process 15-30 % of a core, charged
to ingest, and their sequential parsing delayed the measurement itself.) The gateway's work is the
same either way: the same streams, the same bytes, the same client count and rates. No process
priority is changed.

Last line: RESULT list_p99_ms=... sse_p99_ms=... ingest_drop_pct=...
Goals: SSE p99 <= 100 ms, ingest drop <= 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing as mp
import os
import random
import sqlite3
import statistics
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
from bench._wait import BenchFailed, exit_on_sigterm, receive, wait_for  # noqa: E402
from bench.ingest import PHASE_LIMIT_S, make_messages, publisher, queue_backlog  # noqa: E402

TOKEN = "cegw_bench-installer-token-0123456789abcdefghijklmnop"
SOS_DEVICES = 200


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def free_port() -> int:
    from gateway.install.mosquitto import free_port as fp

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
        self.port = port
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
        self.stop()
        log_tail = (store.parent / "gateway.log").read_text(errors="replace")[-2000:]
        raise BenchFailed(f"waited 60 s for the gateway's /readyz on port {port}; it never answered 200: {log_tail}")

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
        from gateway.install import traffic

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

    def pressing(self) -> bool:
        return self._t.is_alive()

    def halt(self) -> None:
        """No more presses; the connection stays, so the last press still goes out."""
        self._stop.set()
        if self._t.ident is not None:  # started
            self._t.join(5)

    def stop(self) -> None:
        self.halt()
        self.c.loop_stop()
        self.c.disconnect()


class Load:
    """What the API clients actually got during a run (proof the load was there)."""

    def __init__(self) -> None:
        self.sse_bytes = 0
        self.sse_events = 0
        self.sse_ended = 0  # streams that ended before the run did (overflow, error)
        self.requests = 0


class Dechunker:
    """Incremental HTTP/1.1 chunked-transfer decoder (the stream's framing): bytes in, bytes out."""

    def __init__(self) -> None:
        self.buf = b""
        self.left = 0  # data bytes of the current chunk still to come
        self.skip = 0  # bytes of the CRLF after the chunk's data still to skip
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = []
        while not self.done:
            if self.left:
                take = self.buf[: self.left]
                self.buf = self.buf[len(take) :]
                self.left -= len(take)
                out.append(take)
                if self.left:
                    break
                self.skip = 2
            if self.skip:
                n = min(self.skip, len(self.buf))
                self.buf = self.buf[n:]
                self.skip -= n
                if self.skip:
                    break
            eol = self.buf.find(b"\r\n")
            if eol < 0:
                break
            size = int(self.buf[:eol].split(b";")[0], 16)
            self.buf = self.buf[eol + 2 :]
            if size == 0:  # last chunk
                self.done = True
                break
            self.left = size
        return b"".join(out)


async def sse_client(
    port: int, latencies: list[float], sos: SosInjector | None, stop: asyncio.Event, load: Load | None = None
) -> None:
    """One stream client on a plain asyncio socket (HTTP/1.1, as a browser's fetch()).

    The bench process shares the 2 cores with the gateway, so its clients must cost as little as a
    phone's would cost the gateway: nothing. A pure-load client (no ``sos``) reads and counts every
    byte but parses nothing; a measuring client decodes only the frames that may be an SOS creation
    and takes the time when the bytes arrive (httpx's line iteration for 50 clients cost the bench
    ~20 % of a core, charged to ingest, and delayed the measurement itself)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            (
                f"GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Accept: text/event-stream\r\n\r\n"
            ).encode()
        )
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except TimeoutError:
            raise RuntimeError("waited 30 s for the stream's response headers; they did not arrive") from None
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream refused: {head[:60]!r}")
        chunked = b"transfer-encoding: chunked" in head.lower()
        dech = Dechunker()
        buf = b""
        while not stop.is_set():
            data = await reader.read(1 << 16)
            now = time.time()
            if not data:
                if load is not None and not stop.is_set():
                    load.sse_ended += 1
                return
            if sos is None:
                if load is not None:
                    load.sse_bytes += len(data)
                    load.sse_events += data.count(b"\n\n")
                continue
            buf += dech.feed(data) if chunked else data
            end = buf.rfind(b"\n\n")
            if end < 0:
                continue
            frames, buf = buf[:end], buf[end + 2 :]
            # only creations can be an SOS ('"created"' never matches the key "created_ms")
            if b'"created"' not in frames:
                continue
            for f in frames.split(b"\n\n"):
                if b"event: incident" not in f or b'"created"' not in f:
                    continue
                msg = json.loads(f[f.index(b"\ndata: ") + 7 :])
                if msg["kind"] != "created":
                    continue
                for dev in msg["incident"].get("devices", []):
                    if dev in sos.sent:
                        latencies.append((now - sos.sent[dev]) * 1000)
                        # split: publish -> incident created (ingest) vs created -> received (API)
                        created = msg["incident"]["created_ms"]
                        sos.split.append((created - sos.sent[dev] * 1000, now * 1000 - created))
    finally:
        writer.close()


async def poller(
    base: str, paths: list[str], latencies: list[float] | None, stop: asyncio.Event, load: Load | None = None
) -> None:
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
            if load is not None:
                load.requests += 1


def _scalar(db: Path, sql: str) -> int:
    """One number from the gateway's store while it runs (read-only; 0 while it is not there yet)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute(sql).fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def stored(db: Path) -> int:
    return _scalar(db, "SELECT coalesce(max(id), 0) FROM readings")


def incidents_opened(db: Path) -> int:
    return _scalar(db, "SELECT count(*) FROM incidents")


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
        clients = [asyncio.create_task(sse_client(gw.port, sse_lat, sos, stop)) for _ in range(args.clients)]
        await asyncio.sleep(1.0)  # all connected
        pub, go, out = start_publisher(broker_port, messages, args.rate)
        go.send(True)
        sos.start()
        poll = asyncio.create_task(poller(gw.base, ["/api/v1/incidents?limit=50"], list_lat, stop))
        limit = PHASE_LIMIT_S + args.seconds  # the publisher is paced over --seconds
        await asyncio.to_thread(receive, out, pub, "the telemetry publisher's report", limit_s=limit)
        sos.halt()
        pub.join(10)
        # Every SOS press creates one incident, and every client must see its creation.
        expect = len(sos.sent) * args.clients
        what = f"SSE incident creations ({len(sos.sent)} SOS presses x {args.clients} clients)"

        def ended() -> str:
            return f"{sum(t.done() for t in clients)} of the {args.clients} streams ended early"

        await asyncio.to_thread(wait_for, what, lambda: len(sse_lat), expect, stall_s=10, why=ended)
        stop.set()
        sos.stop()
        for t in [*clients, poll]:
            t.cancel()
        for r in await asyncio.gather(*clients, poll, return_exceptions=True):
            if isinstance(r, Exception):  # a refused or silent stream, a failed request
                raise BenchFailed(f"an API client of the latency phase failed: {r!r}")
        ingest = [a for a, _ in sos.split]
        api = [b for _, b in sos.split]
        print(
            f"  split: publish->incident created p50={pct(ingest, 50):.1f} p99={pct(ingest, 99):.1f} ms;"
            f" created->SSE received p50={pct(api, 50):.1f} p99={pct(api, 99):.1f} ms",
            flush=True,
        )
    finally:
        gw.stop()
    return sse_lat, list_lat


class Busy:
    """The busy API of a saturation "on" window: --clients stream clients plus 4 pollers."""

    PATHS = ("/api/v1/incidents?limit=50", "/api/v1/devices", "/metrics", "/api/v1/incidents?state=open")

    def __init__(self, port: int, base: str, clients: int, load: Load) -> None:
        self.stop = asyncio.Event()
        p = list(self.PATHS)
        self.tasks = [asyncio.create_task(sse_client(port, [], None, self.stop, load)) for _ in range(clients)]
        self.tasks += [asyncio.create_task(poller(base, p[i:] + p[:i], None, self.stop, load)) for i in range(4)]

    async def end(self) -> None:
        self.stop.set()
        for t in self.tasks:
            t.cancel()
        for r in await asyncio.gather(*self.tasks, return_exceptions=True):
            if isinstance(r, Exception):  # a refused stream or a failed request: the load was not there
                raise RuntimeError(f"busy API client failed: {r!r}")


async def phase_saturation(
    args: argparse.Namespace, broker_port: int, site: Path, work: Path
) -> tuple[list[float], list[float], list[str]]:
    """One saturated drain, measured in alternating windows: no API clients, then the busy API.

    Returns the stored msgs/s of the "off" windows (there is one more of them: the drain starts and
    ends with one), of the "on" windows, and what the clients received in each "on" window."""
    db = work / "sat.db"
    # Consumer-bound: the gateway registers its persistent sessions and stops, the backlog is
    # queued at the broker, and the gateway drains it when it comes back. A live publisher
    # process could not outrun the gateway on these 2 cores (it tops out near the gateway's rate),
    # so only a queued backlog measures the gateway's own ceiling.
    messages = make_messages(site, args.saturate, seed=11)
    GatewayProc(site, db, free_port()).stop()
    base = stored(db)
    await asyncio.to_thread(queue_backlog, broker_port, messages)
    n = len(messages)
    gw = GatewayProc(site, db, free_port())  # drains from the moment it connects
    off: list[float] = []
    on: list[float] = []
    got: list[str] = []
    sos = SosInjector(broker_port, site)  # a side load in every measured window alike
    try:
        # Past the start-up wave: the first part of a drain is slower and uneven (2,500-5,000 msg/s
        # against ~15,000 later on a 2-core machine, while the safety session drains its own queue),
        # and the bench traffic gives each parking sensor a random occupancy, so ~1,000
        # sensor_flapping incidents open in a burst (seen in the store: incidents by type while
        # draining). A window pair inside that wave measures the wave, not the API. So the windows
        # start once --warmup of the backlog is stored and fewer than --calm incidents a second are
        # being opened (the SOS side load alone opens 4 a second); here after 180,000-250,000 messages.
        await asyncio.to_thread(wait_for, "stored readings (warm-up)", lambda: stored(db), base + int(n * args.warmup))
        seen = [await asyncio.to_thread(incidents_opened, db)]
        while True:
            await asyncio.sleep(0.5)
            seen.append(await asyncio.to_thread(incidents_opened, db))
            if len(seen) >= 3 and seen[-1] - seen[-3] < args.calm:
                break
        print(f"  start-up wave over after {await asyncio.to_thread(stored, db) - base} of {n} messages", flush=True)
        # One fresh button per press (a second press would join its open incident): 200 buttons at
        # 4 presses a second last 50 s; the windows end when they run out.
        sos.start()
        rate = 0.0
        for i in itertools.count():
            load = Load()
            busy = Busy(gw.port, gw.base, args.clients, load) if i % 2 else None  # off, on, off, ...
            try:
                await asyncio.sleep(args.settle)  # clients connected (or gone) and settled
                c0, t0 = await asyncio.to_thread(stored, db), time.monotonic()
                l0 = (load.sse_events, load.sse_bytes, load.requests)
                if rate and base + n - c0 < rate * args.window * 1.5:
                    break  # every window must be at saturation: stop before the backlog runs out
                if not sos.pressing():
                    break  # out of fresh SOS buttons: later windows would lack the side load
                await asyncio.sleep(args.window)
                c1, t1 = await asyncio.to_thread(stored, db), time.monotonic()
                l1 = (load.sse_events, load.sse_bytes, load.requests, load.sse_ended)
            finally:
                if busy is not None:
                    await busy.end()
            rate = (c1 - c0) / (t1 - t0)
            (on if busy else off).append(rate)
            if busy is not None:  # what the clients received in the window
                span = t1 - t0
                got.append(
                    f"{(l1[0] - l0[0]) / span:.0f} events/s ({(l1[1] - l0[1]) / span / 1e6:.2f} MB/s),"
                    f" {(l1[2] - l0[2]) / span:.1f} requests/s, streams ended early {l1[3]}"
                )
        on, got = on[: len(off) - 1], got[: len(off) - 1]  # each "on" window between two "off" ones
        if not on:
            raise RuntimeError("the backlog drained before one off/on/off run was measured: raise --saturate")
        return off, on, got
    finally:
        sos.stop()
        gw.stop()


async def main_async(args: argparse.Namespace) -> None:
    from gateway.install.mosquitto import Mosquitto

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
            off, on, got = await phase_saturation(args, broker.port, site, work)
        finally:
            broker.stop()
    # Each "on" window against the mean of the "off" windows on either side of it: the drain
    # slows as the store grows, and the shared machine's background load drifts; a pair of
    # neighbours cancels both. The drop is that of the median ratio (signed: negative is noise).
    ratios = [on[i] / ((off[i] + off[i + 1]) / 2) for i in range(len(on))]
    for i, r in enumerate(ratios):
        print(
            f"saturation window {i + 1}: no API clients {off[i]:.0f} / {off[i + 1]:.0f} msgs/s;"
            f" {args.clients} SSE clients + 4 busy pollers {on[i]:.0f} msgs/s (drop {(1 - r) * 100:.1f} %);"
            f" the clients got {got[i]}",
            flush=True,
        )
    drop = (1 - statistics.median(ratios)) * 100
    print(
        f"saturation: {len(on)} busy windows of {args.window:.0f} s between {len(off)} idle ones;"
        f" median off {statistics.median(off):.0f}, on {statistics.median(on):.0f} msgs/s; median drop {drop:.1f} %"
    )
    print(f"RESULT list_p99_ms={pct(list_lat, 99):.1f} sse_p99_ms={pct(sse_lat, 99):.1f} ingest_drop_pct={drop:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=2000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--saturate", type=int, default=600_000, help="backlog drained in the saturation phase")
    ap.add_argument("--warmup", type=float, default=0.2, help="share of the backlog drained before the windows")
    ap.add_argument("--calm", type=int, default=10, help="wave over below this many incidents opened a second")
    ap.add_argument("--window", type=float, default=2.0, help="seconds of each measured saturation window")
    ap.add_argument("--settle", type=float, default=0.5, help="seconds between windows (clients connect/leave)")
    args = ap.parse_args()
    exit_on_sigterm()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
