"""What every ``edge-gateway`` command shares: logging set-up and loading the site file."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from edge_config import SiteConfig


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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


def add_log_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-file", help="also log to this file, rotated by size (installs without journald)")
    p.add_argument("--log-max-mb", type=float, default=10.0, help="rotate the log file at this size")
    p.add_argument("--log-backups", type=int, default=5, help="rotated log files kept")


def setup_log_file(args: argparse.Namespace) -> None:
    if getattr(args, "log_file", None):
        from gateway.install.systemd import add_log_file

        add_log_file(Path(args.log_file), args.log_max_mb, args.log_backups)
