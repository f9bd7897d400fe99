"""Errors the schema promises: problem+json documented for every operation, numbers past what
the database stores refused as invalid input instead of a 500, misspelt filters refused."""

from __future__ import annotations

from typing import get_args

import pytest
from fastapi.testclient import TestClient

from cunan.api.problems import PROBLEM_JSON
from cunan.api.routes.cases import CaseStatusName
from cunan.api.routes.ops import DecisionName
from cunan.storage.case_tables import CASE_STATUSES
from cunan.storage.pipeline_tables import SIGHTING_DECISIONS

#: Past SQLite's 64-bit INTEGER (the driver cannot even bind it) and PostgreSQL's BIGINT.
HUGE = 24218828827885826048


def test_every_operation_documents_its_problem_responses(clients: dict[str, TestClient]) -> None:
    schema = clients["admin"].get("/api/v1/openapi.json").json()
    assert schema["components"]["schemas"]["Problem"]["required"] == [
        "type",
        "title",
        "status",
        "detail",
    ]
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert len(operations) > 25
    for operation in operations:
        responses = operation["responses"]
        # FastAPI's default 422 body (HTTPValidationError) is never what this API sends.
        assert "422" not in responses, operation["summary"]
        for status in ("4XX", "503"):
            content = responses[status]["content"]
            assert list(content) == [PROBLEM_JSON]
            assert content[PROBLEM_JSON]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_a_refused_request_answers_with_the_documented_problem(
    clients: dict[str, TestClient],
) -> None:
    response = clients["admin"].post("/api/v1/users", json={"username": ""})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM_JSON
    assert set(response.json()) == {"type", "title", "status", "detail"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/api/v1/people/{HUGE}", None),
        ("GET", f"/api/v1/houses/{HUGE}", None),
        ("POST", f"/api/v1/users/{HUGE}/password", {"new_password": "Another-horse-42"}),
        ("PATCH", f"/api/v1/users/{HUGE}", {"disabled": True}),
        ("GET", f"/api/v1/people?offset={HUGE}", None),
        ("GET", f"/api/v1/sightings?camera_id={HUGE}", None),
    ],
)
def test_numbers_past_the_database_range_are_refused_not_a_server_error(
    clients: dict[str, TestClient], method: str, path: str, body: dict[str, object] | None
) -> None:
    response = clients["admin"].request(method, path, json=body)
    # Such a record cannot exist (404) or the number cannot be stored (422); never a 500.
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    # The driver's message quotes the statement and its parameters: never shown.
    assert "SELECT" not in response.text and "INTEGER" not in response.text


def test_the_filters_name_exactly_the_values_storage_holds() -> None:
    assert get_args(CaseStatusName) == CASE_STATUSES
    assert get_args(DecisionName) == SIGHTING_DECISIONS


@pytest.mark.parametrize("path", ["/api/v1/cases?status=opne", "/api/v1/sightings?decision=unkown"])
def test_a_misspelt_filter_is_refused_not_an_empty_list(
    clients: dict[str, TestClient], path: str
) -> None:
    # An empty list would read as "no open cases" to staff who mistyped the filter.
    response = clients["staff"].get(path)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    good = path.replace("opne", "open").replace("unkown", "unknown")
    assert clients["staff"].get(good).status_code == 200
