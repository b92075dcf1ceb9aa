"""``edge-gateway demo``: the example community running on this machine, with simulated devices.

What it does (``./scripts/run`` ends here):

1. a broker: the local Mosquitto at 127.0.0.1:1883 when one answers; otherwise an embedded Python
   broker (amqtt, installed with the dev extra); otherwise a private Mosquitto from
   deploy/mosquitto.conf when the binary exists (``--broker`` forces one);
2. a demo copy of the site file (edge_config/examples/community.yaml by default) in the demo
   folder (./data/demo), pointed at that broker and a store in the same folder, with two timers
   shortened so the scripted scenarios show within the first minute: a door held open alarms after
   20 s (instead of 300 s) and a fire-lane car after 1 minute (instead of 3; 1 is the schema's
   minimum). The original file is not touched;
3. the gateway in this process (the same Gateway and HTTP API as ``edge-gateway run``);
4. the simulator (gateway/install/simulator.py) in a background thread: ordinary day/night traffic of
   every device plus the scenarios fire_lane, door_propped, fall_night and power_loss within the
   first 15 seconds;
5. prints the console URL and a demo token (installer role; also in <folder>/demo.token);
6. Ctrl-C (or ``--duration``) stops the simulator, the gateway and the broker, and prints the
   incidents raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.install.mosquitto import free_port, wait_port
from gateway.install.scenarios import DEMO_SCENARIOS

if TYPE_CHECKING:
    import argparse

    from edge_config import SiteConfig
    from gateway.app import Gateway

log = logging.getLogger("gateway.install.demo")

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "edge_config" / "examples" / "community.yaml"
# Relative to where the command runs (./scripts/run: the repository). The README's status example
# names DEFAULT_WORKDIR / SITE_FILE; tests/test_installer_demo_status.py keeps them in step.
DEFAULT_WORKDIR = Path("data/demo")
SITE_FILE, STORE_FILE, TOKEN_FILE = "site.yaml", "gateway.db", "demo.token"
DEMO_TIMERS = {"door_contact": {"door_open_max_s": 20}, "parking_sensor": {"fire_lane_max_min": 1}}
SCENARIO_AT = [2.0, 5.0, 8.0, 11.0]  # fire_lane first: its timer is the longest (1 min)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """amqtt (pure Python) on a loopback port, in its own thread and event loop."""

    def __init__(self, port: int | None = None) -> None:
        from amqtt.broker import Broker

        self.host, self.port = "127.0.0.1", port or free_port()
        self._cfg = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        self._broker_cls = Broker
        for name in ("amqtt", "transitions"):  # chatty at INFO (every state transition)
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._loop = asyncio.new_event_loop()
        self._broker: Any = None
        self._thread: threading.Thread | None = None
        self.description = f"embedded amqtt broker at {self.host}:{self.port}"

    def start(self) -> EmbeddedBroker:
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._broker = self._broker_cls(self._cfg, loop=self._loop)
                self._loop.run_until_complete(self._broker.start())
            except BaseException as exc:
                errors.append(exc)
                started.set()
                return
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="amqtt", daemon=True)
        self._thread.start()
        started.wait(15)
        if errors or not wait_port(self.port, 10):
            raise RuntimeError(f"amqtt did not start: {errors[0] if errors else 'no listener'}")
        return self

    def stop(self) -> None:
        if self._broker is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._broker = None


class _Local:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.description = f"the local Mosquitto at {host}:{port}"

    def stop(self) -> None:
        pass


class _Private:
    def __init__(self, workdir: Path) -> None:
        from gateway.install.mosquitto import Mosquitto

        self.m = Mosquitto(workdir).start()
        self.host, self.port = "127.0.0.1", self.m.port
        self.description = f"a private Mosquitto (deploy/mosquitto.conf) at 127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.m.stop()


def start_broker(kind: str, workdir: Path) -> EmbeddedBroker | _Local | _Private:
    """kind: auto | local | embedded | mosquitto."""
    if kind in ("auto", "local") and _answers("127.0.0.1", 1883):
        return _Local("127.0.0.1", 1883)
    if kind == "local":
        raise RuntimeError("nothing answers at 127.0.0.1:1883 (start mosquitto, or use --broker auto)")
    if kind in ("auto", "embedded"):
        try:
            return EmbeddedBroker().start()
        except ImportError:
            if kind == "embedded":
                raise RuntimeError("amqtt is not installed (.venv/bin/pip install amqtt)") from None
        except RuntimeError:
            if kind == "embedded":
                raise
            log.warning("the embedded broker did not start; trying a private mosquitto")
    return _Private(workdir / "mosquitto")


def write_demo_config(src: Path, workdir: Path, host: str, port: int, api_port: int) -> tuple[Path, SiteConfig]:
    """A copy of ``src`` pointed at the demo broker, store and port, with the demo's short timers.

    Returns the file and its loaded config. ``src`` must have passed ``load_config`` (run_demo checks
    it first): this quick reader would answer an invalid file with a traceback quoting its text.
    """
    from ruamel.yaml import YAML

    from edge_config import load_config

    y = YAML(typ="safe")  # libyaml when available: the demo copy is generated, its comments do not matter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ruamel's warnings quote source lines (values)
        doc = y.load(src.read_text(encoding="utf-8"))
    doc["mqtt"].update({"host": host, "port": port, "client_id": "edge-demo"})
    doc["store"]["path"] = str(workdir / STORE_FILE)  # so `status --config <workdir>/site.yaml` reads it
    doc["api"] = {
        **(doc.get("api") or {}),
        "host": "127.0.0.1",
        "port": api_port,
        "token_file": str(workdir / "installer.token"),
    }
    types = doc.get("device_types") or {}
    for t, values in DEMO_TIMERS.items():
        types[t] = {**(types.get(t) or {}), **values}
    doc["device_types"] = types
    if "sync" in doc:
        doc["sync"]["enabled"] = False
    # the residents' side: links and QR codes point at the demo's API (no SMS gateway: links printed)
    doc["resident_loop"] = {**(doc.get("resident_loop") or {}), "enabled": True,
                            "base_url": f"http://127.0.0.1:{api_port}"}  # fmt: skip
    out = workdir / SITE_FILE
    header = f"# DEMO copy of {src} written by `edge-gateway demo`: broker, store, API port and two timers\n"
    # JSON is YAML, and far quicker to write than a YAML dump of a 500-device site on a Pi
    out.write_text(header + json.dumps(doc, ensure_ascii=False, indent=1, default=str) + "\n", encoding="utf-8")
    return out, load_config(out)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (data/demo/site.yaml)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def create_demo_token(gw: Gateway, timeout: float = 15.0) -> str | None:
    """An installer token for the demo (gateway/api/auth.py), written through the pipeline."""
    try:
        from gateway.api import auth
    except ImportError:
        return None
    token = auth.new_token()
    gw.pipeline.call(lambda c, r, n: auth.insert_token(c, token, role="installer", name="demo", now_ms=n)).result(
        timeout
    )
    return token


DEMO_ROLES = ("installer", "property_staff", "eldercare_worker", "grid_worker", "community_office")
DEMO_LINK_S = 12 * 3600  # a newcomer may open them later in the demo's run


def demo_people(cfg: SiteConfig, planned: list[Any], now_ms: int) -> dict[str, str]:
    """One person per role who will meet the scripted scenarios: the people the ticket loop routes
    the door and fall incidents to now (rosters decide who is on duty), that building's grid worker
    (the escalation's first rung), a community office member and an installer."""
    from gateway.tickets import assignment as dp

    out: dict[str, str] = {}
    for p in planned:
        for dev_id in p.devices[:1]:
            d = cfg.device(dev_id)
            if d is None:
                continue
            r = cfg.resident(d.resident) if d.resident else None
            building = d.location.building or (r.building if r is not None else None)
            incident = {"category": cfg.device_settings(d).category, "building": building, "resident_id": d.resident}
            route = dp.route(cfg, incident, now_ms)
            if route is not None and route.person and route.role in DEMO_ROLES:
                out.setdefault(route.role, route.person)
            g = cfg.grid_of_building(building) if building else None
            if g is not None and g.grid_worker:
                out.setdefault("grid_worker", g.grid_worker)
    for role in DEMO_ROLES:
        if role not in out:
            m = next((m for m in cfg.staff if m.role == role), None)
            if m is not None:
                out[role] = m.id
    return {role: out[role] for role in DEMO_ROLES if role in out}


def create_demo_links(gw: Gateway, people: dict[str, str], timeout: float = 15.0) -> dict[str, str]:
    """A one-time sign-in link per role (gateway/api/sessions.py), written through the pipeline."""
    from gateway.api import sessions

    cfg = gw.cfg
    out: dict[str, str] = {}
    for role, person in people.items():
        m = cfg.staff_member(person)
        if m is None:
            continue

        def write(conn: sqlite3.Connection, result: Any, now: int, m: Any = m, role: str = role) -> str:
            return sessions.issue_signin_link(
                conn, person=m.id, role=role, grids=m.grids, compounds=m.compounds, ttl_s=DEMO_LINK_S,
                issued_by="demo", now_ms=now,
            )  # fmt: skip

        out[role] = sessions.signin_url(cfg, gw.pipeline.call(write).result(timeout))
    return out


def resident_loop_demo(gw: Gateway, timeout: float = 15.0) -> tuple[str, str, str] | None:
    """The residents' loop once, for the demo to print: a building's report QR code, a resident's
    report through it, the grid worker handling it, and the evaluation link the reporter would get
    by SMS. Returns (report URL, report QR drawn for the terminal, evaluation URL)."""
    from gateway.residents import qr, reports, sender
    from gateway.tickets import lifecycle as lc

    cfg = gw.cfg
    base = cfg.resident_loop.base_url
    building = next((b for c in cfg.site.compounds for b in c.buildings), None)
    if not base or building is None or not cfg.resident_loop.enabled:
        return None
    svc = gw.residents
    token = svc.issue_report_qr(building.id).result(timeout)
    fields = {"type": "facility_broken", "unit": building.units[0].id if building.units else None,
              "area": "3楼楼道", "description": "楼道灯不亮（演示）", "phone": "13900000000"}  # fmt: skip
    out = svc.submit_report(token, fields, None).result(timeout)
    iid = str(out["incident"])
    ctx = svc.ctx

    def handle(c: sqlite3.Connection, r: Any, now: int) -> str | None:
        t = lc.ticket(c, iid) or {}
        who, role = str(t.get("assignee")), str(t.get("assignee_role") or "grid_worker")
        lc.apply_action(c, r, iid, "accept", actor=who, role=role, now_ms=now, ctx=ctx)
        lc.apply_action(c, r, iid, "resolve", actor=who, role=role, data={"what_done": "已更换灯管（演示）"},
                        now_ms=now, ctx=ctx)  # fmt: skip
        return None

    gw.pipeline.call(handle).result(timeout)

    def link(c: sqlite3.Connection, r: Any, now: int) -> str | None:
        row = c.execute(
            "SELECT id FROM evaluation_requests WHERE incident_id=? AND status='pending'", (iid,)
        ).fetchone()
        minted = sender.mint(c, cfg, int(row[0]), now) if row is not None else None
        return minted[0] if minted else None

    eval_token = gw.pipeline.call(link).result(timeout)
    if eval_token is None:
        return None
    url = reports.report_url(base, token)
    return url, qr.terminal(url), sender.evaluation_url(base, eval_token)


def incident_summary(store_path: Path) -> dict[str, int]:
    try:
        conn = sqlite3.connect(f"file:{store_path}?mode=ro", uri=True, timeout=5)
        try:
            return {str(t): int(n) for t, n in conn.execute("SELECT type, count(*) FROM incidents GROUP BY type")}
        finally:
            conn.close()
    except sqlite3.Error:
        return {}


def run_demo(
    *,
    config: str | Path | None = None,
    workdir: str | Path = DEFAULT_WORKDIR,
    duration: float | None = None,
    rate: float = 20.0,
    api_port: int | None = None,
    broker: str = "auto",
    fresh: bool = False,
    out: Callable[[str], None] = lambda s: print(s, flush=True),
) -> int:
    from gateway.app import Gateway, serve
    from gateway.install.adopt_console import site_adopter
    from gateway.install.simulator import SimStats, Simulator

    wd = Path(workdir).resolve()
    wd.mkdir(parents=True, exist_ok=True)
    if fresh:
        for name in (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", "installer.token", TOKEN_FILE):
            (wd / name).unlink(missing_ok=True)
    src = Path(config) if config else DEFAULT_CONFIG
    from edge_config import load_config

    load_config(src)  # a ConfigError (every issue, no value quoted) before any broker is started
    port = api_port or (8080 if not _answers("127.0.0.1", 8080) else free_port())
    b = start_broker(broker, wd)
    gw: Any = None
    sim: Any = None
    try:
        out(f"broker: {b.description}")
        cfg_path, cfg = write_demo_config(src, wd, b.host, b.port, port)
        gw = Gateway(cfg)
        gw.config_path = cfg_path
        gw.site_adopter = site_adopter  # the console's adoption (gateway/install/adopt_console.py)
        gw.start()
        deadline = time.monotonic() + 20
        while not gw.broker_connected and time.monotonic() < deadline:
            time.sleep(0.05)
        if not gw.broker_connected:
            out(f"the gateway could not connect to the broker: {gw.health()['sessions']}")
            return 1
        token = create_demo_token(gw)
        if token:
            tf = wd / TOKEN_FILE
            fd = os.open(tf, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")

        def progress(stats: SimStats) -> None:
            out(stats.line())

        sim = Simulator(
            cfg,
            b.host,
            b.port,
            rate=rate,
            scenarios=list(DEMO_SCENARIOS),
            scenario_at=SCENARIO_AT,
            on_progress=progress,
            progress_every_s=10.0,
        )
        out("scenarios: " + "; ".join(f"+{at:.0f}s {p.title}" for p, at in zip(sim.planned, SCENARIO_AT, strict=False)))
        people = demo_people(cfg, sim.planned, int(time.time() * 1000))
        links = create_demo_links(gw, people)

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            if hasattr(signal, "SIGHUP"):
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, gw.reload_from, cfg_path))
            if duration:
                loop.call_later(duration, stop.set)

            async def announce() -> None:
                while not await asyncio.to_thread(_answers, "127.0.0.1", port):
                    await asyncio.sleep(0.1)
                sim.start()
                out("")
                out(f"  console 控制台:  http://127.0.0.1:{port}/")
                if token:
                    out(f"  demo token 演示令牌 (installer): {token}")
                    out(f"  e.g. curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{port}/api/v1/incidents")
                else:
                    out("  no demo token: gateway/api/auth.py is not available in this build")
                out(f"  site file: {cfg_path}   store: {gw.store_path}")
                out(f"  store counters: edge-gateway status --config {_shown(cfg_path)}")
                out("  sign-in links 登录链接 (one per role; each works once, on one phone or browser;")
                out("  每个链接只能在一台设备上使用一次, valid 12 h):")
                from gateway.core import catalog

                for role, url in links.items():
                    m = cfg.staff_member(people[role])
                    who = m.name if m is not None else people[role]
                    out(f"    {catalog.label('zh', 'role', role)} / {catalog.label('en', 'role', role)} ({who}):")
                    out(f"      {url}")
                try:
                    shown = await asyncio.to_thread(resident_loop_demo, gw)
                except Exception as exc:  # the demo goes on without the residents' part
                    out(f"  residents' loop not shown: {exc}")
                    shown = None
                if shown is not None:
                    report_url, drawn, eval_url = shown
                    out("  residents 居民 — report QR code of the first building 楼栋报事二维码:")
                    out(drawn.rstrip("\n"))
                    out(f"  report page 报事页面: {report_url}")
                    out(f"  evaluation link 评价链接 (a demo report, handled): {eval_url}")
                out("  Ctrl-C stops everything.")
                out("")

            task = asyncio.create_task(announce())
            await serve(gw, "127.0.0.1", port, stop)
            task.cancel()

        asyncio.run(main())
    finally:
        if sim is not None:
            sim.stop()
        if gw is not None:
            gw.stop()
        b.stop()
    summary = incident_summary(wd / STORE_FILE)
    out(
        "stopped. incidents in the demo store: " + (", ".join(f"{k}={v}" for k, v in sorted(summary.items())) or "none")
    )
    return 0


def main_cli(args: argparse.Namespace) -> int:
    try:
        return run_demo(
            config=args.config,
            workdir=args.workdir,
            duration=args.duration,
            rate=args.rate,
            api_port=args.api_port,
            broker=args.broker,
            fresh=args.fresh,
        )
    except Exception as exc:
        from edge_config import ConfigError

        if isinstance(exc, ConfigError):
            print(str(exc), file=sys.stderr)
            return 2
        if isinstance(exc, RuntimeError):
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        raise
