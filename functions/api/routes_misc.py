"""Uploads, API keys (admin) and the offer catalog with live health."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from functions.api.http import documented, json_response, principal, unstated
from router.models.api import (
    BudgetList,
    KeyCreate,
    KeyCreated,
    OfferHealth,
    OfferList,
    OfferView,
    UploadRequest,
)
from router.models.budget import SCOPE_PATTERN, Budget, BudgetUpdate, period_of
from router.models.common import Circuit, iso
from router.policy import learning
from router.providers.base import offer_health
from router.services import money
from router.services.deps import default_deps
from router.services.learned import offer_learned, reference_render
from router.services.ratings import learned_qualities
from router.services.uploads import UploadTicket, presign_upload
from router.store.keys import Principal, new_key

router = Router()


@router.post("/v1/uploads", summary="A presigned PUT for an input file, and its s3:// ref",
             responses=documented({201: "the presigned PUT and the ref to put in a request"}, body=True))
def create_upload(upload: Annotated[UploadRequest, Body(embed=False)]) -> Response[UploadTicket]:
    deps = default_deps()
    ticket = presign_upload(principal(router).tenant, upload.content_type, deps, deps.clock())
    return json_response(ticket, status=201)


@router.post("/v1/keys", summary="Create an API key (admin); the key is shown once",
             responses=documented({201: "the new key, shown this once"}, body=True))
def create_key(body: Annotated[KeyCreate, Body(embed=False)]) -> Response[KeyCreated]:
    principal(router, admin=True)
    deps = default_deps()
    key, now = new_key(), deps.clock()
    deps.keys.put(key, Principal(tenant=body.tenant, role=body.role), now)
    return json_response(KeyCreated(key=key, tenant=body.tenant, role=body.role, created_at=iso(now)), status=201)


@router.get("/v1/providers", summary="Every offer of the catalog with its health",
            responses=documented({200: "every offer"}))
def list_offers() -> Response[OfferList]:
    principal(router)
    deps = default_deps()
    health = {kind: provider.health() for kind, provider in deps.providers.items()}
    # The same circuit states the policy routes by (services.context), so what this says is what routing does.
    circuits = deps.circuits.states(deps.clock())
    learned = learning.snapshot(deps.learned.all(), (o.id for o in deps.catalog.offers))
    qualities = learned_qualities(deps)
    offers = []
    for offer in deps.catalog.offers:
        target = health.get(offer.provider)
        live = offer_health(target, deps.providers[offer.provider], offer) if target is not None else None
        offers.append(OfferView(
            id=offer.id, provider=offer.provider.value, model=offer.model, modes=[m.value for m in offer.modes],
            resolutions=list(offer.sizes), max_frames=offer.frames.max, fps=(offer.fps.min, offer.fps.max),
            aspect_ratios=[a.value for a in offer.aspect_ratios], quality=offer.quality,
            pricing=offer.pricing.model_dump(mode="json"),
            health=OfferHealth(up=bool(live and live.up), queue_depth=live.queue_wait_s if live else 0,
                               circuit=circuits.get(target.name, Circuit.CLOSED).value if target else "closed"),
            configured=offer.provider in deps.providers,
            learned=offer_learned(offer, learned.get(offer.id), *reference_render(offer), qualities.get(offer.id)),
        ))
    return json_response(OfferList(offers=offers))


@router.get("/v1/budgets", summary="Budgets of the current period: every scope for an admin key, a member's own "
                                   "tenant and its campaigns otherwise",
            responses=documented({200: "this period's budgets"}))
def list_budgets() -> Response[BudgetList]:
    caller = principal(router)
    deps = default_deps()
    budgets = deps.budgets.for_period(period_of(deps.clock()))
    if not caller.admin:
        budgets = [b for b in budgets if money.tenant_sees(caller.tenant, b.scope, deps)]
    return json_response(BudgetList(budgets=budgets))


@router.put("/v1/budgets/<scope>", summary="Set a budget's limit, thresholds or spend mode (admin)",
            **unstated({"limit_usd": "at most 4 decimal places, also as a JSON number"}),
            responses=documented({200: "the budget as set"}, body=True))
def put_budget(
    scope: Annotated[str, Path(pattern=SCOPE_PATTERN.pattern, description="global, tenant:<id> or campaign:<id>")],
    body: Annotated[BudgetUpdate, Body(embed=False)],
) -> Response[Budget]:
    caller = principal(router, admin=True)
    deps = default_deps()
    now = deps.clock()
    return json_response(money.set_budget(deps, scope, body, now, by=f"api:{caller.tenant}"))
