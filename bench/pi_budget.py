"""Performance on a Pi's budget (issue 25): the gateway in a quarter of a core and 256 MB.

    .venv/bin/python bench/pi_budget.py [--rate 40] [--steady-s 60] [--outage-s 3600] [--seed-readings N]

Only the gateway (``python -m gateway run``) runs in a control group: CPU quota 2.5 ms per 10 ms
period (25 % of one core), memory limit 256 MB (bench/_cgroup.py: cgroup v2 ``cpu.max`` /
``memory.max``, or v1 ``cpu.cfs_*`` / ``memory.limit_in_bytes``; a clear error if neither can be
made). The broker (a private Mosquitto with deploy/mosquitto.conf), VictoriaMetrics (the central
store), the publishers and this script run outside it. Why a quarter of this machine's core
stands in for a Raspberry Pi 4: README "Pi budget".

Site: edge_config/examples/community.yaml (514 devices) with its broker port, store path and a
``sync`` section pointed at the bench's servers, plus 70 SOS buttons in the buildings' public
areas (the example has 30 and the SOS phase presses 100 distinct ones). Traffic: the simulator's
own device behaviour at the evening peak (bench/_peak.py; 40 msg/s by default, the rate of each
device type is printed), in the real formats.

Phases, in one run, each printing its figures:
0. start-up: the store holds a week of readings (``--seed-readings`` over 7 days, bench/_seed.py)
   and open incidents; from process start to both MQTT sessions subscribed and the API answering
   /readyz, under the budget.
1. steady day: the evening peak published live for ``--steady-s``; the gateway's CPU time (all
   threads, /proc/PID/stat) as a share of the budget, and its RSS.
2. broker-side backlog: the gateway stopped while ``--outage-s`` seconds of the peak are queued at
   the broker, then started (under the budget): drain rate from the first to the last message
   committed (the store's ``messages_committed`` counter, polled every 20 ms), with one SOS press
   every ~120 ms from >= 100 distinct buttons throughout the drain: publish -> incident event
   committed (a read-only WAL reader polling incident_events), p50/p99/max.
3. central store down for the same hour: VictoriaMetrics is stopped with the gateway in phase 2,
   so the hour drained there is the hour the central store missed; it comes back after the drain.
   RSS peak (sampled every 20 ms, and VmHWM) over the outage and the outbox drain, and the time
   from the store's return to an empty outbox.
4. the same backlog queued again and drained with the CPU quota removed (memory limit kept), and a
   bare paho subscriber draining the same backlog on a fresh broker: the consumer-bound ratio.

Counts checked at the end (any mismatch fails the run): every published message stored exactly
once (crc32 of topic and payload per committed message), SOS incidents = distinct buttons pressed
and their counts = presses, and points in VictoriaMetrics = the readings it should hold (every
non-personal reading stored during the run) plus every incident event. Last line:
RESULT startup_s=… steady_cpu_pct_of_budget=… drain_msgs_per_s=… sos_p99_ms=… rss_peak_mb=… consumer_ratio=…
"""

from __future__ import annotations

import argparse
import compileall
import json
import multiprocessing as mp
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import _cgroup  # noqa: E402
from bench._sos import press_seen  # noqa: E402
from bench._wait import BenchFailed, broker_counters, exit_on_sigterm, receive, wait_for  # noqa: E402
from gateway.core.store import FLAG_PERSONAL  # noqa: E402

PERIOD_US = 10_000
QUOTA_US = 2_500
MEMORY_BYTES = 256 * 1024 * 1024
SOS_EXTRA = 70
SOS_DISTINCT = 100
PRESS_GAP_S = 0.12
Msg = tuple[str, bytes]


def evening_zone(now: float | None = None) -> str:
    """A fixed-offset zone in which it is now between 18:00 and 19:00 local time.

    The readings are stamped with their receive time (the device clocks are set back, see main), so
    the rules see the wall clock in the site's zone. The traffic is the evening peak; in the
    example's Asia/Shanghai a run at another hour had the rules judge it as night (a dementia
    resident's exit door opening every minute is then a `wandering` alarm each time) or as morning.
    tzdata's Etc/GMT zones have the POSIX sign: Etc/GMT-8 is UTC+8."""
    utc_hour = time.gmtime(time.time() if now is None else now).tm_hour
    ahead = (18 - utc_hour) % 24
    if ahead > 14:  # the zones run from UTC-12 to UTC+14
        ahead -= 24
    return "Etc/GMT" if ahead == 0 else f"Etc/GMT{-ahead:+d}"


