"""Staff channels end to end on the ticket harness, against real local WeCom / DingTalk / SMS receivers.

The dispatcher is driven step by step (``run_once``) with the harness clock; its writes go through
the real Pipeline.call. Formats, signatures, errcodes and rate limits are checked by the receivers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_config import load_config
from gateway.channels.delivery import ChannelDispatcher
from tests.channels_receivers import DingtalkReceiver, SmsReceiver, WecomReceiver, write_channel_site
from tests.rules_harness import Harness
from tests.tickets_harness import TicketHarness

WECOM_KEY = "wk-693a91f0-1b2c"
DING_TOKEN = "dt-9f8e7d6c5b4a"
DING_SECRET = "SEC0123456789abcdef0123456789abcdef"
SMS_AUTH = "Bearer sms-test-token"


class Receivers:
    def __init__(self) -> None:
        self.wecom = WecomReceiver(WECOM_KEY)
        self.ding = DingtalkReceiver(DING_TOKEN, DING_SECRET, keyword="告警")
        self.sms = SmsReceiver(SMS_AUTH)

    def close(self) -> None:
        for r in (self.wecom, self.ding, self.sms):
            r.close()


@pytest.fixture
def rx() -> Iterator[Receivers]:
    r = Receivers()
    yield r
    r.close()


def channels_yaml(rx: Receivers, *, wecom_key_env: str = "WECOM_KEY", extra: str = "", grouping: str = "") -> str:
    return f"""\
