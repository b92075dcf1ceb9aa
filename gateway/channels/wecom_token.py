"""The WeCom application's access token: fetched with the corp id and secret, cached, refreshed.

``GET {base_url}/cgi-bin/gettoken?corpid=ID&corpsecret=SECRET`` answers
``{"errcode": 0, "errmsg": "ok", "access_token": "…", "expires_in": 7200}``. WeCom asks callers to
cache the token (gettoken itself is rate limited) and to fetch it again when it expires or is
revoked early (a call then answers 40014 / 42001). Here:

* the token lives in this object's memory only: never logged, stored or put in an error text;
* it is fetched again after ``refresh_at`` (0.9) of its ``expires_in``, before WeCom expires it,
  and when a call says it is no longer valid (:meth:`TokenCache.invalidate` names the token that
  failed: of callers that saw the same token fail, the first one's refresh is everyone's);
* one fetch at a time (a lock): callers arriving meanwhile wait and share its token;
* a fetch refused for configuration (wrong secret or corp id, IP not allowed) is remembered for
  ``fail_hold_s``: messages to many people then fail at once with the same clear outcome instead
  of each one asking gettoken again with a secret known to be wrong.

Freshness is measured on a monotonic clock: the token's life is real seconds, whatever the
site's wall clock (or a test's harness clock) says.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

from gateway.channels.base import Outcome, call, get, http_outcome

# The health incident of the application as a whole: channel|wecom_app:(app). Parentheses are not
# allowed in a WeCom user id, so no person's target can be this one.
APP_TARGET = "(app)"

# gettoken errcodes -> (outcome kind, block seconds, what to fix); all are the application's
TOKEN_ERRCODES: dict[int, tuple[str, float, str]] = {
    -1: ("transient", 0, "WeCom is busy"),
    40001: ("auth", 0, "the application secret is wrong (channels.wecom_app.secret, the app's Secret)"),
    40091: ("auth", 0, "the application secret is wrong (channels.wecom_app.secret, the app's Secret)"),
    40013: ("auth", 0, "the corp id is wrong (channels.wecom_app.corp_id, 我的企业 → 企业ID)"),
    41002: ("auth", 0, "the corp id is missing (channels.wecom_app.corp_id)"),
    41004: ("auth", 0, "the application secret is missing (channels.wecom_app.secret)"),
    60020: ("auth", 0, "this gateway's IP address is not in the application's trusted IPs (企业可信IP)"),
    45009: ("rate_limited", 60, "gettoken called too often"),
}


def scrub(text: str, *secrets: str) -> str:
    """``text`` with every secret replaced: a library's error may quote the URL it was given."""
    for s in secrets:
        if s:
            text = text.replace(s, "***").replace(quote(s, safe=""), "***")
    return text


class TokenCache:
    """The access token of one application (corp id + secret), shared by every send."""

    def __init__(
        self,
        base_url: str,
        corp_id: str,
        secret: str,
        *,
        refresh_at: float = 0.9,
        fail_hold_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = f"{base_url}/cgi-bin/gettoken?corpid={quote(corp_id, safe='')}&corpsecret={quote(secret, safe='')}"
        self._secret = secret
        self.refresh_at = refresh_at
        self.fail_hold_s = fail_hold_s
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._fresh_until = 0.0
        self._failed: Outcome | None = None
        self._failed_until = 0.0
        self.fetches = 0  # gettoken requests made (for status and tests)

    def get(self, timeout: float) -> tuple[str | None, Outcome | None]:
        """(token, None), or (None, the outcome that explains why there is none)."""
        with self._lock:
            now = self.clock()
            if self._token is not None and now < self._fresh_until:
                return self._token, None
            if self._failed is not None and now < self._failed_until:
                return None, self._failed
            return self._fetch(now, timeout)

    def invalidate(self, token: str) -> None:
        """A call answered that ``token`` is invalid or expired: the next :meth:`get` fetches anew,
        unless another caller has already replaced that token."""
        with self._lock:
            if self._token == token:
                self._token, self._fresh_until = None, 0.0

    def _fetch(self, now: float, timeout: float) -> tuple[str | None, Outcome | None]:
        self.fetches += 1
        got: list[tuple[str, int]] = []
        outcome = call(lambda: self._classify(*get(self._url, timeout=timeout), got))
        if not got:
            outcome = Outcome(outcome.kind, outcome.status, outcome.errcode, scrub(outcome.error, self._secret),
                              outcome.block_s, APP_TARGET)  # fmt: skip
            if outcome.kind == "auth":
                self._failed, self._failed_until = outcome, now + self.fail_hold_s
            return None, outcome
        new, expires_in = got[0]
        previous, self._token, self._failed = self._token, new, None
        # WeCom may hand out the same token again while it is valid (an early refresh): it is then
        # used to its end, where a call's 42001 or the next fetch replaces it, not re-fetched again
        # and again as its remaining life shrinks
        self._fresh_until = now + expires_in * (1.0 if new == previous else self.refresh_at)
        return new, None

    @staticmethod
    def _classify(status: int, reply: bytes, got: list[tuple[str, int]]) -> Outcome:
        if not 200 <= status < 300:
            bad = http_outcome(status)
            return Outcome(bad.kind, status, None, f"gettoken: {bad.error}", bad.block_s)
        try:
            data = json.loads(reply.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Outcome("transient", status, None, "gettoken: reply is not JSON")
        data = data if isinstance(data, dict) else {}
        code = data.get("errcode", 0)
        token, expires = data.get("access_token"), data.get("expires_in")
        if code == 0 and isinstance(token, str) and token and isinstance(expires, int) and expires > 0:
            got.append((token, expires))
            return Outcome("ok", status)
        code = code if isinstance(code, int) else None
        kind, block, meaning = TOKEN_ERRCODES.get(code or 0, ("transient", 0, "no access_token in the reply"))
        errmsg = str(data.get("errmsg", ""))[:120]
        return Outcome(kind, status, code, f"gettoken errcode {code}: {meaning} (WeCom: {errmsg})", block)
