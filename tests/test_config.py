"""Tests for edge_config: the site file models, the loader and the example."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from edge_config import (
    ConfigError,
    ConfigIssue,
    SiteConfig,
    json_schema,
    json_schema_text,
    load_config,
    summary,
)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "edge_config" / "examples" / "community.yaml"
SCHEMA_FILE = ROOT / "edge_config" / "config.schema.json"

BASE = """\
version: 1
gateway:
  id: gw-t-01
mqtt:
  host: 127.0.0.1
site:
  street: {id: st, name: 和平街道}
  community: {id: cm, name: 和苑社区, households: 1000}
  grids:
    - {id: g1, name: 第一网格, households: 200, grid_worker: gw1}
  compounds:
    - id: c1
      name: 和苑一区
      property_company: {name: 和苑物业, duty_team: duty-c1}
      buildings:
        - id: b1
          name: 1号楼
          grid: g1
          floors: 6
          units:
            - {id: u1, name: 1单元, households: 12}
  parking_areas:
    - id: p1
      name: 地面停车场
      compound: c1
      spaces:
        - {id: p1-001, kind: normal}
        - {id: p1-visit, kind: reserved, max_stay_min: 120}
        - {id: p1-fire-1, kind: fire_lane}
residents:
  - id: r1
    name: 王秀英
    building: b1
    unit: u1
    room: "302"
    eldercare_worker: ec1
    consent: {given: true, date: 2024-03-01, recorded_by: ec1}
    inactivity_hours: 4
staff:
  - {id: gw1, name: 李网格, role: grid_worker}
  - {id: ec1, name: 张养老, role: eldercare_worker}
  - {id: pm1, name: 赵物业, role: property_staff}
teams:
  - {id: duty-c1, name: 值班组, kind: property_duty, members: [pm1], compound: c1}
devices:
  - id: d-sos
    driver: zigbee2mqtt
    address: "0x00158D0001A2B3C4"
    type: sos_button
    location: {building: b1, unit: u1, floor: 3, room: "302"}
    resident: r1
  - id: d-park
    driver: chirpstack
    address: "70b3d57ed0051234"
    type: parking_sensor
    location: {parking_space: p1-visit}
  - id: d-door
    driver: native
    address: b1-u1-door
    type: door_contact
    location: {building: b1, unit: u1}
