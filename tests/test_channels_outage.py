"""A robot down for 60 s, with the default channel configuration: nothing is lost.

The DingTalk robot ``care`` is the elder-care group (``broadcast: true``) and the elder-care
worker's own channel; it answers HTTP 500 for the first 60 s. Meanwhile an SOS, two ordinary
elder-care incidents and a critical fall arrive. Real store, pipeline, ticket loop and dispatcher,
real local receivers; the clock is the harness's (time is stepped, the receivers fail by it).

Expected: the worker's SOS goes on to SMS at the first failure (a person's critical message falls
back fast); the group's copies wait — the robot gets one request per hold, not one per message —
and after the robot answers again every incident reaches the group, alarms first, each class in
the order it was raised; no row is abandoned or left pending; the channel's health incident opens
during the outage (with the number of waiting messages) and is cleared after.
"""

from __future__ import annotations

from pathlib import Path

from edge_config import load_config
from gateway.channels.delivery import ChannelDispatcher
from tests.channels_receivers import DingtalkReceiver, SmsReceiver, WecomReceiver, write_channel_site
from tests.rules_harness import T0, Harness
from tests.tickets_harness import TicketHarness

ENV = {"WK": "wk-out", "DT": "dt-care", "DS": "SECcare", "SMS_AUTH": "Bearer sms"}
DOWN_S = 60


def test_robot_down_60s_everything_delivered_after_recovery_in_order(tmp_path: Path) -> None:
    wecom = WecomReceiver(ENV["WK"])
    care = DingtalkReceiver(ENV["DT"], ENV["DS"])
    sms = SmsReceiver(ENV["SMS_AUTH"])
    channels = f"""\
channels:
  console_base_url: "https://gw.example.cn:8443"
  wecom:
    - {{name: duty, base_url: "{wecom.base_url}", key: "${{WK}}", broadcast: true, categories: [security]}}
  dingtalk:
    - {{name: care, base_url: "{care.base_url}", access_token: "${{DT}}", secret: "${{DS}}", broadcast: true,
       elder_care: true, categories: [eldercare]}}
  sms: {{url: "{sms.base_url}/sms", voice_url: "{sms.base_url}/voice", auth_header: "${{SMS_AUTH}}",
        ok_field: code, ok_value: 0}}
"""
    cfg = load_config(write_channel_site(tmp_path, channels=channels), env=ENV)
    h = TicketHarness.__new__(TicketHarness)
    h.synced = True
    Harness.__init__(h, tmp_path, cfg=cfg)

    def call(fn: object) -> object:
        fut = h.pipeline.call(fn)  # type: ignore[arg-type]
        h.pipeline.run_once()
        return fut

    disp = ChannelDispatcher(h.db, cfg, call=call, incidents=h.ctx.incidents, clock=h.clock.wall)  # type: ignore[arg-type]
    care.fail = lambda n: (500, {"errcode": -1, "errmsg": "down"}) if h.clock.wall_ms < T0 + DOWN_S * 1000 else None
    raised: dict[str, int] = {}
    recovered_at: float | None = None
    try:
        t = 0.0
        while t <= 200:
            h.at(t)
            if t == 1:
                h.send("sos-r1", "sos")
                raised["sos1"] = h.clock.wall_ms
            if t == 10:
                raised["inactivity"] = h.clock.wall_ms
                h.manual(category="eldercare", type="inactivity", severity="major", location={"resident": "r2"})
            if t == 25:
                raised["wandering"] = h.clock.wall_ms
                h.manual(category="eldercare", type="wandering", severity="major", location={"resident": "r2"})
            if t == 45:
                raised["fall"] = h.clock.wall_ms
                h.manual(category="eldercare", type="fall", severity="critical", location={"resident": "r1"})
            while disp.run_once():
                pass
            if recovered_at is None and care.delivered():
                recovered_at = t
            t += 0.5
        ids = {i["type"]: i["id"] for i in h.incidents()}
        rows = h.store.conn.execute(
            "SELECT id, incident_id, channel, target, person, status, attempts, fallback_of FROM channel_deliveries"
        ).fetchall()
        health = [i for i in h.incidents() if i["type"] == "notify_channel_failed"]
        health_kinds = [e["kind"] for e in h.timeline(health[0]["id"])] if health else []
    finally:
        h.close()
        for rx in (wecom, care, sms):
            rx.close()
    failed_requests = [x for x in care.hits if x.status == 500]
    ok = care.delivered()
    print(f"robot down {DOWN_S} s: {len(failed_requests)} requests while down; first delivery at t={recovered_at} s;"
          f" then {[x.title for x in ok]}")  # fmt: skip
    # the robot was held as a whole: a handful of requests in 60 s, not one per message and retry
    assert 3 <= len(failed_requests) <= 12
    assert recovered_at is not None and DOWN_S <= recovered_at <= DOWN_S + cfg.channels.retry_max_s + 1
    # every incident reached the group after the recovery
    text = " ".join(x.text for x in ok)
    for typ in ("sos", "inactivity", "wandering", "fall"):
        assert ids[typ] in text, typ
    # in order: the alarms first (SOS, then the fall, as raised), then the ordinary ones as raised
    first_seen = [min(n for n, x in enumerate(ok) if ids[typ] in x.text) for typ in ("sos", "fall")]
    ordinary = [min(n for n, x in enumerate(ok) if ids[typ] in x.text) for typ in ("inactivity", "wandering")]
    assert first_seen[0] <= first_seen[1] < min(ordinary) and ordinary[0] <= ordinary[1]
    # nothing lost: every row sent, or (a person's) gone on to a next channel that was sent
    status = {r[0]: r[5] for r in rows}
    for r in rows:
        assert r[5] in ("sent", "failed"), r
        if r[5] == "failed":
            assert r[4] is not None  # only a person's row goes on
            nxt = [x for x in rows if x[7] == r[0]]
            assert nxt and status[nxt[0][0]] == "sent", r
    # the elder-care worker's SOS went on to SMS at the first failure
    worker = next(r for r in rows if r[1] == ids["sos"] and r[2] == "dingtalk" and r[4] is not None)
    assert worker[5] == "failed" and worker[6] == 1
    assert any(x.body["to"] == "13900000001" and "紧急呼叫" in x.body["text"] for x in sms.ok_hits())
    # the health view: opened during the outage with the waiting messages counted, cleared after
    assert len(health) == 1 and health[0]["detail"]["waiting"] >= 2
    assert "auto_cleared" in health_kinds and "notify_abandoned" not in health_kinds
