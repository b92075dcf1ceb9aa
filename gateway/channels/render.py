"""Message texts for staff channels: Chinese by default, English configurable.

One message says what (type, category), where (compound / building / unit / parking space), since
when (first trigger, site time), how bad (severity) and links to the incident in the console. A
grouped message (storm) lists the first ``max_listed`` incidents and counts the rest.

Personal data: residents' names and flat numbers appear only when ``elder_care`` is set (robots
marked ``elder_care: true``, or a person whose role is eldercare_worker); everyone else sees the
building and unit. Staff phones are only used for @-mentions. :func:`render` reports which
personal fields it released so the caller can log them (``personal_releases``).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from edge_config import SiteConfig

I18N_DIR = Path(__file__).resolve().parent.parent / "console" / "i18n"

_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "【{sev}】{what}",
        "group_title": "【{sev}】{what} {n}条",
        "where": "位置",
        "since": "时间",
        "severity": "级别",
        "assignee": "处理人",
        "resident": "居民",
        "link": "查看",
        "more": "……另有{n}条",
        "event.dispatched": "新派单",
        "event.renotified": "请尽快接单",
        "event.escalated": "超时升级",
        "event.whistle": "吹哨报到",
        "event.dispatch_failed": "派单失败",
        "event.sla_missed": "超时",
        "event.other": "通知",
        "voice": "紧急告警：{what}，{where}，仍未接单，请立即处理。",
        "digest_daily": "每日告警汇总",
        "digest_weekly": "每周告警汇总与物业考评",
        "unknown_place": "未知位置",
    },
    "en": {
        "title": "[{sev}] {what}",
        "group_title": "[{sev}] {what} x{n}",
        "where": "Where",
        "since": "Since",
        "severity": "Severity",
        "assignee": "Assignee",
        "resident": "Resident",
        "link": "Open",
        "more": "... and {n} more",
        "event.dispatched": "New ticket",
        "event.renotified": "Please accept",
        "event.escalated": "Escalated",
        "event.whistle": "Department summoned",
        "event.dispatch_failed": "Dispatch failed",
        "event.sla_missed": "Overdue",
        "event.other": "Notice",
        "voice": "Critical alarm: {what}, {where}, not accepted yet. Please act now.",
        "digest_daily": "Daily incident digest",
        "digest_weekly": "Weekly incident digest and scorecard",
        "unknown_place": "unknown place",
    },
}

_EXTRA_TYPES = {
    "zh": {"notify_channel_failed": "告警通道故障", "bridge_offline": "网关桥离线", "building_offline": "整栋设备离线",
           "compound_offline": "小区设备离线", "lorawan_gateway_silent": "LoRa网关无数据", "report": "居民报事"},
    "en": {"notify_channel_failed": "alarm channel failing", "bridge_offline": "bridge offline",
           "building_offline": "building offline", "compound_offline": "compound offline",
           "lorawan_gateway_silent": "LoRaWAN gateway silent", "report": "resident report"},
}  # fmt: skip


@functools.cache
def _console_labels(lang: str) -> dict[str, Any]:
    try:
        data = json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


# Any: format arguments of the message template
def t(lang: str, key: str, **kw: Any) -> str:
    table = _TEXT.get(lang, _TEXT["zh"])
    return table.get(key, _TEXT["en"].get(key, key)).format(**kw)


def label(lang: str, group: str, key: str | None) -> str:
    if key is None:
        return ""
    found = _console_labels(lang).get(group, {})
    if isinstance(found, dict) and key in found:
        return str(found[key])
    if group == "type":
        return _EXTRA_TYPES.get(lang, {}).get(key, key)
    return key


def what(lang: str, incident: Mapping[str, Any]) -> str:
    return label(lang, "type", incident.get("type")) or label(lang, "category", incident.get("category"))


def where(
    cfg: SiteConfig, lang: str, incident: Mapping[str, Any], *, elder_care: bool = False
) -> tuple[str, list[str]]:
    """'和苑小区 1号楼 1单元 (1201)' and the personal fields that were released (['room'] or [])."""
    parts: list[str] = []
    released: list[str] = []
    b = incident.get("building")
    compound = cfg.compound(incident["compound"]) if incident.get("compound") else None
    if compound is None and b:
        compound = cfg.compound_of_building(b)
    if compound is not None:
        parts.append(compound.name)
    building = cfg.building(b) if b else None
    if building is not None:
        parts.append(building.name)
        unit = next((u for u in building.units if u.id == incident.get("unit")), None)
        if unit is not None:
            parts.append(unit.name)
    elif b:
        parts.append(str(b))
    if incident.get("space"):
        parts.append(("车位 " if lang == "zh" else "space ") + str(incident["space"]))
    if not parts and incident.get("grid"):
        g = cfg.grid(incident["grid"])
        parts.append(g.name if g is not None else str(incident["grid"]))
    detail = incident.get("detail") or {}
    if isinstance(detail, Mapping) and detail.get("area"):
        parts.append(str(detail["area"]))
    if elder_care and incident.get("resident_id"):
        res = cfg.resident(incident["resident_id"])
        if res is not None and res.room:
            parts.append(f"({res.room})")
            released.append("room")
    return (" ".join(parts) or t(lang, "unknown_place")), released


def local(cfg: SiteConfig, ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(cfg.gateway.timezone)).strftime("%m-%d %H:%M:%S")


def link(cfg: SiteConfig, incident_id: str) -> str | None:
    base = cfg.channels.console_base_url
    return f"{base}/#incident={incident_id}" if base else None


@dataclass
class Message:
    title: str
    text: str  # plain text (WeCom/DingTalk text, e-mail body)
    markdown: str
    short: str  # SMS / voice
    released: dict[str, list[str]] = field(default_factory=dict)  # incident id -> personal fields released


def render(
    cfg: SiteConfig,
    items: Sequence[tuple[Mapping[str, Any], str]],
    *,
    lang: str,
    elder_care: bool = False,
    max_listed: int = 10,
) -> Message:
    """One message for ``items`` = [(incident, event name)], most severe first."""
    items = sorted(items, key=lambda it: (_sev_rank(it[0].get("severity")), it[0].get("first_ms") or 0))
    inc0, ev0 = items[0]
    sev = label(lang, "sev", inc0.get("severity"))
    w = what(lang, inc0)
    released: dict[str, list[str]] = {}
    event_txt = t(lang, f"event.{ev0}") if f"event.{ev0}" in _TEXT["en"] else t(lang, "event.other")
    if len(items) == 1:
        title = t(lang, "title", sev=sev, what=w) + f" {event_txt}"
    else:
        title = t(lang, "group_title", sev=sev, what=w, n=len(items)) + f" {event_txt}"
    lines_txt = [title]
    lines_md = [f"### {title}"]
    for incident, _ev in items[:max_listed]:
        place, rel = where(cfg, lang, incident, elder_care=elder_care)
        if rel:
            released[str(incident["id"])] = list(rel)
        resident = ""
        if elder_care and incident.get("resident_id"):
            res = cfg.resident(incident["resident_id"])
            if res is not None:
                resident = f" {t(lang, 'resident')}: {res.name}"
                released.setdefault(str(incident["id"]), []).append("name")
        url = link(cfg, str(incident["id"]))
        since = local(cfg, incident.get("first_ms"))
        sev_i = label(lang, "sev", incident.get("severity"))
        if len(items) == 1:
            lines_txt += [
                f"{t(lang, 'where')}: {place}{resident}",
                f"{t(lang, 'since')}: {since}",
                f"{t(lang, 'severity')}: {sev_i}",
            ]
            lines_md += [
                f"> **{t(lang, 'where')}**: {place}{resident}",
                f"> **{t(lang, 'since')}**: {since}",
                f"> **{t(lang, 'severity')}**: {sev_i}",
            ]
            if url:
                lines_txt.append(url)
                lines_md.append(f"[{t(lang, 'link')}]({url})")
        else:
            lines_txt.append(f"- {since} {what(lang, incident)} {place}{resident}" + (f" {url}" if url else ""))
            lines_md.append(
                f"- {since} {what(lang, incident)} {place}{resident}" + (f" [{t(lang, 'link')}]({url})" if url else "")
            )
    if len(items) > max_listed:
        more = t(lang, "more", n=len(items) - max_listed)
        lines_txt.append(more)
        lines_md.append(more)
    place0, _ = where(cfg, lang, inc0)
    short = f"{title} {place0} {local(cfg, inc0.get('first_ms'))}"
    return Message(title, "\n".join(lines_txt), "\n".join(lines_md), short, released)


def voice_text(cfg: SiteConfig, lang: str, incident: Mapping[str, Any]) -> str:
    place, _ = where(cfg, lang, incident)
    return t(lang, "voice", what=what(lang, incident), where=place)


def _sev_rank(sev: object) -> int:
    order = ("critical", "major", "minor", "warning")
    return order.index(sev) if sev in order else len(order)
