"""`edge-gateway` command line (also `python -m gateway`).

Two groups of subcommands, each registered by its module: the operator's (``service.py``: run,
status, tokens, scorecard ...) and the installer's (``installer.py``: simulate, doctor, adopt, backup,
demo). ``common.py`` holds what both use (logging, loading the site file).
"""

from __future__ import annotations

import argparse

from gateway.cli import installer, service, sessions
from gateway.cli.common import add_log_options, setup_log_file, setup_logging


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-gateway", description="Community Edge Gateway")
    p.add_argument("--log-level", default="info")
    sub = p.add_subparsers(dest="cmd", required=True)
    service.add_commands(sub)
    installer.add_commands(sub)
    sessions.add_commands(sub)
    add_log_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    setup_log_file(args)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
