"""A small district for the central-dashboard tests and pictures: several gateways, each with its
own id, community file and store, run through the real chain (rules, tickets, channels, outbox)
with a controllable clock, then synced by the real sender to real central stores.

Each gateway's day (Q1 2026, from T0): security incidents handled by the property duty team with
different speeds (one left past its accept deadline), SOS calls (one accepted, one escalated up the
ladder until the health department is whistled and answers, one still unaccepted at the end),
a manual whistle to the police, repeated incidents at one building (an early warning), parking
sensors, devices gone offline, broker drops. Figures differ per gateway (``k``).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud_sync import central
from cloud_sync.outbox import OutboxProcessor
from cloud_sync.sender import Sender
from cloud_sync.targets import Target, V1Target, V2Target
from edge_config import load_config
from edge_config.sync_settings import SyncSettings
from gateway import district
from gateway.ingest.broker_drops import BrokerDropWatch
from gateway.residents import warnings
from tests import grafana_queries as gq
from tests.sync_servers import InfluxDB1, VictoriaMetrics
from tests.tickets_harness import T0, TicketHarness, write_ticket_site

PERIOD = "2026-Q1"
END_S = 4 * 3600  # the day's last snapshot: T0 + 4 h
TICKETS_EXTRA = """\
  escalation:
    departments_by_category: {eldercare: health}
"""


@dataclass(frozen=True)
class GatewaySpec:
    k: int
    gateway: str
    street: str
    community: str
    compound: str


SPECS = (
    GatewaySpec(0, "gw-hp-01", "st-east", "c-heping", "cp-hy"),
    GatewaySpec(1, "gw-xh-01", "st-east", "c-xinhua", "cp-xh"),
    GatewaySpec(2, "gw-yq-01", "st-west", "c-yuquan", "cp-yq"),
)


def write_site(directory: Path, spec: GatewaySpec) -> Path:
    path = write_ticket_site(directory, extra=TICKETS_EXTRA, gateway_id=spec.gateway)
    text = path.read_text(encoding="utf-8")
    text = text.replace("{id: st1, name: 测试街道}", f"{{id: {spec.street}, name: 街道{spec.street[-4:]}}}")
    text = text.replace("{id: c1, name: 测试社区", f"{{id: {spec.community}, name: 社区{spec.k}")
    text = text.replace("cp1", spec.compound)
    text += "sync:\n  enabled: false\n  snapshot_s: 60\n  heartbeat_s: 60\n"
    path.write_text(text, encoding="utf-8")
    return path


class SimGateway(TicketHarness):
    """TicketHarness with the sync outbox as the chain's last stage, on its own site file."""

    def __init__(self, directory: Path, spec: GatewaySpec) -> None:
        self.spec = spec
        self.synced = True
        directory.mkdir(parents=True, exist_ok=True)
        cfg = load_config(write_site(directory, spec))
        super(TicketHarness, self).__init__(directory, cfg=cfg)

    def open(self) -> None:
        super().open()
        self.outbox = OutboxProcessor(self.cfg, started_ms=self.clock.wall_ms)
        self.pipeline.stages.append(self.outbox)

    def assignee(self, iid: str) -> tuple[str, str]:
        t = self.incident(iid)["ticket"]
        return str(t["assignee"]), str(t["assignee_role"])

    def work(self, iid: str, action: str, **kw: Any) -> None:
        person, role = self.assignee(iid)
        self.act(iid, action, actor=person, role=role, **kw)

    def security(self, building: str) -> str:
        out = self.manual(category="security", type="door_forced", severity="major", location={"building": building})
        return str(out["id"])

    def sos(self) -> str:
        self.send("sos-r1", "sos")
        return str([i for i in self.incidents() if i["type"] == "sos"][-1]["id"])


