"""WeCom application messages to a person (企业微信应用消息), against a local receiver of the documented API.

The receiver (tests/channels_receivers.py ``WecomAppReceiver``) issues expiring access tokens from
``/cgi-bin/gettoken`` and checks every ``/cgi-bin/message/send`` against them, the agent id and the
members; it drops what a member gets past 30 a minute / 1000 an hour, as WeCom does.

* an SOS through the real broker and the whole gateway reaches the elder-care worker's WeCom
  app as a card whose button opens the incident, within the usual latency;
* a token WeCom expires mid-run is fetched again once and the message delivered; the token is
  fetched again at 90 % of its life; concurrent sends share one refresh;
* a wrong secret: one health incident for the application naming the problem, the person's
  message goes on to SMS, gettoken is not hammered, and the secret is nowhere;
* 45009 / 45033 slow the person's messages down; they are delivered after the block.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from edge_config import load_config
from edge_config.channel_settings import ChannelSettings, WecomApp
from gateway.app import Gateway
from gateway.channels import limiter
from gateway.channels.delivery import ChannelDispatcher
from gateway.channels.limiter import NEW
from gateway.channels.render import Message
from gateway.channels.wecom_app import WecomAppClient
from gateway.channels.wecom_token import TokenCache
from gateway.install import traffic
from gateway.install.mosquitto import Mosquitto
from tests.channels_receivers import (
    SOS_IN_LOBBY,
    DingtalkReceiver,
    SmsReceiver,
    WecomAppReceiver,
    WecomReceiver,
    write_channel_site,
    write_e2e_site,
)
from tests.rules_harness import Harness
from tests.support import TrackedPublisher, wait_until
from tests.tickets_harness import TicketHarness

CORP, AGENT = "ww5a1f0c9e27d1b3e4", 1000002
SECRET = "AppSecret-9d2f41c7e0b85a36"
WRONG = "WrongSecret-1c7e90d2f4b3"
USERS = {"ec1": "WangHuLi", "ec2": "ZhouHuLi", "ps1": "ZhaoWuYe", "mt1": "LiWeiXiu"}
ENV = {"WECOM_KEY": "wk-app-test", "DING_TOKEN": "dt-app-test", "DING_SECRET": "SECapp0123456789",
       "SMS_AUTH": "Bearer sms-app", "APP_SECRET": SECRET, "WRONG_SECRET": WRONG}  # fmt: skip
CONSOLE = "https://gw.example.cn:8443"

WITH_USER_IDS = {
    f"{{id: {sid}, name: {name}, role: {role}": f"{{id: {sid}, name: {name}, role: {role}, wecom_userid: {USERS[sid]}"
    for sid, name, role in (("ps1", "物业值班", "property_staff"), ("ec1", "养老护理员", "eldercare_worker"),
                            ("ec2", "养老护理员二", "eldercare_worker"), ("mt1", "维修工", "maintenance"))
}  # fmt: skip


class Receivers:
    def __init__(self, window_s: float = 60.0) -> None:
        self.app = WecomAppReceiver(CORP, SECRET, AGENT, set(USERS.values()), window_s=window_s)
        self.wecom = WecomReceiver(ENV["WECOM_KEY"], window_s=window_s)
        self.ding = DingtalkReceiver(ENV["DING_TOKEN"], ENV["DING_SECRET"], window_s=window_s)
        self.sms = SmsReceiver(ENV["SMS_AUTH"])

    def close(self) -> None:
        for r in (self.app, self.wecom, self.ding, self.sms):
            r.close()


@pytest.fixture
def rx() -> Iterator[Receivers]:
    r = Receivers()
    yield r
    r.close()


def channels_yaml(rx: Receivers, *, secret_env: str = "APP_SECRET", extra: str = "") -> str:
    return f"""\