def write_site(work: Path, port: int, vm_url: str) -> Path:
    """The example community with the bench's broker, store and central store, plus SOS buttons."""
    text = (ROOT / "edge_config/examples/community.yaml").read_text(encoding="utf-8")
    for old, new in (
        ("  port: 1883\n", f"  port: {port}\n"),
        ("  path: ./data/gateway.db\n", f"  path: {work / 'gateway.db'}\n"),
        ("  timezone: Asia/Shanghai\n", f"  timezone: {evening_zone()}\n"),
    ):
        if old not in text:
            raise BenchFailed(f"edge_config/examples/community.yaml no longer has {old.strip()!r} to replace")
        text = text.replace(old, new, 1)
    extra = "".join(
        f"  - id: bench-sos-{i:03d}\n    name: 公共区域SOS按钮{i}\n    driver: zigbee2mqtt\n"
        f'    address: "0x00124b0099{i:06x}"\n    type: sos_button\n'
        f"    location: {{building: b{i % 40 + 1:02d}, area: 公共区域}}\n    friendly_name: bench/sos{i:03d}\n"
        for i in range(SOS_EXTRA)
    )
    marker = "\n# Ticket loop"
    if marker not in text:
        raise BenchFailed("edge_config/examples/community.yaml: the devices list no longer ends before '# Ticket loop'")
    text = text.replace(marker, extra + marker, 1)
    text += f"\nsync: {{enabled: true, target: v2, url: '{vm_url}', bucket: community}}\n"
    path = work / "site.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)  # it holds residents' personal data (privacy.config_permissions)
    return path


# --- the gateway process ---------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of every thread of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_mem_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    rss = hwm = 0.0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, hwm


def proc_mem_split(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident MB of ``pid`` (/proc/PID/smaps_rollup): the process's own
    memory, and the shared libraries and mapped files (the store's WAL index) it touches."""
    rss = anon = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Anonymous:"):
                    anon = int(line.split()[1])
    except OSError:
        pass
    return anon / 1024, (rss - anon) / 1024


class GatewayProc:
    """``python -m gateway run`` inside the budget's control group (entered before exec)."""

    def __init__(self, site: Path, db: Path, api_port: int, token: str, budget: _cgroup.Budget, log: Path) -> None:
        self.site, self.db, self.api_port, self.token, self.budget = site, db, api_port, token, budget
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_samples: list[float] = []
        self.hwm = 0.0
        self.peak_split = (0.0, 0.0)  # (anonymous, file-backed) MB at the highest RSS sample
        self._sampling = threading.Event()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> float:
        """Start it and wait until both sessions are subscribed and /readyz answers; seconds taken."""
        # PI_BUDGET_GATEWAY replaces `python -m gateway` (e.g. a profiler's command line).
        prefix = os.environ.get("PI_BUDGET_GATEWAY", "").split() or [sys.executable, "-m", "gateway"]
        cmd = [*prefix, "run", "--config", str(self.site), "--store", str(self.db)]
        cmd += ["--api-host", "127.0.0.1", "--api-port", str(self.api_port)]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {"PYTHONPATH": str(ROOT)}
        with open(self.log, "ab") as log:
            t0 = time.monotonic()
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=self.budget.enter
            )
        ready = 0.0
        deadline = t0 + 120
        while not ready:
            if self.proc.poll() is not None:
                raise BenchFailed(f"the gateway exited ({self.proc.returncode}) during start-up: {self.tail()}")
            if time.monotonic() > deadline:
                raise BenchFailed(f"the gateway was not ready within 120 s: {self.readyz()}; {self.tail()}")
            body = self.readyz()
            sessions = (body or {}).get("broker", {}).get("sessions", {})
            if len(sessions) == 2 and all(s.get("subscribed") for s in sessions.values()):
                ready = time.monotonic() - t0
            else:
                time.sleep(0.02)
        self._sampling.set()
        threading.Thread(target=self._sample, daemon=True).start()
        return ready

    def readyz(self) -> dict[str, Any] | None:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return dict(json.loads(r.read()))
        except urllib.error.HTTPError as exc:  # 503: not ready, the body says why
            return dict(json.loads(exc.read()))
        except (OSError, ValueError):
            return None

    def _sample(self) -> None:
        pid = self.pid
        while self._sampling.is_set():
            rss, hwm = proc_mem_mb(pid)
            if rss:
                if rss > max(self.rss_samples, default=0.0):
                    self.peak_split = proc_mem_split(pid)
                self.rss_samples.append(rss)
                self.hwm = max(self.hwm, hwm)
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.hwm = max(self.hwm, proc_mem_mb(self.pid)[1])
        self._sampling.clear()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.returncode in (-9, 137):
            raise BenchFailed(f"the gateway was killed (SIGKILL; OOM kills in the group: {self.budget.oom_kills()})")

    def peak_text(self) -> str:
        anon, file = self.peak_split
        return f"RSS peak {max(self.rss_samples or [0]):.1f} MB (anonymous {anon:.1f}, file-backed {file:.1f})"

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-1500:]
        except OSError:
            return ""


