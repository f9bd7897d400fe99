"""docs/api.md names every web setting and every area of the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from cunan.api.app import all_routes
from cunan.config import WebSettings

DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_web_setting_is_documented() -> None:
    missing = [name for name in WebSettings.model_fields if f"web.{name}" not in DOC]
    assert missing == []


def test_every_api_resource_is_in_the_docs(api: FastAPI) -> None:
    resources = {path.split("/")[3] for _, path in all_routes(api) if path.startswith("/api/v1/")}
    assert len(resources) > 10
    missing = sorted(r for r in resources if f"/{r}" not in DOC and f"/{r}" not in README)
    assert missing == []
