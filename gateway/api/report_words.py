"""Words for the coded values in exports (category, type, severity, state, scorecard kinds), from the
console's catalogs: gateway/console/i18n/<lang>.json and the site views' site.<lang>.json, which
carries what the first may lack. Read once per language."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

I18N = Path(__file__).resolve().parent.parent / "console" / "i18n"
# (group in the export, group in the main catalog, group in the site catalog)
GROUPS = (
    ("category", "category", "category"),
    ("type", "type", "type"),
    ("sev", "sev", "sev"),
    ("state", "state", "state"),
    ("kind", None, "score_kind"),  # the main catalog's "kind" is event kinds
)


@dataclass
class Words:
    groups: dict[str, dict[str, str]] = field(default_factory=dict)
    yes: str = "yes"

    def of(self, group: str, code: Any) -> Any:
        return self.groups.get(group, {}).get(str(code), code) if code is not None else None


def _read(name: str) -> dict[str, Any]:
    try:
        data = json.loads((I18N / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@functools.cache
def words(lang: str) -> Words:
    lang = "zh" if lang == "zh" else "en"
    site, main = _read(f"site.{lang}.json"), _read(f"{lang}.json")
    w = Words(yes=str(site.get("yes", "yes")))
    for group, in_main, in_site in GROUPS:
        merged: dict[str, str] = {}
        for src, key in ((site, in_site), (main, in_main)):  # the main catalog wins where both say it
            g = src.get(key) if key else None
            if isinstance(g, dict):
                merged.update({str(k): str(v) for k, v in g.items()})
        w.groups[group] = merged
    return w