# --- the store, read-only from outside -------------------------------------------------------


class Reader:
    def __init__(self, db: Path) -> None:
        self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, check_same_thread=False)
        self.lock = threading.Lock()

    def one(self, sql: str, *args: Any) -> Any:
        with self.lock:
            return self.conn.execute(sql, args).fetchone()

    def committed(self) -> int:
        row = self.one("SELECT value FROM counters WHERE name='messages_committed'")
        return int(row[0]) if row else 0

    def outbox_rows(self) -> int:
        return int(self.one("SELECT coalesce(sum(rows), 0) FROM outbox_totals")[0])


def watch_drain(
    reader: Reader, base: int, target: Any, started: threading.Event, stop: threading.Event
) -> tuple[float, float]:
    """(first, last): when the first message past ``base`` was committed (``started`` is set
    then) and when ``target()`` (what must be committed; it grows with the SOS presses) was
    reached (``stop`` is set then); polled every 20 ms."""
    first = 0.0

    def count() -> int:
        nonlocal first
        n = reader.committed() - base
        if n > 0 and not first:
            first = time.monotonic()
            started.set()
        return n - target() + 1_000_000_000

    what = "messages committed by the gateway (the broker-side backlog)"
    wait_for(what, count, 1_000_000_000, poll_s=0.02)
    stop.set()
    return first, time.monotonic()


def press_sos(
    port: int, reader: Reader, buttons: list[Any], draining: threading.Event, done: threading.Event, out: dict[str, Any]
) -> None:
    """SOS presses, ~every PRESS_GAP_S, first on SOS_DISTINCT distinct buttons, while ``draining``
    is set and ``done`` is not; publish -> incident event (created / repeated) committed."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from gateway.install import traffic

    rng = random.Random(5)
    order = rng.sample(buttons, SOS_DISTINCT)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-sos", clean_session=True)
    pub.connect("127.0.0.1", port, 60)
    pub.loop_start()
    last_seq = int(reader.one("SELECT coalesce(max(seq), 0) FROM incident_events")[0])
    inc_dev: dict[str, str] = {}
    lat: list[float] = out.setdefault("latencies", [])
    pressed: list[str] = out.setdefault("pressed", [])
    msgs: list[Msg] = out.setdefault("msgs", [])
    missed: list[str] = out.setdefault("missed", [])
    at: list[float] = out.setdefault("at", [])  # when each seen press was published, s into the drain
    draining.wait(600)
    t_start = time.perf_counter()
    i = 0
    try:
        while not done.is_set():
            dev = order[i] if i < len(order) else rng.choice(order)
            i += 1
            topic, payload = traffic.sos_press(dev, rng)
            t_pub = time.perf_counter()
            if pub.publish(topic, payload, qos=1).rc != paho.MQTT_ERR_SUCCESS:
                raise BenchFailed(f"paho refused SOS press {i}")
            pressed.append(dev.id)
            msgs.append((topic, payload))
            found = False
            while not found and time.perf_counter() < t_pub + 10:
                with reader.lock:
                    rows = reader.conn.execute(
                        "SELECT seq, incident_id, kind, data FROM incident_events WHERE seq > ? ORDER BY seq",
                        (last_seq,),
                    ).fetchall()
                t_seen = time.perf_counter()
                if rows:
                    last_seq = rows[-1][0]
                if press_seen(rows, inc_dev, dev.id):
                    lat.append((t_seen - t_pub) * 1000)
                    at.append(t_pub - t_start)
                    found = True
                if not found:
                    time.sleep(0.001)
            if not found:
                missed.append(dev.id)
            time.sleep(PRESS_GAP_S)
    finally:
        pub.disconnect()
        pub.loop_stop()


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise BenchFailed(message)


def _wait_outbox(reader: Reader, what: str) -> None:
    """Until the sync outbox is empty (every row acknowledged by the central store)."""
    left = reader.outbox_rows()
    wait_for(what, lambda: left - reader.outbox_rows(), left, poll_s=0.05)


def _paced(ctx: Any, port: int, msgs: list[Msg], rate: float) -> tuple[Any, Any]:
    """bench/ingest.py's publisher in its own process, paced at ``rate``, started now."""
    from bench.ingest import publisher

    go_r, go_w = ctx.Pipe(duplex=False)
    out_r, out_w = ctx.Pipe(duplex=False)
    p = ctx.Process(target=publisher, args=(port, msgs, rate, go_r, out_w))
    p.start()
    go_w.send("go")
    return p, out_r


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))] if v else float("nan")