channels:
  console_base_url: "{CONSOLE}"
  retry_min_s: 0.01
  max_attempts: 3
  grouping:
    group_wait_s: 0
    group_interval_s: 0
  wecom_app: {{base_url: "{rx.app.base_url}", corp_id: {CORP}, agent_id: {AGENT}, secret: "${{{secret_env}}}"}}
  wecom:
    - {{name: duty, base_url: "{rx.wecom.base_url}", key: "${{WECOM_KEY}}", broadcast: true,
       categories: [parking, security, eldercare]}}
  dingtalk:
    - {{name: care, base_url: "{rx.ding.base_url}", access_token: "${{DING_TOKEN}}", secret: "${{DING_SECRET}}",
       elder_care: true, categories: [eldercare]}}
  sms: {{url: "{rx.sms.base_url}/sms", voice_url: "{rx.sms.base_url}/voice", auth_header: "${{SMS_AUTH}}",
        ok_field: code, ok_value: 0}}
{extra}"""


def with_user_ids(path: Path) -> Path:
    text = path.read_text(encoding="utf-8")
    for old, new in WITH_USER_IDS.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return path


class AppHarness(TicketHarness):
    """The ticket harness with the channel dispatcher driven step by step on the harness clock."""

    def __init__(self, directory: Path, channels: str) -> None:
        self.synced = True
        cfg = load_config(with_user_ids(write_channel_site(directory, channels=channels)), env=ENV)
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

    def rows(self, iid: str, channel: str) -> list[tuple[Any, ...]]:
        return self.store.conn.execute(
            "SELECT target, person, status, attempts, chain FROM channel_deliveries WHERE incident_id=? AND channel=?"
            " ORDER BY id",
            (iid, channel),
        ).fetchall()

    def attempts(self, iid: str, channel: str) -> list[dict[str, Any]]:
        return [e["data"] for e in self.timeline(iid) if e["kind"] == "notify_attempt"
                and e["data"].get("channel") == channel]  # fmt: skip

    def door(self, building: str = "b1") -> str:
        """A forced door: major, security, dispatched to the duty team's ps1 (on shift at 10:00)."""
        return str(self.manual(category="security", type="door_forced", severity="major",
                               location={"building": building})["id"])  # fmt: skip


def test_sos_reaches_the_persons_wecom_app_as_a_card_with_the_incident_link(
    tmp_path: Path, private_broker: Mosquitto
) -> None:
    rx = Receivers()
    path = write_e2e_site(tmp_path, private_broker.port, channels=channels_yaml(rx), replace=SOS_IN_LOBBY)
    cfg = load_config(with_user_ids(path), env=ENV)
    sim = {d.id: d for d in traffic.sim_devices(cfg)}
    db = tmp_path / "gateway.db"
    gw = Gateway(cfg, store_path=db)
    gw.start()
    pub = TrackedPublisher("127.0.0.1", private_broker.port, "e2e-wecom-app")
    try:
        assert wait_until(lambda: gw.broker_connected, 15)
        published = time.monotonic()
        pub.publish_all([traffic.sos_press(sim["sos-r1"])])
        assert wait_until(lambda: rx.app.inbox and rx.ding.delivered(), 10), [h.reply for h in rx.app.hits]
    finally:
        pub.close()
        gw.stop()
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        iid = conn.execute("SELECT id FROM incidents WHERE type='sos'").fetchone()[0]
        # the elder-care worker on shift now (real time: ec1 on weekdays 08-18, else ec2)
        worker, phone = conn.execute(
            "SELECT person, target FROM channel_deliveries WHERE incident_id=? AND channel='sms'", (iid,)
        ).fetchone()
        user, card, at = rx.app.inbox[0]
        latency = at - published
        print(f"SOS -> WeCom app card after {latency * 1000:.0f} ms; care group after "
              f"{(rx.ding.delivered()[0].t - published) * 1000:.0f} ms")  # fmt: skip
        assert latency < 2.0  # as for the robots (tests/test_channels_critical.py)
        assert user == USERS[worker] and len(rx.app.inbox) == 1
        assert card["msgtype"] == "textcard" and card["url"] == f"{CONSOLE}/#incident={iid}"
        assert "紧急呼叫" in card["title"] and card["btntxt"] == "详情"
        for part in ("和苑小区", "1号楼", "大堂", "张阿姨"):  # the place; the resident: she is an elder-care worker
            assert part in card["description"], part
        assert [h.method for h in rx.app.hits] == ["GET", "POST"]  # one token, one send
        send = rx.app.sends()[0]
        assert send.body["touser"] == USERS[worker] and send.body["agentid"] == AGENT and send.ok
        # the care group still got it (the worker's own first channel, @-mentioned), and the release is logged
        assert f"@{phone}" in json.dumps(rx.ding.delivered()[0].body, ensure_ascii=False)
        rel = conn.execute("SELECT recipient, channel FROM personal_releases ORDER BY id").fetchall()
        assert (USERS[worker], "wecom_app") in rel
        conn.close()
    finally:
        rx.close()


