"""The operator's subcommands of ``edge-gateway``: validate, schema, run, status, sync, scorecard, token,
resident, camera. Registered by :func:`add_commands`; the logic lives in the modules each one names."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gateway.cli.common import load_site

if TYPE_CHECKING:
    from edge_config import SiteConfig

T = TypeVar("T")


def _read_store(
    args: argparse.Namespace, cfg: SiteConfig, read: Callable[[sqlite3.Connection], T]
) -> tuple[T | None, int]:
    """``read`` on a read-only connection to the site's store (``--store`` or the config's path), as
    the gateway runs, and the exit status. A store that cannot be read gives (None, 1) after saying
    why on stderr; a bad period (ValueError from ``read``) gives (None, 2) with the reason. A plain
    pair, not an exception: every product exception derives from GatewayError, and this is only an
    exit code already explained."""
    from gateway.core.store import connect

    path = args.store or cfg.store.path
    try:
        conn = connect(path, readonly=True)
        try:
            return read(conn), 0
        finally:
            conn.close()
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return None, 2
    except sqlite3.Error as exc:
        print(f"{path}: cannot read the store: {exc}", file=sys.stderr)
        return None, 1


log = logging.getLogger("gateway")

SWITCH_INTERVAL_S = 0.001  # cmd_run: how long a thread may hold the GIL while another waits


def cmd_validate(args: argparse.Namespace) -> int:
    from edge_config import summary

    if args.json:
        from gateway.cli.common import validate_report

        status, report = validate_report(args.path)
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return status
    cfg = load_site(args.path)
    print(summary(cfg))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from edge_config import json_schema

    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import gc
    import threading

    from gateway.core import heap

    # Before any thread: glibc malloc's arenas and thresholds for a small box (gateway/core/heap.py).
    heap.lean_allocator()
    # httpx imports its command-line client (rich, pygments, click: ~5 MB of RSS) whenever they are
    # installed (dev and demo installs); a None entry makes that optional import fail as httpx expects.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    # FastAPI imports pydantic.v1 at the first route it declares, only to refuse v1 models (none
    # here; it treats an ImportError as "no v1"): ~15 ms of CPU at every start, 60 ms on a Pi.
    sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
    # Start-up allocates ~1M long-lived objects (modules, the config, routes); collecting them
    # every 700 allocations is wasted work (~8 % of start-up CPU). serve() collects once, freezes
    # them and turns the collector back on.
    gc.disable()
    # A thread that wants the GIL waits for the holder's switch interval of CPU time (5 ms by
    # default; four times that in wall time on a quarter core): the life-safety session's network
    # thread waited that long behind a telemetry batch before it could hand an SOS over. 1 ms
    # bounds that wait; the cost is more GIL hand-overs, and only while threads contend.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    from edge_config.parse_cache import default_dir
    from gateway.app import Gateway, serve
    from gateway.ingest.mqtt import MqttConfigRefused
    from gateway.install.adopt_console import site_adopter

    # A restart skips the YAML parser when the site file is unchanged (edge_config/parse_cache.py):
    # the parse is kept next to the store when --store names it (edge_config.parse_cache.default_dir).
    cfg = load_site(args.config, Path(args.store).parent if args.store else default_dir())
    from gateway.privacy import ConfigPermissionError, check_config_permissions

    try:  # the site file holds residents' personal data (privacy.config_permissions)
        check_config_permissions(args.config, cfg.privacy.config_permissions)
    except ConfigPermissionError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 2
    api_started = threading.Event()
    try:
        gw = Gateway(cfg, store_path=args.store)
        gw.site_adopter = site_adopter  # the console's adoption (gateway/install/adopt_console.py)
        gw.start(sync_after=api_started)  # ingest and the API first, the central-store sender after
    except MqttConfigRefused as exc:
        print(f"{args.config}: mqtt: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        # SIGHUP reloads the site file (an invalid one is refused; the old one stays)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.run_in_executor(None, gw.reload_from, args.config))
        host = args.api_host if args.api_host is not None else cfg.api.host
        port = args.api_port if args.api_port is not None else cfg.api.port
        await serve(gw, host, port, stop, api_started)

    from gateway.install.systemd import Supervisor

    sd = Supervisor(gw).start()  # sd_notify READY / WATCHDOG / STOPPING under systemd
    trimming = threading.Event()
    heap.start_trimmer(trimming)  # what a drain freed goes back to the system (gateway/core/heap.py)
    try:
        asyncio.run(main())
    finally:
        trimming.set()
        sd.stop()
        gw.stop()
        log.info("gateway stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the store's counters and device summary (works while the gateway runs)."""
    from gateway.core.store import read_counters
    from gateway.ingest.broker_drops import drop_status

    def read(conn: sqlite3.Connection) -> dict[str, object]:
        online = dict(conn.execute("SELECT coalesce(online, -1), count(*) FROM devices GROUP BY 1").fetchall())
        return {
            "readings": conn.execute("SELECT count(*) FROM readings").fetchone()[0],
            "dead_letters": conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0],
            "unconfigured_devices": conn.execute("SELECT count(*) FROM unconfigured").fetchone()[0],
            "devices_online": online.get(1, 0),
            "devices_offline": online.get(0, 0),
            "devices_unknown": online.get(-1, 0),
            # messages the broker threw away, and whether anyone dealt with it
            "broker_drops": drop_status(conn),
            "counters": read_counters(conn),
        }

    out, status = _read_store(args, load_site(args.config), read)
    if out is None:
        return status
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def cmd_sync_status(args: argparse.Namespace) -> int:
    """Print the cloud sync backlog, oldest unsent age, last success and last error (read-only)."""
    from cloud_sync.status import sync_status

    cfg = load_site(args.config)
    out, status = _read_store(args, cfg, sync_status)
    if out is None:
        return status
    out["enabled"] = bool(cfg.sync.enabled)
    out["target"] = f"{cfg.sync.target} {cfg.sync.url}"
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def cmd_scorecard(args: argparse.Namespace) -> int:
    """Print the service scorecard of a period from the store (read-only)."""
    from gateway.tickets.scorecard import compute

    cfg = load_site(args.config)
    card, status = _read_store(args, cfg, lambda conn: compute(conn, cfg, args.period))
    if card is None:
        return status
    print(json.dumps(card.rows, indent=2, ensure_ascii=False) if args.json else card.to_table())
    return 0


