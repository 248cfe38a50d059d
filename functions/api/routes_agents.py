"""The fleet registry (docs/architecture.md, "Fleet registry"): agents announce themselves with a signed heartbeat;
an admin issues their keys, drains them and lists them.

`PUT /v1/agents/{name}` takes no API key (API Gateway's authorizer is off on that route): the agent's own HMAC
signature (router/signing.py, with the key id in X-HVR-Key-Id) is checked before the body is read, so its body is
not declared to Powertools (whose validation would run first). The OpenAPI document still states it:
SIGNED_BODIES, added by functions.api.handler.openapi_document.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.data_classes.api_gateway_proxy_event import APIGatewayProxyEventV2
from pydantic import BaseModel

from functions.api.http import BodyError, documented, json_response, parse_body, principal
from router.models.agent import AGENT_NAME_PATTERN, AgentKey, AgentKeysRevoked, AgentList, AgentRegistration, AgentView
from router.services import agents
from router.services.deps import default_deps
from router.signing import KEY_ID_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

router = Router()

AgentName = Annotated[str, Path(pattern=AGENT_NAME_PATTERN, description=(
    "the box's name: lowercase letters, digits and '-', as its key was issued for"))]
HEARTBEAT = "/v1/agents/{name}"
# (OpenAPI path, method) → the body a route reads itself after its signature check: documented, not validated first.
SIGNED_BODIES: dict[tuple[str, str], type[BaseModel]] = {(HEARTBEAT, "put"): AgentRegistration}
_NOT_REGISTERED = "no agent of that name has registered"


@router.put("/v1/agents/<name>", summary="An agent's registration and heartbeat (signed by the agent, no API key)",
            security=[{}],
            description=(f"Signed as the router signs requests to the agent (router/signing.py): {TIMESTAMP_HEADER}, "
                         f"{NONCE_HEADER}, {SIGNATURE_HEADER}, and {KEY_ID_HEADER} naming the agent's key. The "
                         "signature is checked before the body is read; then the body's fields, the models file "
                         "(`models`, `queue`, `speeds` name only its models) and `tunnel_url` (https, a public DNS "
                         "name). Sent every heartbeat; a box that misses 3 is down."),
            responses=documented({200: "the box as the registry now has it"}, {401: (
                "a missing or bad signature, an unknown, rotated-out or revoked key id, a timestamp outside "
                "±300 s or a replayed nonce")}, auth=False, body=True))
def heartbeat(name: AgentName) -> Response[AgentView]:
    event = router.current_event
    assert isinstance(event, APIGatewayProxyEventV2)  # the HTTP API's payload 2.0: it has the raw path and query
    raw = event.body or ""
    try:
        body = base64.b64decode(raw, validate=True) if event.is_base64_encoded else raw.encode()
    except binascii.Error as exc:
        raise BodyError("is not base64") from exc
    target = f"{event.raw_path}?{event.raw_query_string}" if event.raw_query_string else event.raw_path
    deps = default_deps()
    key_id = agents.authenticate(name, target, event.headers, body, deps)
    return json_response(agents.register(name, key_id, parse_body(event.body, bool(event.is_base64_encoded)), deps))


@router.get("/v1/agents", summary="The GPU boxes: GPU, VRAM, models, state (up, down, draining), queue (admin)",
            responses=documented({200: "every registered box"}))
def list_agents() -> Response[AgentList]:
    principal(router, admin=True)
    return json_response(agents.listing(default_deps()))


@router.get("/v1/agents/<name>", summary="One GPU box as the registry has it (admin)",
            responses=documented({200: "the box"}, {400: None, 404: _NOT_REGISTERED}))
def get_agent(name: AgentName) -> Response[AgentView]:
    principal(router, admin=True)
    return json_response(agents.one(name, default_deps()))


@router.post("/v1/agents/<name>/keys", summary="Create or rotate an agent's key (admin); the secret is shown once",
             description=("A rotation keeps the previous key signing for an overlap (HVR_AGENT_KEY_OVERLAP_S, 1 h by "
                          "default): the time to give the agent its new key; any older key stops at once."),
             responses=documented({201: "the new key and its secret, shown only here"}, {400: None}))
def issue_key(name: AgentName) -> Response[AgentKey]:
    principal(router, admin=True)
    return json_response(agents.issue_key(name, default_deps()), status=201)


@router.delete("/v1/agents/<name>/keys", summary="Revoke every key of an agent (admin): its next heartbeat is refused",
               responses=documented({200: "the keys revoked"}, {400: None, 404: "the agent has no keys"}))
def revoke_keys(name: AgentName) -> Response[AgentKeysRevoked]:
    principal(router, admin=True)
    return json_response(agents.revoke_keys(name, default_deps()))


@router.post("/v1/agents/<name>/drain", summary="Drain a box (admin): it finishes what it holds, takes nothing new",
             responses=documented({200: "the box, draining"}, {400: None, 404: _NOT_REGISTERED}))
def drain(name: AgentName) -> Response[AgentView]:
    principal(router, admin=True)
    return json_response(agents.drain(name, True, default_deps()))


@router.delete("/v1/agents/<name>/drain", summary="Undrain a box (admin): it takes work again",
               responses=documented({200: "the box, no longer draining"}, {400: None, 404: _NOT_REGISTERED}))
def undrain(name: AgentName) -> Response[AgentView]:
    principal(router, admin=True)
    return json_response(agents.drain(name, False, default_deps()))
