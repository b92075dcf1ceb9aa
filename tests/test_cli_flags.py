"""The command line's global flags and ``validate --json`` (issue 23, item 10)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
from gateway.core.store import SCHEMA_VERSION
from tests.support import ROOT
from tests.test_config import BASE, line_of


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def _leaves(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _leaves(sub, f"{prefix}{name} ") or [(f"{prefix}{name}", sub)]
    return out


def test_version_names_the_release_the_site_file_and_store_versions() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(rf"edge-gateway \S+ \(site file version 1, store schema v{SCHEMA_VERSION}\)\n", proc.stdout), (
        proc.stdout
    )


def test_log_level_is_taken_before_or_after_any_subcommand(tmp_path: Path) -> None:
    p = build_parser()
    site = str(tmp_path / "s.yaml")
    assert p.parse_args(["validate", site]).log_level == "info"
    assert p.parse_args(["--log-level", "warning", "validate", site]).log_level == "warning"
    assert p.parse_args(["validate", site, "--log-level", "DEBUG"]).log_level == "debug"
    assert p.parse_args(["--log-level", "error", "validate", site, "--log-level", "debug"]).log_level == "debug"
    nested = p.parse_args(["token", "list", "--config", site, "--log-level", "debug", "--log-file", "x.log"])
    assert (nested.log_level, nested.log_file, nested.log_max_mb) == ("debug", "x.log", 10.0)
    leaves = _leaves(p)
    assert len(leaves) >= 15
    for name, sub in leaves:  # every command, however deep, takes the global options after its name
        options = {o for a in sub._actions for o in a.option_strings}
        assert {"--log-level", "--log-file", "--log-max-mb", "--log-backups"} <= options, name


def test_an_unknown_log_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["validate", "x.yaml", "--log-level", "verbose"])
    assert info.value.code == 2
    assert "invalid choice: 'verbose'" in capsys.readouterr().err


def test_validate_json_for_a_valid_file(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(BASE, encoding="utf-8")
    rc, out, _ = _run(["validate", "--json", str(site)])
    report = json.loads(out)
    assert rc == 0
    assert report["ok"] is True and report["errors"] == [] and report["file"] == str(site)
    assert re.fullmatch(r"[0-9a-f]{12}", report["revision"])


def test_validate_json_lists_every_problem_with_its_place(tmp_path: Path) -> None:
    text = BASE.replace("  host: 127.0.0.1\n", "  host: 127.0.0.1\n  port: x\n  keepalive: 60\n").replace(
        "          grid: g1\n", "          grid: g5\n"
    )
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    rc, out, err = _run(["validate", str(site), "--json"])
    assert rc == 2 and err == ""  # the report is the whole output, on stdout
    report = json.loads(out)
    assert report["ok"] is False and report["revision"] is None
    by_path = {e["path"]: e for e in report["errors"]}
    assert set(by_path) == {"mqtt.port", "mqtt.keepalive", "site.compounds[0].buildings[0].grid"}
    for e in report["errors"]:
        assert set(e) == {"file", "line", "column", "path", "message"} and e["file"] == str(site)
    port = by_path["mqtt.port"]
    assert (port["line"], port["column"]) == (line_of(text, "port: x"), 3)
    assert port["message"].startswith("must be a whole number")
    grid = by_path["site.compounds[0].buildings[0].grid"]
    assert (grid["line"], grid["column"]) == (line_of(text, "grid: g5"), 11)
    assert "g5" not in out  # a wrong reference is located, not quoted


def test_validate_json_for_a_syntax_error_and_a_missing_file(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    site.write_text(BASE.replace("          floors: 6\n", "          floors: [6\n"), encoding="utf-8")
    rc, out, _ = _run(["validate", "--json", str(site)])
    [error] = json.loads(out)["errors"]
    assert rc == 2 and error["message"].startswith("invalid YAML") and error["line"] and error["column"]
    rc, out, _ = _run(["validate", "--json", str(tmp_path / "missing.yaml")])
    [error] = json.loads(out)["errors"]
    assert rc == 2 and error["line"] is None and "cannot read the file" in error["message"]
