"""The security matrix of issue 19, over the embedded stack: every case is refused with the status the API documents
and changes nothing that can be read back (the job, its attempts, its ledger rows, the budgets, the registry).

1. Another tenant's ids on every route with a path parameter, the routes taken from the OpenAPI document (a new
   route joins the matrix by itself, and fails it until this file can make an id of its kind); a member key on
   every admin route.
2. Webhook forgery: Replicate's Standard Webhooks signature, RunPod's per-attempt token, the agent's HMAC callbacks
   (reference/reliability.md rows W1, W2, W4, G1).
3. API keys are kept only as hashes.
4. Bodies over the gateway's limit.
5. SSRF at submission: callback and input URLs that name a private, loopback or link-local address, or another
   scheme (row O1 at the API; the downloader's own checks are tests/unit/test_download.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from functions.api.handler import openapi_document
from hvr.local.embedded import EmbeddedStack
from hvr.local.provision import Stack
from hvr.sandbox.all import REPLICATE_TOKEN
from hvr.sandbox.base import Fault
from router.models.budget import period_of
from router.models.campaign import campaign_id
from router.models.common import utcnow
from router.providers.replicate import fetch_webhook_secret, make_client
from router.providers.runpod import webhook_token
from router.signing import AGENT_NAME_HEADER, KEY_ID_HEADER, MAX_SKEW_S, NONCE_HEADER, sign
from router.store.aws import client as aws_client
from router.store.keys import Principal
from router.store.messages import WorkerMessage
from tests.e2e.conftest import KEYS, client
from tests.e2e.test_agents import put as heartbeat
from tests.e2e.test_agents import registration
from tests.e2e.test_api import DRAFT, REPO, TERMINAL, count_jobs, wait_for
from tests.e2e.test_edge import PROBLEM, refused
from tests.waiting import until

# The document the API serves (GET /v1/openapi.json) is this one: read here so that each operation is a test id of
# its own; test_the_matrix_covers_every_route_of_the_served_document checks the served one is the same.
DOCUMENT: dict[str, Any] = json.loads(openapi_document())
OPERATIONS = [(method.upper(), path, operation) for path, operations in DOCUMENT["paths"].items()
              for method, operation in operations.items()]


def path_parameters(operation: dict[str, Any]) -> list[str]:
    return [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]


def admin_only(operation: dict[str, Any]) -> bool:
    return "(admin)" in operation.get("summary", "")  # how the document marks a route for admin keys


def signed_by_its_own_key(operation: dict[str, Any]) -> bool:
    """A route that takes no API key: its caller signs with a key of the resource's own (an agent's heartbeat)."""
    return operation.get("security") == [{}]


WITH_PATH_PARAMETER = [(method, path) for method, path, operation in OPERATIONS if path_parameters(operation)]
TENANT_SCOPED = [(method, path) for method, path, operation in OPERATIONS if path_parameters(operation)
                 and not admin_only(operation) and not signed_by_its_own_key(operation)]
ADMIN_ONLY = [(method, path) for method, path, operation in OPERATIONS if admin_only(operation)]


def operation_of(method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = DOCUMENT["paths"][path][method.lower()]
    return found


RUNPOD_T2V = json.loads((REPO / "samples/requests/09-runpod-t2v-720p.json").read_text())
REPLICATE_T2V = json.loads((REPO / "samples/requests/10-replicate-t2v-480p.json").read_text())
I2V = {"mode": "i2v", "prompt": "the product turns", "resolution": "480p", "duration_s": 5, "quality": "draft",
       "deadline_s": 86400}
AGENT = "gpu-sec"  # the registered box whose keys and registration the matrix must leave alone
CALLBACK_HOST = "hooks.example.test"  # the one host conftest's stack lets callbacks reach (its receiver)


# --- the world acme owns ---------------------------------------------------------------------------------------------


@dataclass
class World:
    """One resource of each kind, acme's, made through the API; and the clients the matrix calls with."""

    ids: dict[str, str]  # path parameter name → acme's id of that kind
    job: dict[str, Any]  # succeeded on the local GPU: attempts, a ledger row, a budget spent
    agent_key: dict[str, Any]  # the box's own key (id and secret)
    runpod: dict[str, Any]  # a RunPod job its sandbox holds in the queue: submitted, never finished
    replicate: dict[str, Any]  # the same on Replicate
    callers: dict[str, httpx.Client]


def _wait(what: str, done: Callable[[], Any], timeout_s: float = 60) -> Any:
    return until(done, timeout_s, what, every_s=0.05)


