"""The resident pages' catalogs (gateway/residents/static/i18n): both languages carry the same keys,
every report type and every refusal code the API can answer has a sentence, and the pages name
only keys that exist."""

from __future__ import annotations

import json
import re

import pytest

from edge_config.resident_settings import DEFAULT_REPORT_TYPES
from gateway.core.links import PURPOSES
from gateway.residents import texts
from gateway.residents.evaluation import ResidentRefused

LINK_CODES = ("link_used", "link_expired", "link_invalid", "link_malformed", "link_revoked", "link_unknown",
              "link_wrong_purpose")  # fmt: skip


def _keys(d: dict[str, object], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for k, v in d.items():
        out |= _keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return out


def test_both_languages_have_the_same_keys() -> None:
    assert _keys(texts.catalog("zh")) == _keys(texts.catalog("en"))
    assert len(texts.catalog("zh")["stars"]) == len(texts.catalog("en")["stars"]) == 5


@pytest.mark.parametrize("lang", texts.LANGS)
def test_every_report_type_and_refusal_has_words(lang: str) -> None:
    cat = texts.catalog(lang)
    assert sorted(t for t in DEFAULT_REPORT_TYPES if not cat["type"].get(t)) == []
    codes = [c for c in ResidentRefused.STATUS if c not in ("invalid", "not_available")]
    assert sorted(c for c in (*LINK_CODES, *codes, "error") if not cat.get(c)) == []
    assert "evaluate" in PURPOSES and "report" in PURPOSES


def test_pages_use_only_known_keys() -> None:
    used: set[str] = set()
    for page in ("evaluate.html", "report.html"):
        used |= set(re.findall(r'data-t="([a-z_]+)"', (texts.STATIC_DIR / page).read_text(encoding="utf-8")))
    js = (texts.STATIC_DIR / "resident.js").read_text(encoding="utf-8")
    used |= set(re.findall(r'(?:\bt|formError)\("([a-z_]+)"', js))
    assert used and sorted(used - set(texts.catalog("zh"))) == []
    json.dumps(texts.catalog("en"))  # plain JSON, served as is