def test_token_expired_mid_run_is_fetched_again_once_and_the_message_delivered(
    tmp_path: Path, rx: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = AppHarness(tmp_path, channels_yaml(rx))
    first = h.door("b1")
    # the person's own message goes to the app; the duty robot still posts for the group, no fallback of its own
    assert [(*r[:2], json.loads(r[4])) for r in h.rows(first, "wecom_app")] == [
        (USERS["ps1"], "ps1", [["sms", "13800000001"]])
    ]
    assert [(r[1], json.loads(r[4])) for r in h.rows(first, "wecom")] == [("ps1", []), (None, [])]
    h.drain()
    assert [x.reply["errcode"] for x in rx.app.hits] == [0, 0] and len(rx.app.token_requests()) == 1
    rx.app.expire_tokens()  # WeCom expires (or revokes) the token while the gateway still holds it
    second = h.door("b2")
    h.drain()
    assert [(x.method, x.reply["errcode"]) for x in rx.app.hits[2:]] == [("POST", 42001), ("GET", 0), ("POST", 0)]
    old, new = (x.query["access_token"] for x in (rx.app.hits[2], rx.app.hits[4]))
    assert old != new and new == rx.app.current
    assert [(u, c["url"]) for u, c, _ in rx.app.inbox] == [
        (USERS["ps1"], f"{CONSOLE}/#incident={first}"),
        (USERS["ps1"], f"{CONSOLE}/#incident={second}"),
    ]
    # one attempt on the record: the refresh is inside it; nothing went on to SMS
    assert [(a["attempt"], a["ok"]) for a in h.attempts(second, "wecom_app")] == [(1, True)]
    assert not rx.sms.hits and h.disp.status()["wecom_app"] == {"token_fetches": 2, "refreshes": 1}
    lim = h.disp.limiter("wecom_app", USERS["ps1"])  # per person: WeCom's 30/min and 1000/h, one below each
    assert (lim.limit, lim.window_ms, list(lim.caps)) == (29, 63_000, [(999, 3_780_000)])
    stored = "\n".join(h.store.conn.iterdump())
    for token in rx.app.tokens:  # the token is a credential: in memory only
        assert token not in caplog.text and token not in stored
    h.close()


def test_token_is_fetched_again_at_ninety_percent_of_its_life(rx: Receivers) -> None:
    now = [0.0]
    cache = TokenCache(rx.app.base_url, CORP, SECRET, refresh_at=0.9, clock=lambda: now[0])
    token, failed = cache.get(5)
    assert failed is None and token == rx.app.current and cache.fetches == 1
    now[0] = 0.89 * 7200
    assert cache.get(5) == (token, None) and cache.fetches == 1
    now[0] = 0.91 * 7200  # before WeCom's end: fetched again (WeCom hands out the same token while valid)
    assert cache.get(5) == (token, None) and cache.fetches == 2
    now[0] = 0.91 * 7200 + 600  # the same token is then used to its end, not fetched at every call
    assert cache.get(5) == (token, None) and cache.fetches == 2
    rx.app.expire_tokens()
    now[0] = 2 * 7200  # past its end: a new one
    fresh, _ = cache.get(5)
    assert fresh != token and fresh == rx.app.current and cache.fetches == 3


def test_concurrent_sends_share_one_refresh(rx: Receivers) -> None:
    app = WecomApp(base_url=rx.app.base_url, corp_id=CORP, agent_id=AGENT, secret=SecretStr(SECRET))
    client = WecomAppClient(app)
    msg = Message("【紧急】烟雾 新派单", "text", "md", "short", {}, ["位置: 1号楼"], f"{CONSOLE}/#incident=x")
    assert client.send(USERS["ps1"], msg, timeout=5).ok
    rx.app.expire_tokens()
    start = threading.Barrier(8, timeout=10)
    results: list[Any] = []

    def one(user: str) -> None:
        start.wait()
        results.append(client.send(user, msg, timeout=5))

    users = list(USERS.values())
    threads = [threading.Thread(target=one, args=(users[i % len(users)],), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and all(r.ok for r in results), results
    assert len(rx.app.token_requests()) == 2  # the first token, and one refresh for all eight
    # every send that met the expired token refreshed (a late one may have started with the new token)
    expired = [x for x in rx.app.sends() if x.reply["errcode"] == 42001]
    assert 1 <= len(expired) == client.refreshes <= 8 and len(rx.app.inbox) == 9


def test_wrong_secret_one_app_health_incident_sms_fallback_secret_nowhere(
    tmp_path: Path, rx: Receivers, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    h = AppHarness(tmp_path, channels_yaml(rx, secret_env="WRONG_SECRET"))
    iid = h.door()
    h.drain()
    assert [(x.path, x.reply["errcode"]) for x in rx.app.hits] == [("/cgi-bin/gettoken", 40001)]
    att = h.attempts(iid, "wecom_app")
    assert att[0]["result"] == "auth" and att[0]["errcode"] == 40001 and att[0]["fallback_to"] == "sms:138****0001"
    assert [(r[2], r[3]) for r in h.rows(iid, "wecom_app")] == [("failed", 1)]
    assert [x.body["to"] for x in rx.sms.ok_hits()] == ["13800000001"]  # the person's next channel, at once
    health = [i for i in h.incidents() if i["type"] == "notify_channel_failed"]
    assert len(health) == 1 and health[0]["open_key"] == "channel|wecom_app:(app)"
    detail = health[0]["detail"]
    assert detail["channel"] == "wecom_app" and detail["target"] == "(app)" and detail["result"] == "auth"
    assert detail["errcode"] == 40001 and "application secret is wrong" in detail["error"]
    assert "channels.wecom_app.secret" in detail["error"]
    # the health incident goes to maintenance (mt1, who also has a user id): that message fails at once
    # with the remembered outcome: gettoken is not asked again with a secret known to be wrong
    h.drain()
    mt_att = [a for a in h.attempts(health[0]["id"], "wecom_app") if a["target"] == USERS["mt1"]]
    assert mt_att and all(a["result"] == "auth" and a["errcode"] == 40001 for a in mt_att)
    assert len(rx.app.token_requests()) == 1 and not rx.app.sends()
    assert len([i for i in h.incidents() if i["type"] == "notify_channel_failed"]) == 1  # one, for the app
    seen = "\n".join(h.store.conn.iterdump()) + caplog.text + json.dumps(h.disp.status())
    assert WRONG not in seen and SECRET not in seen
    # the secret is fixed (a reload): the app is asked again, delivers, and its health incident clears
    (tmp_path / "fixed").mkdir()
    fixed = load_config(with_user_ids(write_channel_site(tmp_path / "fixed", channels=channels_yaml(rx))), env=ENV)
    h.disp.reconfigured(fixed)
    h.clock.set(h.clock.wall_ms + 31_000)  # past the hold after the auth failure (retry_max_s)
    later = h.door("b2")
    h.drain()
    assert [u for u, c, _ in rx.app.inbox if later in c["url"]] == [USERS["ps1"]]
    assert "auto_cleared" in [e["kind"] for e in h.timeline(health[0]["id"])]
    h.close()


def test_unknown_user_id_is_that_persons_health_incident_and_goes_on_to_sms(tmp_path: Path, rx: Receivers) -> None:
    rx.app.users.discard(USERS["ps1"])  # not a member (or outside the app's visible range)
    h = AppHarness(tmp_path, channels_yaml(rx))
    iid = h.door()
    h.drain()
    assert [x.reply["errcode"] for x in rx.app.sends() if x.body["touser"] == USERS["ps1"]] == [81013]
    assert h.attempts(iid, "wecom_app")[0]["fallback_to"] == "sms:138****0001"
    assert [x.body["to"] for x in rx.sms.ok_hits()] == ["13800000001"]
    health = [i for i in h.incidents() if i["type"] == "notify_channel_failed"]
    assert [i["open_key"] for i in health] == [f"channel|wecom_app:{USERS['ps1']}"]  # the person's, not the app's
    assert "staff[].wecom_userid" in health[0]["detail"]["error"]
    assert [u for u, _, _ in rx.app.inbox] == [USERS["mt1"]]  # the app works: maintenance heard of it there
    h.close()


@pytest.mark.parametrize(("errcode", "block_s"), [(45009, 60), (45033, 10)])
def test_too_fast_slows_the_person_down_and_the_message_is_delivered(
    tmp_path: Path, rx: Receivers, errcode: int, block_s: int
) -> None:
    h = AppHarness(tmp_path, channels_yaml(rx))
    rx.app.fail_send = lambda n: (200, {"errcode": errcode, "errmsg": "api freq out of limit"}) if n == 0 else None
    iid = h.door()
    h.drain()
    assert [x.reply["errcode"] for x in rx.app.sends()] == [errcode]
    assert [(r[2], r[3]) for r in h.rows(iid, "wecom_app")] == [("pending", 1)]  # kept, not failed
    att = h.attempts(iid, "wecom_app")
    assert att[0]["result"] == "rate_limited" and abs(att[0]["retry_in_s"] - block_s) < 1
    assert "fallback_to" not in att[0]
    h.clock.set(h.clock.wall_ms + (block_s - 1) * 1000)
    h.drain()
    assert len(rx.app.sends()) == 1  # held for the service's block: no request meanwhile
    h.clock.set(h.clock.wall_ms + 2000)
    h.drain()
    assert [x.reply["errcode"] for x in rx.app.sends()] == [errcode, 0]
    assert [(r[2], r[3]) for r in h.rows(iid, "wecom_app")] == [("sent", 2)]
    assert [u for u, c, _ in rx.app.inbox] == [USERS["ps1"]] and not rx.app.dropped and not rx.sms.hits
    h.close()


def test_per_person_budget_stays_below_wecoms_minute_and_hour() -> None:
    """30 a minute and 1000 an hour per member (more are dropped without an error): the default budget
    keeps one below each, over a margin of 5 % on both windows, sending as fast as it allows for 2 h."""
    s = ChannelSettings()
    lim = limiter.for_target(s, 30, per_hour=1000)
    assert (lim.limit, lim.window_ms) == (29, 63_000) and list(lim.caps) == [(999, 3_780_000)]
    sent: list[int] = []
    t = 0
    while t < 2 * 3_600_000:
        t = max(t, lim.free_at(t, NEW))
        lim.record(t, NEW)
        sent.append(t)
        t += 50  # the request's round trip
    per_minute = max(sum(1 for u in sent if a <= u < a + 60_000) for a in sent)
    per_hour = max(sum(1 for u in sent[i : i + 1100] if a <= u < a + 3_600_000) for i, a in enumerate(sent))
    assert per_minute == 29 and per_hour == 999