def run_day(h: SimGateway) -> None:
    """The scenario above; every time is T0 + seconds, in increasing order (the clock never goes back)."""
    k = h.spec.k
    plan: list[tuple[float, Any]] = []
    sec: dict[int, str] = {}
    n_sec = 4 + k
    for i in range(n_sec):
        t0 = 60 + 600 * i
        b = "b1" if i < 3 else "b2"  # three at b1: a repeated-incidents warning
        plan.append((t0, lambda i=i, b=b: sec.__setitem__(i, h.security(b))))
        if i == n_sec - 1:
            continue  # never accepted: its accept deadline (300 s) is missed
        # the third gateway's duty team is late for most: a compound score below 60 (projected_score)
        late = k == 2 and i >= 2
        accept_t = t0 + (320 + 5 * i if late else 40 + 35 * i + 11 * k)
        start_t = accept_t + 150 if late else t0 + 200 + 50 * i + 7 * k
        plan.append((accept_t, lambda i=i: h.work(sec[i], "accept")))
        plan.append((start_t, lambda i=i: h.work(sec[i], "start")))
        if i != 1:
            plan.append(
                (t0 + 500 + 13 * i + 3 * k, lambda i=i: h.work(sec[i], "resolve", data={"what_done": "已修复门禁"}))
            )
    # a manual whistle on the second security incident (on site, not resolved): the police answer
    plan.append((1500, lambda: h.act(sec[1], "whistle", actor="co1", role="community_office",
                                     data={"department": "police"}, note="需要民警")))  # fmt: skip
    plan.append((1500 + 240 + 60 * k, lambda: h.work(sec[1], "accept")))
    plan.append((1500 + 900 + 120 * k, lambda: h.work(sec[1], "start")))
    plan.append((1500 + 2400 + 300 * k, lambda: h.work(sec[1], "resolve", data={"what_done": "民警处置"})))
    # SOS 1: accepted in time and handled
    sos: dict[str, str] = {}
    plan.append((5000, lambda: sos.__setitem__("a", h.sos())))
    plan.append((5000 + 50 + 10 * k, lambda: h.work(sos["a"], "accept")))
    plan.append((5000 + 400 + 20 * k, lambda: h.work(sos["a"], "start")))
    plan.append((5000 + 1500 + 30 * k, lambda: h.work(sos["a"], "resolve", data={"what_done": "已送医"})))
    # SOS 2: nobody accepts; the ladder climbs to the health department (whistle at +600 s)
    plan.append((7000, lambda: sos.__setitem__("b", h.sos())))
    plan.append((7000 + 600 + 120 + 40 * k, lambda: h.work(sos["b"], "accept")))
    plan.append((7000 + 600 + 600 + 60 * k, lambda: h.work(sos["b"], "resolve", data={"what_done": "医生上门"})))
    # SOS 3: raised late, still unaccepted at the end (escalating)
    plan.append((END_S - 500 - 60 * k, lambda: sos.__setitem__("c", h.sos())))
    # parking and device health
    plan.append((300, lambda: h.send("park-01", "state", {"vehicle_present": k % 2 == 0})))
    plan.append((310, lambda: h.send("park-np", "state", {"vehicle_present": False})))
    for j in range(1, 2 + k):
        plan.append((320 + j, lambda j=j: h.send(f"plug-b3-{j}", "avail", False)))
    plan.append((330, lambda: h.send("plug-b3-6", "avail", True)))
    # the broker dropped messages (counter and incident, as the $SYS watch records them)
    watch = BrokerDropWatch(h.pipeline, h.cfg.gateway.id, "127.0.0.1:1883")
    plan.append((400, lambda: h.call(lambda c, r, now: watch.record(c, r, now, 5 * (k + 1), "$SYS/drops"))))
    step = 0.0
    for t, fn in sorted(plan, key=lambda p: p[0]):
        while step + 30 < t:  # the tickets' timers fire on ticks
            step += 30
            h.at(step)
        h.at(t)
        step = max(step, t)
        fn()
    while step + 30 <= END_S:
        step += 30
        h.at(step)
    h.at(END_S)


