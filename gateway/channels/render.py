"""Message texts for staff channels: Chinese by default, English configurable.

Every message says what (type), where (compound, building, unit, floor, flat, area, parking space:
:mod:`gateway.channels.places`), how many (devices; an outage's ``offline_count``), since when
(site time), how bad, and links to the incident in the console. A grouped message starts with
what fits whatever the robot cuts: the count, the per-building breakdown, for critical alarms
every place, the earliest time; then it lists the first ``max_listed`` incidents with their links
and counts the rest.

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

from gateway.channels import places

if TYPE_CHECKING:
    from edge_config import SiteConfig

I18N_DIR = Path(__file__).resolve().parent.parent / "console" / "i18n"

_TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "title": "【{sev}】{what}",
        "group_title": "【{sev}】{what} {n}条",
        "mixed_title": "【{sev}】{n}条",
        "where": "位置",
        "since": "时间",
        "severity": "级别",
        "assignee": "处理人",
        "resident": "居民",
        "link": "查看",
        "more": "……另有{n}条",
        "how_many": "数量",
        "breakdown": "分布",
        "places": "位置",
        "kinds": "类型",
        "earliest": "最早",
        "devices_n": "{n}台设备",
        "triggers_n": "触发{n}次",
        "offline_n": "{n}台设备离线",
        "of_n": "（共{n}台）",
        "unit_devices": "{n}台",
        "unit_incidents": "{n}条",
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
        "mixed_title": "[{sev}] x{n}",
        "where": "Where",
        "since": "Since",
        "severity": "Severity",
        "assignee": "Assignee",
        "resident": "Resident",
        "link": "Open",
        "more": "... and {n} more",
        "how_many": "How many",
        "breakdown": "By building",
        "places": "Places",
        "kinds": "Kinds",
        "earliest": "Earliest",
        "devices_n": "{n} device(s)",
        "triggers_n": "{n} trigger(s)",
        "offline_n": "{n} devices offline",
        "of_n": " (of {n})",
        "unit_devices": "{n} devices",
        "unit_incidents": "{n}",
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
    """'和苑小区 1号楼 1单元 12层 大堂' and the personal fields that were released (['room'] or [])."""
    p = places.place_of(cfg, incident, elder_care=elder_care)
    return (p.where(lang) or t(lang, "unknown_place")), list(p.released)


def local(cfg: SiteConfig, ms: int | None) -> str:
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(cfg.gateway.timezone)).strftime("%m-%d %H:%M:%S")


def link(cfg: SiteConfig, incident_id: str) -> str | None:
    """``<console base>/#incident=<id>``: channels.console_base_url, else the API's console_base_url."""
    base = cfg.channels.console_base_url or getattr(getattr(cfg, "api", None), "console_base_url", None)
    return f"{str(base).rstrip('/')}/#incident={incident_id}" if base else None


@dataclass
class Message:
    title: str
    text: str  # plain text (WeCom/DingTalk text, e-mail body)
    markdown: str
    short: str  # SMS / voice
    released: dict[str, list[str]] = field(default_factory=dict)  # incident id -> personal fields released
    # A card (WeCom application textcard): its lines without the title and the links, and the one
    # link its button opens (the first incident's; None without a console URL).
    card_lines: list[str] = field(default_factory=list)
    url: str | None = None


def render(
    cfg: SiteConfig,
    items: Sequence[tuple[Mapping[str, Any], str]],
    *,
    lang: str,
    elder_care: bool = False,
    max_listed: int = 10,
    reminder: bool = False,
) -> Message:
    """One message for ``items`` = [(incident, event name)], most severe first; one entry per incident."""
    seen: dict[str, tuple[Mapping[str, Any], str]] = {}
    for incident, ev in items:
        seen.setdefault(str(incident["id"]), (incident, ev))
    items = sorted(seen.values(), key=lambda it: (_sev_rank(it[0].get("severity")), it[0].get("first_ms") or 0))
    inc0, ev0 = items[0]
    ev_name = "renotified" if reminder else ev0
    event_txt = t(lang, f"event.{ev_name}") if f"event.{ev_name}" in _TEXT["en"] else t(lang, "event.other")
    if len(items) == 1:
        return _single(cfg, inc0, event_txt, lang=lang, elder_care=elder_care)
    return _grouped(cfg, [i for i, _ in items], event_txt, lang=lang, elder_care=elder_care, max_listed=max_listed)


def _how_many(cfg: SiteConfig, lang: str, incident: Mapping[str, Any]) -> str:
    n = places.device_count(cfg, incident)
    if incident.get("type") in places.DEVICE_COUNT_TYPES:
        detail = incident.get("detail") or {}
        of = detail.get("of") if isinstance(detail, Mapping) else None
        return t(lang, "offline_n", n=n) + (t(lang, "of_n", n=of) if isinstance(of, int) else "")
    parts = [t(lang, "devices_n", n=n)] if n else []
    parts.append(t(lang, "triggers_n", n=int(incident.get("count") or 1)))
    return ("，" if lang == "zh" else ", ").join(parts)


