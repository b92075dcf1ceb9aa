"""The one catalog of words people read: incident types, states, roles, event kinds, error codes,
departments, categories, severities, actions and the console's own phrases, in Chinese and English.

The files are ``gateway/console/i18n/<lang>.json``: the console fetches them as they are, and the
message channels read them through :func:`label`, so a page and a WeCom message say the same word
for the same code. ``tests/test_i18n_catalog.py`` fails when any code the gateway can produce lacks
a label in either language.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).resolve().parents[1] / "console" / "i18n"
LANGUAGES: tuple[str, ...] = ("zh", "en")
# The groups of codes (each a JSON object of code -> words); everything else is a page phrase.
GROUPS: tuple[str, ...] = (
    "sev",
    "state",
    "category",
    "type",
    "kind",
    "actor",
    "role",
    "department",
    "action",
    "field",
    "stage",
    "reason",
    "flag",
    "dtype",
    "error",
)


@cache
def load(lang: str) -> dict[str, Any]:
    """The whole catalog of ``lang`` (read once per process)."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalog for language {lang!r}; one of {', '.join(LANGUAGES)}")
    data: dict[str, Any] = json.loads((CATALOG_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def label(lang: str, group: str, code: str, default: str | None = None) -> str:
    """The words for ``code`` in ``group`` (e.g. ``label("zh", "type", "sos")`` -> 紧急呼叫);
    ``default`` (or the code itself) when the catalog has none."""
    words = load(lang).get(group, {}).get(code)
    return str(words) if isinstance(words, str) and words else (default if default is not None else code)


def phrase(lang: str, key: str, **values: Any) -> str:
    """A page phrase with ``{name}`` placeholders filled (e.g. ``phrase("en", "floor_n", n=3)``)."""
    text = load(lang).get(key)
    out = text if isinstance(text, str) else key
    for k, v in values.items():
        out = out.replace("{" + k + "}", str(v))
    return out
