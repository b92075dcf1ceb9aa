"""What every channel client returns, and the shared HTTP helper.

Outcome kinds (docs/channels.md "Error codes"):

* ``ok``: delivered.
* ``transient``: network error, 5xx, "system busy" (-1): retried with capped exponential backoff.
* ``rate_limited``: the service said "too fast"; retried after ``block_s`` (the target is held
  that long: WeCom's window is a minute, DingTalk blocks the robot for 10 minutes).
* ``auth``: the token/key/secret or security setting is wrong: not retried; the person's next
  channel is tried at once and a gateway-health incident is raised.
* ``rejected``: the service refused this message (bad format, too long): not retried; next channel.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

RETRIABLE = frozenset({"transient", "rate_limited"})


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # ok | transient | rate_limited | auth | rejected
    status: int | None = None  # HTTP status / SMTP code
    errcode: int | None = None  # the service's errcode
    error: str = ""
    block_s: float = 0.0
    # The health incident's target when the failure is not the message target's own: a WeCom
    # application's wrong secret fails every person's message, so it is the app's incident, once.
    health_target: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    @property
    def retriable(self) -> bool:
        return self.kind in RETRIABLE


USER_AGENT = "edge-gateway-channels/1"


# Any: the provider's JSON request body
def post_json(url: str, body: Any, *, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """POST JSON; returns (status, reply body). Network errors raise OSError/URLError."""
    data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **(headers or {})},
    )
    return _open(req, timeout)


def get(url: str, *, timeout: float = 5.0) -> tuple[int, bytes]:
    """GET; returns (status, reply body). Network errors raise OSError/URLError."""
    return _open(urllib.request.Request(url, method="GET", headers={"User-Agent": USER_AGENT}), timeout)


def _open(req: urllib.request.Request, timeout: float) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read() if exc.fp is not None else b""


def http_outcome(status: int) -> Outcome:
    """Classify a non-2xx HTTP status (before looking at the reply body)."""
    if status == 429:
        return Outcome("rate_limited", status, None, f"HTTP {status}", 60.0)
    if status in (401, 403):
        return Outcome("auth", status, None, f"HTTP {status}")
    if status >= 500 or status in (408, 425):
        return Outcome("transient", status, None, f"HTTP {status}")
    return Outcome("rejected", status, None, f"HTTP {status}")


def call(fn: Callable[[], Outcome]) -> Outcome:
    """Run a client call; network failures become transient outcomes."""
    try:
        result: Outcome = fn()
        return result
    except (OSError, urllib.error.URLError, TimeoutError, ValueError) as exc:
        return Outcome("transient", None, None, f"{type(exc).__name__}: {exc}"[:200])


def errcode_reply(body: bytes) -> tuple[int | None, str]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "reply is not JSON"
    if not isinstance(data, dict):
        return None, "reply is not a JSON object"
    code = data.get("errcode")
    return (int(code) if isinstance(code, int) else None), str(data.get("errmsg", ""))[:200]


def cut_utf8(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"
