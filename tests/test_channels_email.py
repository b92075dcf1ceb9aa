"""E-mail: digests (daily, weekly with the scorecard) and alarm mails to a real local SMTP server
(aiosmtpd, STARTTLS required, AUTH). The limiter and the queue rules are in test_channels_queue.py."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import aiosmtpd  # noqa: F401  (a dev dependency: missing means a broken install, not a skip)
import pytest

from edge_config import load_config
from gateway.channels.delivery import ChannelDispatcher
from tests.channels_receivers import SmtpServer, write_channel_site
from tests.rules_harness import Harness
from tests.tickets_harness import TicketHarness


def _harness(tmp_path: Path, smtp: SmtpServer, password_env: str = "SMTP_PW") -> TicketHarness:
    channels = f"""\
channels:
  console_base_url: "https://gw.example.cn"
  grouping: {{group_wait_s: 0}}
  smtp:
    host: 127.0.0.1
    port: {smtp.port}
    starttls: true
    ca_file: "{smtp.cert}"
    username: {smtp.user}
    password: "${{{password_env}}}"
    from: edge-gw@example.cn
    digest_recipients: [office@example.cn]
    scorecard_recipients: [street@example.cn]
    daily_at: "07:30"
    weekly_day: 1
"""
    env = {"SMTP_PW": smtp.password, "BAD_PW": "wrong"}
    cfg = load_config(write_channel_site(tmp_path, channels=channels), env=env)
    h = TicketHarness.__new__(TicketHarness)
    h.synced = True
    Harness.__init__(h, tmp_path, cfg=cfg)

    def call(fn: Any) -> Any:
        fut = h.pipeline.call(fn)
        h.pipeline.run_once()
        return fut

    h.disp = ChannelDispatcher(h.db, cfg, call=call, incidents=h.ctx.incidents, clock=h.clock.wall)  # type: ignore[attr-defined]
    return h


@pytest.fixture
def smtp(tmp_path: Path) -> Any:
    s = SmtpServer(tmp_path)
    yield s
    s.stop()


def _parse(raw: bytes) -> Any:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_daily_and_weekly_digest_over_starttls_with_scorecard(tmp_path: Path, smtp: SmtpServer) -> None:
    h = _harness(tmp_path, smtp)
    h.send("sos-r1", "sos")
    h.manual(category="parking", type="parking_overstay", severity="minor", location={"building": "b1"})
    h.at(60)  # Monday 10:01, after daily_at: both digests are due
    h.disp.run_once()  # type: ignore[attr-defined]
    assert len(smtp.mails) == 2 and all(m.tls for m in smtp.mails)  # STARTTLS before AUTH and DATA
    daily, weekly = sorted(smtp.mails, key=lambda m: len(m.rcpt))
    assert daily.rcpt == ["office@example.cn"] and sorted(weekly.rcpt) == ["office@example.cn", "street@example.cn"]
    d = _parse(daily.data)
    assert d["Subject"].startswith("每日告警汇总") and d["From"] == "edge-gw@example.cn"
    body = d.get_content()
    assert "新告警: 2" in body and "紧急呼叫" in body and "https://gw.example.cn/#incident=" in body
    assert "张阿姨" not in body  # digests carry no residents' names
    w = _parse(weekly.data).get_content()
    assert "物业考评 2026-Q1" in w and "和苑物业" in w  # the scorecard (gateway.tickets.scorecard.compute)
    # recorded: not sent again the same day
    h.at(120)
    h.disp.run_once()  # type: ignore[attr-defined]
    assert len(smtp.mails) == 2
    h.close()


def test_alarm_mail_and_wrong_password(tmp_path: Path, smtp: SmtpServer) -> None:
    h = _harness(tmp_path, smtp, password_env="BAD_PW")
    out = h.disp.send_digest("daily")  # type: ignore[attr-defined]
    assert out.kind == "auth" and not smtp.mails
    h.close()
    smtp.mails.clear()
    h2 = _harness(tmp_path / "ok", smtp) if (tmp_path / "ok").mkdir() is None else None
    assert h2 is not None
    # device health goes to mt1: WeCom is not configured here, so the mail channel is used
    iid = h2.manual(category="device_health", type="battery_low", severity="minor", location={"building": "b3"})["id"]
    while h2.disp.run_once():  # type: ignore[attr-defined]
        pass
    mails = [m for m in smtp.mails if m.rcpt == ["mt1@example.cn"]]
    assert len(mails) == 1
    msg = _parse(mails[0].data)
    assert "电量低" in msg["Subject"] and "3号楼" in msg.get_content() and iid in msg.get_content()
    h2.close()
