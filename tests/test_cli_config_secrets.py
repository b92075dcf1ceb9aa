"""No command ever prints a value of the site file (issue 23, item 7).

A distinctive secret is planted at every kind of place the loader can reject: YAML syntax errors
(a duplicate key, an undefined alias, an unconvertible ``!!tag``, bad characters, unclosed
quotes, a reused anchor), unknown keys, bad types, bad enum values, pattern and validator
failures, literal secrets, environment references, cross-references and duplicate ids, at every
nesting level. Each file is then given to every ``edge-gateway`` command that loads a site file
(in process, stdout, stderr and every log record captured), and three of them also run as real
processes. The secret must appear nowhere, while the output still names the file and line of
each problem.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from pydantic import ValidationError

from edge_config import ConfigError, SiteConfig, load_config
from gateway.cli import build_parser, main
from tests.support import ROOT
from tests.test_config import BASE, line_of, variant

SECRET = "S3cr3t-planted-7f2c"  # fails every id pattern: must never be quoted anyway
SECRET_ID = "s3cr3t-planted-id9"  # id-shaped: a password pasted into an id field
SECRET_ENV = "S3cr3t-planted-env-41d0"  # the value of an environment variable the file refers to
NEEDLES = (SECRET, SECRET_ID, SECRET_ENV, "s3cr3t")  # compared case-insensitively: any copy, any case

# Every file also sets an unsupported version, so even a file whose only oddity is a warning
# stops at loading and no command goes on to start anything.
BAD_VERSION = ("version: 1\n", "version: 2\n")
HOST = "  host: 127.0.0.1\n"


def _with_user(extra: str) -> tuple[str, str]:
    return (HOST, f"{HOST}  username: edge\n{extra}")


# YAML syntax: each stops the parser, so each is its own file. (name, replacement, line snippet)
YAML_CASES: list[tuple[str, tuple[str, str], str]] = [
    ("duplicate key", _with_user(f'  password: "{SECRET}"\n  password: "{SECRET}x"\n'), f'"{SECRET}x"'),
    ("duplicate key in flow", ("{parking_space: p1-visit}", f"{{parking_space: {SECRET}, parking_space: x}}"), "x}"),
    ("undefined alias", _with_user(f"  password: *{SECRET}\n"), f"*{SECRET}"),
    ("tagged int", _with_user(f"  keepalive_s: !!int {SECRET}\n"), "!!int"),
    ("tagged bool", _with_user(f"  allow_plaintext_remote: !!bool {SECRET}\n"), "!!bool"),
    ("tagged float", ("          floors: 6\n", f"          floors: !!float {SECRET}\n"), "!!float"),
    ("tagged timestamp", ("date: 2024-03-01", f'date: !!timestamp "{SECRET}"'), "!!timestamp"),
    ("unclosed quote", _with_user(f'  password: "{SECRET}\n'), ""),
    ("colon in value", _with_user(f"  password: {SECRET}: x\n"), f"{SECRET}: x"),
    ("bad first character", _with_user(f"  password: @{SECRET}\n"), f"@{SECRET}"),
    ("bad escape", _with_user(f'  password: "{SECRET}\\q"\n'), "\\q"),
    ("tab", _with_user(f'  password: "{SECRET}"\tx\n'), "\tx"),
    ("control character", _with_user(f'  password: "{SECRET}\x01"\n'), "\x01"),
    ("reused anchor", (HOST, f"  username: &a {SECRET}\n  client_id: &a x\n{HOST}"), "client_id: &a x"),
]

# Schema and cross-reference problems: all reported at once, so one file. Each entry: the
# replacement, the key path the issue must name, and a snippet of the line it must point to.
SCHEMA_CASES: list[tuple[tuple[str, str], str, str]] = [
    ((HOST, f"{HOST}  pasword: {SECRET}\n"), "mqtt.pasword", "pasword:"),  # unknown key, level 2
    (("  id: gw-t-01\n", f"  id: gw-t-01\n  timezone: {SECRET}\n"), "gateway.timezone", "timezone:"),  # validator
    (("  id: gw-t-01\n", f"  id: gw-t-01\n  language: {SECRET}\n"), "gateway.language", "language:"),  # enum
    ((HOST, f'{HOST}  port: "{SECRET}"\n'), "mqtt.port", 'port: "S3'),  # bad type
    ((HOST, f"{HOST}  username: edge\n  password: {SECRET}\n"), "mqtt.password", "password: S3"),  # literal secret
    ((HOST, f'{HOST}  client_id: ["{SECRET}"]\n'), "mqtt.client_id", "client_id:"),  # list for text
    (("households: 1000}", f"households: {SECRET}}}"), "site.community.households", "households: S3"),  # level 3
    (("          floors: 6\n", f"          floors: {SECRET}\n"), "site.compounds[0].buildings[0].floors", "floors:"),
    (
        ("{id: u1, name: 1单元, households: 12}", f"{{id: u1, name: 1单元, households: [{SECRET}]}}"),
        "site.compounds[0].buildings[0].units[0].households",
        "1单元",
    ),  # level 6
    (
        ("{id: p1-001, kind: normal}", f"{{id: p1-001, kind: {SECRET}}}"),
        "site.parking_areas[0].spaces[0].kind",
        "p1-001",
    ),
    (
        ("max_stay_min: 120}", f"max_stay_min: {SECRET}}}"),
        "site.parking_areas[0].spaces[1].max_stay_min",
        "max_stay_min: S3",
    ),
    (("date: 2024-03-01", f"date: {SECRET}"), "residents[0].consent.date", "consent:"),
    (
        ("    inactivity_hours: 4\n", f'    active_hours: {{start: "{SECRET}"}}\n'),
        "residents[0].active_hours.start",
        "active_hours",
    ),
    (("role: grid_worker}", f"role: {SECRET}}}"), "staff[0].role", "李网格"),  # enum in a list item
    (
        (
            "{id: pm1, name: 赵物业, role: property_staff}",
            "{id: pm1, name: 赵物业, role: property_staff, channels: ["
            f"{{type: sms, target: {SECRET}}}, {{type: dingtalk, target: pm1, token: {SECRET}}}, "
            f"{{type: webhook, target: 'https://x.example/h?token={SECRET}'}}, "
            f'{{type: wecom, target: pm1, token: "${{EDGE_TEST_ENV}}", port: {SECRET}}}]}}',
        ),
        "staff[2].channels[0].target",
        "赵物业",
    ),
    (("kind: property_duty", f"kind: {SECRET}"), "teams[0].kind", "值班组"),
    (("  - id: d-door\n", f"  - id: {SECRET}\n"), "devices[2].id", f"id: {SECRET}"),  # pattern
    (('"70b3d57ed0051234"', f'"{SECRET}"'), "devices[1].address", 'address: "S3'),  # driver address rule
    (
        ("{building: b1, unit: u1, floor: 3", f"{{building: b1, unit: u1, floor: {SECRET}"),
        "devices[0].location.floor",
        "floor: S3",
    ),
    (
        ("    resident: r1\n", f"    resident: {SECRET_ID}\n"),
        "devices[0].resident",
        f"resident: {SECRET_ID}",
    ),  # reference
    (("grid_worker: gw1}", f"grid_worker: {SECRET_ID}}}"), "site.grids[0].grid_worker", "grid_worker: s3"),
    (
        ("location: {building: b1, unit: u1}\n", f"location: {{building: b1, unit: {SECRET_ID}}}\n"),
        "devices[2].location.unit",
        "unit: s3",
    ),
    (("    type: door_contact\n", f"    type: {SECRET_ID.replace('-', '_')}\n"), "devices[2].type", "type: s3"),
    (("members: [pm1]", f"members: [{SECRET_ID}]"), "teams[0].members[0]", "members: [s3"),
]
# Appended at the end: duplicate ids, duplicate robot names, environment references, cameras and
# sync (each checked for its own key path and line below).
TAIL = f"""\
  - {{id: {SECRET_ID}, driver: native, address: b1-u1-pir, type: motion_sensor, location: {{building: b1}}}}
  - {{id: {SECRET_ID}, driver: native, address: b1-u1-pir2, type: motion_sensor, location: {{building: b1}}}}
