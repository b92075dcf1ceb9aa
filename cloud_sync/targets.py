"""Write targets: one POST of pre-built line protocol, reported as a :class:`WriteOutcome`.

Neither target retries on its own: the sender owns retries, backoff, Retry-After and batch
splitting. Both are plain httpx POSTs.
"""

from __future__ import annotations

import email.utils
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edge_config.sync_settings import SyncSettings


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    status: int  # HTTP status; 0 = no answer (connection refused, timeout, DNS ...)
    message: str = ""
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class Target(Protocol):
    name: str

    def write(self, body: bytes) -> WriteOutcome: ...

    def close(self) -> None: ...


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


# Any: the decoded JSON error body of the central store
def error_message(body: Any) -> str:
    """The server's message: InfluxDB 2 {"code","message"}, InfluxDB 1 {"error"}, else the text."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    text = str(body or "").strip()
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:2000]
    if isinstance(obj, dict):
        for key in ("message", "error"):
            if isinstance(obj.get(key), str):
                return str(obj[key])[:2000]
    return text[:2000]


class V2Target:
    """InfluxDB 2 ``/api/v2/write`` (org, bucket, precision=ns; ``Authorization: Token``) through httpx.

    One POST of a pre-built body is all the gateway needs. influxdb-client did the same but
    importing it costs ~30 MB of RSS (measured: 29.7 MB on top of httpx), a third of what the
    gateway may use on a Pi; VictoriaMetrics accepts the same request.
    """

    name = "v2"

    def __init__(self, url: str, *, token: str, org: str, bucket: str, timeout_s: float) -> None:
        import httpx

        self.url = url.rstrip("/") + "/api/v2/write"
        self.params = {"org": org or "-", "bucket": bucket, "precision": "ns"}
        self.headers = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            self.headers["Authorization"] = f"Token {token}"
        self.client = httpx.Client(timeout=timeout_s)
        self._httpx = httpx

    def write(self, body: bytes) -> WriteOutcome:
        return _post(self.client, self._httpx, self.url, self.params, self.headers, body)

    def close(self) -> None:
        self.client.close()


# Any: the httpx module and client (imported lazily: a gateway without sync never loads httpx)
def _post(
    client: Any, httpx: Any, url: str, params: dict[str, str], headers: dict[str, str], body: bytes
) -> WriteOutcome:
    try:
        r = client.post(url, params=params, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return WriteOutcome(0, f"{type(exc).__name__}: {exc}"[:500])
    # The response and its stream refer to each other, and through the request to ``body``: left
    # alone, every body (~1.4 MB) lived until the cyclic garbage collector ran, which a drain (few,
    # large objects) rarely triggers: a dozen bodies were held at once. The reply is read by now.
    r.stream = httpx.ByteStream(b"")
    if 200 <= r.status_code < 300:
        return WriteOutcome(r.status_code)
    return WriteOutcome(r.status_code, error_message(r.content), parse_retry_after(r.headers.get("Retry-After")))


_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


class V1Target:
    """InfluxDB 1.x ``/write`` (db, rp, precision=ns; basic auth) through httpx."""

    name = "v1"

    def __init__(
        self,
        url: str,
        *,
        database: str,
        retention_policy: str | None,
        username: str | None,
        password: str | None,
        timeout_s: float,
    ) -> None:
        import httpx

        self.url = url.rstrip("/") + "/write"
        self.params = {"db": database, "precision": "ns"}
        if retention_policy:
            self.params["rp"] = retention_policy
        auth = (username, password or "") if username else None
        self.client = httpx.Client(timeout=timeout_s, auth=auth)
        self._httpx = httpx

    def write(self, body: bytes) -> WriteOutcome:
        return _post(self.client, self._httpx, self.url, self.params, _TEXT, body)

    def close(self) -> None:
        self.client.close()


# Replies after which another endpoint of the same store may do better: no answer, overload, a
# node's own failure. 4xx (a bad point, a bad token) would be refused by every node alike.
FAILOVER_STATUSES = frozenset({0, 429, 500, 502, 503, 504})


class FailoverTarget:
    """One store, several write endpoints (a VictoriaMetrics cluster's vminsert nodes, a clustered
    InfluxDB's nodes): a batch goes to the current endpoint; when it gives no answer or a 5xx/429,
    the same bytes go to the next one at once, round the list once. The endpoint that answered
    stays current (no flapping back to a node that just failed); when every one failed, the last
    reply is returned and the sender backs off and retries the batch as usual.

    Nothing is lost when an endpoint dies mid-batch: the batch was not acknowledged, so it is sent
    again whole; the points it had already stored come again byte-identical (same series, same
    nanosecond timestamp), and the store keeps one (InfluxDB overwrites, VictoriaMetrics
    deduplicates with ``-dedup.minScrapeInterval``)."""

    def __init__(self, targets: list[Target], urls: list[str]) -> None:
        self.targets = targets
        self.urls = urls
        self.current = 0
        self.failovers = 0  # times a batch moved to another endpoint
        self.name = f"{targets[0].name} x{len(targets)}"

    @property
    def url(self) -> str:
        return self.urls[self.current]

    def write(self, body: bytes) -> WriteOutcome:
        out = WriteOutcome(0, "no endpoint")
        for step in range(len(self.targets)):
            i = (self.current + step) % len(self.targets)
            out = self.targets[i].write(body)
            if out.ok or out.status not in FAILOVER_STATUSES:
                if i != self.current:
                    self.failovers += 1
                    self.current = i
                return out
        self.current = (self.current + 1) % len(self.targets)  # the next retry starts one further on
        msg = f"{out.message} (all {len(self.targets)} endpoints failed)"
        return WriteOutcome(out.status, msg[:2000], out.retry_after_s)

    def close(self) -> None:
        for t in self.targets:
            t.close()


def make_target(s: SyncSettings) -> Target:
    """Build the target of a :class:`edge_config.sync_settings.SyncSettings` (with ``urls``: one
    target per endpoint behind a :class:`FailoverTarget`)."""
    urls = [s.url, *(u for u in s.urls if u != s.url)]
    if len(urls) > 1:
        return FailoverTarget([_one_target(s, u) for u in urls], urls)
    return _one_target(s, s.url)


def _one_target(s: SyncSettings, url: str) -> Target:
    if s.target == "v1":
        return V1Target(
            url,
            database=s.database,
            retention_policy=s.retention_policy,
            username=s.username,
            password=s.password.get_secret_value() if s.password is not None else None,
            timeout_s=s.timeout_s,
        )
    return V2Target(
        url,
        token=s.token.get_secret_value() if s.token is not None else "",
        org=s.org,
        bucket=s.bucket,
        timeout_s=s.timeout_s,
    )
