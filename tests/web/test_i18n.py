"""Every string a page shows goes through the catalogs, and every one has its Chinese text."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po
from jinja2 import Environment

from cunan.web.i18n import (
    CATALOG_LANGUAGES,
    TEMPLATE_DIR,
    catalog_path,
    template_messages,
    translations,
)
from cunan.web.render import TEMPLATES

#: Attributes whose value a person reads (or hears from a screen reader).
_READ_ATTRIBUTES = re.compile(
    r'\b(?:title|alt|placeholder|aria-label|value|label)="([^"{]*)"', re.IGNORECASE
)


def _raw_text(source: str, env: Environment) -> list[str]:
    """Words written straight into a template's HTML instead of through gettext."""
    # The template's HTML with every Jinja construct replaced by a marker, so a tag cut by
    # an expression ({{ ... }}) is still one tag.
    pieces: list[str] = []
    for _line, token, value in env.lex(source):
        if token == "data":
            pieces.append(value)
        elif not pieces or pieces[-1] != "\x00":
            pieces.append("\x00")
    html = "".join(pieces)
    found = [a for a in _READ_ATTRIBUTES.findall(html) if any(ch.isalpha() for ch in a)]
    text = re.sub(r"<[^>]*>", " ", html)
    text = re.sub(r"&[a-z]+;|&#\d+;", " ", text)
    found.extend(w for w in text.split() if any(ch.isalpha() for ch in w))
    return found


def test_no_template_shows_words_outside_the_catalog() -> None:
    env = TEMPLATES.env
    problems = {}
    for path in sorted(TEMPLATE_DIR.glob("*.html")):
        raw = _raw_text(path.read_text(encoding="utf-8"), env)
        if raw:
            problems[path.name] = raw
    assert problems == {}


def test_the_raw_text_check_catches_an_unwrapped_word() -> None:
    env = TEMPLATES.env
    assert _raw_text('<p>{{ _("Cases") }}</p>', env) == []
    assert _raw_text("<p>Cases</p>", env) == ["Cases"]
    assert _raw_text('<input placeholder="Search">', env) == ["Search"]
    assert _raw_text("<h1>案件</h1>", env) == ["案件"]


def test_every_template_string_has_its_chinese_translation() -> None:
    messages = template_messages()
    assert len(messages) > 50
    for language in CATALOG_LANGUAGES:
        with catalog_path(language).open("rb") as source:
            catalog = read_po(source, locale=language)
        missing = []
        for msgid, where in sorted(messages.items()):
            entry = catalog.get(msgid)
            if entry is None:
                # A plural id lives under its singular.
                if any(
                    isinstance(m.id, tuple) and msgid in m.id and m.string and all(m.string)
                    for m in catalog
                ):
                    continue
                missing.append((msgid, sorted(where)))
                continue
            strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
            if entry.fuzzy or not all(strings):
                missing.append((msgid, sorted(where)))
        assert missing == [], f"untranslated in {language}: {missing}"
        unused = [
            m.id
            for m in catalog
            if m.id and (m.id[0] if isinstance(m.id, tuple) else m.id) not in messages
        ]
        assert unused == [], f"{language} catalog has strings no template uses: {unused}"


def test_catalogs_compile_at_start_up_and_keep_placeholders() -> None:
    zh = translations("zh")
    assert zh.gettext("Dashboard") == "工作台"
    assert zh.ngettext("%(num)d case", "%(num)d cases", 3) % {"num": 3} == "3 个案件"
    assert translations("en").gettext("Dashboard") == "Dashboard"
    with catalog_path("zh").open("rb") as source:
        catalog = read_po(source, locale="zh")
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(re.findall(r"%\(\w+\)[ds]|\{\w+\}", ids[0]))
        for text in strings:
            assert set(re.findall(r"%\(\w+\)[ds]|\{\w+\}", text)) == wanted, message.id


def test_the_catalog_ships_with_the_package() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"web/templates/*"' in pyproject
    assert '"web/locale/*/LC_MESSAGES/*.po"' in pyproject
