"""Real local receivers for the channel tests: WeCom robot, WeCom application, DingTalk robot, SMS, SMTP.

Each HTTP receiver implements the documented request format and checks it, answers with the
service's documented errcodes, enforces 20 messages per rolling minute the way the service does
(DingTalk then blocks the robot for 10 minutes), and can be scripted to fail for a while. Tests
that cannot wait minutes scale the minute down (``window_s``; DingTalk's block scales with it)
and configure the gateway's ``channels.rate.window_s`` to match.
The DingTalk signature is verified with the algorithm written out here, independently of
gateway/channels/dingtalk.py. The WeCom application receiver issues expiring access tokens and
checks every send against them (docs: 获取access_token, 发送应用消息, 全局错误码).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.tickets_harness import write_ticket_site


@dataclass
class Hit:
    t: float  # time.monotonic() at arrival
    wall: float  # time.time()
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    status: int
    reply: dict[str, Any]
    method: str = "POST"

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.reply.get("errcode", self.reply.get("code")) == 0

    @property
    def text(self) -> str:
        b = self.body if isinstance(self.body, dict) else {}
        return json.dumps(b, ensure_ascii=False)

    @property
    def content(self) -> str:
        """The message as posted: text content or markdown (without the JSON around it)."""
        b = self.body if isinstance(self.body, dict) else {}
        part = b.get(b.get("msgtype", ""), {})
        return str(part.get("content") or part.get("text") or "") if isinstance(part, dict) else ""

    @property
    def title(self) -> str:
        return self.content.split("\n", 1)[0].lstrip("# ")


class _Receiver:
    """http.server on 127.0.0.1:<free port>; subclasses implement ``handle``."""

    limit_per_min = 20

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s  # the service's minute (scaled down by tests that cannot wait)
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.fail: Callable[[int], tuple[int, dict[str, Any]] | None] | None = None  # n-th request -> reply
        self.accepted: list[float] = []  # monotonic times of requests counted against the rate limit
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                try:
                    body: Any = json.loads(raw.decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    body = None
                with outer.lock:
                    n = len(outer.hits)
                    scripted = outer.fail(n) if outer.fail is not None else None
                    status, reply = scripted or outer.handle(parts.path, query, dict(self.headers), body)
                    outer.hits.append(
                        Hit(time.monotonic(), time.time(), parts.path, query, dict(self.headers), body, status, reply,
                            self.command)
                    )  # fmt: skip
                data = json.dumps(reply, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> tuple[int, dict]:
        raise NotImplementedError

    def over_limit(self) -> bool:
        """Count this request; True when it is the 21st within a rolling minute."""
        now = time.monotonic()
        self.accepted = [t for t in self.accepted if t > now - self.window_s]
        self.accepted.append(now)
        return len(self.accepted) > self.limit_per_min

    def max_per_rolling_minute(self) -> int:
        """Most requests that arrived within any rolling window (the service's minute), counted here."""
        times = sorted(h.t for h in self.hits)
        return max((sum(1 for u in times if t <= u < t + self.window_s) for t in times), default=0)

    def delivered(self) -> list[Hit]:
        return [h for h in self.hits if h.ok]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class WecomReceiver(_Receiver):
    """POST /cgi-bin/webhook/send?key=KEY; errcodes 0, 93000, 40008, 44004, 45002, 45009."""

    def __init__(self, key: str, window_s: float = 60.0) -> None:
        self.key = key
        super().__init__(window_s)

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> tuple[int, dict]:
        if path != "/cgi-bin/webhook/send" or query.get("key") != self.key:
            return 200, {"errcode": 93000, "errmsg": "invalid webhook url, hint: [x], from ip: 127.0.0.1"}
        if not headers.get("Content-Type", "").startswith("application/json") or not isinstance(body, dict):
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        mt = body.get("msgtype")
        if mt == "text":
            content = body.get("text", {}).get("content")
            mobiles = body["text"].get("mentioned_mobile_list", [])
            if not isinstance(mobiles, list) or not all(isinstance(m, str) for m in mobiles):
                return 200, {"errcode": 40058, "errmsg": "invalid mentioned_mobile_list"}
            limit = 2048
        elif mt == "markdown":
            content = body.get("markdown", {}).get("content")
            limit = 4096
        else:
            return 200, {"errcode": 40008, "errmsg": "invalid message type"}
        if not content:
            return 200, {"errcode": 44004, "errmsg": "empty content"}
        if len(content.encode()) > limit:
            return 200, {"errcode": 45002, "errmsg": "content size out of limit"}
        if self.over_limit():
            return 200, {"errcode": 45009, "errmsg": "api freq out of limit"}
        return 200, {"errcode": 0, "errmsg": "ok"}


class WecomAppReceiver(_Receiver):
    """A WeCom self-built application's API, as documented.

    ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` -> ``{errcode 0, access_token, expires_in}``;
    41002/41004 missing corp id/secret, 40013 wrong corp id, 40001 wrong secret. While a token is
    valid, gettoken returns it again with its remaining life; once expired, a new one.
    ``POST /cgi-bin/message/send?access_token=`` -> ``{errcode 0, invaliduser, msgid}``; 41001 no
    token, 40014 unknown token, 42001 expired, 60020 IP not allowed (``ip_allowed``), 40056 wrong
    agentid, 40008 msgtype, 44004 empty, 40035 a card without title/description/url; 81013 when no
    recipient is a member, else the unknown ones in ``invaliduser`` (lower-cased). Over-long
    title/description/content are cut as WeCom cuts them. Each member gets at most 30 messages per
    rolling minute and 1000 per hour from the app: more are *dropped without an error* (as
    documented), recorded in ``dropped``. ``fail_send``/``fail_token`` script replies by the n-th
    request of that endpoint.
    """

    limit_per_min = 30
    limit_per_hour = 1000

    def __init__(
        self, corp_id: str, secret: str, agent_id: int, users: set[str], *, expires_in: int = 7200,
        window_s: float = 60.0,
    ) -> None:  # fmt: skip
        self.corp_id, self.secret, self.agent_id, self.users = corp_id, secret, agent_id, users
        self.expires_in = expires_in
        self.tokens: dict[str, float] = {}  # token -> monotonic expiry
        self.current: str | None = None
        self.ip_allowed = True
        self.fail_send: Callable[[int], tuple[int, dict[str, Any]] | None] | None = None
        self.fail_token: Callable[[int], tuple[int, dict[str, Any]] | None] | None = None
        self.inbox: list[tuple[str, dict[str, Any], float]] = []  # (user, message as received, monotonic)
        self.dropped: list[tuple[str, float]] = []
        self.counted: dict[str, list[float]] = {}
        self.n_token = self.n_send = 0
        super().__init__(window_s)

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> tuple[int, dict]:
        if path == "/cgi-bin/gettoken":
            self.n_token += 1
            scripted = self.fail_token(self.n_token - 1) if self.fail_token is not None else None
            return scripted or self._token(query)
        if path == "/cgi-bin/message/send":
            self.n_send += 1
            scripted = self.fail_send(self.n_send - 1) if self.fail_send is not None else None
            return scripted or self._send(query, headers, body)
        return 404, {"errcode": 404, "errmsg": "not found"}

    def _err(self, code: int, msg: str) -> tuple[int, dict]:
        return 200, {"errcode": code, "errmsg": f"{msg}, hint: [{time.time_ns()}], from ip: 127.0.0.1, "
                     f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}"}  # fmt: skip

    def _token(self, query: dict[str, str]) -> tuple[int, dict]:
        if not query.get("corpid"):
            return self._err(41002, "corpid missing")
        if query["corpid"] != self.corp_id:
            return self._err(40013, "invalid corpid")
        if not query.get("corpsecret"):
            return self._err(41004, "corpsecret missing")
        if query["corpsecret"] != self.secret:
            return self._err(40001, "invalid credential")
        now = time.monotonic()
        if self.current is not None and self.tokens[self.current] > now:
            left = max(1, int(self.tokens[self.current] - now))
            return 200, {"errcode": 0, "errmsg": "ok", "access_token": self.current, "expires_in": left}
        self.current = f"tok{len(self.tokens) + 1}-{secrets.token_hex(16)}"
        self.tokens[self.current] = now + self.expires_in
        return 200, {"errcode": 0, "errmsg": "ok", "access_token": self.current, "expires_in": self.expires_in}

    def expire_tokens(self) -> None:
        """Every token issued so far expires now (as at the end of its 7200 s)."""
        now = time.monotonic()
        self.tokens = {t: min(exp, now) for t, exp in self.tokens.items()}

    def _send(self, query: dict[str, str], headers: dict[str, str], body: Any) -> tuple[int, dict]:
        token = query.get("access_token")
        if not token:
            return self._err(41001, "access_token missing")
        if token not in self.tokens:
            return self._err(40014, "invalid access_token")
        if self.tokens[token] <= time.monotonic():
            return self._err(42001, "access_token expired")
        if not self.ip_allowed:
            return self._err(60020, "not allow to access from your ip")
        if not headers.get("Content-Type", "").startswith("application/json") or not isinstance(body, dict):
            return self._err(40035, "invalid parameter, Warning: wrong json format.")
        if body.get("agentid") != self.agent_id:
            return self._err(40056, "invalid agentid")
        msg = self._message(body)
        if isinstance(msg, tuple):
            return msg
        named = [u for u in str(body.get("touser", "")).split("|") if u]
        valid = [u for u in named if u in self.users]
        if not valid:
            return self._err(81013, "user & party & tag all invalid")
        now = time.monotonic()
        for user in valid:
            if self._over_limit(user, now):
                self.dropped.append((user, now))
            else:
                self.inbox.append((user, msg, now))
        invalid = "|".join(u.lower() for u in named if u not in self.users)
        return 200, {"errcode": 0, "errmsg": "ok", "invaliduser": invalid, "msgid": secrets.token_hex(8)}

    def _message(self, body: dict[str, Any]) -> dict[str, Any] | tuple[int, dict]:
        mt = body.get("msgtype")
        part = body.get(mt) if isinstance(mt, str) else None
        if mt not in ("text", "markdown", "textcard") or not isinstance(part, dict):
            return self._err(40008, "invalid message type")
        if mt in ("text", "markdown"):
            content = str(part.get("content") or "")
            if not content:
                return self._err(44004, "empty content")
            return {"msgtype": mt, "content": _cut(content, 2048)}
        title, desc, url = (str(part.get(k) or "") for k in ("title", "description", "url"))
        if not title or not desc or not url.startswith(("http://", "https://")) or len(url.encode()) > 2048:
            return self._err(40035, "invalid parameter: textcard needs title, description and an http(s) url")
        btn = str(part.get("btntxt") or "详情")[:4]
        return {"msgtype": mt, "title": _cut(title, 128), "description": _cut(desc, 512), "url": url, "btntxt": btn}

    def _over_limit(self, user: str, now: float) -> bool:
        """Count a message to ``user``; True when it is past 30 in a rolling minute or 1000 in an hour."""
        times = [t for t in self.counted.get(user, []) if t > now - 60 * self.window_s]
        in_minute = sum(1 for t in times if t > now - self.window_s)
        if in_minute >= self.limit_per_min or len(times) >= self.limit_per_hour:
            self.counted[user] = times
            return True
        self.counted[user] = [*times, now]
        return False

    def sends(self) -> list[Hit]:
        return [h for h in self.hits if h.path == "/cgi-bin/message/send"]

    def token_requests(self) -> list[Hit]:
        return [h for h in self.hits if h.path == "/cgi-bin/gettoken"]


def _cut(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode("utf-8", errors="ignore")


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """The documented algorithm, written out independently: base64(HMAC-SHA256(secret, ts + "\\n" + secret))."""
    string_to_sign = timestamp + "\n" + secret
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod=hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingtalkReceiver(_Receiver):
    """POST /robot/send?access_token=T&timestamp=&sign=; errcodes 0, 300001, 310000, 130101 (10-min block)."""

    def __init__(
        self, token: str, secret: str | None = None, keyword: str | None = None, window_s: float = 60.0
    ) -> None:
        self.token = token
        self.secret = secret
        self.keyword = keyword
        self.blocked_until = 0.0
        self.block_s = 10 * window_s  # ten of the service's minutes
        super().__init__(window_s)

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> tuple[int, dict]:
        if path != "/robot/send" or query.get("access_token") != self.token:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        if self.secret is not None:
            ts = query.get("timestamp", "")
            if not ts.isdigit() or abs(int(ts) - time.time() * 1000) > 3_600_000:
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            # parse_qs has URL-decoded the sign once: compare with the plain base64
            if not hmac.compare_digest(query.get("sign", ""), dingtalk_sign(self.secret, ts)):
                return 200, {"errcode": 310000, "errmsg": "sign not match"}
        if not isinstance(body, dict) or body.get("msgtype") not in ("text", "markdown"):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        if body["msgtype"] == "text":
            content = body.get("text", {}).get("content", "")
        else:
            md = body.get("markdown", {})
            if not md.get("title"):
                return 200, {"errcode": 40035, "errmsg": "缺少参数 title"}
            content = md.get("text", "")
        at = body.get("at", {})
        if not isinstance(at.get("atMobiles", []), list):
            return 200, {"errcode": 40035, "errmsg": "atMobiles"}
        if not content:
            return 200, {"errcode": 40035, "errmsg": "缺少参数 content"}
        if self.keyword and self.keyword not in content:
            return 200, {"errcode": 310000, "errmsg": "keywords not in content"}
        now = time.monotonic()
        if now < self.blocked_until:
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        if self.over_limit():
            self.blocked_until = now + self.block_s
            return 200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}
        return 200, {"errcode": 0, "errmsg": "ok"}


class SmsReceiver(_Receiver):
    """A typical SMS/voice HTTP gateway: Bearer auth, JSON {to, text|tts}, replies {"code": 0}."""

    limit_per_min = 1000

    def __init__(self, auth: str) -> None:
        self.auth = auth
        super().__init__()

    def handle(self, path: str, query: dict[str, str], headers: dict[str, str], body: Any) -> tuple[int, dict]:
        if headers.get("Authorization") != self.auth:
            return 401, {"code": 401, "msg": "unauthorized"}
        if not isinstance(body, dict) or not str(body.get("to", "")).isdigit():
            return 400, {"code": 400, "msg": "bad request"}
        if path == "/sms" and not body.get("text"):
            return 400, {"code": 400, "msg": "no text"}
        if path == "/voice" and not body.get("tts"):
            return 400, {"code": 400, "msg": "no tts"}
        return 200, {"code": 0, "msg": "queued"}

    def ok_hits(self) -> list[Hit]:
        return [h for h in self.hits if h.status == 200]


@dataclass
class Mail:
    mail_from: str
    rcpt: list[str]
    data: bytes
    tls: bool
    auth: Any


@dataclass
class SmtpServer:
    """aiosmtpd with STARTTLS required and AUTH (user/password) over a self-signed certificate."""

    directory: Path
    user: str = "gw"
    password: str = "smtp-pass"
    mails: list[Mail] = field(default_factory=list)

    def __post_init__(self) -> None:
        import ssl

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.cert = self.directory / "smtp-cert.pem"
        key = self.directory / "smtp-key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(self.cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, key)
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.mails.append(
                    Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, session.ssl is not None,
                         session.auth_data)
                )  # fmt: skip
                return "250 OK"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (
                outer.user,
                outer.password,
            )
            return AuthResult(success=ok, handled=False)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(
            Handler(),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=ctx,
            require_starttls=True,
            authenticator=authenticator,
            auth_require_tls=True,
        )
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()


