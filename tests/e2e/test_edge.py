"""The API's edge over HTTP (issue 13, items 7 and 8): every malformed request an outside probe sent is a 4xx
application/problem+json naming the field, creates nothing, and is a status the OpenAPI document declares."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from tests.e2e.test_api import DRAFT, count_jobs

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def openapi(stack) -> dict:
    return httpx.get(f"{stack.url}/v1/openapi.json").json()


def refused(response: httpx.Response, status: int, field: str | None, openapi: dict, operation: str) -> dict:
    """`response` is a `status` problem naming `field`, and `operation` ("POST /v1/jobs") declares that status
    with that content type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    problem = response.json()
    assert problem["status"] == status and problem["type"].startswith("urn:hvr:problem:")
    if field is not None:
        assert field in [e["field"] for e in problem["errors"]], problem
    method, path = operation.split(" ")
    declared = openapi["paths"][path][method.lower()]["responses"]
    assert PROBLEM in declared[str(status)]["content"], (operation, status, declared.get(str(status)))
    return problem


def raw(api: httpx.Client, path: str, body: bytes, content_type: str = "application/json") -> httpx.Response:
    return api.post(path, content=body, headers={"content-type": content_type})


# --- bodies ----------------------------------------------------------------------------------------------------

CONTROL_TEXT = [
    ({**DRAFT, "prompt": "a paper boat\x00"}, "prompt"),
    ({**DRAFT, "prompt": "\x1b[31mred\x1b[0m boat"}, "prompt"),  # ANSI colour
    ({**DRAFT, "prompt": "boat \x9b2J"}, "prompt"),  # C1 CSI: "clear screen" without the ESC
    ({**DRAFT, "prompt": "boat\x7f"}, "prompt"),
    ({**DRAFT, "negative_prompt": "blur\x1b]0;pwned\x07"}, "negative_prompt"),
    ({**DRAFT, "model": "local/\x00animatediff-sd15"}, "model"),
    ({**DRAFT, "campaign_id": "cmp\nforged log line"}, "campaign_id"),
]


@pytest.mark.parametrize(("body", "field"), CONTROL_TEXT)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/quotes"])
def test_control_characters_in_text_are_refused(acme: httpx.Client, openapi: dict, body: dict, field: str,
                                                path: str) -> None:
    before = count_jobs(acme)
    problem = refused(acme.post(path, json=body), 400, field, openapi, f"POST {path}")
    assert "control character" in problem["errors"][0]["message"]
    assert count_jobs(acme) == before


def test_tabs_and_line_breaks_in_a_prompt_are_fine(acme: httpx.Client) -> None:
    response = acme.post("/v1/quotes", json={**DRAFT, "prompt": "a paper boat\n\ton a pond\r\nat dawn"})
    assert response.status_code == 200, response.text


def test_a_campaign_item_with_control_characters_is_an_invalid_line(acme: httpx.Client) -> None:
    created = acme.post("/v1/campaigns", json={"name": "edge-controls", "items": [
        {**DRAFT, "item_id": "ok", "max_cost_usd": "0.01"}, {**DRAFT, "item_id": "bad", "prompt": "x\x1b[2J"}]})
    assert created.status_code == 202, created.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        view = acme.get(f"/v1/campaigns/{created.json()['id']}").json()
        # Its good item's job too: created later, it would land in the next test's count of jobs.
        jobs = acme.get("/v1/jobs", params={"campaign_id": created.json()["id"]}).json()["items"]
        if view["invalid_items"] and jobs:
            break
        time.sleep(0.2)
    assert [(i["item_id"], i["field"]) for i in view["invalid_items"]] == [("bad", "prompt")]


UNREADABLE = [
    (b"[" * 10_000 + b"]" * 10_000, "nested deeper"),  # was a 500: RecursionError
    (b'{"mode": "t2v", "prompt": "\xff\xfe boat"}', "not UTF-8"),  # was a 500: UnicodeDecodeError
    (b'{"mode": "t2v", "prompt": "\\ud800 boat"}', "not Unicode"),  # a lone surrogate DynamoDB can't store
    (b'{"mode": "t2v", "prompt": "boat", "duration_s": NaN}', "NaN"),
    (b'{"mode": "t2v", "prompt": ', "not JSON"),
]


