"""`edge-gateway` command line (also `python -m gateway`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("gateway")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(path: str) -> Any:
    """Load a config or exit 2 printing every issue as PATH:LINE: key.path: message."""
    from edge_config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue.format(), file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) in {path}; nothing was started", file=sys.stderr)
        raise SystemExit(2) from None
    except FileNotFoundError:
        print(f"{path}: no such file", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from edge_config import summary

    cfg = _load(args.path)
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
    from gateway.app import Gateway, serve
    from gateway.mqtt_ingest import MqttConfigRefused

    cfg = _load(args.config)
    try:
        gw = Gateway(cfg, store_path=args.store)
        gw.start()
    except MqttConfigRefused as exc:
        print(f"{args.config}: mqtt: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(gw, args.api_host, args.api_port, stop)

    try:
        asyncio.run(main())
    finally:
        gw.stop()
        log.info("gateway stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the store's counters and device summary (works while the gateway runs)."""
    from gateway.store import connect, read_counters

    cfg = _load(args.config)
    path = args.store or cfg.store.path
    try:
        conn = connect(path, readonly=True)
        counters = read_counters(conn)
        online = dict(conn.execute("SELECT coalesce(online, -1), count(*) FROM devices GROUP BY 1").fetchall())
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        unconf = conn.execute("SELECT count(*) FROM unconfigured").fetchone()[0]
    except sqlite3.Error as exc:
        print(f"{path}: cannot read the store: {exc}", file=sys.stderr)
        return 1
    out = {
        "readings": readings,
        "dead_letters": dead,
        "unconfigured_devices": unconf,
        "devices_online": online.get(1, 0),
        "devices_offline": online.get(0, 0),
        "devices_unknown": online.get(-1, 0),
        "counters": counters,
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def cmd_sync_status(args: argparse.Namespace) -> int:
    """Print the cloud sync backlog, oldest unsent age, last success and last error (read-only)."""
    from cloud_sync.status import sync_status
    from gateway.store import connect

    cfg = _load(args.config)
    path = args.store or cfg.store.path
    try:
        conn = connect(path, readonly=True)
        out = sync_status(conn)
    except sqlite3.Error as exc:
        print(f"{path}: cannot read the store: {exc}", file=sys.stderr)
        return 1
    out["enabled"] = bool(cfg.sync.enabled)
    out["target"] = f"{cfg.sync.target} {cfg.sync.url}"
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-gateway", description="Community Edge Gateway")
    p.add_argument("--log-level", default="info")
    sub = p.add_subparsers(dest="cmd", required=True)

    v = sub.add_parser("validate", help="check a site config; print every problem with its line")
    v.add_argument("path")
    v.set_defaults(fn=cmd_validate)

    s = sub.add_parser("schema", help="write the config's JSON schema (for editors)")
    s.add_argument("-o", "--output")
    s.set_defaults(fn=cmd_schema)

    r = sub.add_parser("run", help="run the gateway")
    r.add_argument("--config", required=True)
    r.add_argument("--store", help="override store.path from the config")
    r.add_argument("--api-host", default="127.0.0.1")
    r.add_argument("--api-port", type=int, default=8080)
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.log_level)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
