"""Incident history against a generated store of 100,000 incidents (a year of the example
community): every filter's total equals a count written by hand in SQL, pages follow the cursor
without gaps, a scoped property-staff search never sees elder-care notes, the whole timeline of an
old incident comes back in pages. (Speed is measured by bench/history.py, not here.)"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.history_store import DAY_MS, direct_count, generate
from gateway.install.mosquitto import Mosquitto
from tests.api_harness import ApiServer
from tests.site_views import example_site

pytestmark = pytest.mark.broker

N = 100_000
NOW = int(time.time() * 1000)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d: Path = tmp_path_factory.mktemp("history")
    broker = Mosquitto(d / "broker").start()
    db = d / "gateway.db"
    generate(db, N, now_ms=NOW)
    srv = ApiServer(example_site(d, broker.port), db).start()
    try:
        yield {
            "srv": srv,
            "db": db,
            "installer": srv.token("installer"),
            "staff_c1": srv.token("property_staff", compounds=["c1"], name="pm-c1-1"),
            "staff": srv.token("property_staff", name="pm-all"),
            "eldercare": srv.token("eldercare_worker", name="ec-01"),
        }
    finally:
        srv.stop()
        broker.stop()


def _get(big: dict[str, Any], token: str, path: str, params: list[tuple[str, Any]]) -> dict[str, Any]:
    with big["srv"].client(big[token], timeout=30) as c:
        r = c.get(path, params=params)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


MONTH = (NOW - 60 * DAY_MS, NOW - 30 * DAY_MS)
SLA = "incidents.id IN (SELECT incident_id FROM incident_events WHERE kind = 'sla_missed')"
# what people wrote: the note of an action and what was done on resolving (all the generator writes)
NOTE = (
    "incidents.id IN (SELECT incident_id FROM incident_events WHERE coalesce(json_extract(data, '$.note'), '')"
    " || ' ' || coalesce(json_extract(data, '$.what_done'), '') LIKE ?)"
)
PERSONAL = "(incidents.category = 'eldercare' OR incidents.resident_id IS NOT NULL)"
# (query parameters, hand-written WHERE, its parameters): one per filter, and a few together
CASES: list[tuple[list[tuple[str, Any]], str, tuple[Any, ...]]] = [
    ([], "1", ()),
    ([("category", "parking")], "category = 'parking'", ()),
    ([("category", "parking"), ("category", "security")], "category IN ('parking', 'security')", ()),
    ([("type", "door_forced")], "type = 'door_forced'", ()),
    ([("state", "closed")], "state IN ('resolved', 'evaluated', 'closed', 'cancelled', 'false_alarm')", ()),
    ([("state", "open")], "state IN ('new', 'dispatched', 'accepted', 'in_progress', 'reopened')", ()),
    ([("state", "evaluated")], "state = 'evaluated'", ()),
    ([("building", "b03")], "building = 'b03'", ()),
    ([("grid", "g05")], "grid = 'g05'", ()),
    ([("compound", "c2")], "compound = 'c2'", ()),
    ([("assignee", "pm-c1-1")], "t.assignee = 'pm-c1-1'", ()),
    ([("sla_missed", "true")], SLA, ()),
    ([("sla_missed", "false")], f"NOT {SLA}", ()),
    ([("from_ms", MONTH[0]), ("to_ms", MONTH[1])], "first_ms >= ? AND first_ms < ?", MONTH),
    ([("q", "挪车")], NOTE, ("%挪车%",)),
    ([("q", "消防通道已")], NOTE, ("%消防通道已%",)),
    ([("q", "battery")], NOTE, ("%battery%",)),  # LIKE ignores ASCII case, as the search does
    (
        [("category", "security"), ("building", "b03"), ("state", "closed"), ("sla_missed", "true")],
        f"category = 'security' AND building = 'b03' AND state IN ('resolved', 'evaluated', 'closed',"
        f" 'cancelled', 'false_alarm') AND {SLA}",
        (),
    ),
    (
        [("q", "电池"), ("category", "device_health"), ("from_ms", MONTH[0])],
        f"{NOTE} AND category = 'device_health' AND first_ms >= ?",
        ("%电池%", MONTH[0]),
    ),
]


@pytest.mark.parametrize("params,sql,args", CASES, ids=[str(c[0]) for c in CASES])
def test_filter_total_equals_direct_sql_count(
    big: dict[str, Any], params: list[tuple[str, Any]], sql: str, args: tuple[Any, ...]
) -> None:
    expected = direct_count(big["db"], sql, args)
    page = _get(big, "installer", "/api/v1/history/incidents", [*params, ("total", "true"), ("limit", 100)])
    assert page["total"] == expected
    seqs = [i["created_seq"] for i in page["items"]] if page["items"] and "created_seq" in page["items"][0] else None
    ids = [i["id"] for i in page["items"]]
    assert len(ids) == min(100, expected)
    # the page is the newest matches: the same as the hand-written query's first 100
    with sqlite3.connect(f"file:{big['db']}?mode=ro", uri=True) as conn:
        want = [
            r[0]
            for r in conn.execute(
                "SELECT incidents.id FROM incidents LEFT JOIN tickets t ON t.incident_id = incidents.id"
                f" WHERE {sql} ORDER BY created_seq DESC LIMIT 100",
                args,
            )
        ]
    assert ids == want
    assert seqs is None or seqs == sorted(seqs, reverse=True)


def test_cursor_pages_hold_every_match_once(big: dict[str, Any]) -> None:
    params: list[tuple[str, Any]] = [("building", "b07"), ("category", "security"), ("limit", 37)]
    seen: list[str] = []
    cursor = None
    for _ in range(200):
        page = _get(big, "installer", "/api/v1/history/incidents", params + ([("cursor", cursor)] if cursor else []))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    with sqlite3.connect(f"file:{big['db']}?mode=ro", uri=True) as conn:
        want = {r[0] for r in conn.execute("SELECT id FROM incidents WHERE building='b07' AND category='security'")}
    assert len(seen) == len(set(seen)) == len(want) > 100
    assert set(seen) == want


def test_scoped_staff_search_sees_its_compound_and_no_personal_notes(big: dict[str, Any]) -> None:
    q = "已电话回访"  # written only on elder-care incidents' notes ... and others by chance
    expected = direct_count(big["db"], f"{NOTE} AND compound = 'c1' AND NOT {PERSONAL}", (f"%{q}%",))
    page = _get(big, "staff_c1", "/api/v1/history/incidents", [("q", q), ("total", "true"), ("limit", 200)])
    assert page["total"] == expected
    assert all(i["compound"] == "c1" and i["category"] != "eldercare" for i in page["items"])
    assert all(q in (i["match"] or "") for i in page["items"])
    # the elder-care worker finds the elder-care ones too
    all_q = direct_count(big["db"], NOTE, (f"%{q}%",))
    ec = _get(big, "eldercare", "/api/v1/history/incidents", [("q", q), ("total", "true"), ("limit", 1)])
    assert ec["total"] == all_q > expected
    # a building filter does not reveal where elder-care incidents were to staff
    with sqlite3.connect(f"file:{big['db']}?mode=ro", uri=True) as conn:
        home = conn.execute("SELECT building FROM incidents WHERE category = 'eldercare' LIMIT 1").fetchone()[0]
    params = [("building", home), ("category", "eldercare"), ("total", "true")]
    assert _get(big, "staff", "/api/v1/history/incidents", params)["total"] == 0
    assert _get(big, "eldercare", "/api/v1/history/incidents", params)["total"] > 0


def test_whole_timeline_of_an_old_incident_in_pages(big: dict[str, Any]) -> None:
    with sqlite3.connect(f"file:{big['db']}?mode=ro", uri=True) as conn:
        iid, n = conn.execute(
            "SELECT incident_id, count(*) c FROM incident_events e JOIN incidents i ON i.id = e.incident_id"
            " WHERE i.category = 'security' GROUP BY incident_id ORDER BY c DESC, incident_id LIMIT 1"
        ).fetchone()
        want = [r[0] for r in conn.execute("SELECT seq FROM incident_events WHERE incident_id=? ORDER BY seq", (iid,))]
    got: list[int] = []
    after = 0
    while True:
        page = _get(big, "installer", f"/api/v1/history/incidents/{iid}/timeline", [("after", after), ("limit", 2)])
        got += [e["seq"] for e in page["events"]]
        assert page["incident"]["id"] == iid
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert got == want and n >= 4


def test_bad_filters_are_refused(big: dict[str, Any]) -> None:
    with httpx.Client(base_url=big["srv"].base, headers={"Authorization": f"Bearer {big['installer']}"}) as c:
        assert c.get("/api/v1/history/incidents", params={"category": "nope"}).status_code == 422
        assert c.get("/api/v1/history/incidents", params={"q": "x" * 101}).status_code == 422
        assert c.get("/api/v1/history/incidents", params={"limit": 0}).status_code == 422
        assert c.get("/api/v1/history/incidents/none-such/timeline").status_code == 404
        assert httpx.get(f"{big['srv'].base}/api/v1/history/incidents").status_code == 401


# --- exports (the property company's monthly report) ---------------------------------------------


def _export(big: dict[str, Any], token: str, path: str, params: list[tuple[str, Any]]) -> httpx.Response:
    with big["srv"].client(big[token], timeout=120) as c:
        r = c.get(path, params=params)
    assert r.status_code == 200, r.text
    return r


def _sheet(data: bytes) -> list[tuple[Any, ...]]:
    import io

    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(data), read_only=True)
    return [tuple(r) for r in wb.worksheets[0].iter_rows(values_only=True)]


def test_xlsx_export_reads_back_with_the_filters_rows_and_chinese_headers(big: dict[str, Any]) -> None:
    params: list[tuple[str, Any]] = [("category", "parking"), ("from_ms", MONTH[0]), ("to_ms", MONTH[1])]
    before = big["srv"].read("SELECT count(*) FROM access_log WHERE reason = 'export'")[0][0]
    r = _export(big, "staff", "/api/v1/reports/incidents.xlsx", params)
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    rows = _sheet(r.content)
    assert rows[0][:6] == ("编号", "类别", "类型", "级别", "状态", "小区")
    want = direct_count(big["db"], "category = 'parking' AND first_ms >= ? AND first_ms < ?", MONTH)
    assert len(rows) - 1 == want > 1000
    assert {row[1] for row in rows[1:]} == {"停车"}
    # the export is in the access log: who, which report, the filter and how many rows
    log = big["srv"].read("SELECT role, via, fields FROM access_log WHERE reason = 'export' ORDER BY id")
    assert len(log) == before + 1
    role, via, fields = log[-1]
    assert (role, via) == ("property_staff", "incidents.xlsx")
    assert f"rows={want}" in fields and "parking" in fields


def test_property_staff_export_holds_no_personal_field(big: dict[str, Any]) -> None:
    cfg = big["srv"].cfg
    names = {r.name for r in cfg.residents}
    rooms = {r.room for r in cfg.residents if r.room}
    params: list[tuple[str, Any]] = [("category", "eldercare"), ("from_ms", NOW - 20 * DAY_MS)]
    staff = _sheet(_export(big, "staff", "/api/v1/reports/incidents.xlsx", params).content)
    head = staff[0]
    assert "居民" not in head and "房号" not in head
    assert len(staff) > 10
    b, u, notes = head.index("楼栋"), head.index("单元"), head.index("处理说明")
    for row in staff[1:]:
        assert row[b] is None and row[u] is None and not row[notes]
        assert not ({c for c in row if isinstance(c, str)} & (names | rooms))  # text cells: a figure may be 101
    # the elder-care worker's export names the residents, and each release is logged
    ec = _sheet(_export(big, "eldercare", "/api/v1/reports/incidents.xlsx", params).content)
    assert "居民" in ec[0] and len(ec) == len(staff)
    assert {row[ec[0].index("居民")] for row in ec[1:]} <= names
    me = _get(big, "eldercare", "/api/v1/me", [])
    logged = {
        r[0]
        for r in big["srv"].read(
            "SELECT incident_id FROM access_log WHERE token_id = ? AND reason = 'personal_view'", (me["token_id"],)
        )
    }
    # every exported incident's release is in the log (once per 5 minutes: an earlier list view counts)
    assert {row[0] for row in ec[1:]} <= logged


def test_csv_export_and_english_headers(big: dict[str, Any]) -> None:
    params: list[tuple[str, Any]] = [("type", "door_forced"), ("sla_missed", "true"), ("lang", "en")]
    r = _export(big, "installer", "/api/v1/reports/incidents.csv", params)
    text = r.content.decode("utf-8")
    assert text.startswith("\ufeffId,Category,Type")
    lines = text[1:].strip().split("\r\n")
    assert len(lines) - 1 == direct_count(big["db"], f"type = 'door_forced' AND {SLA}")
    assert "Resident" in lines[0]  # the installer may see residents


def test_department_may_not_export(big: dict[str, Any]) -> None:
    dept = big["srv"].token("department", name="dept-fire")
    with big["srv"].client(dept) as c:
        assert c.get("/api/v1/reports/incidents.xlsx").status_code == 403
        assert c.get("/api/v1/reports/scorecard.xlsx").status_code == 403


def test_scorecard_xlsx_matches_the_scorecard(big: dict[str, Any]) -> None:
    t = time.localtime(NOW / 1000)
    period = f"{t.tm_year}-Q{(t.tm_mon - 1) // 3 + 1}"
    card = _get(big, "staff", "/api/v1/scorecard", [("period", period)])
    rows = _sheet(_export(big, "staff", "/api/v1/reports/scorecard.xlsx", [("period", period)]).content)
    assert rows[0][:3] == ("对象类别", "名称", "派单数")
    assert len(rows) - 1 == len(card["rows"])
    by_name = {r["name"]: r for r in card["rows"]}
    for row in rows[1:]:
        assert row[2] == by_name[row[1]]["assignments"]