channels:
  console_base_url: "https://gw.example.cn:8443"
  retry_min_s: 0.01
  retry_max_s: 0.05
  max_attempts: 3
  health_after_failures: 3
  grouping:
    group_wait_s: 0
    group_interval_s: 0
{grouping}
  wecom:
    - {{name: duty, base_url: "{rx.wecom.base_url}", key: "${{{wecom_key_env}}}", broadcast: true,
       categories: [parking, security, eldercare]}}
  dingtalk:
    - {{name: care, base_url: "{rx.ding.base_url}", access_token: "${{DING_TOKEN}}", secret: "${{DING_SECRET}}",
       keyword: 告警, elder_care: true, categories: [eldercare]}}
  sms:
    url: "{rx.sms.base_url}/sms"
    voice_url: "{rx.sms.base_url}/voice"
    auth_header: "${{SMS_AUTH}}"
    ok_field: code
    ok_value: 0
{extra}"""


ENV = {"WECOM_KEY": WECOM_KEY, "BAD_KEY": "not-the-key", "DING_TOKEN": DING_TOKEN, "DING_SECRET": DING_SECRET,
       "SMS_AUTH": SMS_AUTH}  # fmt: skip


class ChannelHarness(TicketHarness):
    def __init__(self, directory: Path, channels: str) -> None:
        self.synced = True
        cfg = load_config(write_channel_site(directory, channels=channels), env=ENV)
        Harness.__init__(self, directory, cfg=cfg)
        self.disp = ChannelDispatcher(self.db, self.cfg, call=self._call, incidents=self.ctx.incidents,
                                      clock=self.clock.wall, rng=lambda: 0.0)  # fmt: skip

    def _call(self, fn: Any) -> Any:
        fut = self.pipeline.call(fn)
        self.pipeline.run_once()
        return fut

    def drain(self, max_steps: int = 50) -> int:
        n = 0
        for _ in range(max_steps):
            if self.disp.run_once() == 0:
                break
            n += 1
        return n

    def rows(self) -> list[tuple[Any, ...]]:
        return self.store.conn.execute(
            "SELECT id, incident_id, event, channel, target, person, status, attempts, fallback_of, next_ms"
            " FROM channel_deliveries ORDER BY id"
        ).fetchall()

    def attempts(self, iid: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.timeline(iid) if e["kind"] == "notify_attempt" and "channel" in e["data"]]


def test_sos_reaches_the_care_group_signed_with_personal_details_only_there(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx))
    h.send("sos-r1", "sos")
    iid = h.incidents()[-1]["id"]
    rows = h.rows()
    # the elder-care worker's first channel (DingTalk care group) + SMS to the on-duty phone (critical),
    # and the WeCom duty group's broadcast; all in the SOS's own transaction
    assert {(r[3], r[4]) for r in rows} == {("dingtalk", "care"), ("sms", "13900000001"), ("wecom", "duty")}
    assert h.drain() == 3
    ding = rx.ding.delivered()
    assert len(ding) == 1 and not [x for x in rx.ding.hits if not x.ok]  # the receiver verified sign + keyword
    md = ding[0].body["markdown"]
    assert ding[0].body["msgtype"] == "markdown" and ding[0].body["at"]["atMobiles"] == ["13900000001"]
    assert "紧急呼叫" in md["title"] and "紧急" in md["title"]
    for part in ("和苑小区", "1号楼", "1单元", "张阿姨", "03-02 10:00", "https://gw.example.cn:8443/#incident=" + iid):
        assert part in md["text"], part
    assert "@13900000001" in md["text"] and "告警" in md["text"]
    wc = rx.wecom.delivered()
    assert len(wc) == 1 and wc[0].body["msgtype"] == "markdown"
    assert "张阿姨" not in wc[0].text and "1号楼" in wc[0].text  # not an elder-care group: no name
    sms = rx.sms.ok_hits()
    assert len(sms) == 1 and sms[0].path == "/sms" and sms[0].body["to"] == "13900000001"
    assert "张阿姨" not in sms[0].body["text"] and len(sms[0].body["text"]) <= 70
    att = h.attempts(iid)
    assert {(a["channel"], a["ok"], a["result"]) for a in att} == {
        ("dingtalk", True, "ok"),
        ("wecom", True, "ok"),
        ("sms", True, "ok"),
    }
    assert {a["target"] for a in att} == {"care", "duty", "139****0001"}  # phones shortened on the timeline
    rel = h.store.conn.execute("SELECT recipient, channel, fields FROM personal_releases WHERE channel='dingtalk'")
    assert [(r[0], r[1], sorted(json.loads(r[2]))) for r in rel] == [("care", "dingtalk", ["name"])]
    h.close()


def test_wrong_key_is_not_retried_falls_back_and_raises_health(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx, wecom_key_env="BAD_KEY"))
    iid = h.manual(category="security", type="door_forced", severity="major", location={"building": "b1"})["id"]
    # the person's row and the group's broadcast: two rows, one message
    assert [(r[3], r[4], r[5]) for r in h.rows() if r[1] == iid] == [("wecom", "duty", "ps1"), ("wecom", "duty", None)]
    h.drain()
    # 93000 = the key is wrong: one attempt only, then the person's next channel (SMS) at once
    assert {x.reply["errcode"] for x in rx.wecom.hits} == {93000} and len(rx.wecom.hits) == 1
    assert len([a for a in h.attempts(iid) if a["channel"] == "wecom"]) == 1
    rows = [r for r in h.rows() if r[1] == iid]
    assert [(r[3], r[5], r[6], r[7]) for r in rows] == [
        ("wecom", "ps1", "failed", 1),
        ("wecom", None, "pending", 1),  # the group's message waits for the robot (a fixed key, a reload)
        ("sms", "ps1", "sent", 1),
    ]
    assert rows[2][8] == rows[0][0]  # fallback_of
    assert rows[1][9] >= h.clock.wall_ms + 50  # held for retry_max_s: wrong credentials are not hammered
    att = h.attempts(iid)
    assert att[0]["result"] == "auth" and att[0]["errcode"] == 93000 and att[0]["gave_up"] is True
    assert att[0]["fallback_to"] == "sms:138****0001" and att[1]["ok"] is True
    assert [x.body["to"] for x in rx.sms.ok_hits()] == ["13800000001"]
    health = [i for i in h.incidents() if i["type"] == "notify_channel_failed"]
    assert len(health) == 1 and health[0]["category"] == "device_health"
    assert health[0]["detail"]["channel"] == "wecom" and health[0]["detail"]["errcode"] == 93000
    assert health[0]["detail"]["waiting"] == 1  # counted: the group's message
    assert "not-the-key" not in json.dumps(health[0], ensure_ascii=False)
    assert h.incident(health[0]["id"])["ticket"]["assignee"] == "mt1"  # the loop dispatched it to maintenance
    h.close()


def test_transient_failures_are_retried_with_backoff_then_recover(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx))
    rx.wecom.fail = lambda n: {0: (500, {}), 1: (200, {"errcode": -1, "errmsg": "system busy"})}.get(n)
    iid = h.manual(category="security", type="door_forced", severity="major", location={"building": "b1"})["id"]
    for _ in range(3):
        h.drain()
        h.clock.set(h.clock.wall_ms + 100)  # past the (test-sized) backoff
    assert [x.status for x in rx.wecom.hits] == [500, 200, 200] and rx.wecom.hits[-1].ok
    att = [a for a in h.attempts(iid) if a["channel"] == "wecom"]
    assert [(a["attempt"], a["ok"], a["result"]) for a in att] == [(1, False, "transient"), (2, False, "transient"),
                                                                   (3, True, "ok")]  # fmt: skip
    assert att[0]["status"] == 500 and 0 < att[0]["retry_in_s"] <= 0.05 and att[1]["errcode"] == -1
    assert not rx.sms.hits  # no fallback needed
    assert not [i for i in h.incidents() if i["type"] == "notify_channel_failed"]
    h.close()


def test_persistent_failure_falls_back_after_max_attempts_and_raises_health(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx))
    rx.wecom.fail = lambda n: (502, {})
    iid = h.manual(category="security", type="door_forced", severity="major", location={"building": "b1"})["id"]
    for _ in range(5):
        h.drain()
        h.clock.set(h.clock.wall_ms + 100)
    att = h.attempts(iid)
    wc = [a for a in att if a["channel"] == "wecom"]
    # one request per hold (the robot is held, not each row retried on its own); the person's row goes
    # on to SMS at the 3rd failure in a row (max_attempts), the group's row keeps waiting
    assert [a["attempt"] for a in wc] == [1, 2, 3, 4, 5] and len(rx.wecom.hits) == 5
    assert "fallback_to" not in wc[1] and wc[2]["gave_up"] and wc[2]["fallback_to"].startswith("sms:")
    assert "fallback_to" not in wc[3] and wc[4]["retry_in_s"] > 0
    assert [a["ok"] for a in att if a["channel"] == "sms"] == [True]
    health = [i for i in h.incidents() if i["type"] == "notify_channel_failed"]
    assert len(health) == 1 and health[0]["detail"]["consecutive_failures"] == 3
    # the channel recovers: the waiting group message goes out, merged with what followed, and the
    # health incident's condition is recorded as cleared
    rx.wecom.fail = None
    later = h.manual(category="security", type="door_forced", severity="major", location={"building": "b2"})["id"]
    h.clock.set(h.clock.wall_ms + 100)
    h.drain()
    doors = [x for x in rx.wecom.delivered() if "强行开门" in x.text]
    assert len(doors) == 1 and iid in doors[0].text and later in doors[0].text  # merged: one message
    assert [r[6] for r in h.rows() if r[1] == iid and r[3] == "wecom" and r[5] is None] == ["sent"]
    kinds = [e["kind"] for e in h.timeline(health[0]["id"])]
    assert "auto_cleared" in kinds
    h.close()


def test_dingtalk_block_critical_falls_back_minor_waits(tmp_path: Path, rx: Receivers) -> None:
    rx.ding.limit_per_min = 1  # the service's limit, tightened so the test reaches it
    h = ChannelHarness(tmp_path, channels_yaml(rx))
    h.manual(category="eldercare", type="inactivity", severity="major", location={"resident": "r1"})
    h.drain()
    assert [x.reply["errcode"] for x in rx.ding.hits] == [0]
    h.send("sos-r1", "sos")
    sos = h.incidents()[-1]["id"]
    h.drain()
    assert [x.reply["errcode"] for x in rx.ding.hits] == [0, 130101]
    att = h.attempts(sos)
    ding = [a for a in att if a["channel"] == "dingtalk"]
    assert ding[0]["result"] == "rate_limited" and ding[0]["fallback_to"].startswith("sms:")  # no 10-minute wait
    assert any(a["channel"] == "sms" and a["ok"] for a in att)
    # 'too fast' is 'slow down': the robot's copy stays queued for after the block, not lost
    assert [(r[6], r[7]) for r in h.rows() if r[1] == sos and r[3] == "dingtalk"] == [("pending", 1)]
    # a non-critical message to the blocked robot waits out the block (10 min) instead of hammering it
    iid = h.manual(category="eldercare", type="inactivity", severity="minor", location={"resident": "r2"})["id"]
    h.drain()
    assert len(rx.ding.hits) == 2
    row = next(r for r in h.rows() if r[1] == iid and r[3] == "dingtalk")
    assert row[6] == "pending" and row[7] == 0
    assert h.disp.limiter("dingtalk", "care").blocked_until >= h.clock.wall_ms + 590_000
    h.close()


def test_voice_call_when_critical_eldercare_not_accepted_after_first_rung(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx))
    h.send("sos-r1", "sos")
    iid = h.incidents()[-1]["id"]
    h.drain()
    assert not [x for x in rx.sms.hits if x.path == "/voice"]
    h.at(125)  # accept deadline (120 s) missed -> sla_missed + the first rung
    assert "escalated" in h.kinds(iid)
    h.drain()
    voice = [x for x in rx.sms.hits if x.path == "/voice"]
    assert len(voice) == 1 and voice[0].body["to"] == "13900000001" and "仍未接单" in voice[0].body["tts"]
    assert "张阿姨" not in voice[0].body["tts"]
    h.at(250)  # the next rung: no second call
    h.drain()
    assert len([x for x in rx.sms.hits if x.path == "/voice"]) == 1
    # accepted in time: no call
    h.act(iid, "accept", actor="ec1", role="eldercare_worker")
    h.close()


def test_voice_not_called_when_accepted(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx))
    h.send("sos-r1", "sos")
    iid = h.incidents()[-1]["id"]
    h.act(iid, "accept", actor="ec1", role="eldercare_worker")
    h.at(2000)
    h.drain()
    assert not [x for x in rx.sms.hits if x.path == "/voice"]
    h.close()


def test_quiet_hours_and_policies(tmp_path: Path, rx: Receivers) -> None:
    extra = """\
  policies:
    - {who: duty1, categories: [parking], channels: [sms], quiet_hours: [{start: "09:00", end: "11:00"}]}
