"""Message catalogs for the pages: Chinese by default, English on request; compiled at start-up."""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
#: The languages a page may be shown in; the first is the default. Message ids are English,
#: so English needs no catalog of its own.
LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = LANGUAGES[0]
#: Languages with a catalog (English is the message ids themselves).
CATALOG_LANGUAGES = ("zh",)
#: The cookie remembering the language a user chose (``?lang=`` on any page sets it).
LANG_COOKIE = "cunan_lang"
#: The value of each language's ``lang`` attribute in the HTML.
HTML_LANG = {"zh": "zh-CN", "en": "en"}
#: Each language named in itself, for the switch (never translated).
LANGUAGE_NAMES = {"zh": "中文", "en": "English"}


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The language's catalog, compiled from its .po with Babel's own code (no build step)."""
    if language not in LANGUAGES:
        raise ValueError(f"unknown page language {language!r} (one of {', '.join(LANGUAGES)})")
    path = catalog_path(language)
    if not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    # Fuzzy entries are guesses a translator has not confirmed: never shown.
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def choose(query: str | None, cookie: str | None) -> str:
    """The page language: ``?lang=`` first, then the remembered choice, else Chinese."""
    for candidate in (query, cookie):
        if candidate in LANGUAGES:
            return candidate
    return DEFAULT_LANGUAGE


TEMPLATE_DIR = Path(__file__).parent / "templates"
#: The gettext calls templates use (``_``, ``gettext``, ``ngettext`` and ``{% trans %}``).
KEYWORDS = ("_", "gettext", "ngettext")


def template_messages() -> dict[str, set[str]]:
    """Every message id the templates use, with the templates using it (plural ids too)."""
    from jinja2.ext import babel_extract

    found: dict[str, set[str]] = {}
    for path in sorted(TEMPLATE_DIR.glob("*.html")):
        with path.open("rb") as source:
            for _line, _func, message, _comments in babel_extract(
                source, KEYWORDS, [], {"extensions": "jinja2.ext.i18n"}
            ):
                ids = message if isinstance(message, tuple) else (message,)
                for msgid in ids:
                    # Keyword arguments of a call come back as None beside its strings.
                    if isinstance(msgid, str) and msgid:
                        found.setdefault(msgid, set()).add(path.name)
    return found


def update_catalogs() -> list[str]:
    """Adds the templates' new message ids (untranslated) to the catalogs and drops the ids
    no template uses; returns the added ids."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import write_po

    messages = template_messages()
    plurals = _plural_pairs()
    added: list[str] = []
    for language in CATALOG_LANGUAGES:
        path = catalog_path(language)
        if path.is_file():
            with path.open("rb") as source:
                catalog = read_po(source, locale=language)
        else:
            catalog = Catalog(locale=language, project="CunAn")
        for msgid in sorted(messages):
            if msgid in plurals.values():
                continue
            key = (msgid, plurals[msgid]) if msgid in plurals else msgid
            if catalog.get(msgid) is None:
                catalog.add(key, locations=[(name, 0) for name in sorted(messages[msgid])])
                added.append(msgid)
        # Strings no template uses any more leave the catalog.
        for message in list(catalog):
            first = message.id[0] if isinstance(message.id, tuple | list) else message.id
            if first and first not in messages:
                catalog.delete(message.id)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            write_po(out, catalog, omit_header=False, no_location=True, width=100)
    return added


def _plural_pairs() -> dict[str, str]:
    """Singular id -> plural id of every ``ngettext`` call in the templates."""
    from jinja2.ext import babel_extract

    pairs: dict[str, str] = {}
    for path in sorted(TEMPLATE_DIR.glob("*.html")):
        with path.open("rb") as source:
            for _line, func, message, _comments in babel_extract(
                source, KEYWORDS, [], {"extensions": "jinja2.ext.i18n"}
            ):
                if func == "ngettext" and isinstance(message, tuple) and len(message) >= 2:
                    singular, plural = message[0], message[1]
                    if isinstance(singular, str) and isinstance(plural, str):
                        pairs[singular] = plural
    return pairs


if __name__ == "__main__":
    # python -m cunan.web.i18n: add the templates' new strings to the catalogs to translate.
    for msgid in update_catalogs():
        print(msgid)
