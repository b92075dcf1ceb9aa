"""SMS and voice calls through a configurable HTTP gateway (``channels.sms``).

The request body is the configured JSON ``template`` (``voice_template`` for calls) with
``{phone}`` and ``{message}`` replaced (JSON-escaped); the auth header comes from an
``${ENV}`` secret. Success: a 2xx reply and, when ``ok_field`` is set, that field of the JSON
reply equal to ``ok_value``. 401/403 = wrong credentials (not retried), 429 = too fast, 5xx and
network errors = transient, other 4xx = rejected.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from gateway.channels.base import Outcome, call, http_outcome, post_json

if TYPE_CHECKING:
    from edge_config.channel_settings import SmsGateway


def fill(template: str, phone: str, message: str) -> bytes:
    esc = lambda s: json.dumps(s, ensure_ascii=False)[1:-1]  # noqa: E731
    return template.replace("{phone}", esc(phone)).replace("{message}", esc(message)).encode("utf-8")


def classify(gw: SmsGateway, status: int, reply: bytes) -> Outcome:
    if not 200 <= status < 300:
        return http_outcome(status)
    if gw.ok_field is None:
        return Outcome("ok", status)
    try:
        data = json.loads(reply.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return Outcome("transient", status, None, "reply is not JSON")
    value = data.get(gw.ok_field) if isinstance(data, dict) else None
    if value == gw.ok_value or str(value) == str(gw.ok_value):
        return Outcome("ok", status)
    code = value if isinstance(value, int) else None
    return Outcome("rejected", status, code, f"{gw.ok_field}={value!r}"[:200])


def send(gw: SmsGateway, phone: str, message: str, *, voice: bool = False, timeout: float) -> Outcome:
    url = (gw.voice_url or gw.url) if voice else gw.url
    body = fill(gw.voice_template if voice else gw.template, phone, message[: gw.max_chars])
    headers = {gw.auth_header_name: gw.auth_header.get_secret_value()} if gw.auth_header is not None else {}
    return call(lambda: classify(gw, *post_json(url, body, headers=headers, timeout=timeout)))