def _submitted(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """A job whose first attempt the provider has taken (it has the provider's id)."""
    created = api.post("/v1/jobs", json=body)
    assert created.status_code == 202, created.text

    def taken() -> dict[str, Any] | None:
        job: dict[str, Any] = api.get(f"/v1/jobs/{created.json()['id']}").json()
        attempts = job["attempts"]
        return job if attempts and attempts[0]["provider_job_id"] and attempts[0]["status"] == "submitted" else None

    found: dict[str, Any] = _wait("the provider to take the job", taken)
    return found


@pytest.fixture(scope="module")
def world(stack: EmbeddedStack) -> Iterator[World]:
    # The held jobs below must stay queued at their providers for the whole module, and the stall rule would cancel
    # them (30 minutes, at this time scale its 5 s real-time floor).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("router.services.poll.QUEUE_STALL_S", 10.0**9)
        yield from _world(stack)


def _world(stack: EmbeddedStack) -> Iterator[World]:
    deps = stack.deps
    deps.keys.put("beta-admin-key", Principal(tenant="beta", role="admin"), deps.clock())
    deps.keys.put("acme-plain-member-key", Principal(tenant="acme", role="member"), deps.clock())
    callers = {"beta member": client(stack, "beta-key"), "beta admin": client(stack, "beta-admin-key"),
               "acme member": client(stack, "acme-plain-member-key")}
    acme = client(stack, "acme-key")
    # A budget of acme's own, so that its job reserves and settles in it and a refused call could be seen moving it.
    assert acme.put("/v1/budgets/tenant:acme", json={"limit_usd": "100.00"}).status_code == 200
    # Held in the providers' queues for the whole module: webhooks can name a live attempt, and no render is paid for.
    stack.sandboxes.servers["runpod"].plan.queue("create", Fault.STUCK)
    stack.sandboxes.servers["replicate"].plan.queue("run", Fault.STUCK)
    runpod, replicate = _submitted(acme, RUNPOD_T2V), _submitted(acme, REPLICATE_T2V)
    # The campaign's one item is over its cost cap: rejected at routing, so the campaign ends without a render.
    created = acme.post("/v1/campaigns", json={"name": "security-matrix", "items": [
        {**DRAFT, "item_id": "only", "max_cost_usd": "0.0001"}]})
    assert created.status_code == 202, created.text
    cid = created.json()["id"]
    job = wait_for(acme, acme.post("/v1/jobs", json=DRAFT).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    _wait("the campaign to complete", lambda: acme.get(f"/v1/campaigns/{cid}").json()["status"] == "completed")
    key = acme.post(f"/v1/agents/{AGENT}/keys").json()
    assert heartbeat(stack, key, registration(stack), name=AGENT).status_code == 200
    world = World(ids={"job_id": job["id"], "campaign_id": cid, "scope": "tenant:acme", "name": AGENT},
                  job=job, agent_key=key, runpod=runpod, replicate=replicate, callers=callers)
    _wait("acme's resources to settle", lambda: all(_settled(stack, kind, found) for kind, found in world.ids.items()))
    yield world
    for held in (runpod, replicate):  # the sandboxes would hold them to their deadline
        acme.post(f"/v1/jobs/{held['id']}/cancel")
        wait_for(acme, held["id"])
    for api in (*callers.values(), acme):
        api.close()


# --- what "nothing changed" reads back --------------------------------------------------------------------------------


def provisioned(stack: EmbeddedStack) -> Stack:
    assert stack.stack is not None, "the stack is not started"
    return stack.stack


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def _budgets(stack: EmbeddedStack, *scopes: str) -> dict[str, Any]:
    period = period_of(stack.deps.clock())
    return {scope: _dump(budget) for scope, budget in stack.deps.budgets.get_many(list(scopes), period).items()}


def _key_ring(stack: EmbeddedStack, name: str) -> str:
    secrets = aws_client("secretsmanager", stack.moto.url)
    value: str = secrets.get_secret_value(SecretId=f"{stack.deps.settings.agent_keys_prefix}{name}")["SecretString"]
    return value


def snapshot(stack: EmbeddedStack, kind: str, found: str) -> Any:
    """Everything stored about acme's resource `found` of `kind` (a path parameter's name)."""
    deps = stack.deps
    today = deps.clock().date()
    if kind == "job_id":
        return {"job": _dump(deps.jobs.get("acme", found)), "ledger": [_dump(e) for e in deps.ledger.for_job(
            "acme", found)], "budgets": _budgets(stack, "global", "tenant:acme"),
            "ratings": [_dump(r) for r in deps.ratings.between(today, today)], "tallies": deps.ratings.tallies()}
    if kind == "campaign_id":
        return {"campaign": _dump(deps.campaigns.get("acme", found)),
                "invalid": [_dump(i) for i in deps.campaigns.invalid("acme", found)],
                "budgets": _budgets(stack, f"campaign:{found}", "tenant:acme")}
    if kind == "scope":
        return _budgets(stack, found)
    if kind == "name":
        return {"registration": _dump(deps.agents.get(found)), "keys": _key_ring(stack, found)}
    raise KeyError(kind)


def _settled(stack: EmbeddedStack, kind: str, found: str) -> bool:
    """Its background work is over: a job announced (the outbox flag written), and two reads alike."""
    if kind == "job_id" and not stack.deps.jobs.get("acme", found).notified:
        return False
    first = snapshot(stack, kind, found)
    time.sleep(0.1)
    return bool(snapshot(stack, kind, found) == first)


def admin_state(stack: EmbeddedStack) -> Any:
    """What an admin route could change: keys, budgets, the registry and the box's keys, reconciliation findings,
    experiments."""
    ddb = aws_client("dynamodb", stack.moto.url)
    tables = {logical: sorted(json.dumps(item, sort_keys=True) for item in ddb.scan(TableName=name)["Items"])
              for logical, name in provisioned(stack).table_names.items()
              if logical in ("KeysTable", "BudgetsTable", "AgentsTable")}
    today = utcnow().date()
    return {**tables, "agent keys": _key_ring(stack, AGENT),
            "findings": [_dump(f) for f in stack.deps.findings.between(today - timedelta(days=1), today)],
            "experiments": [_dump(e) for e in stack.deps.experiments.all()]}


# --- 1. another tenant's ids, every route; a member key, every admin route -------------------------------------------


def example_body(method: str, path: str, stack: EmbeddedStack) -> dict[str, Any] | None:
    """A valid body for the operation, so that what refuses the call is who calls, not what is sent."""
    body = operation_of(method, path).get("requestBody")
    if body is None:
        return None
    schema = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    today = utcnow().date().isoformat()
    examples: dict[str, dict[str, Any]] = {
        "BudgetUpdate": {"limit_usd": "0.01"}, "AgentRegistration": registration(stack),
        "KeyCreate": {"tenant": "acme", "role": "admin"}, "RunRequest": {"from": today, "to": today},
        "UploadRequest": {"content_type": "image/png"}, "VideoRequest-Input": DRAFT, "RatingCreate": {"score": 1},
        "CampaignCreate": {"name": "never", "items": [{**DRAFT, "item_id": "x"}]},
        "ExperimentSpec": {"arms": ["wan", "veo"], "share": 0.1, "spend_cap_usd": "1",
                           "ends_at": "2099-01-01T00:00:00Z"}}
    if schema not in examples:
        pytest.fail(f"{method} {path} takes a {schema} body this matrix has no example of: add one to example_body "
                    f"in tests/e2e/test_security.py")
    return examples[schema]


def url_of(method: str, path: str, world: World) -> str:
    for name in path_parameters(operation_of(method, path)):
        if name not in world.ids:
            pytest.fail(f"{path}: no id of kind {{{name}}} in the matrix: make one of acme's in the `world` fixture of "
                        f"tests/e2e/test_security.py (and read it back in `snapshot`) so every route is called with "
                        f"another tenant's id")
        path = path.replace(f"{{{name}}}", quote(world.ids[name], safe=":"))
    return path


def expected_refusal(method: str, path: str, caller: str) -> int:
    """The status the document gives for this caller on another tenant's resource."""
    operation = operation_of(method, path)
    if signed_by_its_own_key(operation):
        return 401  # a bearer key counts for nothing: only the resource's own key signs here
    if admin_only(operation) and caller.endswith("member"):
        return 403
    assert "404" in operation["responses"], f"{method} {path} declares no not-found answer for another tenant's id"
    return 404


def assert_declared(response: httpx.Response, method: str, path: str, status: int) -> None:
    assert response.status_code == status, (method, path, response.status_code, response.text)
    declared = operation_of(method, path)["responses"]
    assert str(status) in declared, f"{method} {path} answered {status}, which it doesn't declare"
    media = response.headers["content-type"].split(";", 1)[0]
    assert media in declared[str(status)]["content"], (method, path, status, media)


CROSS_TENANT = [pytest.param("beta member", method, path, id=f"beta member: {method} {path}")
                for method, path in WITH_PATH_PARAMETER]
CROSS_TENANT += [pytest.param("beta admin", method, path, id=f"beta admin: {method} {path}")
                 for method, path in TENANT_SCOPED]


@pytest.mark.parametrize(("caller", "method", "path"), CROSS_TENANT)
def test_another_tenants_id_is_refused_as_documented_and_changes_nothing(stack: EmbeddedStack, world: World,
                                                                         caller: str, method: str,
                                                                         path: str) -> None:
    url = url_of(method, path, world)
    before = {kind: snapshot(stack, kind, found) for kind, found in world.ids.items()}
    response = world.callers[caller].request(method, url, json=example_body(method, path, stack))
    assert_declared(response, method, path, expected_refusal(method, path, caller))
    if response.status_code == 404:
        # Not yours reads as not found: nothing in the answer says the id exists.
        theirs = world.ids[path_parameters(operation_of(method, path))[0]]
        unknown = world.callers[caller].request(method, url.replace(quote(theirs, safe=":"), "x0NOSUCHTHING"),
                                                json=example_body(method, path, stack))
        assert unknown.status_code == 404
        assert response.json()["detail"].replace(theirs, "x0NOSUCHTHING") == unknown.json()["detail"]
    assert {kind: snapshot(stack, kind, found) for kind, found in world.ids.items()} == before


@pytest.mark.parametrize(("method", "path"), [pytest.param(m, p, id=f"{m} {p}") for m, p in ADMIN_ONLY])
def test_a_member_key_is_refused_on_every_admin_route_and_changes_nothing(stack: EmbeddedStack, world: World,
                                                                          method: str, path: str) -> None:
    before = admin_state(stack)
    response = world.callers["acme member"].request(method, url_of(method, path, world),
                                                    json=example_body(method, path, stack))
    assert_declared(response, method, path, 403)
    assert response.json()["type"] == "urn:hvr:problem:forbidden"
    assert admin_state(stack) == before


def test_a_member_key_reads_its_own_tenants_budgets_and_its_campaigns_only(stack: EmbeddedStack, world: World,
                                                                            acme: httpx.Client) -> None:
    """GET /v1/budgets is the one budget route a member may call: it answers with what the member's own jobs must
    fit, and nothing of another tenant's."""
    campaign = f"campaign:{world.ids['campaign_id']}"
    for scope in ("tenant:beta", campaign):
        assert acme.put(f"/v1/budgets/{scope}", json={"limit_usd": "50.00"}).status_code == 200
    seen = {caller: {b["scope"] for b in world.callers[caller].get("/v1/budgets").json()["budgets"]}
            for caller in ("acme member", "beta member")}
    assert seen == {"acme member": {"tenant:acme", campaign}, "beta member": {"tenant:beta"}}
    assert {"tenant:acme", "tenant:beta", campaign} <= {b["scope"] for b in acme.get("/v1/budgets").json()["budgets"]}


def test_another_boxs_key_cannot_heartbeat_as_the_box_and_changes_nothing(stack: EmbeddedStack, world: World,
                                                                          acme: httpx.Client) -> None:
    """The agents' counterpart of another tenant's id: a key is good only for the box it was issued to."""
    other = acme.post(f"/v1/agents/{AGENT}-other/keys")
    assert other.status_code == 201, other.text
    before = snapshot(stack, "name", AGENT)
    response = heartbeat(stack, other.json(), registration(stack, vram_mb=8192), name=AGENT)
    assert_declared(response, "PUT", "/v1/agents/{name}", 401)
    assert snapshot(stack, "name", AGENT) == before


def test_the_matrix_covers_every_route_of_the_served_document(stack: EmbeddedStack, world: World) -> None:
    served = httpx.get(f"{stack.url}/v1/openapi.json").json()
    assert served == DOCUMENT, "the served document is not the one the matrix was built from"
    exercised = {(method, path) for method, path in WITH_PATH_PARAMETER}
    with_parameters = {(m.upper(), p) for p, ops in served["paths"].items() for m, op in ops.items()
                       if path_parameters(op)}
    assert with_parameters == exercised
    kinds = {name for _, _, op in OPERATIONS for name in path_parameters(op)}
    missing = kinds - set(world.ids)
    assert not missing, (f"path parameters {sorted(missing)} have no creator: add one of acme's to the `world` "
                         f"fixture of tests/e2e/test_security.py")
    assert ADMIN_ONLY, "the document marks no route (admin): the member-key matrix would test nothing"


# --- 2. webhook forgery ---------------------------------------------------------------------------------------------


OURS = "sec"  # how this file's deliveries are told from the sandboxes' and the agent's: webhook-id and nonce prefix


def ours(args: tuple[Any, ...]) -> bool:
    """Whether a webhook function's call is a delivery of this file's (the sandboxes' and the agent's own deliveries,
    such as Replicate's webhook for a cancelled prediction, are not). RunPod's sandbox sends none for a job it holds."""
    headers = next((a for a in args if isinstance(a, dict)), {})
    lowered = {k.lower(): v for k, v in headers.items()}
    return bool(not headers or lowered.get("webhook-id", "").startswith(f"msg_{OURS}")
                or lowered.get(NONCE_HEADER.lower(), "").startswith(OURS))


@pytest.fixture
def webhook_sends(stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> list[WorkerMessage]:
    """Every message queued by a delivery of this file's while the test ran: not the worker's, the sweeper's, or a
    webhook the sandboxes send themselves."""
    import functions.webhooks.handler as webhooks

    inside = threading.local()
    sent: list[WorkerMessage] = []
    queue = stack.deps.queue
    send = queue.send

    def spy(message: WorkerMessage, delay_s: float = 0) -> None:
        if getattr(inside, "webhook", False):
            sent.append(message)
        send(message, delay_s)

    def marked(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            inside.webhook = ours(args)
            try:
                return original(*args, **kwargs)
            finally:
                inside.webhook = False
        return call

    monkeypatch.setattr(queue, "send", spy)
    for name in ("agent_callback", "runpod_callback", "replicate_callback"):
        monkeypatch.setattr(webhooks, name, marked(getattr(webhooks, name)))
    return sent


def attempt_state(stack: EmbeddedStack, job: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    stored = stack.deps.jobs.get("acme", job["id"])
    return [(a.id, a.status.value, a.provider_job_id) for a in stored.attempts]


# Replicate (Standard Webhooks, rows W1 and W2): each row turns a validly signed delivery into what is sent.


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


def _replicate_secret(stack: EmbeddedStack) -> str:
    return fetch_webhook_secret(make_client(REPLICATE_TOKEN, stack.sandboxes.servers["replicate"].url))


def signed_delivery(secret: str, payload: bytes, *, at: datetime | None = None, msg_id: str | None = None
                    ) -> Delivery:
    msg_id = msg_id or f"msg_{OURS}{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return Delivery({"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                     "webhook-signature": Webhook(secret).sign(msg_id, at, payload.decode())}, payload)


FORGED_SECRET = "whsec_" + base64.b64encode(b"not the account's secret, 32 b.").decode()


def _without(header: str) -> Callable[[str, bytes], Delivery]:
    def build(secret: str, payload: bytes) -> Delivery:
        delivery = signed_delivery(secret, payload)
        del delivery.headers[header]
        return delivery
    return build


def _rotated(secret: str, payload: bytes) -> Delivery:
    delivery = signed_delivery(secret, payload)
    stale = signed_delivery(FORGED_SECRET, payload, msg_id=delivery.headers["webhook-id"],
                            at=datetime.fromtimestamp(int(delivery.headers["webhook-timestamp"]), UTC))
    delivery.headers["webhook-signature"] = f"{stale.headers['webhook-signature']} " \
                                            f"{delivery.headers['webhook-signature']}"
    return delivery


def _reserialized(secret: str, payload: bytes) -> Delivery:
    delivery = signed_delivery(secret, payload)
    same = json.dumps(json.loads(payload), indent=2).encode()
    assert json.loads(same) == json.loads(payload) and same != payload
    return Delivery(delivery.headers, same)


def _renamed(secret: str, payload: bytes) -> Delivery:
    delivery = signed_delivery(secret, payload)
    return Delivery({**delivery.headers, "webhook-id": f"msg_{OURS}{uuid.uuid4().hex}"}, payload)


REPLICATE_ROWS: list[tuple[str, Callable[[str, bytes], Delivery], int]] = [
    ("valid", lambda secret, payload: signed_delivery(secret, payload), 200),
    ("two signatures, one valid (rotation)", _rotated, 200),
    ("body one byte longer", lambda s, p: Delivery(signed_delivery(s, p).headers, p + b" "), 401),
    ("the same JSON re-serialized", _reserialized, 401),
    ("signed with another secret", lambda secret, payload: signed_delivery(FORGED_SECRET, payload), 401),
    ("webhook-id changed after signing", _renamed, 401),
    ("without webhook-id", _without("webhook-id"), 400),
    ("without webhook-timestamp", _without("webhook-timestamp"), 400),
    ("without webhook-signature", _without("webhook-signature"), 400),
    ("timestamp 6 min old", lambda s, p: signed_delivery(s, p, at=datetime.now(UTC) - timedelta(minutes=6)), 401),
    ("timestamp 6 min ahead", lambda s, p: signed_delivery(s, p, at=datetime.now(UTC) + timedelta(minutes=6)), 401),
    ("signature not base64", lambda s, p: Delivery({**signed_delivery(s, p).headers,
                                                    "webhook-signature": "v1,not*base64!"}, p), 401),
]


def replicate_url(stack: EmbeddedStack, job: dict[str, Any]) -> str:
    return (f"{stack.url}/v1/webhooks/replicate?tenant=acme&job={job['id']}"
            f"&attempt={job['attempts'][0]['id']}")


def replicate_payload(job: dict[str, Any]) -> bytes:
    return json.dumps({"id": job["attempts"][0]["provider_job_id"], "status": "succeeded",
                       "output": "https://replicate.delivery/forged.mp4"}).encode()


@pytest.mark.parametrize(("build", "status"), [pytest.param(build, status, id=name)
                                               for name, build, status in REPLICATE_ROWS])
def test_a_replicate_webhook_is_taken_only_with_a_valid_fresh_signature(
        stack: EmbeddedStack, world: World, webhook_sends: list[WorkerMessage],
        build: Callable[[str, bytes], Delivery], status: int) -> None:
    before = attempt_state(stack, world.replicate)
    delivery = build(_replicate_secret(stack), replicate_payload(world.replicate))
    response = httpx.post(replicate_url(stack, world.replicate), content=delivery.body, headers=delivery.headers)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["content-type"].startswith(PROBLEM)
        assert webhook_sends == []
    else:
        # Taken as a hint only: a poll of the attempt named in our own URL, never the body's verdict.
        assert [(m.kind.value, m.attempt_id) for m in webhook_sends] == [("poll", world.replicate["attempts"][0]["id"])]
    assert attempt_state(stack, world.replicate) == before


def test_a_replicate_webhook_replayed_five_times_is_processed_once_also_after_the_job_ended(
        stack: EmbeddedStack, world: World, webhook_sends: list[WorkerMessage]) -> None:
    job = world.replicate

    def five_times() -> list[httpx.Response]:
        delivery = signed_delivery(_replicate_secret(stack), replicate_payload(job))
        return [httpx.post(replicate_url(stack, job), content=delivery.body, headers=delivery.headers)
                for _ in range(5)]

    answers = five_times()
    assert [a.status_code for a in answers] == [200] * 5  # every one 2xx, so Replicate stops
    assert "queued" in answers[0].json() and all(a.json() == {"duplicate": True} for a in answers[1:])
    assert len(webhook_sends) == 1
    # Replicate keeps retrying after the job has ended (here: cancelled by its owner). Still acknowledged, still once,
    # and nothing of the ended job moves.
    acme = client(stack, "acme-key")
    assert acme.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    assert wait_for(acme, job["id"])["status"] == "cancelled"
    _wait("the cancelled job to settle", lambda: _settled(stack, "job_id", job["id"]))
    before = snapshot(stack, "job_id", job["id"])
    assert [a.status_code for a in five_times()] == [200] * 5
    assert len(webhook_sends) == 2
    assert snapshot(stack, "job_id", job["id"]) == before


# RunPod (row W4): unsigned webhooks, a per-attempt token in the URL.


def runpod_url(stack: EmbeddedStack, job: dict[str, Any], query: str) -> str:
    return f"{stack.url}/v1/webhooks/runpod?tenant=acme&job={job['id']}&{query}"


def _runpod_rows() -> list[Any]:
    def token(stack: EmbeddedStack, attempt: str) -> str:
        return webhook_token(stack.webhook_token_secret, attempt)

    rows: list[tuple[str, Callable[[EmbeddedStack, str], str], int]] = [
        ("no token", lambda stack, attempt: f"attempt={attempt}", 401),
        ("an empty token", lambda stack, attempt: f"attempt={attempt}&token=", 401),
        ("a wrong token", lambda stack, attempt: f"attempt={attempt}&token={'0' * 64}", 401),
        ("the token of another attempt",
         lambda stack, attempt: f"attempt={attempt}&token={token(stack, attempt[:-1] + '9')}", 401),
        ("the token signed with another secret",
         lambda stack, attempt: f"attempt={attempt}&token={webhook_token('not-the-secret', attempt)}", 401),
        ("a second attempt beside the tokened one",
         lambda stack, attempt: f"attempt={attempt}&attempt=att_other_1&token={token(stack, attempt)}", 400),
    ]
    return [pytest.param(query, status, id=name) for name, query, status in rows]


@pytest.mark.parametrize(("query", "status"), _runpod_rows())
def test_a_runpod_webhook_without_its_attempts_token_is_refused(stack: EmbeddedStack, world: World,
                                                                webhook_sends: list[WorkerMessage],
                                                                query: Callable[[EmbeddedStack, str], str],
                                                                status: int) -> None:
    job = world.runpod
    before = attempt_state(stack, job)
    runpod_id = job["attempts"][0]["provider_job_id"].split("/", 1)[1]
    body = json.dumps({"id": runpod_id, "status": "COMPLETED", "output": {"video_url": "https://x.example/v.mp4"}})
    response = httpx.post(runpod_url(stack, job, query(stack, job["attempts"][0]["id"])), content=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert webhook_sends == []
    assert attempt_state(stack, job) == before


def test_a_forged_runpod_completion_is_a_hint_whose_output_is_never_fetched(stack: EmbeddedStack, world: World,
                                                                            webhook_sends: list[WorkerMessage]
                                                                            ) -> None:
    job, runpod = world.runpod, stack.sandboxes.servers["runpod"]
    attempt = job["attempts"][0]
    endpoint, runpod_id = attempt["provider_job_id"].split("/", 1)
    # On the sandbox's own host, which the embedded stack's downloader does reach: were the body believed, this
    # fetch would happen; the SSRF rules are not what stops it.
    attacker = f"{runpod.url}/outputs/forged-by-attacker.mp4"
    forged = {"id": runpod_id, "status": "COMPLETED", "delayTime": 10, "executionTime": 1000,
              "output": {"video_url": attacker, "cost": 0.01}}
    seen = len(runpod.calls)
    query = f"attempt={attempt['id']}&token={webhook_token(stack.webhook_token_secret, attempt['id'])}"
    response = httpx.post(runpod_url(stack, job, query), content=json.dumps(forged))
    assert response.status_code == 200, response.text
    assert [(m.kind.value, m.attempt_id) for m in webhook_sends] == [("poll", attempt["id"])]

    # The worker asks RunPod itself (/status, with our API key), and RunPod says the job is still queued.
    sqs = aws_client("sqs", stack.moto.url)

    def asked_and_drained() -> bool:
        asked = any(path == f"/v2/{endpoint}/status/{runpod_id}" for _, path in runpod.calls[seen:])
        counts = sqs.get_queue_attributes(QueueUrl=provisioned(stack).queue_urls["JobsQueue"], AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return asked and all(int(n) == 0 for n in counts.values())

    _wait("the hint's poll to be handled", asked_and_drained)
    fetched = [(name, path) for name, server in stack.sandboxes.servers.items() for _, path in server.calls
               if "forged-by-attacker" in path]
    assert fetched == []
    now = stack.deps.jobs.get("acme", job["id"])
    assert now.status.value not in TERMINAL and now.output is None
    assert [(a.status.value, a.provider_job_id) for a in now.attempts] == [("submitted", attempt["provider_job_id"])]


# The GPU agent's callbacks (row G1): HMAC over method, target, timestamp, nonce and body; shared or the box's own key.


@dataclass
class Callback:
    target: str
    body: bytes
    headers: dict[str, str]


def agent_callback(stack: EmbeddedStack, world: World, *, box: bool, skew_s: float = 0,
                   secret: str | None = None) -> Callback:
    target = f"/v1/webhooks/local?tenant=acme&job={world.job['id']}"
    body = json.dumps({"id": world.job["attempts"][0]["id"], "status": "succeeded"}).encode()
    key = world.agent_key
    signing = secret or (key["secret"] if box else stack.agent_secret)
    headers = sign(signing, "POST", target, body, now=time.time() + skew_s, nonce=f"{OURS}{uuid.uuid4().hex}")
    if box:
        headers |= {AGENT_NAME_HEADER: AGENT, KEY_ID_HEADER: key["key_id"]}
    return Callback(target, body, headers)


def _replayed(box: bool) -> Callable[[EmbeddedStack, World], list[Callback]]:
    def build(stack: EmbeddedStack, world: World) -> list[Callback]:
        first = agent_callback(stack, world, box=box)
        return [first, first]
    return build


def _tampered(box: bool) -> Callable[[EmbeddedStack, World], list[Callback]]:
    def build(stack: EmbeddedStack, world: World) -> list[Callback]:
        signed = agent_callback(stack, world, box=box)
        return [Callback(signed.target, signed.body.replace(b"succeeded", b"failed"), signed.headers)]
    return build


def _skewed(box: bool, skew_s: float) -> Callable[[EmbeddedStack, World], list[Callback]]:
    return lambda stack, world: [agent_callback(stack, world, box=box, skew_s=skew_s)]


def _with_headers(changes: dict[str, str | None]) -> Callable[[EmbeddedStack, World], list[Callback]]:
    def build(stack: EmbeddedStack, world: World) -> list[Callback]:
        signed = agent_callback(stack, world, box=True)
        headers = {k: v for k, v in ({**signed.headers, **changes}).items() if v is not None}
        return [Callback(signed.target, signed.body, headers)]
    return build


def _retargeted(stack: EmbeddedStack, world: World) -> list[Callback]:
    signed = agent_callback(stack, world, box=False)
    return [Callback(signed.target.replace(world.job["id"], world.ids["campaign_id"]), signed.body, signed.headers)]


BEYOND = MAX_SKEW_S + 30  # whole seconds on both clocks: a margin so the row can't pass by rounding
AGENT_ROWS: list[tuple[str, Callable[[EmbeddedStack, World], list[Callback]], int]] = [
    ("shared secret, valid", lambda stack, world: [agent_callback(stack, world, box=False)], 200),
    ("box key, valid", lambda stack, world: [agent_callback(stack, world, box=True)], 200),
    ("shared secret, nonce replayed", _replayed(False), 401),
    ("box key, nonce replayed", _replayed(True), 401),
    (f"shared secret, clock {BEYOND} s behind", _skewed(False, -BEYOND), 401),
    (f"shared secret, clock {BEYOND} s ahead", _skewed(False, BEYOND), 401),
    (f"box key, clock {BEYOND} s behind", _skewed(True, -BEYOND), 401),
    (f"box key, clock {BEYOND} s ahead", _skewed(True, BEYOND), 401),
    ("shared secret, body changed after signing", _tampered(False), 401),
    ("box key, body changed after signing", _tampered(True), 401),
    ("shared secret, query changed after signing", _retargeted, 401),
    ("signed with a wrong secret",
     lambda stack, world: [agent_callback(stack, world, box=False, secret="not-the-secret")], 401),
    ("unsigned", lambda stack, world: [Callback(agent_callback(stack, world, box=False).target,
                                                agent_callback(stack, world, box=False).body, {})], 401),
    ("box key, unknown agent name", _with_headers({AGENT_NAME_HEADER: "no-such-box"}), 401),
    ("box key, another agent's name", _with_headers({AGENT_NAME_HEADER: "agent-1"}), 401),
    ("box key, unknown key id", _with_headers({KEY_ID_HEADER: "ak_0000000000000000"}), 401),
    ("box key, key id without the agent's name", _with_headers({AGENT_NAME_HEADER: None}), 401),
]


@pytest.mark.parametrize(("build", "status"), [pytest.param(build, status, id=name)
                                               for name, build, status in AGENT_ROWS])
def test_an_agent_callback_is_taken_only_with_a_valid_fresh_signature(
        stack: EmbeddedStack, world: World, webhook_sends: list[WorkerMessage],
        build: Callable[[EmbeddedStack, World], list[Callback]], status: int) -> None:
    before = snapshot(stack, "job_id", world.job["id"])
    calls = build(stack, world)
    answers = [httpx.post(f"{stack.url}{c.target}", content=c.body, headers=c.headers) for c in calls]
    assert [a.status_code for a in answers[:-1]] == [200] * (len(calls) - 1)  # a replay's first delivery is fine
    assert answers[-1].status_code == status, answers[-1].text
    if status >= 400:
        assert answers[-1].headers["content-type"].startswith(PROBLEM)
    assert len(webhook_sends) == sum(a.status_code == 200 and "queued" in a.json() for a in answers)
    assert snapshot(stack, "job_id", world.job["id"]) == before


# --- 3. API keys ------------------------------------------------------------------------------------------------------

CONFIGURED_KEYS = [key for _, key, *_ in (item.split(":") for item in KEYS.split(","))]
# Short keys once leaked whole: the stored hint was a key's first 8 characters, whatever its length.
STORED_KEYS = [pytest.param(key, id=key) for key in [*CONFIGURED_KEYS, "beta-admin-key", "acme-plain-member-key"]]


@pytest.mark.parametrize("key", [*STORED_KEYS, pytest.param(None, id="issued hvr_ key")])
def test_no_table_holds_an_api_key_in_plaintext_only_its_hash(stack: EmbeddedStack, world: World,
                                                              key: str | None) -> None:
    if key is None:
        with client(stack, "acme-key") as acme:
            created = acme.post("/v1/keys", json={"tenant": "gamma"})
        assert created.status_code == 201, created.text
        key = str(created.json()["key"])
    with client(stack, key) as holder:
        assert holder.get("/v1/providers").status_code == 200  # a key in use, not a stale one
    ddb = aws_client("dynamodb", stack.moto.url)
    keys_table = provisioned(stack).table_names["KeysTable"]
    assert ddb.get_item(TableName=keys_table, Key={"pk": {"S": f"K#{hashlib.sha256(key.encode()).hexdigest()}"}}
                        ).get("Item"), "the key is not stored under its SHA-256"
    for logical, table in provisioned(stack).table_names.items():
        for page in ddb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                text = json.dumps(item)
                assert key not in text, f"{logical} holds the key {key!r} in plaintext: {text[:300]}"


# --- 4. bodies over the limit -----------------------------------------------------------------------------------------

MAX_BODY_BYTES = 10 * 1024 * 1024  # what 413 declares ("Body over 10 MiB") and HTTP API's payload quota


def padded(body: dict[str, Any], size: int) -> bytes:
    """`body` as JSON of exactly `size` bytes, its prompt padded."""
    base = json.dumps({**body, "prompt": ""}).encode()
    return json.dumps({**body, "prompt": "x" * (size - len(base))}).encode()


@pytest.mark.parametrize(("path", "body"), [
    pytest.param("/v1/jobs", DRAFT, id="POST /v1/jobs"),
    pytest.param("/v1/campaigns", {"name": "oversized", "items": [{**DRAFT, "item_id": "a"}]}, id="POST /v1/campaigns"),
])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_a_413_and_creates_nothing(stack: EmbeddedStack, world: World, acme: httpx.Client,
                                                            path: str, body: dict[str, Any], chunked: bool) -> None:
    jobs = count_jobs(acme)
    if path == "/v1/campaigns":
        body = {**body, "items": [{**body["items"][0], "prompt": "x" * (MAX_BODY_BYTES + 1)}]}
        sent = json.dumps(body).encode()
    else:
        sent = padded(body, MAX_BODY_BYTES + 1)
    content: Any = iter([sent[i:i + (1 << 20)] for i in range(0, len(sent), 1 << 20)]) if chunked else sent
    with client(stack, "acme-key") as once:
        response = once.post(path, content=content, headers={"content-type": "application/json"})
    assert_declared(response, "POST", path, 413)
    assert response.json() == {"message": "Request Entity Too Large"}
    assert count_jobs(acme) == jobs
    assert not stack.deps.campaigns.exists("acme", campaign_id("acme", "oversized"))


def test_a_413_says_the_connection_closes_or_keeps_it_open(stack: EmbeddedStack, world: World) -> None:
    """A client that follows HTTP/1.1 (http.client reopens only when told `Connection: close`) is answered on its
    next request after a 413."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(stack.url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=30)
    try:
        connection.request("POST", "/v1/jobs", body=padded(DRAFT, MAX_BODY_BYTES + 1),
                           headers={"Authorization": "Bearer acme-key", "Content-Type": "application/json"})
        first = connection.getresponse()
        first.read()
        assert first.status == 413
        connection.request("GET", "/v1/health")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_a_body_just_under_the_limit_reaches_validation_not_a_5xx(world: World, acme: httpx.Client) -> None:
    jobs = count_jobs(acme)
    response = acme.post("/v1/jobs", content=padded(DRAFT, MAX_BODY_BYTES),
                         headers={"content-type": "application/json"})
    refused(response, 400, "prompt", DOCUMENT, "POST /v1/jobs")
    assert count_jobs(acme) == jobs


# --- 5. SSRF at submission --------------------------------------------------------------------------------------------

SSRF_URLS = [
    ("private 10/8", "https://10.0.0.7/x"),
    ("private 192.168/16", "https://192.168.1.20/x"),
    ("loopback", "https://127.0.0.1:9001/x"),
    ("link-local metadata", "https://169.254.169.254/latest/meta-data/"),
    ("IPv6 loopback", "https://[::1]/x"),
    ("IPv4-mapped IPv6 loopback", "https://[::ffff:127.0.0.1]/x"),
    ("decimal IP", "https://2130706433/x"),
    ("octal IP", "https://0177.0.0.1/x"),
    ("hex IP", "https://0x7f.0.0.1/x"),
    ("localhost", "https://localhost/x"),
    ("file scheme", "file:///etc/passwd"),
    ("gopher scheme", f"gopher://{CALLBACK_HOST}:70/_x"),
    ("plain http", f"http://{CALLBACK_HOST}/x"),
    ("allowed host as userinfo", f"https://{CALLBACK_HOST}@evil.example.com/x"),
    ("percent-encoded host", "https://%31%32%37.0.0.1/x"),
]


@pytest.mark.parametrize(("field", "body"), [
    pytest.param("callback_url", DRAFT, id="callback_url"),
    pytest.param("image", I2V, id="image"),
])
@pytest.mark.parametrize("url", [pytest.param(url, id=name) for name, url in SSRF_URLS])
def test_a_url_that_could_reach_inside_is_refused_at_submission(acme: httpx.Client, world: World, field: str,
                                                                body: dict[str, Any], url: str) -> None:
    jobs = count_jobs(acme)
    refused(acme.post("/v1/jobs", json={**body, field: url}), 400, field, DOCUMENT, "POST /v1/jobs")
    assert count_jobs(acme) == jobs


@pytest.mark.parametrize(("field", "body"), [
    pytest.param("callback_url", DRAFT, id="callback_url"),
    pytest.param("image", I2V, id="image"),
])
def test_a_public_https_name_is_taken(acme: httpx.Client, world: World, field: str, body: dict[str, Any]) -> None:
    """The control: the rows above are refused for their address, not for naming a URL at all. (A quote: the same
    admission as a job, and nothing to clean up.)"""
    response = acme.post("/v1/quotes", json={**body, field: f"https://{CALLBACK_HOST}/x.png"})
    assert response.status_code == 200, response.text

