"""What every ``edge-gateway`` command shares: logging set-up and loading the site file."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import typing
from pathlib import Path

from edge_config import SiteConfig


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for Loki or ELK: always ``ts``, ``level``, ``logger``, ``msg``,
    ``thread``; ``exc`` when an exception is logged. Only the record's own message, formatted as
    in the text log: no arguments, extras or environment are added (what the gateway logs is
    written to carry ids and reasons, never residents' data or secrets)."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # one line whatever the message holds: json escapes newlines
        return json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=str)


def load_site(path: str, parse_cache: Path | None = None) -> SiteConfig:
    """Load a config or exit 2 printing every issue as PATH:LINE: key.path: message.
    ``parse_cache``: see edge_config.loader.load_config."""
    from edge_config import ConfigError, load_config

    try:
        return load_config(path, parse_cache=parse_cache)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue.format(), file=sys.stderr)
        print(f"{len(exc.issues)} problem(s) in {path}; nothing was started", file=sys.stderr)
        raise SystemExit(2) from None
    except FileNotFoundError:
        print(f"{path}: no such file", file=sys.stderr)
        raise SystemExit(2) from None


LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def add_global_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every command takes. ``top``: the main parser, which holds the defaults; a
    subcommand's copy has none (argparse.SUPPRESS), so it only overrides what was given there."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    p.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, default=default("info"), help="default info")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=default("text"),
        help="text (default, for journald) or json: one object per line with stable keys, for Loki/ELK",
    )
    p.add_argument(
        "--log-file", default=default(None), help="also log to this file, rotated by size (installs without journald)"
    )
    p.add_argument("--log-max-mb", type=float, default=default(10.0), help="rotate the log file at this size")
    p.add_argument("--log-backups", type=int, default=default(5), help="rotated log files kept")


def version_text() -> str:
    """``edge-gateway --version``: the release, and the site-file and store versions it works with."""
    from gateway import __version__ as release
    from gateway.core.store import SCHEMA_VERSION

    site = "/".join(str(v) for v in typing.get_args(SiteConfig.model_fields["version"].annotation))
    return f"edge-gateway {release} (site file version {site}, store schema v{SCHEMA_VERSION})"


def validate_report(path: str) -> tuple[int, dict[str, object]]:
    """``validate --json``: exit status and report. Where each problem is and what is wrong, never a
    value (the messages quote none). Status 0 valid, 2 invalid, like the text form."""
    from edge_config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return 2, {"ok": False, "file": path, "revision": None, "errors": [i.as_dict() for i in exc.issues]}
    return 0, {"ok": True, "file": path, "revision": cfg.revision, "errors": []}


def setup_log_file(args: argparse.Namespace) -> None:
    """The --log-* options after :func:`setup_logging`: the extra file, then the format of every
    handler (stderr and the file alike)."""
    if getattr(args, "log_file", None):
        from gateway.install.systemd import add_log_file

        add_log_file(Path(args.log_file), args.log_max_mb, args.log_backups)
    if getattr(args, "log_format", "text") == "json":
        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
