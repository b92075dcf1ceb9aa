"""The resident pages' catalogs (``static/i18n/<lang>.json``), also used for the SMS texts.

The pages are Chinese first with English available; the same files give the server its SMS wording,
so one translation serves both. ``tests/test_resident_texts.py`` checks both catalogs have the same
keys and a label for every report type.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).resolve().parent / "static"
LANGS = ("zh", "en")


@functools.cache
def catalog(lang: str) -> dict[str, Any]:
    name = lang if lang in LANGS else "zh"
    data: dict[str, Any] = json.loads((STATIC_DIR / "i18n" / f"{name}.json").read_text(encoding="utf-8"))
    return data


def type_label(lang: str, incident_type: str) -> str:
    labels: dict[str, str] = catalog(lang).get("type", {})
    return labels.get(incident_type) or labels.get("report") or incident_type


def text(lang: str, key: str, **values: str) -> str:
    template = str(catalog(lang)[key])
    for k, v in values.items():
        template = template.replace("{" + k + "}", v)
    return template
