"""The site views' API on the small test site: the lot-plan fields of the site config and their
line-numbered errors, the paged device list against the full list, and occupancy by hour computed
from stored space readings."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from edge_config import ConfigError, load_config
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer, write_api_site
from tests.conftest import write_site

SPACES = "      spaces:\n"


def _site_with_spaces(tmp_path: Path, spaces: str) -> Path:
    path = write_site(tmp_path, 1883)
    text = path.read_text(encoding="utf-8")
    start = text.index(SPACES) + len(SPACES)
    end = text.index("residents:")
    path.write_text(text[:start] + spaces + text[end:], encoding="utf-8")
    return path


def _issues(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return [i.format() for i in exc.value.issues]


def test_lot_plan_fields_load(tmp_path: Path) -> None:
    path = _site_with_spaces(
        tmp_path,
        "        - {id: p01, row: 1, position: 1}\n"
        "        - {id: p02, row: 1, position: 2}\n"
        "        - {id: fire1, kind: fire_lane, polygon: [[0, 0], [50, 0], [50, 25], [0, 25]]}\n",
    )
    area = load_config(path).site.parking_areas[0]
    assert [(s.row, s.position) for s in area.spaces[:2]] == [(1, 1), (1, 2)]
    assert area.spaces[2].polygon == [(0, 0), (50, 0), (50, 25), (0, 25)]


def test_lot_plan_mistakes_are_reported_with_their_lines(tmp_path: Path) -> None:
    path = _site_with_spaces(
        tmp_path,
        "        - {id: p01, row: 1, position: 1}\n"  # +0
        "        - {id: p02, row: 1}\n"  # +1: no position
        "        - {id: p03, row: 1, position: 1}\n"  # +2: p01's spot
        "        - {id: p04, row: 2, position: 1, polygon: [[0, 0], [1, 0], [1, 1]]}\n"  # +3: both
        "        - {id: fire1, kind: fire_lane, polygon: [[0, 0], [1, 1]]}\n"  # +4: two points
        "        - {id: nopark1, kind: no_parking, row: 0, position: 1}\n",  # +5: row 0
    )
    first = path.read_text(encoding="utf-8").splitlines().index("        - {id: p01, row: 1, position: 1}") + 1
    issues = _issues(path)
    loc = "site.parking_areas[0].spaces"
    expected = [
        (first + 1, f"{loc}[1].position", "needs both row and position"),
        (first + 2, f"{loc}[2].position", "same row and position as spaces[0]"),
        (first + 3, f"{loc}[3].polygon", "either row/position or a polygon"),
        (first + 4, f"{loc}[4].polygon", "at least 3"),
        (first + 5, f"{loc}[5].row", "must be >= 1"),
    ]
    for line, key, words in expected:
        hit = [i for i in issues if f":{line}: {key}: " in i]
        assert hit and words in hit[0], (line, key, issues)
    assert all("p0" not in i.split(": ", 2)[-1] for i in issues)  # places, not values


@pytest.fixture
def api(tmp_path: Path, private_broker: Mosquitto) -> Iterator[ApiServer]:
    srv = ApiServer(write_api_site(tmp_path, private_broker.port), tmp_path / "gateway.db").start()
    try:
        yield srv
    finally:
        srv.stop()


def test_device_pages_cover_the_list_and_filter_like_it(api: ApiServer) -> None:
    token = api.token("installer")
    with api.client(token) as c:
        full = c.get("/api/v1/devices").json()
        got: list[str] = []
        cursor = None
        while True:
            page = c.get("/api/v1/devices/page", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            assert page["total"] == len(full) and len(page["items"]) <= 2
            got += [d["id"] for d in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert got == sorted(d["id"] for d in full)
        for params, keep in (
            ({"building": "b1"}, lambda d: d["building"] == "b1"),
            ({"type": "parking_sensor"}, lambda d: d["type"] == "parking_sensor"),
            ({"category": "eldercare"}, lambda d: d["category"] == "eldercare"),
            ({"state": "unknown"}, lambda d: d["online"] is None),
            ({"q": "PARK"}, lambda d: "park" in d["id"]),
        ):
            page = c.get("/api/v1/devices/page", params={**params, "limit": 500}).json()
            want = sorted(d["id"] for d in full if keep(d))
            assert [d["id"] for d in page["items"]] == want and page["total"] == len(want), params
    # a property-staff member of cp1 sees no device in a resident's home
    with api.client(api.token("property_staff", compounds=["cp1"])) as c:
        ids = {d["id"] for d in c.get("/api/v1/devices/page", params={"limit": 500}).json()["items"]}
    assert "sos-r1" not in ids and "door-b1" in ids


def test_occupancy_by_hour_from_stored_readings(api: ApiServer) -> None:
    tz = ZoneInfo(api.cfg.gateway.timezone)
    today = dt.datetime.now(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    y10 = int((today - dt.timedelta(days=1)).replace(hour=10).timestamp() * 1000)
    d3 = int((today - dt.timedelta(days=3)).replace(hour=10).timestamp() * 1000)
    rows = [  # (device, ts, occupied): park-01 occupied 10:00-10:30 yesterday, all hour 3 days ago
        ("park-01", y10, True),
        ("park-01", y10 + 1_800_000, False),
        ("park-01", y10 + 3_600_000, False),
        ("park-01", d3, True),
        ("park-01", d3 + 3_600_000, False),
    ]

    def write(conn: sqlite3.Connection, result: Any, now: int) -> None:
        conn.executemany(
            "INSERT INTO readings(rx_ms, ts_ms, device_id, kind, vals, flags, msg_key, config_rev)"
            " VALUES (?,?,?,'state',?,0,0,?)",
            [(ts, ts, dev, json.dumps({"vehicle_present": v}), api.gw.config_rev) for dev, ts, v in rows],
        )

    api.gw.pipeline.call(write).result(10)
    with api.client(api.token("property_staff")) as c:
        h = c.get("/api/v1/parking/pa1/hourly").json()
        assert c.get("/api/v1/parking/nope/hourly").status_code == 404
    # one space known: hour 10 was 100 % three days ago, 0 % two days ago (free since 11:00 the day
    # before) and 50 % yesterday -> mean 50 %
    assert h["mean_days"][10] == 50.0
    assert h["days"] == 3  # yesterday, 3 days ago, and 2 days ago (the state carried over midnight)
    assert h["mean_days"][11] == 0.0  # free from 10:30 on
    assert all(v is None or v == 0.0 for v in h["today"])
    assert time.time() * 1000 >= h["day_start_ms"]


def test_exports_survive_what_people_type(api: ApiServer) -> None:
    """A report typed with control characters still exports: XML cannot hold them, so they become
    U+FFFD in the .xlsx; the CSV keeps the text as written."""
    import io

    from openpyxl import load_workbook

    token = api.token("installer")
    body = (
        '{"category": "security", "type": "resident_report", "severity": "minor", "location": {"building": "b1"},'
        ' "description": "door\\u0001 broken\\u001f 楼道"}'
    )
    with api.client(token) as c:
        r = c.post("/api/v1/incidents", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
        x = c.get("/api/v1/reports/incidents.xlsx", params={"type": "resident_report"})
        v = c.get("/api/v1/reports/incidents.csv", params={"type": "resident_report"})
    assert x.status_code == 200 and v.status_code == 200
    rows = list(load_workbook(io.BytesIO(x.content), read_only=True).worksheets[0].iter_rows(values_only=True))
    notes = rows[1][rows[0].index("处理说明")]
    assert notes == "door\ufffd broken\ufffd 楼道"
    assert "door\x01 broken\x1f 楼道" in v.content.decode("utf-8")


def test_a_camera_that_cannot_tell_shows_its_space_unknown() -> None:
    """Camera analytics publish ``vehicle_unknown: true`` (no ``vehicle_present``) when they cannot
    tell; the plan shows the space unknown ("camera unsure"), never its last confident value."""
    from gateway.api.parking import space_state

    row = {"online": True, "last_seen_ms": 2_000, "values": {"vehicle_present": True, "vehicle_unknown": True}}
    assert space_state(["cam1-p01"], {"cam1-p01": row}, {}).why == "unsure"
    confident = {**row, "values": {"vehicle_present": False, "vehicle_unknown": False}}
    assert space_state(["cam1-p01"], {"cam1-p01": confident}, {}).state == "free"
