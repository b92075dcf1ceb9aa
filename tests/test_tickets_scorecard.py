"""The scorecard against a hand-computed fixture (numbers below are worked out by hand)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from gateway import cli
from gateway.tickets import lifecycle as lc
from gateway.tickets.scorecard import compute, parse_period, percentile, previous_period
from gateway.tickets.service import set_scorecard_input
from tests.tickets_harness import T0, TicketHarness

TZ = dt.timezone(dt.timedelta(hours=8))
COMPANY = "和苑物业"


def security(h: TicketHarness, at: int) -> str:
    h.at(at)
    return str(h.manual(category="security", location={"building": "b1"})["id"])


def act(h: TicketHarness, at: int, iid: str, action: str, **kw: Any) -> None:
    h.at(at)
    if action in ("accept", "start", "resolve"):
        h.act(iid, action, actor="ps1", role="property_staff", **kw)
    else:
        h.act(iid, action, actor="co1", role="community_office", **kw)


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Security SLA here: accept 300 s, on site 1200 s, resolve 7200 s. All assigned to ps1 (team duty1)."""
    h = TicketHarness(tmp_path_factory.mktemp("score"))
    a = security(h, 0)  # A: accepted after 60 s, resolved after 600 s, rated 5
    act(h, 60, a, "accept")
    act(h, 600, a, "resolve", data={"what_done": "修好门禁"})
    act(h, 700, a, "evaluate", data={"rating": 5})
    b = security(h, 1000)  # B1: accepted after 240 s, resolved after 1100 s, rated 2 -> reopened
    act(h, 1240, b, "accept")
    act(h, 2100, b, "resolve", data={"what_done": "已处理"})
    act(h, 2200, b, "evaluate", data={"rating": 2})  # B2 dispatched at 2200
    act(h, 2260, b, "accept")  # 60 s
    act(h, 2500, b, "resolve", data={"what_done": "换锁"})  # 300 s
    act(h, 2600, b, "evaluate", data={"rating": 4})
    c = security(h, 3000)  # C: accept deadline (300 s) missed -> sla_missed + 1 escalation
    h.at(3350)
    act(h, 3400, c, "accept")  # 400 s
    act(h, 4000, c, "resolve", data={"what_done": "已巡查"})  # 1000 s
    act(h, 4100, c, "close")  # not rated
    # D: 2026-04-01 07:00 local = 2026-03-31 23:00 UTC: April / Q2 in the site's time zone
    d_at = int(dt.datetime(2026, 4, 1, 7, 0, tzinfo=TZ).timestamp() * 1000)
    h.at((d_at - T0) / 1000)
    h.manual(category="security", location={"building": "b2"})
    yield h
    h.close()


def row(card: Any, kind: str, entity: str) -> dict[str, Any]:
    return next(r for r in card.rows if r["kind"] == kind and r["entity"] == entity)


def test_quarter_by_hand(h: TicketHarness) -> None:
    card = compute(h.store.conn, h.cfg, "2026-Q1")
    for r in (row(card, "property_company", COMPANY), row(card, "team", "duty1")):
        assert r["assignments"] == 4  # A, B1, B2, C (D is in Q2)
        assert (r["accept_p50_s"], r["accept_p90_s"]) == (60, 400)  # sorted 60 60 240 400; ranks 2 and 4
        assert (r["resolve_p50_s"], r["resolve_p90_s"]) == (600, 1100)  # sorted 300 600 1000 1100
        assert r["sla_pct"] == 75.0  # C missed
        assert r["escalations"] == 1
        assert r["reopen_rate_pct"] == 25.0  # B1 of 4 resolved
        assert r["rating_mean"] == pytest.approx(11 / 3)  # 5, 2, 4
        assert r["complaint_handling"] == pytest.approx(0.7 * 75 + 0.3 * 75)
        assert r["owner_evaluation"] == pytest.approx((11 / 3 - 1) / 4 * 100)  # 66.67
        assert r["score"] == pytest.approx((75 + 200 / 3) / 2)  # 70.83: two items present
        assert r["flags"] == [] and not r["summoned"]
    april = compute(h.store.conn, h.cfg, "2026-04")
    assert row(april, "property_company", COMPANY)["assignments"] == 1


def test_central_items_cards_and_year(h: TicketHarness) -> None:
    def enter(period: str, item: str, value: float) -> None:
        h.call(
            lambda c, r, now: set_scorecard_input(
                c, entity_kind="property_company", entity=COMPANY, period=period, item=item, value=value,
                actor="district", role="central_platform", now_ms=now,
            )
        )  # fmt: skip

    enter("2026-Q1", "contract_fulfilment", 40)
    enter("2026-Q1", "on_site_inspection", 50)
    card = compute(h.store.conn, h.cfg, "2026-Q1")
    r = row(card, "property_company", COMPANY)
    assert r["score"] == pytest.approx((40 + 75 + 50 + 200 / 3) / 4)  # 57.92
    assert r["summoned"] and r["yellow_card"] and not r["red_card"] and r["flags"] == ["summoned", "yellow"]
    assert row(card, "team", "duty1")["score"] == pytest.approx((75 + 200 / 3) / 2)  # inputs were for the company
    enter("2025-Q4", "contract_fulfilment", 30)  # Q4 2025 scored 30: a yellow card too
    r = row(compute(h.store.conn, h.cfg, "2026-Q1"), "property_company", COMPANY)
    assert r["red_card"] and "RED" in r["flags"]
    year = row(compute(h.store.conn, h.cfg, "2026"), "property_company", COMPANY)
    q1 = (40 + 75 + 50 + 200 / 3) / 4
    assert year["quarters"][0] == pytest.approx(q1) and year["quarters"][2:] == [None, None]
    # Q2: only D, dispatched and not yet late: SLA 100 %, nothing resolved or rated -> complaint handling 100
    assert year["quarters"][1] == pytest.approx(100.0)
    assert year["score"] == pytest.approx((q1 + 100.0) / 2)  # mean of the quarters that have a score
    with pytest.raises(lc.TicketError):
        h.call(
            lambda c, r, now: set_scorecard_input(
                c, entity_kind="property_company", entity=COMPANY, period="2026-Q1", item="complaint_handling",
                value=1, actor="x", role="central_platform", now_ms=now,
            )
        )  # fmt: skip


def test_cli_prints_the_table(h: TicketHarness, capsys: pytest.CaptureFixture[str]) -> None:
    assert h.cfg.source_path is not None
    rc = cli.main(["scorecard", "--config", str(h.cfg.source_path), "--period", "2026-03", "--store", str(h.db)])
    out = capsys.readouterr().out
    assert rc == 0 and "scorecard 2026-03" in out and COMPANY in out and "70.8" in out
    assert cli.main(["scorecard", "--config", str(h.cfg.source_path), "--period", "2026-13"]) == 2


def test_periods_and_percentiles() -> None:
    assert parse_period("2026-Q4") == ("quarter", 2026, 4) and parse_period("2026-03") == ("month", 2026, 3)
    assert previous_period("2026-Q1") == "2025-Q4" and previous_period("2026-01") == "2025-12"
    assert (
        percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile([5, 1, 3, 2, 4], 0.9) == 5 and percentile([], 0.5) is None
    )