def _single(cfg: SiteConfig, incident: Mapping[str, Any], event_txt: str, *, lang: str, elder_care: bool) -> Message:
    sev = label(lang, "sev", incident.get("severity"))
    title = t(lang, "title", sev=sev, what=what(lang, incident)) + f" {event_txt}"
    place, rel = where(cfg, lang, incident, elder_care=elder_care)
    released: dict[str, list[str]] = {str(incident["id"]): list(rel)} if rel else {}
    resident = _resident(cfg, lang, incident, elder_care, released)
    fields = [
        (t(lang, "where"), f"{place}{resident}"),
        (t(lang, "how_many"), _how_many(cfg, lang, incident)),
        (t(lang, "since"), local(cfg, places.since_ms(incident))),
        (t(lang, "severity"), sev),
    ]
    lines_txt = [title] + [f"{k}: {v}" for k, v in fields]
    lines_md = [f"### {title}"] + [f"> **{k}**: {v}" for k, v in fields]
    card = lines_txt[1:]
    url = link(cfg, str(incident["id"]))
    if url:
        lines_txt.append(url)
        lines_md.append(f"[{t(lang, 'link')}]({url})")
    short = f"{title} {place} {local(cfg, places.since_ms(incident))}"
    return Message(title, "\n".join(lines_txt), "\n".join(lines_md), short, released, card, url)


def _grouped(
    cfg: SiteConfig,
    incidents: Sequence[Mapping[str, Any]],
    event_txt: str,
    *,
    lang: str,
    elder_care: bool,
    max_listed: int,
) -> Message:
    inc0 = incidents[0]
    sev = label(lang, "sev", inc0.get("severity"))
    n = len(incidents)
    kinds: dict[str, int] = {}
    for i in incidents:
        kinds[what(lang, i)] = kinds.get(what(lang, i), 0) + 1
    if len(kinds) == 1:
        title = t(lang, "group_title", sev=sev, what=what(lang, inc0), n=n) + f" {event_txt}"
    else:
        title = t(lang, "mixed_title", sev=sev, n=n) + f" {event_txt}"
    dot = " · "
    unit = "unit_devices" if places.counts_devices(incidents) else "unit_incidents"
    summary: list[tuple[str, str]] = []
    if places.counts_devices(incidents):
        total = sum(places.device_count(cfg, i) for i in incidents)
        summary.append((t(lang, "how_many"), t(lang, "offline_n", n=total)))
    if len(kinds) > 1:
        summary.append((t(lang, "kinds"), dot.join(f"{k} {v}" for k, v in kinds.items())))
    summary.append((t(lang, "breakdown"), dot.join(f"{b} {t(lang, unit, n=c)}" for b, c in
                                                   places.per_building(cfg, incidents, lang))))  # fmt: skip
    all_places = [places.place_of(cfg, i, elder_care=elder_care) for i in incidents]
    released: dict[str, list[str]] = {
        str(i["id"]): list(p.released) for i, p in zip(incidents, all_places, strict=True) if p.released
    }
    if any(i.get("severity") == "critical" or i.get("life_safety") for i in incidents):
        summary.append((t(lang, "places"), places.place_list(all_places, lang)))  # a critical group names each place
    firsts = [s for s in (places.since_ms(i) for i in incidents) if s]
    summary.append((t(lang, "earliest"), local(cfg, min(firsts) if firsts else None)))
    lines_txt = [title] + [f"{k}: {v}" for k, v in summary]
    lines_md = [f"### {title}"] + [f"> **{k}**: {v}" for k, v in summary]
    card = lines_txt[1:]
    for incident, p in list(zip(incidents, all_places, strict=True))[:max_listed]:
        resident = _resident(cfg, lang, incident, elder_care, released)
        place = p.where(lang) or t(lang, "unknown_place")
        entry = f"- {local(cfg, places.since_ms(incident))} {what(lang, incident)} {place}"
        if incident.get("type") in places.DEVICE_COUNT_TYPES:
            entry += f" {t(lang, 'unit_devices', n=places.device_count(cfg, incident))}"
        entry += resident
        url = link(cfg, str(incident["id"]))
        lines_txt.append(entry + (f" {url}" if url else ""))
        lines_md.append(entry + (f" [{t(lang, 'link')}]({url})" if url else ""))
        card.append(entry)
    if n > max_listed:
        more = t(lang, "more", n=n - max_listed)
        lines_txt.append(more)
        lines_md.append(more)
        card.append(more)
    place0, _ = where(cfg, lang, inc0)
    short = f"{title} {place0} {local(cfg, places.since_ms(inc0))}"
    return Message(title, "\n".join(lines_txt), "\n".join(lines_md), short, released, card,
                   link(cfg, str(inc0["id"])))  # fmt: skip


def _resident(
    cfg: SiteConfig, lang: str, incident: Mapping[str, Any], elder_care: bool, released: dict[str, list[str]]
) -> str:
    if not (elder_care and incident.get("resident_id")):
        return ""
    res = cfg.resident(incident["resident_id"])
    if res is None:
        return ""
    released.setdefault(str(incident["id"]), []).append("name")
    return f" {t(lang, 'resident')}: {res.name}"


def voice_text(cfg: SiteConfig, lang: str, incident: Mapping[str, Any]) -> str:
    place, _ = where(cfg, lang, incident)
    return t(lang, "voice", what=what(lang, incident), where=place)


def _sev_rank(sev: object) -> int:
    order = ("critical", "major", "minor", "warning")
    return order.index(sev) if sev in order else len(order)