def cmd_departments(args: argparse.Namespace) -> int:
    """Print how each department answered the whistle in a period, from the store (read-only)."""
    from gateway.core.store import now_ms
    from gateway.tickets import departments

    cfg = load_site(args.config)
    rows, status = _read_store(args, cfg, lambda conn: departments.compute(conn, cfg, args.period, now_ms()))
    if rows is None:
        return status
    print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else departments.to_table(rows))
    return 0


def cmd_token_create(args: argparse.Namespace) -> int:
    """Create an API token; the token itself is the LAST line printed (shown once, stored hashed)."""
    from gateway.api.auth import ROLES, cli_create

    cfg = load_site(args.config)
    if args.role not in ROLES:
        print(f"unknown role {args.role!r}; roles: {', '.join(ROLES)}", file=sys.stderr)
        return 2
    for g in args.grid or []:
        if cfg.grid(g) is None:
            print(f"unknown grid {g!r}", file=sys.stderr)
            return 2
    for c in args.compound or []:
        if cfg.compound(c) is None:
            print(f"unknown compound {c!r}", file=sys.stderr)
            return 2
    try:
        row, token = cli_create(
            args.store or cfg.store.path,
            role=args.role,
            name=args.name or args.role,
            grids=args.grid or [],
            compounds=args.compound or [],
            expires_days=args.expires_days,
        )
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"cannot create the token: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(row.public(), ensure_ascii=False))
    print("token (shown once; store it safely):")
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from gateway.api.auth import cli_list

    cfg = load_site(args.config)
    try:
        rows = cli_list(args.store or cfg.store.path)
    except sqlite3.Error as exc:
        print(f"cannot read the store: {exc}", file=sys.stderr)
        return 1
    print(json.dumps([r.public() for r in rows], indent=2, ensure_ascii=False))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from gateway.api.auth import cli_revoke

    cfg = load_site(args.config)
    try:
        ok = cli_revoke(args.store or cfg.store.path, args.id)
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"cannot revoke: {exc}", file=sys.stderr)
        return 1
    print("revoked" if ok else f"no active token {args.id!r}", file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_resident_forget(args: argparse.Namespace) -> int:
    """Remove/anonymise one resident's data in store, outbox, snapshots, dead letters (gateway/privacy.py)."""
    from gateway.privacy import edit_config_forget, forget_in_store

    cfg = load_site(args.config)
    if not args.yes:
        answer = input(f"forget resident {args.id!r} (cannot be undone)? type the id to confirm: ")
        if answer.strip() != args.id:
            print("not confirmed; nothing changed", file=sys.stderr)
            return 1
    try:
        rep = forget_in_store(args.store or cfg.store.path, cfg, args.id)
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"cannot forget: {exc}", file=sys.stderr)
        return 1
    if args.config_edit and rep.in_config:
        for line in edit_config_forget(Path(args.config), args.id):
            print(f"  site file: {line}")
        rep.in_config = False
        print("  site file edited: reload the gateway (systemctl reload edge-gateway) to apply it")
    print("\n".join(rep.lines()))
    return 0