"""
    h = ChannelHarness(tmp_path, channels_yaml(rx, extra=extra))
    # parking (minor) for the duty team: SMS only (policy), deferred to 11:00 (quiet hours; harness is 10:00)
    iid = h.manual(category="parking", type="parking_overstay", severity="minor", location={"building": "b1"})["id"]
    mine = [r for r in h.rows() if r[1] == iid and r[5] == "ps1"]
    assert [(r[3], r[4]) for r in mine] == [("sms", "13800000001")]
    assert mine[0][9] == h.clock.wall_ms + 3_600_000
    h.drain()
    assert not rx.sms.hits
    h.at(3601)
    h.drain()
    assert rx.sms.ok_hits() and {x.body["to"] for x in rx.sms.ok_hits()} == {"13800000001"}
    # quiet hours never hold a critical one
    crit = h.manual(category="parking", type="parking_fire_lane", severity="critical", location={"building": "b1"})
    assert [r[9] for r in h.rows() if r[1] == crit["id"] and r[5] == "ps1"] == [h.clock.wall_ms]
    h.close()


def test_english_messages(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx, extra="  language: en\n"))
    h.manual(category="security", type="door_forced", severity="major", location={"building": "b1"})
    h.drain()
    hit = rx.wecom.delivered()[0]
    assert hit.body["msgtype"] == "text" and hit.body["text"]["mentioned_mobile_list"] == ["13800000001"]
    body = hit.body["text"]["content"]
    assert body.startswith("[") and "New ticket" in body
    assert "Where: 和苑小区 1号楼" in body and "Since: 03-02 10:00" in body and "Severity:" in body
    h.close()


def test_a_fixed_key_is_taken_on_reconfigure_and_the_waiting_group_message_goes(tmp_path: Path, rx: Receivers) -> None:
    h = ChannelHarness(tmp_path, channels_yaml(rx, wecom_key_env="BAD_KEY"))
    iid = h.manual(category="security", type="door_forced", severity="major", location={"building": "b1"})["id"]
    h.drain()
    assert [x.reply["errcode"] for x in rx.wecom.hits] == [93000]
    (tmp_path / "fixed").mkdir()
    fixed = load_config(write_channel_site(tmp_path / "fixed", channels=channels_yaml(rx)), env=ENV)
    h.disp.reconfigured(fixed)
    h.clock.set(h.clock.wall_ms + 1000)  # past the hold after the auth failure
    h.drain()
    assert [x.reply["errcode"] for x in rx.wecom.hits][:2] == [93000, 0] and iid in rx.wecom.hits[1].text
    assert [r[6] for r in h.rows() if r[1] == iid and r[3] == "wecom" and r[5] is None] == ["sent"]
    h.close()