def sendable_readings(reader: Reader, after_id: int) -> int:
    """Readings stored after ``after_id`` that the central store must hold: not personal (sent
    only with sync.send_personal, docs/sync.md) and with at least one field the line protocol
    carries (cloud_sync/lineproto.py ``fields``: numbers, booleans, strings)."""
    from cloud_sync.lineproto import fields

    with reader.lock:
        rows = reader.conn.execute("SELECT flags, vals FROM readings WHERE id > ?", (after_id,)).fetchall()
    return sum(1 for flags, vals in rows if not flags & FLAG_PERSONAL and fields(json.loads(vals)))


def stored_once(db: Path, published: list[Msg], after_id: int) -> tuple[int, int, int]:
    """(messages stored, published and not stored, stored more than once). A message's readings
    share its msg_key (session, packet id, crc32 of topic and payload) and receive time; one
    (msg_key, rx_ms) pair is one stored message."""
    want = Counter(zlib.crc32(p, zlib.crc32(t.encode())) for t, p in published)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        have = Counter(
            key & 0xFFFFFFFF
            for key, _rx in conn.execute("SELECT DISTINCT msg_key, rx_ms FROM readings WHERE id > ?", (after_id,))
        )
    finally:
        conn.close()
    return have.total(), (want - have).total(), (have - want).total()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=40.0, help="evening peak, messages per second")
    ap.add_argument("--steady-s", type=float, default=60.0, help="phase 1: seconds of live evening peak")
    ap.add_argument("--settle-s", type=float, default=10.0, help="idle seconds between ready and phase 1")
    ap.add_argument("--outage-s", type=float, default=3600.0, help="phases 2-4: seconds of peak queued")
    ap.add_argument("--seed-readings", type=int, default=2_419_200, help="phase 0: a week's readings (4/s)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, store)")
    args = ap.parse_args()
    exit_on_sigterm()

    from bench._peak import evening, rates_by_type
    from bench._seed import seed
    from bench.ingest import bare_subscriber, drain, queue_backlog
    from edge_config import load_config
    from gateway.api.auth import cli_create
    from gateway.ingest.routing import build_routing
    from gateway.install import traffic
    from gateway.install.mosquitto import Mosquitto, free_port
    from tests.sync_servers import VictoriaMetrics

    # An installed gateway has its bytecode (pip compiles it at install); a checkout may not, and
    # compiling ~150 modules at every start would be timed as start-up (a third of it here).
    for pkg in ("gateway", "drivers", "edge_config", "cloud_sync"):
        compileall.compile_dir(ROOT / pkg, quiet=1)
    budget = _cgroup.create(
        f"edge-pi-budget-{os.getpid()}", cpu_quota_us=QUOTA_US, cpu_period_us=PERIOD_US, memory_bytes=MEMORY_BYTES
    )
    print(
        f"budget: cgroup v{budget.version}, CPU {budget.cpu_quota_us} us per {budget.cpu_period_us} us "
        f"({budget.cpu_share:.0%} of one core), memory {MEMORY_BYTES >> 20} MB"
        + (f" ({', '.join(budget.notes)})" if budget.notes else ""),
        flush=True,
    )
    tmp = tempfile.mkdtemp(prefix="bench-pi-")
    work = Path(tmp)
    broker = Mosquitto(work / "broker").start()
    vm = VictoriaMetrics(data_dir=_mkdir(work / "vm"), port=free_port()).start()
    gw: GatewayProc | None = None
    ctx = mp.get_context("spawn")
    try:
        site = write_site(work, broker.port, vm.url)
        # The gateway has run on this store for a week: its parse of the site file is kept next to
        # the store (edge_config/parse_cache.py), as `gateway run --store` leaves it.
        cfg = load_config(site, parse_cache=work)
        db = work / "gateway.db"
        routing = build_routing(cfg)
        n_dev = len(cfg.owned_devices())
        t = time.monotonic()
        seeded = seed(cfg, db, readings=args.seed_readings, days=7, incidents=40)
        print(
            f"store: {seeded['readings']:,} readings over 7 days, {seeded['open_incidents']} open incidents, "
            f"{db.stat().st_size / 1e6:.0f} MB (seeded in {time.monotonic() - t:.0f} s)",
            flush=True,
        )
        _row, token = cli_create(db, role="installer", name="bench")
        t = time.monotonic()
        # Traffic of the example's own 514 devices; the added buttons are only pressed (phase 2).
        # One virtual timeline for the devices' own clocks (the steady stretch, the outage's hour,
        # phase 4's hour), two days behind: every reading is then stamped with its receive time
        # (README "Clock policy": a device time more than 5 min off is replaced). The central store
        # keeps one point per series and millisecond, and a device time that happened to equal a
        # receive time of another phase (another process) would overwrite that point.
        example = load_config(ROOT / "edge_config/examples/community.yaml")
        t_virtual = time.time() - 2 * 86_400
        steady = evening(example, args.rate, args.steady_s, seed=1, start=t_virtual)
        hour_full = evening(example, args.rate, args.outage_s, seed=2, start=t_virtual + args.steady_s)
        gen_s = time.monotonic() - t
        print(f"site: {n_dev} devices (the example's 514 + {SOS_EXTRA} SOS buttons); traffic made in {gen_s:.0f} s")
        print(f"evening peak {args.rate:g} msg/s by device type (devices, msg/s):", flush=True)
        for kind, (n, r) in rates_by_type(example, hour_full, args.outage_s).items():
            print(f"  {kind:<18} {n:>4} {r:7.2f}", flush=True)
        hour: list[Msg] = [(tp, p) for tp, p, _d in hour_full]
        safety_in_hour = sum(1 for tp, _p in hour if routing.is_safety_topic(tp))
        published: list[Msg] = []
        buttons = [d for d in traffic.sim_devices(cfg) if d.type == "sos_button"]

        # 0. start-up under the budget
        gw = GatewayProc(site, db, free_port(), token, budget, work / "gateway.log")
        startup_s = gw.start()
        print(f"phase 0 start-up: {startup_s:.2f} s to both sessions subscribed and /readyz answering", flush=True)

        # The work start-up leaves until the API answers (the heap freeze, the central-store sender's
        # start, the first retention pass) is start-up, not a day's load: printed, then phase 1.
        cpu_ready = proc_cpu_s(gw.pid)
        time.sleep(args.settle_s)
        print(
            f"settling {args.settle_s:g} s after ready: {proc_cpu_s(gw.pid) - cpu_ready:.2f} s of CPU "
            f"({proc_cpu_s(gw.pid):.2f} s since process start)",
            flush=True,
        )

        # 1. steady day at the evening peak
        reader = Reader(db)
        base = reader.committed()
        steady_msgs: list[Msg] = [(tp, p) for tp, p, _d in steady]
        steady_safety = sum(1 for tp, _p in steady_msgs if routing.is_safety_topic(tp))
        cpu0, w0 = proc_cpu_s(gw.pid), time.monotonic()
        pub_proc, pub_out = _paced(ctx, broker.port, steady_msgs, args.rate)
        _sent, acked = receive(pub_out, pub_proc, "the steady publisher's report", limit_s=args.steady_s + 300)
        pub_proc.join(10)
        wait_for(
            "steady-day messages committed",
            lambda: reader.committed() - base,
            len(steady_msgs) + steady_safety,
            why=lambda: broker_counters(broker.port),
        )
        cpu1, w1 = proc_cpu_s(gw.pid), time.monotonic()
        published += steady_msgs
        _check(acked == len(steady_msgs), f"steady: {acked} of {len(steady_msgs)} PUBACKs")
        steady_pct = (cpu1 - cpu0) / ((w1 - w0) * budget.cpu_share) * 100
        rss_now, _ = proc_mem_mb(gw.pid)
        print(
            f"phase 1 steady day: {len(steady_msgs)} messages at {args.rate:g} msg/s over {w1 - w0:.1f} s; gateway CPU "
            f"{cpu1 - cpu0:.2f} s = {steady_pct:.1f} % of the budget "
            f"({(cpu1 - cpu0) / (w1 - w0) * 100:.2f} % of a core); "
            f"RSS {rss_now:.1f} MB ({gw.peak_text()})",
            flush=True,
        )

        # 2 + 3. the gateway and the central store down for the hour; the backlog queued at the broker
        _wait_outbox(reader, "outbox emptied before the outage")
        gw.stop()
        rss_peaks = [gw.hwm]
        vm.stop()
        t = time.monotonic()
        queue_backlog(broker.port, hour)
        queued_s = time.monotonic() - t
        print(f"phase 2 outage: {len(hour):,} messages queued at the broker in {queued_s:.0f} s", flush=True)
        published += hour
        base = reader.committed()
        gw = GatewayProc(site, db, gw.api_port, token, budget, work / "gateway.log")
        draining, done = threading.Event(), threading.Event()
        sos: dict[str, Any] = {}
        presser = threading.Thread(target=press_sos, args=(broker.port, reader, buttons, draining, done, sos))
        presser.start()
        restart_s = gw.start()

        def target() -> int:
            return len(hour) + safety_in_hour + 2 * len(sos.get("pressed", []))

        first, last = watch_drain(reader, base, target, draining, done)
        presser.join(30)
        drain_rate = len(hour) / (last - first)
        lat = sos.get("latencies", [])
        pressed = sos.get("pressed", [])
        distinct = len(set(pressed))
        print(
            f"phase 2 drain under the budget: ready {restart_s:.2f} s after start; {len(hour):,} messages in "
            f"{last - first:.1f} s = {drain_rate:,.0f} msg/s (first to last committed); SOS during the drain: "
            f"{len(pressed)} presses from {distinct} buttons, publish -> incident committed p50 "
            f"{statistics.median(lat) if lat else float('nan'):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
            f"max {max(lat or [float('nan')]):.1f} ms; {gw.peak_text()}",
            flush=True,
        )
        worst = sorted(zip(lat, sos.get("at", []), strict=True), reverse=True)[:6]
        print("  slowest presses (ms, s into the drain): " + ", ".join(f"{ms:.0f} at {s:.1f}" for ms, s in worst))
        _check(distinct >= SOS_DISTINCT, f"only {distinct} distinct SOS buttons were pressed during the drain")
        _check(not sos.get("missed"), f"SOS presses with no incident event within 10 s: {sos.get('missed')}")
        published += sos.get("msgs", [])  # each press is stored once, by the life-safety session

        # 3. the central store comes back
        outbox = reader.outbox_rows()
        vm.start()
        t = time.monotonic()
        _wait_outbox(reader, "the outbox emptied into VictoriaMetrics")
        outbox_s = time.monotonic() - t
        rss_peaks.append(max(gw.hwm, proc_mem_mb(gw.pid)[1]))
        print(
            f"phase 3 central store back: {outbox:,} outbox rows sent in {outbox_s:.1f} s; over the outage and "
            f"both drains {gw.peak_text()} sampled, VmHWM {rss_peaks[-1]:.1f} MB; "
            f"cgroup memory peak {(budget.memory_peak_bytes() or 0) / 2**20:.0f} MB (with page cache); "
            f"OOM kills {budget.oom_kills()}",
            flush=True,
        )

        # 4. the same drain without the quota, and a bare paho subscriber on the same backlog
        gw.stop()
        rss_peaks.append(gw.hwm)
        start4 = t_virtual + args.steady_s + args.outage_s
        hour = [(tp, p) for tp, p, _d in evening(example, args.rate, args.outage_s, seed=4, start=start4)]
        safety_in_hour = sum(1 for tp, _p in hour if routing.is_safety_topic(tp))
        queue_backlog(broker.port, hour)
        published += hour
        budget.set_cpu_quota(None)
        base = reader.committed()
        gw = GatewayProc(site, db, gw.api_port, token, budget, work / "gateway.log")
        gw.start()
        first4, last4 = watch_drain(
            reader, base, lambda: len(hour) + safety_in_hour, threading.Event(), threading.Event()
        )
        gw_free = len(hour) / (last4 - first4)
        _wait_outbox(reader, "the outbox emptied after the unlimited drain")
        gw.stop()
        rss_peaks.append(gw.hwm)
        budget.set_cpu_quota(QUOTA_US)
        topics = [f for s in cfg.ingest.sources for f in s.topics]
        bare_broker = Mosquitto(work / "broker-bare").start()
        try:
            b_count, b_first, b_last, _ = drain(  # type: ignore[misc]
                ctx,
                bare_subscriber,
                (bare_broker.port, topics, 0, "bench-bare-drain"),
                (bare_broker.port, topics, len(hour), "bench-bare-drain"),
                bare_broker.port,
                hour,
            )
        finally:
            bare_broker.stop()
        _check(b_count == len(hour), f"bare drain: {b_count} of {len(hour)} received")
        bare_rate = (b_count - 1) / (b_last - b_first)
        ratio = gw_free / bare_rate
        print(
            f"phase 4 whole cores: gateway drained {len(hour):,} in {last4 - first4:.1f} s = {gw_free:,.0f} msg/s; "
            f"bare paho {bare_rate:,.0f} msg/s; consumer-bound ratio {ratio:.2f}; gateway {gw.peak_text()}, "
            f"VmHWM {rss_peaks[-1]:.1f} MB",
            flush=True,
        )

        # counts
        stored, lost, extra = stored_once(db, published, seeded["max_reading_id"])
        sos_rows = reader.one("SELECT count(*), coalesce(sum(count), 0) FROM incidents WHERE type='sos'")
        n_sos_msgs = len(pressed)
        want_points = sendable_readings(reader, seeded["max_reading_id"])
        events = int(reader.one("SELECT count(*) FROM incident_events")[0])
        points = vm.settled_points("edge_telemetry", want_points, timeout=120)
        ev_samples = vm.settled_samples("edge_incident_seq", events, timeout=120)
        ev_points = len(ev_samples)
        if ev_points != events:  # say which: kind, incident and time of each missing event
            have_seqs = {int(v) for _l, _t, v in ev_samples}
            with reader.lock:
                rows = reader.conn.execute("SELECT seq, kind, incident_id, ts_ms FROM incident_events").fetchall()
            missing = [r for r in rows if r[0] not in have_seqs][:10]
            print(f"incident events not in the central store (seq, kind, incident, ts_ms): {missing}", flush=True)
        print(
            f"counts: published {len(published):,} telemetry messages, stored {stored:,} ({lost} not stored, {extra} "
            f"stored more than once); SOS presses {n_sos_msgs} from {distinct} buttons -> {sos_rows[0]} SOS incidents "
            f"with counts summing to {sos_rows[1]}; central store: {points:,} "
            f"telemetry points for {want_points:,} non-personal readings with fields, "
            f"{ev_points} of {events} incident events",
            flush=True,
        )
        rss_peak = max(rss_peaks)
        print(
            f"memory: VmHWM per gateway run: phases 0-1 {rss_peaks[0]:.1f} MB, phases 2-3 {rss_peaks[2]:.1f} MB, "
            f"phase 4 {rss_peaks[3]:.1f} MB (limit {MEMORY_BYTES >> 20} MB; OOM kills {budget.oom_kills()})",
            flush=True,
        )
        print(
            f"RESULT startup_s={startup_s:.2f} steady_cpu_pct_of_budget={steady_pct:.1f} "
            f"drain_msgs_per_s={drain_rate:.0f} sos_p99_ms={pct(lat, 0.99):.1f} rss_peak_mb={rss_peak:.1f} "
            f"consumer_ratio={ratio:.2f}",
            flush=True,
        )
        _check(lost == 0 and extra == 0, f"{lost} published messages not stored, {extra} stored more than once")
        _check(
            sos_rows[0] == distinct and sos_rows[1] == n_sos_msgs,
            f"SOS incidents {sos_rows[0]} (want {distinct}), counts {sos_rows[1]} (want {n_sos_msgs})",
        )
        _check(points == want_points, f"central store holds {points} telemetry points, want {want_points}")
        _check(ev_points == events, f"central store holds {ev_points} incident events, want {events}")
        _check(budget.oom_kills() == 0, f"the memory limit killed {budget.oom_kills()} process(es)")
        return 0
    finally:
        if gw is not None and gw.proc is not None and gw.proc.poll() is None:
            gw.proc.kill()
        vm.stop()
        broker.stop()
        budget.remove()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"work folder kept: {tmp}")


if __name__ == "__main__":
    raise SystemExit(main())