"""


def write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def variant(*replacements: tuple[str, str]) -> str:
    text = BASE
    for old, new in replacements:
        assert text.count(old) == 1, f"replacement target not unique: {old!r}"
        text = text.replace(old, new)
    return text


def line_of(text: str, snippet: str) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if snippet in line]
    assert len(hits) == 1, f"{snippet!r} found on lines {hits}"
    return hits[0]


def issues_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env or {})
    return info.value.issues


def only(issues: list[ConfigIssue], key_path: str) -> ConfigIssue:
    found = [i for i in issues if i.key_path == key_path]
    assert len(found) == 1, f"expected one issue at {key_path}, got: " + "\n".join(i.format() for i in issues)
    return found[0]


# ---------------------------------------------------------------------------------------------
# the example


def test_example_loads_with_no_env_and_summary_counts_are_right() -> None:
    cfg = load_config(EXAMPLE, env={})
    site = cfg.site
    n_buildings = sum(len(c.buildings) for c in site.compounds)
    assert len(site.grids) == 15
    assert 4 <= len(site.compounds) <= 6
    assert 35 <= n_buildings <= 45
    assert 400 <= len(cfg.devices) <= 600
    assert cfg.revision == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()[:12]
    assert cfg.source_path == EXAMPLE
    assert summary(cfg) == (
        f"ok: community 和苑社区, 15 grids, {len(site.compounds)} compounds, {n_buildings} buildings, "
        f"{len(cfg.devices)} devices, revision {cfg.revision}"
    )
    m = re.fullmatch(
        r"ok: community (\S+), (\d+) grids, (\d+) compounds, (\d+) buildings, (\d+) devices, "
        r"revision ([0-9a-f]{12})",
        summary(cfg),
    )
    assert m is not None


def test_example_is_realistic() -> None:
    cfg = load_config(EXAMPLE, env={})
    site = cfg.site
    assert 2500 <= site.community.households <= 3500
    assert all(100 <= g.households <= 300 for g in site.grids)
    assert sum(g.households for g in site.grids) == site.community.households
    for g in site.grids:
        assert g.grid_worker is not None
        worker = cfg.staff_member(g.grid_worker)
        assert worker is not None and worker.role == "grid_worker"
    for c in site.compounds:
        team = cfg.team(c.property_company.duty_team)
        assert team is not None and team.kind == "property_duty" and team.members
    kinds = [s.kind for a in site.parking_areas for s in a.spaces]
    assert kinds.count("fire_lane") >= 2 and "no_parking" in kinds and "normal" in kinds
    assert 25 <= len(cfg.residents) <= 35
    assert all(r.consent.recorded for r in cfg.residents)
    assert any("dementia" in r.flags for r in cfg.residents)
    drivers = {d.driver for d in cfg.devices}
    assert drivers == {"zigbee2mqtt", "chirpstack", "native"}
    parking = [d for d in cfg.devices if d.type == "parking_sensor"]
    assert len(parking) == len(kinds)  # a sensor per space
    departments = {t.department for t in cfg.teams if t.kind == "department"}
    assert {"fire", "police", "health", "urban_management"} <= departments
    assert {t.kind for t in cfg.teams} >= {"community_office", "street_office", "eldercare"}
    assert cfg.mqtt.password is None and cfg.mqtt.username is None
    assert cfg.gateway.id == "gw-hy-01"


def test_example_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("generate_community", EXAMPLE.with_name("generate_community.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render() == EXAMPLE.read_text(encoding="utf-8"), (
        "community.yaml is stale: run .venv/bin/python edge_config/examples/generate_community.py"
    )


def test_json_schema_matches_committed_file() -> None:
    assert json.loads(SCHEMA_FILE.read_text(encoding="utf-8")) == json_schema()
    assert SCHEMA_FILE.read_text(encoding="utf-8") == json_schema_text(), (
        "config.schema.json is stale: run .venv/bin/python -c 'import edge_config; edge_config.write_json_schema()'"
    )
    schema = json_schema()
    assert schema["$defs"]["Resident"]["properties"]["phone"]["personal"] is True
    assert schema["$defs"]["Device"]["additionalProperties"] is False


# ---------------------------------------------------------------------------------------------
# a valid file


def test_minimal_file_loads_and_fills_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE), env={})
    assert cfg.mqtt.client_id == "edge-gw-t-01"
    assert cfg.mqtt.status_topic == "edge/gw-t-01/status"
    assert cfg.gateway.timezone == "Asia/Shanghai" and cfg.gateway.language == "zh"
    assert [s.driver for s in cfg.ingest.sources] == ["zigbee2mqtt", "chirpstack", "native"]
    sos = cfg.device("d-sos")
    assert sos is not None and sos.address == "0x00158d0001a2b3c4"  # stored lower-case
    assert cfg.device_by_address("zigbee2mqtt", "0x00158D0001A2B3C4") is sos
    assert cfg.building("b1") is not None
    grid = cfg.grid_of_building("b1")
    assert grid is not None and grid.id == "g1"
    assert cfg.resident("r1") is not None and cfg.resident("nope") is None
    member = cfg.staff_member("gw1")
    assert member is not None and member.role == "grid_worker"
    assert summary(cfg).startswith("ok: community 和苑社区, 1 grids, 1 compounds, 1 buildings, 3 devices, revision ")


def test_device_settings_merge_builtin_yaml_space_resident_and_overrides(tmp_path: Path) -> None:
    text = variant(
        (
            "devices:\n",
            "device_types:\n  sos_button: {battery_low_pct: 30}\n  doorbell: {category: security}\ndevices:\n",
        ),
        ("    resident: r1\n", "    resident: r1\n    overrides: {expected_interval_s: 3600}\n"),
    )
    cfg = load_config(write(tmp_path, text), env={})
    sos = cfg.device("d-sos")
    assert sos is not None
    s = cfg.device_settings(sos)
    assert s.battery_low_pct == 30  # device_types entry
    assert s.expected_interval_s == 3600  # device override
    assert s.life_safety is True and s.category == "eldercare"  # built-in, untouched
    assert s.inactivity_hours == 4  # resident's own threshold
    park = cfg.device("d-park")
    assert park is not None and cfg.device_settings(park).max_stay_min == 120  # from the space
    door = cfg.device("d-door")
    assert door is not None and cfg.device_settings(door).door_open_max_s == 300
    assert cfg.type_settings("doorbell").category == "security"


def test_owned_devices_skips_devices_of_another_gateway(tmp_path: Path) -> None:
    text = variant(
        ("    location: {building: b1, unit: u1}\n", "    location: {building: b1, unit: u1}\n    gateway: gw-t-02\n")
    )
    cfg = load_config(write(tmp_path, text), env={})
    assert [d.id for d in cfg.owned_devices()] == ["d-sos", "d-park"]
    assert len(cfg.devices) == 3
    assert "2 devices (+1 on other gateways)" in summary(cfg)
    text = variant(
        ("    location: {building: b1, unit: u1}\n", "    location: {building: b1, unit: u1}\n    gateway: gw-t-01\n")
    )
    assert len(load_config(write(tmp_path, text), env={}).owned_devices()) == 3


def test_env_secret_resolved_and_hidden(tmp_path: Path) -> None:
    text = variant(("  host: 127.0.0.1\n", '  host: 127.0.0.1\n  username: edge\n  password: "${MQTT_PW}"\n'))
    cfg = load_config(write(tmp_path, text), env={"MQTT_PW": "v3ry-s3cret-value"})
    assert isinstance(cfg.mqtt.password, SecretStr)
    assert cfg.mqtt.password.get_secret_value() == "v3ry-s3cret-value"
    for rendering in (repr(cfg), str(cfg), cfg.model_dump_json(), repr(cfg.mqtt), str(cfg.model_dump())):
        assert "v3ry-s3cret-value" not in rendering


# ---------------------------------------------------------------------------------------------
# every error class: right key path, right line, a fix in the message

CASES = [
    # (name, replacements, key path, snippet on the expected line, message fragment)
    (
        "unknown building",
        [("location: {building: b1, unit: u1}\n", "location: {building: b9, unit: u1}\n")],
        "devices[2].location.building",
        "location: {building: b9",
        "unknown building: no building has this id",
    ),
    (
        "unknown unit",
        [("location: {building: b1, unit: u1}\n", "location: {building: b1, unit: u7}\n")],
        "devices[2].location.unit",
        "location: {building: b1, unit: u7}",
        "(site.compounds[0].buildings[0]) has no unit with this id",
    ),
    (
        "unknown grid",
        [("          grid: g1\n", "          grid: g2\n")],
        "site.compounds[0].buildings[0].grid",
        "grid: g2",
        "unknown grid: no grid has this id",
    ),
    (
        "unknown compound",
        [("      compound: c1\n", "      compound: c7\n")],
        "site.parking_areas[0].compound",
        "compound: c7",
        "unknown compound: no compound has this id",
    ),
    (
        "unknown resident",
        [("    resident: r1\n", "    resident: r2\n")],
        "devices[0].resident",
        "resident: r2",
        "unknown resident: no resident has this id",
    ),
    (
        "unknown staff",
        [("grid_worker: gw1}", "grid_worker: gw9}")],
        "site.grids[0].grid_worker",
        "grid_worker: gw9",
        "unknown staff member: no staff member has this id (did you mean the one defined at staff[0]?)",
    ),
    (
        "unknown team member",
        [("members: [pm1]", "members: [pm9]")],
        "teams[0].members[0]",
        "members: [pm9]",
        "unknown staff member: no staff member has this id (did you mean the one defined at staff[2]?)",
    ),
    (
        "unknown team",
        [("duty_team: duty-c1}", "duty_team: duty-c9}")],
        "site.compounds[0].property_company.duty_team",
        "duty_team: duty-c9",
        "unknown team: no team has this id (did you mean the one defined at teams[0]?)",
    ),
    (
        "unknown space",
        [("{parking_space: p1-visit}", "{parking_space: p1-visti}")],
        "devices[1].location.parking_space",
        "parking_space: p1-visti",
        "did you mean the one defined at site.parking_areas[0].spaces[1]?",
    ),
    (
        "unknown consent recorder",
        [("recorded_by: ec1}", "recorded_by: ec7}")],
        "residents[0].consent.recorded_by",
        "recorded_by: ec7",
        "unknown staff member: no staff member has this id (did you mean the one defined at staff[1]?)",
    ),
    (
        "duplicate device id",
        [("  - id: d-door\n", "  - id: d-sos  # again\n")],
        "devices[2].id",
        "# again",
        "duplicate device id: devices[0] already has this id",
    ),
    (
        "duplicate grid id",
        [
            (
                "    - {id: g1, name: 第一网格, households: 200, grid_worker: gw1}\n",
                "    - {id: g1, name: 第一网格, households: 200, grid_worker: gw1}\n"
                "    - {id: g1, name: 第二网格, households: 200, grid_worker: gw1}\n",
            )
        ],
        "site.grids[1].id",
        "第二网格",
        "duplicate grid id: site.grids[0] already has this id",
    ),
    (
        "duplicate staff id",
        [("{id: pm1, name: 赵物业", "{id: ec1, name: 赵物业")],
        "staff[2].id",
        "赵物业",
        "duplicate staff id: staff[1] already has this id",
    ),
    (
        "duplicate address",
        [
            ("    address: b1-u1-door\n", '    address: "0x00158d0001a2b3c4"\n'),
            ("    driver: native\n", "    driver: zigbee2mqtt\n"),
        ],
        "devices[2].address",
        'address: "0x00158d0001a2b3c4"',
        "already has this zigbee2mqtt address",
    ),
    (
        "grid without grid worker",
        [(", grid_worker: gw1}", "}")],
        "site.grids[0].grid_worker",
        "{id: g1, name: 第一网格",
        "has no grid worker",
    ),
    (
        "grid worker with wrong role",
        [("grid_worker: gw1}", "grid_worker: pm1}")],
        "site.grids[0].grid_worker",
        "grid_worker: pm1",
        "role 'property_staff', not grid_worker",
    ),
    (
        "bad time zone",
        [("  id: gw-t-01\n", "  id: gw-t-01\n  timezone: Asia/Shanghia\n")],
        "gateway.timezone",
        "timezone: Asia/Shanghia",
        "Asia/Shanghai",
    ),
    (
        "eldercare device without resident",
        [("    resident: r1\n", "")],
        "devices[0].resident",
        "- id: d-sos",
        "names no resident",
    ),
    (
        "resident without consent",
        [("consent: {given: true, date: 2024-03-01, recorded_by: ec1}", "consent: {given: false}")],
        "devices[0].resident",
        "resident: r1",
        "no recorded consent",
    ),
    (
        "literal password",
        [("  host: 127.0.0.1\n", "  host: 127.0.0.1\n  username: edge\n  password: hunter22\n")],
        "mqtt.password",
        "password: hunter22",
        "${NAME}",
    ),
    (
        "undefined env",
        [("  host: 127.0.0.1\n", '  host: 127.0.0.1\n  username: edge\n  password: "${NOPE_PW}"\n')],
        "mqtt.password",
        "password:",
        "NOPE_PW is not set",
    ),
    (
        "bad zigbee address",
        [('"0x00158D0001A2B3C4"', '"0x00158d0001a2"')],
        "devices[0].address",
        '"0x00158d0001a2"',
        "16 hex digits",
    ),
    ("bad DevEUI", [('"70b3d57ed0051234"', '"70-b3-d5-7e-d0-05-12-34"')], "devices[1].address", "70-b3-d5", "DevEUI"),
    (
        "unknown driver in sources",
        [("  host: 127.0.0.1\n", '  host: 127.0.0.1\ningest:\n  sources:\n    - {driver: zigbee, topics: ["z/#"]}\n')],
        "ingest.sources[0].driver",
        "{driver: zigbee,",
        "unknown driver",
    ),
    (
        "reserve >= quota",
        [("  host: 127.0.0.1\n", "  host: 127.0.0.1\nstore:\n  quota_mb: 64\n  reserve_mb: 64\n")],
        "store.reserve_mb",
        "reserve_mb: 64",
        "smaller than quota_mb",
    ),
    (
        "unknown device type",
        [("    type: door_contact\n", "    type: door_contcat\n")],
        "devices[2].type",
        "door_contcat",
        "did you mean 'door_contact'",
    ),
    (
        "plain text to remote broker",
        [("  host: 127.0.0.1\n", "  host: 10.20.0.5\n")],
        "mqtt.tls",
        "mqtt:",
        "allow_plaintext_remote",
    ),
    (
        "unit without building",
        [("{building: b1, unit: u1}\n", "{unit: u1}\n")],
        "devices[2].location",
        "location: {unit: u1}",
        "needs location.building",
    ),
    (
        "token in webhook URL",
        [
            (
                "{id: pm1, name: 赵物业, role: property_staff}",
                "{id: pm1, name: 赵物业, role: property_staff, channels: [{type: webhook, target: 'https://x.cn/h?access_token=abc'}]}",
            )
        ],
        "staff[2].channels[0].target",
        "赵物业",
        "token",
    ),
    (
        "department team without department",
        [("kind: property_duty", "kind: department")],
        "teams[0]",
        "{id: duty-c1",
        "needs department",
    ),
    (
        "parking sensor without space",
        [("{parking_space: p1-visit}", "{area: 东门}")],
        "devices[1].location",
        "{area: 东门}",
        "parking_space",
    ),
    ("bad version", [("version: 1\n", "version: 2\n")], "version", "version: 2", "version: 1"),
    ("bad id format", [("  - id: d-door\n", "  - id: D Door\n")], "devices[2].id", "D Door", "lower-case"),
    (
        "bad active hours",
        [("    inactivity_hours: 4\n", '    active_hours: {start: "7 o\'clock"}\n')],
        "residents[0].active_hours.start",
        "active_hours",
        "HH:MM",
    ),
]


@pytest.mark.parametrize(("name", "replacements", "key_path", "snippet", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_error_has_key_path_line_and_fix(
    tmp_path: Path, name: str, replacements: list[tuple[str, str]], key_path: str, snippet: str, fragment: str
) -> None:
    text = variant(*replacements)
    issues = issues_for(tmp_path, text)
    issue = only(issues, key_path)
    assert issue.line == line_of(text, snippet), issue.format()
    assert fragment in issue.message, issue.format()
    assert issue.file.endswith("site.yaml")
    assert issue.format().startswith(f"{issue.file}:{issue.line}: {key_path}: ")


def test_resident_in_other_building_is_flagged(tmp_path: Path) -> None:
    text = variant(
        (
            "            - {id: u1, name: 1单元, households: 12}\n",
            "            - {id: u1, name: 1单元, households: 12}\n"
            "        - {id: b2, name: 2号楼, grid: g1, floors: 6, units: [{id: u1, name: 1单元}]}\n",
        ),
        ("location: {building: b1, unit: u1, floor: 3", "location: {building: b2, unit: u1, floor: 3"),
    )
    issue = only(issues_for(tmp_path, text), "devices[0].location.building")
    assert "in another building than its resident (residents[0].building)" in issue.message
    assert issue.line == line_of(text, "{building: b2, unit: u1, floor: 3")


def test_unknown_key_gets_suggestion_and_allowed_keys(tmp_path: Path) -> None:
    text = variant(("  host: 127.0.0.1\n", "  host: 127.0.0.1\n  keepalive: 60\n"))
    issue = only(issues_for(tmp_path, text), "mqtt.keepalive")
    assert issue.line == line_of(text, "keepalive: 60")
    assert "unknown key 'keepalive'" in issue.message
    assert "did you mean 'keepalive_s'?" in issue.message
    assert "Allowed keys here:" in issue.message and "status_topic" in issue.message


def test_missing_required_key_is_reported_with_description(tmp_path: Path) -> None:
    text = variant(("    type: parking_sensor\n", ""))
    issue = only(issues_for(tmp_path, text), "devices[1].type")
    assert issue.line == line_of(text, "- id: d-park")
    assert "required key 'type' is missing" in issue.message


def test_yaml_syntax_error_has_parser_line(tmp_path: Path) -> None:
    text = variant(("          floors: 6\n", "          floors: [6\n"))
    issues = issues_for(tmp_path, text)
    assert len(issues) == 1
    assert issues[0].line is not None and abs(issues[0].line - line_of(text, "floors: [6")) <= 1
    assert "invalid YAML" in issues[0].message


def test_duplicate_yaml_key_is_a_syntax_issue(tmp_path: Path) -> None:
    text = variant(("  host: 127.0.0.1\n", "  host: 127.0.0.1\n  host: 127.0.0.2\n"))
    issues = issues_for(tmp_path, text)
    assert len(issues) == 1 and issues[0].line == line_of(text, "host: 127.0.0.2")


def test_many_errors_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    text = variant(
        ("  id: gw-t-01\n", "  id: gw-t-01\n  timezone: Nowhere/City\n"),  # field validator
        ("  host: 127.0.0.1\n", "  host: 127.0.0.1\n  prot: 1883\n"),  # unknown key
        ("          grid: g1\n", "          grid: g5\n"),  # cross reference
        ('"0x00158D0001A2B3C4"', '"0xZZ"'),  # address format
        ("  - id: d-door\n", "  - id: d-park\n"),  # duplicate id
        ("    type: door_contact\n", "    type: door_contact\n    floor: 2\n"),  # unknown key on a device
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    paths = [i.key_path for i in info.value.issues]
    for expected in (
        "gateway.timezone",
        "mqtt.prot",
        "site.compounds[0].buildings[0].grid",
        "devices[0].address",
        "devices[2].id",
        "devices[2].floor",
    ):
        assert expected in paths
    lines = [i.line for i in info.value.issues]
    assert lines == sorted(lines)  # type: ignore[type-var]
    assert str(info.value).count("\n") == len(info.value.issues) - 1
    assert all(line.startswith(str(tmp_path)) for line in str(info.value).splitlines())


def test_secrets_are_never_echoed(tmp_path: Path) -> None:
    literal = "L1teral-Pa55word-XYZ"
    env_value = "Env-S3cret-Value-QRS"
    text = variant(
        (
            "  host: 127.0.0.1\n",
            f'  host: 127.0.0.1\n  username: edge\n  password: {literal}\n  pasword: {literal}\n  port: "{literal}"\n'
            f"  client_id: [{literal}]\n",
        ),
        (
            "{id: pm1, name: 赵物业, role: property_staff}",
            "{id: pm1, name: 赵物业, role: property_staff, channels: ["
            '{type: wecom, target: pm1, token: "${WECOM_TOKEN}"}, '
            f"{{type: dingtalk, target: pm1, token: {literal}}}, {{type: sms, target: {literal}}}]}}",
        ),
        ("          floors: 6\n", f"          floors: {literal}\n"),
        ("    type: door_contact\n", f"    type: {literal}\n"),
        ("{parking_space: p1-visit}", f"{{parking_space: {literal}}}"),
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={"WECOM_TOKEN": env_value})
    rendered = str(info.value) + repr(info.value) + "".join(repr(i) for i in info.value.issues)
    assert len(info.value.issues) >= 7
    assert literal not in rendered
    assert env_value not in rendered
    assert literal.lower() not in rendered.lower()


def test_env_value_not_echoed_when_a_non_secret_field_fails(tmp_path: Path) -> None:
    env_value = "Env-S3cret-Value-QRS"
    text = variant(("  host: 127.0.0.1\n", '  host: 127.0.0.1\n  username: edge\n  password: "${PW}"\n  port: x\n'))
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={"PW": env_value})
    assert env_value not in str(info.value)
    assert only(info.value.issues, "mqtt.port").message.startswith("must be a whole number")


def test_unreadable_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.yaml")
    assert info.value.issues[0].line is None and info.value.issues[0].format().startswith(
        f"{tmp_path}/missing.yaml:?: "
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "# nothing\n"))
    assert "empty" in info.value.issues[0].message


def test_direct_construction_runs_cross_checks() -> None:
    import ruamel.yaml

    data = ruamel.yaml.YAML(typ="safe").load(BASE.replace("resident: r1", "resident: r9"))
    with pytest.raises(ValidationError) as info:
        SiteConfig.model_validate(data)
    assert "devices[0].resident: unknown resident: no resident has this id" in str(info.value)
    assert "r9" not in str(info.value)  # neither in the message nor as pydantic's input_value
    cfg = SiteConfig.model_validate(ruamel.yaml.YAML(typ="safe").load(BASE))
    assert len(cfg.revision) == 12 and cfg.source_path is None


def test_wecom_app_section_and_staff_user_id(tmp_path: Path) -> None:
    """channels.wecom_app: corp id, agent id, the secret as "${ENV}" only; staff[].wecom_userid."""
    staff = ("{id: pm1, name: 赵物业, role: property_staff}",
             "{id: pm1, name: 赵物业, role: property_staff, wecom_userid: ZhaoWuYe}")  # fmt: skip
    app = '\nchannels:\n  wecom_app: {corp_id: ww5a1f0c9e27d1b3e4, agent_id: 1000002, secret: "${APP_SECRET}"}\n'
    cfg = load_config(write(tmp_path, variant(staff) + app), env={"APP_SECRET": "Sec-4b1e9f"})
    assert cfg.channels.wecom_app is not None and cfg.channels.wecom_app.secret.get_secret_value() == "Sec-4b1e9f"
    assert (
        cfg.channels.wecom_app.base_url == "https://qyapi.weixin.qq.com"
        and cfg.channels.wecom_app.msgtype == "textcard"
    )
    member = cfg.staff_member("pm1")
    assert member is not None and member.wecom_userid == "ZhaoWuYe"
    assert "Sec-4b1e9f" not in repr(cfg.channels.wecom_app)
    literal = "L1teral-App-Secret-77"
    bad_staff = (staff[0], "{id: pm1, name: 赵物业, role: property_staff, wecom_userid: 'zhao wu ye'}")
    bad_app = f"\nchannels:\n  wecom_app: {{corp_id: ww5a1f0c9e27d1b3e4, agent_id: 0, secret: {literal}}}\n"
    issues = issues_for(tmp_path, variant(bad_staff) + bad_app)
    rendered = "".join(i.format() for i in issues)
    assert literal not in rendered and "zhao wu ye" not in rendered
    assert "must not be written into the config file" in only(issues, "channels.wecom_app.secret").message
    only(issues, "channels.wecom_app.agent_id")
    only(issues, "staff[2].wecom_userid")