@pytest.mark.parametrize(("body", "message"), UNREADABLE)
@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/quotes", "/v1/campaigns", "/v1/uploads", "/v1/keys"])
def test_an_unreadable_body_is_a_400_naming_the_body(acme: httpx.Client, openapi: dict, body: bytes, message: str,
                                                     path: str) -> None:
    before = count_jobs(acme)
    problem = refused(raw(acme, path, body), 400, "body", openapi, f"POST {path}")
    assert message in problem["errors"][0]["message"], problem
    assert count_jobs(acme) == before


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded",
                                          "application/xml"])
def test_a_body_that_is_not_json_is_a_415_problem(acme: httpx.Client, openapi: dict, content_type: str) -> None:
    before = count_jobs(acme)
    body = json.dumps(DRAFT).encode()
    refused(raw(acme, "/v1/jobs", body, content_type), 415, "Content-Type", openapi, "POST /v1/jobs")
    assert count_jobs(acme) == before
    assert raw(acme, "/v1/quotes", body, "application/json; charset=utf-8").status_code == 200


# --- cursors, path and query parameters ---------------------------------------------------------------------------


def cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


FORGED_CURSORS = [
    cursor({"pk": "x"}),  # was a 500: botocore ParamValidationError
    cursor(7), cursor(None), cursor([]),
    cursor({"pk": {"S": "T#acme#J#x"}, "gsi1pk": {"S": "T#acme"}, "gsi1sk": {"N": "1"}}),
    cursor({"pk": {"S": ""}, "gsi1pk": {"S": "T#acme"}, "gsi1sk": {"S": ""}}),  # empty keys: ValidationException
    cursor({"pk": {"S": "T#acme#J#x"}, "gsi1pk": {"S": "T#acme"}, "gsi1sk": {"S": "x" * 1500}}),  # over 1 KB
    base64.urlsafe_b64encode(b"[" * 1500).decode(),
    "%%%",
]


@pytest.mark.parametrize("forged", FORGED_CURSORS)
def test_a_forged_cursor_is_a_400_naming_the_cursor(acme: httpx.Client, openapi: dict, forged: str) -> None:
    refused(acme.get("/v1/jobs", params={"cursor": forged}), 400, "cursor", openapi, "GET /v1/jobs")


def test_a_cursor_works_only_on_its_own_listing(acme: httpx.Client, beta: httpx.Client, openapi: dict) -> None:
    for _ in range(2):
        assert beta.post("/v1/jobs", json={**DRAFT, "max_cost_usd": "0.01"}).status_code == 202
    page = beta.get("/v1/jobs", params={"limit": 1}).json()
    assert page["next_cursor"]
    assert beta.get("/v1/jobs", params={"limit": 1, "cursor": page["next_cursor"]}).status_code == 200
    # Another tenant's cursor, or one from the unfiltered listing used on a status listing, starts nowhere.
    refused(acme.get("/v1/jobs", params={"cursor": page["next_cursor"]}), 400, "cursor", openapi, "GET /v1/jobs")
    refused(beta.get("/v1/jobs", params={"status": "accepted", "cursor": page["next_cursor"]}), 400, "cursor",
            openapi, "GET /v1/jobs")


def test_percent_encoded_path_parameters_are_decoded(acme: httpx.Client) -> None:
    response = acme.put("/v1/budgets/tenant%3At9", json={"limit_usd": "12.5"})  # was a 400
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "tenant:t9"


