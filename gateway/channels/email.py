"""E-mail over SMTP (STARTTLS, AUTH): alarm mails, daily/weekly digests and the scorecard.

Everything here blocks (smtplib); it runs on the channel dispatcher's thread, never on the asyncio
loop. :func:`digest` reads the store (a read-only connection is enough) and uses
:func:`gateway.tickets.scorecard.compute` for the weekly scorecard.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import sqlite3
import ssl
from collections import Counter
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from gateway.channels import render as rd
from gateway.channels.base import Outcome

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.channel_settings import SmtpSettings


def send_mail(smtp: SmtpSettings, to: Sequence[str], subject: str, text: str) -> Outcome:
    msg = EmailMessage()
    msg["From"] = smtp.from_addr
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=smtp.from_addr.rpartition("@")[2] or None)
    msg.set_content(text, charset="utf-8")
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as s:
            s.ehlo()
            if smtp.starttls:
                ctx = ssl.create_default_context(cafile=smtp.ca_file) if smtp.ca_file else ssl.create_default_context()
                s.starttls(context=ctx)
                s.ehlo()
            if smtp.username:
                s.login(smtp.username, smtp.password.get_secret_value() if smtp.password else "")
            refused = s.send_message(msg)
        if refused:
            return Outcome("rejected", None, None, f"refused: {', '.join(sorted(refused))}"[:200])
        return Outcome("ok")
    except smtplib.SMTPAuthenticationError as exc:
        return Outcome("auth", exc.smtp_code, exc.smtp_code, f"SMTP auth failed ({exc.smtp_code})")
    except smtplib.SMTPNotSupportedError as exc:
        return Outcome("auth", None, None, f"SMTP: {exc}"[:200])  # e.g. no STARTTLS/AUTH offered: a config error
    except smtplib.SMTPRecipientsRefused as exc:
        return Outcome("rejected", None, None, f"recipients refused: {', '.join(sorted(exc.recipients))}"[:200])
    except smtplib.SMTPResponseException as exc:
        kind = "transient" if 400 <= exc.smtp_code < 500 else "rejected"
        return Outcome(kind, exc.smtp_code, exc.smtp_code, f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"[:200])
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return Outcome("transient", None, None, f"{type(exc).__name__}: {exc}"[:200])


def quarter(cfg: SiteConfig, now_ms: int) -> str:
    t = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(cfg.gateway.timezone))
    return f"{t.year}-Q{(t.month - 1) // 3 + 1}"


def digest(conn: sqlite3.Connection, cfg: SiteConfig, kind: str, now_ms: int, *, lang: str) -> tuple[str, str]:
    """(subject, body) of the ``daily`` or ``weekly`` digest ending ``now_ms``; weekly adds the scorecard."""
    span_ms = 86_400_000 if kind == "daily" else 7 * 86_400_000
    start = now_ms - span_ms
    rows = conn.execute(
        "SELECT id, category, type, severity, state, first_ms FROM incidents WHERE first_ms >= ? AND first_ms < ?"
        " ORDER BY first_ms",
        (start, now_ms),
    ).fetchall()
    open_rows = conn.execute(
        "SELECT id, category, type, severity, state, first_ms FROM incidents WHERE open_key IS NOT NULL"
        " ORDER BY first_ms LIMIT 50"
    ).fetchall()
    missed = conn.execute(
        "SELECT count(DISTINCT incident_id) FROM incident_events WHERE kind='sla_missed' AND ts_ms >= ? AND ts_ms < ?",
        (start, now_ms),
    ).fetchone()[0]
    zh = lang == "zh"
    title = rd.t(lang, "digest_daily" if kind == "daily" else "digest_weekly")
    period = f"{rd.local(cfg, start)} – {rd.local(cfg, now_ms)}"
    subject = f"{title} {cfg.gateway.name or cfg.gateway.id} {period}"
    lines = [subject, ""]
    by_cat = Counter(rd.label(lang, "category", r[1]) for r in rows)
    by_sev = Counter(rd.label(lang, "sev", r[3]) for r in rows)
    lines.append(("新告警" if zh else "New incidents") + f": {len(rows)}")
    lines.append(("按类别" if zh else "By category") + ": " + ", ".join(f"{k} {v}" for k, v in by_cat.most_common()))
    lines.append(("按级别" if zh else "By severity") + ": " + ", ".join(f"{k} {v}" for k, v in by_sev.most_common()))
    lines.append(("超时未处理" if zh else "Incidents with a missed SLA") + f": {missed}")
    lines += ["", ("仍未关闭" if zh else "Still open") + f" ({len(open_rows)}):"]
    for iid, _cat, typ, sev, state, first in open_rows:
        url = rd.link(cfg, iid)
        lines.append(
            f"- {rd.local(cfg, first)} {rd.label(lang, 'sev', sev)} {rd.label(lang, 'type', typ)}"
            f" {rd.label(lang, 'state', state)} {iid}" + (f" {url}" if url else "")
        )
    if kind == "weekly":
        from gateway.tickets.scorecard import compute

        period_q = quarter(cfg, now_ms)
        card = compute(conn, cfg, period_q)
        lines += ["", ("物业考评" if zh else "Scorecard") + f" {period_q}:", card.to_table()]
    return subject, "\n".join(lines) + "\n"
