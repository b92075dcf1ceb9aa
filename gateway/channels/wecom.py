"""WeCom (企业微信) group robot: ``POST {base_url}/cgi-bin/webhook/send?key=KEY``.

Body ``{"msgtype": "text", "text": {"content", "mentioned_mobile_list"}}`` (content ≤ 2048 bytes)
or ``{"msgtype": "markdown", "markdown": {"content"}}`` (≤ 4096 bytes). Markdown cannot @-mention by
phone, so a message that must mention someone goes as text. The reply ``errcode`` decides
(HTTP is 200 either way); the codes we act on are in :data:`ERRCODES` and docs/channels.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gateway.channels.base import Outcome, call, cut_utf8, errcode_reply, http_outcome, post_json
from gateway.channels.render import Message

if TYPE_CHECKING:
    from edge_config.channel_settings import WecomRobot

TEXT_MAX_BYTES = 2048
MARKDOWN_MAX_BYTES = 4096

# errcode -> (outcome kind, block seconds, meaning)
ERRCODES: dict[int, tuple[str, float, str]] = {
    0: ("ok", 0, "ok"),
    -1: ("transient", 0, "system busy"),
    45009: ("rate_limited", 60, "api freq out of limit (robot: 20 messages/minute)"),
    93000: ("auth", 0, "invalid webhook url: the key is wrong or the robot was removed"),
    40008: ("rejected", 0, "invalid message type"),
    40058: ("rejected", 0, "invalid parameter"),
    44004: ("rejected", 0, "empty content"),
    45002: ("rejected", 0, "content too long"),
}


def body(robot: WecomRobot, msg: Message, mentions: Sequence[str]) -> dict[str, Any]:
    mobiles = list(dict.fromkeys([*mentions, *robot.mentioned_mobiles]))
    if robot.msgtype == "markdown" and not mobiles:
        return {"msgtype": "markdown", "markdown": {"content": cut_utf8(msg.markdown, MARKDOWN_MAX_BYTES)}}
    text: dict[str, Any] = {"content": cut_utf8(msg.text, TEXT_MAX_BYTES)}
    if mobiles:
        text["mentioned_mobile_list"] = mobiles
    return {"msgtype": "text", "text": text}


def url(robot: WecomRobot) -> str:
    return f"{robot.base_url}/cgi-bin/webhook/send?key={quote(robot.key.get_secret_value(), safe='')}"


def classify(status: int, reply: bytes) -> Outcome:
    if not 200 <= status < 300:
        return http_outcome(status)
    code, msg = errcode_reply(reply)
    if code is None:
        return Outcome("transient", status, None, msg or "no errcode in reply")
    kind, block, meaning = ERRCODES.get(code, ("transient", 0, "unknown errcode"))
    return Outcome(kind, status, code, "" if kind == "ok" else f"errcode {code}: {msg or meaning}", block)


def send(robot: WecomRobot, msg: Message, mentions: Sequence[str], *, timeout: float) -> Outcome:
    return call(lambda: classify(*post_json(url(robot), body(robot, msg, mentions), timeout=timeout)))
