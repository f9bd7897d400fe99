"""Text colours of the stylesheet meet WCAG AA contrast (4.5:1) on the backgrounds they sit on."""

from __future__ import annotations

import re

from cunan.web.render import TEMPLATE_DIR

CSS = (TEMPLATE_DIR.parent / "static" / "cunan.css").read_text(encoding="utf-8")


def _luminance(colour: str) -> float:
    hex_ = colour.lstrip("#")
    if len(hex_) == 3:
        hex_ = "".join(c * 2 for c in hex_)
    channels = [int(hex_[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _variable(name: str) -> str:
    found = re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{3,6}})", CSS)
    assert found is not None, name
    return found.group(1)


def test_text_colours_meet_aa_contrast() -> None:
    ink, muted, accent, bad = (_variable(n) for n in ("ink", "muted", "accent", "bad"))
    page, card, new_case, badge = "#f6f8fa", "#ffffff", "#fff8c5", "#eaeef2"
    pairs = {
        "text on a card": (ink, card),
        "text on the page": (ink, page),
        "hints on a card": (muted, card),
        "hints on the page": (muted, page),
        "links on a card": (accent, card),
        "links on a live new case": (accent, new_case),
        "errors on a card": (bad, card),
        "button text": ("#ffffff", accent),
        "danger button text": ("#ffffff", bad),
        "done messages": ("#1a7f37", card),
        "counts": (ink, badge),
    }
    weak = {k: round(contrast(*v), 2) for k, v in pairs.items() if contrast(*v) < 4.5}
    assert weak == {}


def test_the_check_itself() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert contrast("#777777", "#ffffff") < 4.5


def test_focus_rings_and_field_borders_are_visible() -> None:
    # WCAG 2.2 non-text contrast: 3:1 against what surrounds them.
    focus = _variable("focus")
    rings = re.findall(r"outline: \d+px solid ([^;]+);", CSS)
    assert rings and set(rings) == {"var(--focus)"}
    for background in ("#ffffff", "#f6f8fa"):
        assert contrast(focus, background) >= 3.0
    border = re.search(r"input \{[^}]*border: 1px solid (#[0-9a-f]{6})", CSS)
    assert border is not None and contrast(border.group(1), "#ffffff") >= 3.0
