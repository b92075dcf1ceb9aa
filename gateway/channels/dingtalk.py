"""DingTalk (钉钉) custom robot: ``POST {base_url}/robot/send?access_token=TOKEN``.

Signed mode ("加签"): ``&timestamp=<unix ms>&sign=<urlencode(base64(HMAC-SHA256(key=secret,
msg="{timestamp}\\n{secret}")))>``; the service rejects timestamps more than an hour off.
Body ``{"msgtype": "text", "text": {"content"}, "at": {"atMobiles", "isAtAll": false}}`` or
``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {...}}``; a mentioned phone must
also appear as ``@phone`` in the content. The custom-keyword mode needs the keyword in the text
(``keyword``). The reply ``errcode`` decides; see :data:`ERRCODES` and docs/channels.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from gateway.channels.base import Outcome, call, cut_utf8, errcode_reply, http_outcome, post_json
from gateway.channels.render import Message

if TYPE_CHECKING:
    from edge_config.channel_settings import DingtalkRobot

MAX_BYTES = 4000  # stay under the robot's 20,000-byte message limit with room for the JSON

ERRCODES: dict[int, tuple[str, float, str]] = {
    0: ("ok", 0, "ok"),
    -1: ("transient", 0, "system busy"),
    130101: ("rate_limited", 600, "send too fast, exceed 20 times per minute: robot blocked for 10 minutes"),
    410100: ("rate_limited", 60, "sending too fast, throttled"),
    300001: ("auth", 0, "token is not exist"),
    400101: ("auth", 0, "access_token does not exist"),
    310000: ("auth", 0, "security settings: sign not match / keywords not in content / ip not in whitelist"),
    400013: ("auth", 0, "the group was dissolved"),
    400102: ("auth", 0, "the robot is disabled"),
    40035: ("rejected", 0, "missing parameter (json)"),
}


def sign(secret: str, timestamp_ms: int) -> str:
    """URL-encoded base64 HMAC-SHA256 over ``"{timestamp}\\n{secret}"`` keyed by the secret."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(mac).decode())


def url(robot: DingtalkRobot, now_ms: int) -> str:
    u = f"{robot.base_url}/robot/send?access_token={quote(robot.access_token.get_secret_value(), safe='')}"
    if robot.secret is not None:
        u += f"&timestamp={now_ms}&sign={sign(robot.secret.get_secret_value(), now_ms)}"
    return u


def body(robot: DingtalkRobot, msg: Message, mentions: Sequence[str]) -> dict[str, Any]:
    mobiles = list(dict.fromkeys([*mentions, *robot.mentioned_mobiles]))
    at_line = " ".join(f"@{m}" for m in mobiles)
    kw = f"\n{robot.keyword}" if robot.keyword else ""
    at = {"atMobiles": mobiles, "isAtAll": False}
    if robot.msgtype == "markdown":
        text = cut_utf8(msg.markdown, MAX_BYTES) + (f"\n\n{at_line}" if at_line else "") + kw
        title = msg.title + (f" {robot.keyword}" if robot.keyword and robot.keyword not in msg.title else "")
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}, "at": at}
    text = cut_utf8(msg.text, MAX_BYTES) + (f"\n{at_line}" if at_line else "") + kw
    return {"msgtype": "text", "text": {"content": text}, "at": at}


def classify(status: int, reply: bytes) -> Outcome:
    if not 200 <= status < 300:
        return http_outcome(status)
    code, msg = errcode_reply(reply)
    if code is None:
        return Outcome("transient", status, None, msg or "no errcode in reply")
    kind, block, meaning = ERRCODES.get(code, ("transient", 0, "unknown errcode"))
    if code == 310000 and "timestamp" in msg.lower():
        kind = "transient"  # our clock is off by more than an hour: retry (and fix NTP), not a wrong secret
    return Outcome(kind, status, code, "" if kind == "ok" else f"errcode {code}: {msg or meaning}", block)


def send(
    robot: DingtalkRobot,
    msg: Message,
    mentions: Sequence[str],
    *,
    timeout: float,
    clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
) -> Outcome:
    return call(lambda: classify(*post_json(url(robot, clock()), body(robot, msg, mentions), timeout=timeout)))