def finish(h: SimGateway) -> tuple[int, int]:
    """Early warnings and the quarter's scores (the reader threads' work, run once), then the
    day's last snapshot at T0 + END_S. Returns the snapshot's time and the last outbox id before
    its points (what its backlog figure counts)."""
    conn = h.store.conn
    current = warnings.compute(conn, h.cfg, h.clock.wall_ms)
    h.call(lambda c, r, now: warnings.publish(c, now, current))
    pts = district.points(conn, h.cfg, dict(h.outbox.site_tags), h.clock.wall_ms)
    h.call(lambda c, r, now: h.outbox.add_points(c, 0, pts, now))
    # the warning points of the publish above first (they are appended on the next tick anyway)
    h.call(lambda c, r, now: h.outbox.add_points(c, 0, central.warning_points(c, h.outbox.site_tags), now))
    before = int(conn.execute("SELECT max(id) FROM outbox").fetchone()[0])
    h.call(lambda c, r, now: h.outbox.district_tick(c, now, force=True))
    return h.clock.wall_ms, before


def copy_store(src: Path, dst: Path) -> Path:
    """A copy of a closed store (one file: the WAL was checkpointed on close)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def drain(db: Path, settings: Any, target: Target, timeout_s: float = 60.0) -> int:
    """Send everything in ``db``'s outbox with the real sender; returns the points sent."""
    import time

    s = Sender(db, settings, target=target)
    s.flush = True
    s.open()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            s.step()
            left = s.conn.execute("SELECT coalesce(sum(rows), 0) FROM outbox_totals").fetchone()[0]  # type: ignore[union-attr]
            if not left:
                return s.sent
            if s.last_error:
                time.sleep(0.05)
        raise AssertionError(f"outbox not drained: {s.last_error}")
    finally:
        s.stop()


def q(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


FROM_MS = T0 - 60_000


@dataclass
class Gw:
    gateway: str
    street: str
    cfg: Any
    db: Path  # the store as the day left it (before any sync)
    snap_ms: int
    before_snap_id: int


@dataclass
class District:
    gateways: list[Gw]
    vm: VictoriaMetrics
    influx: InfluxDB1
    to_ms: int

    def close(self) -> None:
        self.vm.close()
        self.influx.close()


def _settings(url: str, target: str) -> SyncSettings:
    return SyncSettings(enabled=True, target=target, url=url, batch_size=5000, backoff_min_s=0.05, backoff_max_s=0.2)  # type: ignore[arg-type]


def build(root: Path) -> District:
    """Start VictoriaMetrics and InfluxDB 1.x, run every gateway's day, sync each store's copy to both."""
    vm = VictoriaMetrics().start()
    try:
        influx = InfluxDB1().start()
    except Exception:
        vm.close()
        raise
    influx.query("CREATE DATABASE community")
    gws: list[Gw] = []
    for spec in SPECS:
        h = SimGateway(root / spec.gateway, spec)
        run_day(h)
        snap, before = finish(h)
        h.close()
        db = root / spec.gateway / "gateway.db"
        gws.append(Gw(spec.gateway, spec.street, h.cfg, db, snap, before))
        for name, target in (("vm", V2Target(vm.url, token="", org="", bucket="community", timeout_s=10)),
                             ("influx", V1Target(influx.url, database="community", retention_policy=None,
                                                 username=None, password=None, timeout_s=10))):  # fmt: skip
            copy = copy_store(db, root / f"{spec.gateway}-{name}" / "gateway.db")
            drain(copy, _settings(vm.url if name == "vm" else influx.url, "v2" if name == "vm" else "v1"), target)
    to_ms = max(g.snap_ms for g in gws) + 1000
    # VictoriaMetrics makes fresh data searchable with a short delay: wait until the number of series
    # with a sample in the day stops growing (and covers every gateway's last snapshot)
    seen = -1
    for _ in range(60):
        vm.flush()
        q = 'count(last_over_time({__name__=~"(edge|gateway)_.+"}[1d]))'
        n = int(float((gq.promql(vm.url, q, to_ms) or [{"value": [0, "0"]}])[0]["value"][1]))
        last = gq.promql(vm.url, "last_over_time(gateway_health_seen_s[1h])", to_ms)
        if n == seen and len(last) == len(gws):
            break
        seen = n
        time.sleep(1.0)
    return District(gws, vm, influx, to_ms)


__all__ = [
    "END_S",
    "PERIOD",
    "SPECS",
    "T0",
    "GatewaySpec",
    "SimGateway",
    "copy_store",
    "drain",
    "finish",
    "q",
    "run_day",
]
