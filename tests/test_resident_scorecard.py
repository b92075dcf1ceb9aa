"""Owner evaluation from the residents, by hand: resident-link and proxy ratings weighted 1.0 / 0.5,
no-response counted apart (never as a rating), the response rate per compound, the low_response
flag; and the early warnings with the figures behind them. Numbers below are worked out by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from gateway.residents import evaluation, sender, warnings
from gateway.residents.stage import ResidentStage
from gateway.tickets.scorecard import compute
from tests.tickets_harness import T0, TicketHarness

TZ = dt.timezone(dt.timedelta(hours=8))
COMPANY = "和苑物业"
DAY = 86_400
RESIDENT_LOOP = """
resident_loop:
  enabled: true
  base_url: "https://gw.example"
  evaluation:
    no_response_days: 7
    unit_contacts: [{building: b1, unit: u1, phone: "13900000002"}]
    common_areas: [{building: b1, units: [b1/u1]}]
"""


class ResidentHarness(TicketHarness):
    def open(self) -> None:
        super().open()
        self.residents = ResidentStage(self.cfg)
        self.pipeline.stages.append(self.residents)


def handled(h: ResidentHarness, at: float) -> str:
    """A security incident at b1 (a common area: unit b1/u1's contact evaluates), accepted after 60 s
    and resolved after 600 s by ps1 of duty1."""
    h.at(at)
    iid = str(h.manual(category="security", location={"building": "b1"})["id"])
    h.at(at + 60)
    h.act(iid, "accept", actor="ps1", role="property_staff")
    h.at(at + 600)
    h.act(iid, "resolve", actor="ps1", role="property_staff", data={"what_done": "已处理"})
    return iid


def by_resident(h: ResidentHarness, iid: str, rating: int, *, solved: bool = True) -> dict[str, Any]:
    req = h.store.conn.execute(
        "SELECT id FROM evaluation_requests WHERE incident_id=? AND status='pending'", (iid,)
    ).fetchone()[0]
    token = h.call(lambda c, r, now: sender.mint(c, h.cfg, req, now))[0]
    ctx = h.residents.ctx
    return h.call(  # type: ignore[no-any-return]
        lambda c, r, now: evaluation.submit(c, r, ctx, token, solved=solved, rating=rating, comment=None, now_ms=now)
    )


def by_phone(h: ResidentHarness, iid: str, rating: int) -> None:
    h.act(iid, "evaluate", actor="gw1", role="grid_worker", data={"rating": rating, "comment": "电话回访"})


def seconds(when: dt.datetime) -> float:
    return (when.timestamp() * 1000 - T0) / 1000


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Any:
    h = ResidentHarness(tmp_path_factory.mktemp("resident-score"), extra=RESIDENT_LOOP)
    # Q1 (from 2 March): A resident 5, B proxy 5, C no response, D resident 1 and not solved ->
    # reopened -> D2 no response
    a = handled(h, 0)
    by_resident(h, a, 5)
    b = handled(h, 1000)
    by_phone(h, b, 5)
    handled(h, 2000)  # C
    d = handled(h, 3000)
    assert by_resident(h, d, 1, solved=False)["reopened"]
    h.at(3700)
    h.act(d, "accept", actor="ps1", role="property_staff")
    h.at(3800)
    h.act(d, "resolve", actor="ps1", role="property_staff", data={"what_done": "换灯"})
    h.at(8 * DAY)  # 7 days without an answer for C and D2
    # Q2 (April): E resident 5; F, G, H, I no response -> 1 of 5 answered
    april = seconds(dt.datetime(2026, 4, 6, 9, 0, tzinfo=TZ))
    e = handled(h, april)
    by_resident(h, e, 5)
    for n in range(4):
        handled(h, april + 1000 * (n + 1))
    h.at(april + 9 * DAY)
    yield h
    h.close()


def row(card: Any, kind: str, entity: str) -> dict[str, Any]:
    return next(r for r in card.rows if r["kind"] == kind and r["entity"] == entity)


def test_no_response_is_recorded_not_rated(h: ResidentHarness) -> None:
    n = h.store.conn.execute(
        "SELECT count(*) FROM incident_events WHERE kind='not_rated' AND json_extract(data, '$.reason')='no_response'"
    ).fetchone()[0]
    assert n == 6  # C, D2, F, G, H, I
    statuses = dict(h.store.conn.execute("SELECT status, count(*) FROM evaluation_requests GROUP BY status"))
    assert statuses == {"answered": 4, "no_response": 6}  # A, B (by phone), D, E answered
    assert h.store.conn.execute("SELECT count(*) FROM evaluation_requests WHERE phone IS NOT NULL").fetchone()[0] == 0


def test_quarter_mix_by_hand(h: ResidentHarness) -> None:
    card = compute(h.store.conn, h.cfg, "2026-Q1")
    for r in (row(card, "property_company", COMPANY), row(card, "compound", "cp1"), row(card, "team", "duty1")):
        assert r["assignments"] == 5  # A, B, C, D, D2
        assert r["ratings_by_source"] == {"resident_link": 2, "proxy_call": 1, "no_response": 2, "unanswered_other": 0}
        assert r["rated"] == 3 and r["evaluations_due"] == 5
        assert r["response_rate_pct"] == pytest.approx(60.0)  # 3 of 5
        # (5 x 1.0 + 5 x 0.5 + 1 x 1.0) / (1.0 + 0.5 + 1.0) = 8.5 / 2.5 = 3.4 (unweighted it would be 11/3)
        assert r["rating_mean"] == pytest.approx(3.4)
        assert r["owner_evaluation"] == pytest.approx(60.0)  # (3.4 - 1) / 4 x 100
        assert r["sla_pct"] == 100.0 and r["reopen_rate_pct"] == pytest.approx(20.0)  # D of 5 resolved
        assert r["complaint_handling"] == pytest.approx(0.7 * 100 + 0.3 * 80)  # 94
        assert not r["low_response"] and r["owner_evaluation_scored"]
        assert r["score"] == pytest.approx((94 + 60) / 2)  # 77
    assert row(card, "compound", "cp1")["name"] == "和苑小区"


def test_low_response_is_flagged_not_scored(h: ResidentHarness) -> None:
    card = compute(h.store.conn, h.cfg, "2026-Q2")
    r = row(card, "compound", "cp1")
    assert r["ratings_by_source"] == {"resident_link": 1, "proxy_call": 0, "no_response": 4, "unanswered_other": 0}
    assert r["response_rate_pct"] == pytest.approx(20.0)  # below min_response_pct 30
    assert r["owner_evaluation"] == pytest.approx(100.0)  # one 5-star answer ...
    assert r["low_response"] and not r["owner_evaluation_scored"] and "low_response" in r["flags"]
    assert r["score"] == pytest.approx(100.0)  # ... is not scored: complaint handling alone (SLA 100 %)
    table = card.to_table()
    assert "resp%" in table and "1/0/4" in table


def test_early_warnings_with_their_figures(tmp_path: Path) -> None:
    h = ResidentHarness(tmp_path, extra=RESIDENT_LOOP)
    try:
        # three incidents at b1 nobody accepts (accept deadline 300 s): repeated, unaccepted, projected < 60
        for n in range(3):
            h.at(n * 100)
            h.manual(category="security", location={"building": "b1"}, type="door_broken")
        h.at(2 * DAY)
        now = h.clock.wall_ms
        got = warnings.compute(h.store.conn, h.cfg, now)
        kinds = {w["kind"]: w for w in got.values()}
        assert set(kinds) == {"repeated_incidents", "unaccepted_rising", "projected_score"}
        rep = kinds["repeated_incidents"]["figures"]
        assert (rep["type"], rep["place"], rep["count"], rep["within_days"]) == ("door_broken", "b1", 3, 14)
        una = kinds["unaccepted_rising"]["figures"]
        assert (una["missed_accept"], una["previous_window"]) == (3, 0)
        proj = kinds["projected_score"]["figures"]
        assert proj["score"] == 0.0 and proj["complaint_handling"] == 0.0 and proj["assignments"] == 3
        assert all(w["compound"] == "cp1" for w in got.values())
        assert h.call(lambda c, r, n: warnings.publish(c, n, got)) == (3, 0)
        assert h.call(lambda c, r, n: warnings.publish(c, n, got)) == (0, 0)  # nothing new: nothing appended
        later = warnings.compute(h.store.conn, h.cfg, now + 30 * DAY * 1000)
        assert "repeated_incidents" not in {w["kind"] for w in later.values()}, later
        _raised, cleared_n = h.call(lambda c, r, n: warnings.publish(c, n, later))
        assert cleared_n >= 2  # the repeat and the rising misses are over
        feed = warnings.feed(h.store.conn, 0, 100)["items"]
        assert [(i["kind"], i["state"]) for i in feed][:3] == [(k, "raised") for k in got_kinds(got)]
    finally:
        h.close()


def got_kinds(got: dict[str, Any]) -> list[str]:
    return [w["kind"] for w in got.values()]


def test_reporter_phones_and_old_links_are_swept(tmp_path: Path) -> None:
    from gateway.core import links

    h = ResidentHarness(tmp_path, extra=RESIDENT_LOOP)
    try:
        conn = h.store.conn
        old = h.call(
            lambda c, r, now: links.issue(c, "report", {"building": "b1"}, ttl_s=60, single_use=False, now_ms=now)
        )
        h.call(
            lambda c, r, now: c.executemany(
                "INSERT INTO resident_reports(received_ms, qr, building, type, description, phone)"
                " VALUES (?,?,?,?,?,?)",
                [(now - 91 * DAY * 1000, "q", "b1", "noise", "旧", "13700000001"),
                 (now - 10 * DAY * 1000, "q", "b1", "noise", "新", "13700000002")],
            )
        )  # fmt: skip
        h.residents._next_sweep = 0.0
        h.at(40 * DAY)  # the sweep runs on a tick; the link expired 40 days ago
        phones = [r[0] for r in conn.execute("SELECT phone FROM resident_reports ORDER BY id")]
        assert phones == [None, "13700000002"]  # 90 days (report.phone_days) for the first, not yet the second
        with pytest.raises(links.LinkRefused) as err:
            links.verify(conn, old, "report", now_ms=h.clock.wall_ms)
        assert err.value.code in ("link_unknown", "link_expired")
        assert conn.execute("SELECT count(*) FROM signed_links").fetchone()[0] == 0
    finally:
        h.close()
