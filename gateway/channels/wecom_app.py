"""WeCom application messages (企业微信应用消息) to one person: ``POST {base_url}/cgi-bin/message/send``.

``?access_token=TOKEN`` (:mod:`gateway.channels.wecom_token`), body ``{"touser": "<UserID>",
"agentid": N, "msgtype": "textcard", "textcard": {"title" (≤ 128 bytes), "description" (≤ 512
bytes, WeCom's ``<div class="gray|normal|highlight">`` lines), "url" (the incident in the console),
"btntxt" (≤ 4 characters)}}``, or ``text``/``markdown`` (≤ 2048 bytes). The reply's ``errcode``
decides (HTTP is 200 either way); ``invaliduser`` naming the person means they were not reached.

40014 / 42001 (and 40001, which WeCom also uses for a token it no longer accepts) mean the token
is invalid or expired: it is fetched again, once, and the message sent again. Errors that are the
application's (wrong secret, agent id, IP not allowed, WeCom down) carry ``health_target`` "(app)",
so one health incident names the configuration problem instead of one per person; an unknown user
id is that person's own (staff[].wecom_userid).
"""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gateway.channels.base import Outcome, call, cut_utf8, errcode_reply, http_outcome, post_json
from gateway.channels.wecom_token import APP_TARGET, TokenCache, scrub

if TYPE_CHECKING:
    from edge_config.channel_settings import WecomApp
    from gateway.channels.render import Message

TITLE_MAX_BYTES = 128
DESCRIPTION_MAX_BYTES = 512
CONTENT_MAX_BYTES = 2048
REFRESH = frozenset({40001, 40014, 42001, 41001})  # the token: fetch it again, send once more

# errcode -> (outcome kind, block seconds, meaning, the application's (True) or the person's (False))
ERRCODES: dict[int, tuple[str, float, str, bool]] = {
    0: ("ok", 0, "ok", False),
    -1: ("transient", 0, "WeCom is busy", True),
    45009: ("rate_limited", 60, "api freq out of limit", True),
    45033: ("rate_limited", 10, "too many concurrent calls", True),
    60020: ("auth", 0, "this gateway's IP address is not in the application's trusted IPs (企业可信IP)", True),
    40056: ("auth", 0, "the agent id is wrong (channels.wecom_app.agent_id)", True),
    48002: ("auth", 0, "the application may not call this API (API forbidden)", True),
    40003: ("auth", 0, "the user id is unknown (staff[].wecom_userid)", False),
    81013: ("auth", 0, "the user id is unknown or not in the app's visible range (staff[].wecom_userid)", False),
    40008: ("rejected", 0, "invalid message type", False),
    40035: ("rejected", 0, "invalid parameter", False),
    44004: ("rejected", 0, "empty content", False),
}


def description(lines: Sequence[str], more: str = "…") -> str:
    """The card's lines as WeCom's div lines (the first highlighted), cut by whole lines to 512 bytes."""
    out = ""
    tail = f'<div class="gray">{html.escape(more, quote=False)}</div>'
    for i, line in enumerate(lines):
        div = f'<div class="{"highlight" if i == 0 else "normal"}">{html.escape(line, quote=False)}</div>'
        if len((out + div).encode()) > DESCRIPTION_MAX_BYTES - len(tail.encode()):
            return out + tail
        out += div
    return out


def body(app: WecomApp, userid: str, msg: Message) -> dict[str, Any]:
    head: dict[str, Any] = {"touser": userid, "agentid": app.agent_id}
    if app.msgtype == "textcard" and msg.url:
        card = {"title": cut_utf8(msg.title, TITLE_MAX_BYTES), "description": description(msg.card_lines),
                "url": msg.url, "btntxt": app.btntxt}  # fmt: skip
        return {**head, "msgtype": "textcard", "textcard": card}
    if app.msgtype == "markdown":
        return {**head, "msgtype": "markdown", "markdown": {"content": cut_utf8(msg.markdown, CONTENT_MAX_BYTES)}}
    return {**head, "msgtype": "text", "text": {"content": cut_utf8(msg.text, CONTENT_MAX_BYTES)}}


def classify(status: int, reply: bytes, userid: str) -> Outcome:
    if not 200 <= status < 300:
        bad = http_outcome(status)
        return Outcome(bad.kind, status, None, bad.error, bad.block_s, APP_TARGET)
    code, msg = errcode_reply(reply)
    if code is None:
        return Outcome("transient", status, None, msg or "no errcode in reply", 0, APP_TARGET)
    if code in REFRESH:
        return Outcome("transient", status, code, f"errcode {code}: the access token was refused", 0, APP_TARGET)
    kind, block, meaning, app_wide = ERRCODES.get(code, ("transient", 0, "unknown errcode", True))
    if kind == "ok" and userid.lower() in _invalid_users(reply):
        kind, code, meaning, app_wide = "auth", 81013, ERRCODES[81013][2], False
    if kind == "ok":
        return Outcome("ok", status, code)
    return Outcome(kind, status, code, f"errcode {code}: {meaning} (WeCom: {msg[:120]})", block,
                   APP_TARGET if app_wide else None)  # fmt: skip


def _invalid_users(reply: bytes) -> set[str]:
    try:
        data = json.loads(reply.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return set()
    value = data.get("invaliduser") if isinstance(data, dict) else None
    # WeCom lower-cases the user ids it returns
    return {u.lower() for u in value.split("|") if u} if isinstance(value, str) else set()


class WecomAppClient:
    """One application's sender: the token cache and the send with its refresh-once rule."""

    def __init__(self, app: WecomApp, *, fail_hold_s: float = 30.0) -> None:
        self.app = app
        self.tokens = TokenCache(app.base_url, app.corp_id, app.secret.get_secret_value(),
                                 refresh_at=app.token_refresh_at, fail_hold_s=fail_hold_s)  # fmt: skip
        self.refreshes = 0  # sends that needed a new token mid-way (status, tests)
        self._count = threading.Lock()

    def send(self, userid: str, msg: Message, *, timeout: float) -> Outcome:
        payload = body(self.app, userid, msg)
        token, failed = self.tokens.get(timeout)
        if token is None:
            return failed or Outcome("transient", error="no access token", health_target=APP_TARGET)
        outcome = self._post(token, payload, userid, timeout)
        if outcome.errcode in REFRESH:
            self.tokens.invalidate(token)
            with self._count:
                self.refreshes += 1
            token, failed = self.tokens.get(timeout)
            if token is None:
                return failed or Outcome("transient", error="no access token", health_target=APP_TARGET)
            outcome = self._post(token, payload, userid, timeout)
        return outcome

    def _post(self, token: str, payload: dict[str, Any], userid: str, timeout: float) -> Outcome:
        url = f"{self.app.base_url}/cgi-bin/message/send?access_token={quote(token, safe='')}"
        out = call(lambda: classify(*post_json(url, payload, timeout=timeout), userid))
        if out.error:  # a network error may quote the URL: the token never leaves this object
            out = Outcome(out.kind, out.status, out.errcode, scrub(out.error, token), out.block_s,
                          out.health_target or (APP_TARGET if out.kind == "transient" else None))  # fmt: skip
        return out