# --- site ------------------------------------------------------------------------------------------
STAFF_CHANNELS = {
    "ps1": "channels: [{type: wecom, target: duty}, {type: sms, target: '13800000001'}]",
    "ps2": "channels: [{type: wecom, target: duty}, {type: sms, target: '13800000002'}]",
    "ec1": "phone: '13900000001', channels: [{type: dingtalk, target: care}, {type: sms, target: '13900000001'}, "
    "{type: voice, target: '13900000001'}]",
    "ec2": "phone: '13900000002', channels: [{type: dingtalk, target: care}, {type: sms, target: '13900000002'}, "
    "{type: voice, target: '13900000002'}]",
    "mt1": "phone: '13700000001', channels: [{type: wecom, target: duty}, {type: email, target: 'mt1@example.cn'}]",
}


def write_channel_site(directory: Path, *, channels: str, tickets_extra: str = "  mqtt: false\n") -> Path:
    """The ticket harness site with staff channels and a ``channels:`` section (YAML text)."""
    path = write_ticket_site(directory, extra=tickets_extra)
    text = path.read_text(encoding="utf-8")
    for sid, extra in STAFF_CHANNELS.items():
        for line in text.splitlines():
            if line.strip().startswith(f"- {{id: {sid}, ") and line.rstrip().endswith("}"):
                text = text.replace(line, line.rstrip()[:-1] + ", " + extra + "}", 1)
                break
        else:
            raise AssertionError(f"staff {sid} not found in the harness site")
    text += "\n" + channels
    path.write_text(text, encoding="utf-8")
    return path


def write_e2e_site(
    directory: Path,
    port: int,
    *,
    channels: str,
    devices: str = "",
    tickets_extra: str = "  mqtt: false\n",
    replace: dict[str, str] | None = None,
) -> Path:
    """The channel site for a whole gateway on a real broker at ``port``: extra ``devices`` (YAML
    list items) appended, and literal ``replace``-ments applied (each must match)."""
    path = write_channel_site(directory, channels=channels, tickets_extra=tickets_extra)
    text = path.read_text(encoding="utf-8")
    text = text.replace("  port: 1883\n", f"  port: {port}\n", 1)
    text = text.replace("\ndevices:\n", "\ndevices:\n" + devices, 1)
    for old, new in (replace or {}).items():
        if old not in text:
            raise AssertionError(f"not in the site: {old!r}")
        text = text.replace(old, new, 1)
    path.write_text(text, encoding="utf-8")
    return path


SOS_IN_LOBBY = {
    "    friendly_name: b1/u1/sos\n    resident: r1\n": "    friendly_name: b1/u1/sos\n    resident: r1\n"
    "    location: {building: b1, unit: u1, floor: 1, area: 大堂}\n"
}