@pytest.mark.parametrize(("operation", "url", "field"), [
    ("GET /v1/jobs/{job_id}", "/v1/jobs/" + "j" * 200, "job_id"),
    ("GET /v1/jobs/{job_id}", "/v1/jobs/job%20one", "job_id"),
    ("POST /v1/jobs/{job_id}/cancel", "/v1/jobs/%C2%84/cancel", "job_id"),  # a C1 control Powertools won't route
    ("GET /v1/campaigns/{campaign_id}", "/v1/campaigns/cmp%22x", "campaign_id"),
    ("PUT /v1/budgets/{scope}", "/v1/budgets/%C2%84", "scope"),
    ("PUT /v1/budgets/{scope}", "/v1/budgets/tenant%3AT9", "scope"),
])
def test_a_bad_path_parameter_is_a_400_naming_it(acme: httpx.Client, openapi: dict, operation: str, url: str,
                                                 field: str) -> None:
    method = operation.split(" ")[0]
    response = acme.request(method, url, json={"limit_usd": "1"} if method == "PUT" else None)
    refused(response, 400, field, openapi, operation)


@pytest.mark.parametrize(("params", "field"), [({"to": "0"}, "to"), ({"from": "2026-01-01T00:00:00"}, "from"),
                                               ({"from": "2000-01-01"}, "to")])
def test_a_bad_day_is_a_400_naming_it(acme: httpx.Client, openapi: dict, params: dict, field: str) -> None:
    refused(acme.get("/v1/costs/tco", params=params), 400, field, openapi, "GET /v1/costs/tco")


# --- methods ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "DELETE", "PATCH"])
def test_a_method_a_path_does_not_serve_is_405_with_allow(acme: httpx.Client, method: str) -> None:
    response = acme.request(method, "/v1/jobs")  # TRACE was a 501 from the embedded gateway
    assert response.status_code == 405 and response.headers["content-type"].startswith(PROBLEM)
    assert response.headers["allow"] == "GET, POST"
    health = acme.request(method, "/v1/health")
    assert health.status_code == 405 and health.headers["allow"] == "GET"


# --- the document ---------------------------------------------------------------------------------------------------


def test_every_operation_declares_its_problems(openapi: dict) -> None:
    schemas = openapi["components"]["schemas"]
    assert {"Problem", "FieldProblem", "GatewayMessage"} <= set(schemas)
    assert "HTTPValidationError" not in schemas  # Powertools' 422, which this API never answers
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    assert response["content"], (method, path, status)
            if (method, path) == ("put", "/v1/agents/{name}"):
                assert "401" in responses, (method, path)  # signed by the agent's own key, no API key to forbid
            elif path != "/v1/health":
                assert {"401", "403"} <= set(responses), (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(responses), (method, path)
            if "{" in path:
                assert "400" in responses, (method, path)


def test_the_schema_states_the_cross_field_rules(openapi: dict) -> None:
    request = openapi["components"]["schemas"]["VideoRequest-Input"]
    needs = {mode: branch["required"] for branch in request["anyOf"] for mode in branch["properties"]["mode"]["enum"]}
    assert needs == {
        "t2v": ["mode"], "i2v": ["mode", "image"], "camera": ["mode", "image"], "s2v": ["mode", "audio"],
        "inpaint": ["mode", "image", "mask"], "r2v": ["mode", "reference_images"],
        "flf2v": ["mode", "image", "last_image"], "animate": ["mode", "image", "video"], "extend": ["mode", "video"]}
    assert request["not"]["required"] == ["deadline", "deadline_s"]
    campaign = openapi["components"]["schemas"]["CampaignCreate"]
    assert [branch["required"] for branch in campaign["oneOf"]] == [["items"], ["manifest"]]
    jobs = openapi["paths"]["/v1/jobs"]["post"]
    assert {"deadline", "image", "callback_url"} <= set(jobs["x-hvr-unstated-rules"])
    assert "deadline" in jobs["description"]


def test_a_manifest_ref_urlsplit_cannot_read_is_a_400_naming_it(acme: httpx.Client, openapi: dict) -> None:
    response = acme.post("/v1/campaigns", json={"name": "edge-manifest", "manifest": "s3://a[b/campaigns/x.jsonl"})
    refused(response, 400, "manifest", openapi, "POST /v1/campaigns")  # was a 500: "Invalid IPv6 URL"
