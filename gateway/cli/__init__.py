"""`edge-gateway` command line (also `python -m gateway`).

Two groups of subcommands, each registered by its module: the operator's (``service.py``: run,
status, tokens, scorecard ...) and the installer's (``installer.py``: simulate, doctor, adopt, backup,
demo). ``common.py`` holds what both use (logging, loading the site file, the global options).
"""

from __future__ import annotations

import argparse

from gateway.cli import installer, service, sessions
from gateway.cli.common import add_global_options, setup_log_file, setup_logging, version_text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-gateway", description="Community Edge Gateway")
    p.add_argument("--version", action="version", version=version_text())
    add_global_options(p, top=True)
    sub = p.add_subparsers(dest="cmd", required=True)
    service.add_commands(sub)
    installer.add_commands(sub)
    sessions.add_commands(sub)
    _global_options_everywhere(p)
    return p


def _global_options_everywhere(parser: argparse.ArgumentParser) -> None:
    """--log-level and the log-file options after any subcommand too (``edge-gateway run --config X
    --log-level debug``): added to every subcommand's parser, without defaults there, so a value
    given before the subcommand is kept unless one is given after it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_global_options(sub, top=False)
                _global_options_everywhere(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level)
    setup_log_file(args)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