def cmd_resident_forget_phone(args: argparse.Namespace) -> int:
    """A reporter (resident_reports, evaluation requests) forgotten by phone number."""
    from gateway.api.auth import _cli_conn
    from gateway.core import store as st
    from gateway.privacy import snapshot_dir
    from gateway.residents.reports import forget_phone

    cfg = load_site(args.config)
    if not args.yes:
        answer = input("forget this phone number's reports (cannot be undone)? type the number to confirm: ")
        if answer.strip() != args.phone:
            print("not confirmed; nothing changed", file=sys.stderr)
            return 1
    try:
        conn = _cli_conn(args.store or cfg.store.path)
        conn.execute("PRAGMA busy_timeout=30000")  # the running gateway's writer may hold the lock briefly
        try:
            with st.transaction(conn):
                out = forget_phone(conn, args.phone)
        finally:
            conn.close()
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"cannot forget: {exc}", file=sys.stderr)
        return 1
    removed = 0
    for photo in out["photos"]:  # after the commit: files are not transactional
        try:
            (snapshot_dir(cfg) / f"{photo}.jpg").unlink()
            removed += 1
        except FileNotFoundError:
            pass
    print(f"phone forgotten: {out['reports']} reports scrubbed (number, words, photo), "
          f"{out['requests']} evaluation requests, {removed} photo files deleted")  # fmt: skip
    return 0


def cmd_resident_report_qr(args: argparse.Namespace) -> int:
    """Print a building's report QR code (the installer sticks it in the stairwell)."""
    from gateway.api.auth import _cli_conn
    from gateway.core import store as st
    from gateway.residents import qr, reports

    cfg = load_site(args.config)
    base = cfg.resident_loop.base_url
    if not base:
        print("resident_loop.base_url is not set: the address residents' phones open", file=sys.stderr)
        return 2
    if cfg.building(args.building) is None:
        print(f"unknown building {args.building!r}", file=sys.stderr)
        return 2
    try:
        conn = _cli_conn(args.store or cfg.store.path)
        conn.execute("PRAGMA busy_timeout=30000")
        try:
            with st.transaction(conn):
                token = reports.issue_qr(conn, cfg, args.building, st.now_ms())
        finally:
            conn.close()
    except (FileNotFoundError, sqlite3.Error) as exc:
        print(f"cannot issue the QR code: {exc}", file=sys.stderr)
        return 1
    url = reports.report_url(base, token)
    b = cfg.building(args.building)
    print(f"report QR code for {b.name if b else args.building} (valid {cfg.resident_loop.report.qr_ttl_days} days):")
    if args.out:
        qr.save(url, Path(args.out))
        print(f"written to {args.out}")
    else:
        print(qr.terminal(url), end="")
    print(url)
    return 0