channels:  # robots
  wecom:
    - {{name: {SECRET_ID}, key: "${{EDGE_TEST_ENV}}"}}
    - {{name: {SECRET_ID}, key: "${{EDGE_TEST_ENV}}"}}
sync:
  url: "http://127.0.0.1:9/?token={SECRET}"
  token: "${{EDGE_TEST_EMPTY}}"
  password: [{SECRET}]
  backoff_min_s: {SECRET}
cameras:
  cameras:
    - {{id: cam1, device: d-door, source: {{kind: rtsp, url: "rtsp://u:{SECRET}@127.0.0.1/s",
        password: "${{EDGE_TEST_UNSET}}"}}}}
"""
TAIL_ISSUES = [  # (key path prefix, line snippet)
    ("devices[4].id", f"- {{id: {SECRET_ID}, driver: native, address: b1-u1-pir2"),
    ("channels", "# robots"),
    ("sync.url", "127.0.0.1:9/?token="),  # a valid-looking URL that carries a secret is refused: it would be printed
    ("sync.token", "EDGE_TEST_EMPTY"),
    ("sync.password", "password: [S3"),  # a secret field given a list
    ("sync.backoff_min_s", "backoff_min_s"),
    ("cameras.cameras[0].source.url", "rtsp://"),
    ("cameras.cameras[0].source.password", "EDGE_TEST_UNSET"),
]
ENV = {"EDGE_TEST_ENV": SECRET_ENV, "EDGE_TEST_EMPTY": ""}


def _schema_text() -> str:
    return variant(BAD_VERSION, *(r for r, _, _ in SCHEMA_CASES)) + TAIL


def _yaml_text(replacement: tuple[str, str]) -> str:
    return variant(BAD_VERSION, replacement)


def _assert_clean(text: str, where: str) -> None:
    for needle in NEEDLES:
        assert needle.lower() not in text.lower(), f"{where} printed a planted value:\n{text}"


# --- the loader: every problem at its line, no value -------------------------------------------


def test_schema_problems_are_reported_at_their_lines_without_values(tmp_path: Path) -> None:
    text = _schema_text()
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    issues = info.value.issues
    rendered = str(info.value) + repr(issues)
    _assert_clean(rendered, "load_config")
    expected = [(p, s) for _, p, s in SCHEMA_CASES] + TAIL_ISSUES
    for key_path, snippet in expected:
        found = [i for i in issues if i.key_path.startswith(key_path)]
        assert found, f"no issue at {key_path}:\n{rendered}"
        assert any(i.line == line_of(text, snippet) for i in found), (key_path, [i.format() for i in found])
        assert all(i.column is not None and i.column >= 1 for i in found)
    # the environment: a set variable's value never shows; unset/empty ones are named (names only)
    assert any("EDGE_TEST_UNSET is not set" in i.message for i in issues)
    assert any("EDGE_TEST_EMPTY is set but empty" in i.message for i in issues)
    # still specific: the fix is there, not a bare "invalid"
    assert "did you mean 'password'?" in next(i.message for i in issues if i.key_path == "mqtt.pasword")
    assert "must be a whole number" in next(i.message for i in issues if i.key_path == "mqtt.port")


@pytest.mark.parametrize(("name", "replacement", "snippet"), YAML_CASES, ids=[c[0] for c in YAML_CASES])
def test_yaml_errors_never_quote_the_file(
    tmp_path: Path, name: str, replacement: tuple[str, str], snippet: str, capfd: pytest.CaptureFixture[str]
) -> None:
    text = _yaml_text(replacement)
    path = tmp_path / "site.yaml"
    path.write_text(text, encoding="utf-8")
    with warnings.catch_warnings(record=True) as caught, pytest.raises(ConfigError) as info:
        warnings.simplefilter("always")  # a warning is printed to stderr outside pytest
        load_config(path, env=ENV)
    out, err = capfd.readouterr()
    shown = "".join(str(w.message) for w in caught)
    _assert_clean(str(info.value) + repr(info.value.issues) + out + err + shown, f"load_config ({name})")
    if name == "reused anchor":  # legal YAML (only a warning): the file stops at its version
        assert [i.key_path for i in info.value.issues] == ["version"]
        return
    [issue] = info.value.issues
    assert issue.message.startswith("invalid YAML"), issue.format()
    assert issue.line is not None and issue.column is not None
    if snippet:
        assert issue.line == line_of(text, snippet), issue.format()
    if name.startswith("duplicate key"):
        assert "written twice" in issue.message and "first at line" in issue.message


def test_a_model_built_in_code_does_not_print_its_input() -> None:
    import ruamel.yaml

    data = ruamel.yaml.YAML(typ="safe").load(BASE)
    data["mqtt"]["port"] = SECRET
    data["devices"][0]["resident"] = SECRET_ID
    with pytest.raises(ValidationError) as info:
        SiteConfig.model_validate(data)
    _assert_clean(str(info.value) + repr(info.value), "SiteConfig.model_validate")


# --- every command ------------------------------------------------------------------------------


def _commands(site: Path, tmp: Path) -> dict[str, list[str]]:
    """Every subcommand that loads a site file, with arguments that get it that far."""
    c, store = str(site), str(tmp / "gateway.db")
    return {
        "validate": ["validate", c],
        "validate --json": ["validate", "--json", c],
        "run": ["run", "--config", c, "--store", store],
        "status": ["status", "--config", c],
        "sync status": ["sync", "status", "--config", c],
        "scorecard": ["scorecard", "--config", c, "--period", "2026-01"],
        "departments": ["departments", "--config", c, "--period", "2026-Q1"],
        "token create": ["token", "create", "--config", c, "--role", "installer"],
        "token list": ["token", "list", "--config", c],
        "token revoke": ["token", "revoke", "t1", "--config", c],
        "resident forget": ["resident", "forget", "r1", "--config", c, "--yes"],
        "resident forget-phone": ["resident", "forget-phone", "13700000000", "--config", c, "--yes"],
        "signin-link": ["signin-link", "--config", c, "--person", "ps1"],
        "session list": ["session", "list", "--config", c],
        "session revoke": ["session", "revoke", "--config", c, "--person", "ps1"],
        "resident report-qr": ["resident", "report-qr", "--config", c, "--building", "b1", "--out", str(tmp / "q.svg")],
        "camera calibrate": ["camera", "calibrate", "--config", c, "--camera", "cam1", "--image", str(tmp / "x.jpg")],
        "simulate": ["simulate", "--config", c, "--duration", "1"],
        "doctor": ["doctor", "--config", c],
        "doctor --json": ["doctor", "--config", c, "--json"],
        "adopt": [
            "adopt",
            "--config",
            c,
            "--driver",
            "native",
            "--address",
            "a1",
            "--id",
            "n1",
            "--type",
            "door_contact",
        ],
        "backup": ["backup", "--config", c, "--out", str(tmp / "b.db")],
        "restore": ["restore", "--config", c, "--from", str(tmp / "b.db")],
        "demo": ["demo", "--config", c, "--workdir", str(tmp / "demo"), "--duration", "1"],
    }


def _leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    out: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _leaf_commands(sub, f"{prefix}{name} ") or [(f"{prefix}{name}", sub)]
    return out


def test_the_matrix_covers_every_command_that_loads_a_site_file(tmp_path: Path) -> None:
    covered = {k.split(" --")[0] for k in _commands(tmp_path / "s.yaml", tmp_path)}
    loading = set()
    for name, sub in _leaf_commands(build_parser()):
        dests = {a.dest for a in sub._actions}
        if "config" in dests or "path" in dests:
            loading.add(name)
    assert loading == covered


def _run_in_process(argv: list[str]) -> tuple[int, str]:
    """main(argv) with stdout, stderr and every log record (DEBUG and up) captured."""
    out, err, logs = io.StringIO(), io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(logs)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as exc:
                rc = exc.code if isinstance(exc.code, int) else 1
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    return rc, out.getvalue() + err.getvalue() + logs.getvalue()


CASE_FILES = ["schema problems", *(c[0] for c in YAML_CASES)]


@pytest.mark.parametrize("case", CASE_FILES)
def test_no_command_prints_a_planted_value(tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    yaml_case = next((r for n, r, _ in YAML_CASES if n == case), None)
    text = _schema_text() if yaml_case is None else _yaml_text(yaml_case)
    site = tmp_path / "site.yaml"
    site.write_text(text, encoding="utf-8")
    site.chmod(0o600)
    line_numbered = re.compile(re.escape(str(site)) + r":\d+: ")
    for name, argv in _commands(site, tmp_path).items():
        rc, output = _run_in_process(argv)
        _assert_clean(output, f"edge-gateway {name} ({case})")
        assert rc != 0, f"{name} accepted an invalid file ({case}):\n{output}"
        if name == "validate --json":
            report = json.loads(output[output.index("{") :])
            assert report["ok"] is False and all(e["line"] for e in report["errors"])
        else:
            assert line_numbered.search(output), f"{name} did not name the file and line ({case}):\n{output}"


def test_real_processes_print_no_value_for_a_duplicate_key(tmp_path: Path) -> None:
    """The issue's own report, as the installer sees it: validate, run and doctor as processes."""
    site = tmp_path / "site.yaml"
    site.write_text(_yaml_text(YAML_CASES[0][1]), encoding="utf-8")
    for argv in (["validate", str(site)], ["run", "--config", str(site)], ["doctor", "--config", str(site)]):
        proc = subprocess.run(
            [sys.executable, "-m", "gateway", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        output = proc.stdout + proc.stderr
        _assert_clean(output, " ".join(argv))
        assert proc.returncode != 0
        assert f"{site}:{line_of(site.read_text(encoding='utf-8'), YAML_CASES[0][2])}: " in output, output
        assert "'password' is written twice" in output