def cmd_camera_calibrate(args: argparse.Namespace) -> int:
    from gateway.vision.calibrate import calibrate

    cfg = load_site(args.config)
    try:
        lines = calibrate(cfg, args.camera, Path(args.image), Path(args.out) if args.out else None)
    except (ValueError, OSError) as exc:
        print(f"camera calibrate: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the operator's subcommands on the top-level parser's subparsers."""

    v = sub.add_parser("validate", help="check a site config; print every problem with its line")
    v.add_argument("path")
    v.add_argument("--json", action="store_true", help="print {ok, file, revision, errors: [{file, line, ...}]}")
    v.set_defaults(fn=cmd_validate)

    s = sub.add_parser("schema", help="write the config's JSON schema (for editors)")
    s.add_argument("-o", "--output")
    s.set_defaults(fn=cmd_schema)

    r = sub.add_parser("run", help="run the gateway")
    r.add_argument("--config", required=True)
    r.add_argument("--store", help="override store.path from the config")
    r.add_argument("--api-host", help="override api.host from the config")
    r.add_argument("--api-port", type=int, help="override api.port from the config")
    r.set_defaults(fn=cmd_run)

    st = sub.add_parser("status", help="print store counters and device summary")
    st.add_argument("--config", required=True)
    st.add_argument("--store")
    st.set_defaults(fn=cmd_status)

    sy = sub.add_parser("sync", help="cloud sync to the central time-series store")
    sy_sub = sy.add_subparsers(dest="sync_cmd", required=True)
    sys_ = sy_sub.add_parser("status", help="print the sync backlog, last success and last error")
    sys_.add_argument("--config", required=True)
    sys_.add_argument("--store")
    sys_.set_defaults(fn=cmd_sync_status)

    sc = sub.add_parser("scorecard", help="service scorecard per team / property company / department")
    sc.add_argument("--config", required=True)
    sc.add_argument("--period", required=True, help="YYYY-MM, YYYY-Qn or YYYY (year = mean of its quarters)")
    sc.add_argument("--store")
    sc.add_argument("--json", action="store_true", help="print the rows as JSON")
    sc.set_defaults(fn=cmd_scorecard)

    dp = sub.add_parser("departments", help="departments on the scorecard: whistles answered (吹哨报到)")
    dp.add_argument("--config", required=True)
    dp.add_argument("--period", required=True, help="YYYY-MM, YYYY-Qn or YYYY")
    dp.add_argument("--store")
    dp.add_argument("--json", action="store_true", help="print the rows as JSON")
    dp.set_defaults(fn=cmd_departments)

    tk = sub.add_parser("token", help="API tokens (roles, scopes); see docs/api.md")
    tk_sub = tk.add_subparsers(dest="token_cmd", required=True)
    tc = tk_sub.add_parser("create", help="create a token; the token is the last line printed")
    tc.add_argument("--config", required=True)
    tc.add_argument("--store")
    tc.add_argument("--role", required=True)
    tc.add_argument("--grid", action="append", help="limit to this grid (repeatable)")
    tc.add_argument("--compound", action="append", help="limit to this compound (repeatable)")
    tc.add_argument("--name", help="who holds it (a staff id by convention); recorded as actor")
    tc.add_argument("--expires-days", type=float)
    tc.set_defaults(fn=cmd_token_create)
    tl = tk_sub.add_parser("list", help="list tokens (no secrets)")
    tl.add_argument("--config", required=True)
    tl.add_argument("--store")
    tl.set_defaults(fn=cmd_token_list)
    tr = tk_sub.add_parser("revoke", help="revoke a token by id")
    tr.add_argument("id")
    tr.add_argument("--config", required=True)
    tr.add_argument("--store")
    tr.set_defaults(fn=cmd_token_revoke)
    rs = sub.add_parser("resident", help="residents' personal data (docs/security.md)")
    rs_sub = rs.add_subparsers(dest="resident_cmd", required=True)
    rf = rs_sub.add_parser("forget", help="remove or anonymise one resident's personal data everywhere")
    rf.add_argument("id")
    rf.add_argument("--config", required=True)
    rf.add_argument("--store")
    rf.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rf.add_argument("--config-edit", action="store_true", help="also delete the resident from the site file")
    rf.set_defaults(fn=cmd_resident_forget)
    rp = rs_sub.add_parser("forget-phone", help="forget a reporter by phone number (their reports' words and photos)")
    rp.add_argument("phone")
    rp.add_argument("--config", required=True)
    rp.add_argument("--store")
    rp.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rp.set_defaults(fn=cmd_resident_forget_phone)
    rq = rs_sub.add_parser("report-qr", help="print a building's QR code for residents' reports")
    rq.add_argument("--config", required=True)
    rq.add_argument("--building", required=True)
    rq.add_argument("--store")
    rq.add_argument("--out", help="write an SVG or PNG (by suffix) instead of printing to the terminal")
    rq.set_defaults(fn=cmd_resident_report_qr)
    cam = sub.add_parser("camera", help="camera analytics (calibration)")
    cam_sub = cam.add_subparsers(dest="camera_cmd", required=True)
    cc = cam_sub.add_parser("calibrate", help="save a camera's empty-space reference and draw its polygons")
    cc.add_argument("--config", required=True)
    cc.add_argument("--camera", required=True)
    cc.add_argument("--image", required=True, help="JPEG of the empty spaces in ordinary daylight")
    cc.add_argument("--out", help="overlay image to check (default: next to the reference, *_overlay.png)")
    cc.set_defaults(fn=cmd_camera_calibrate)
