"""Campaigns: create from inline items or an s3:// manifest, and follow one (docs/architecture.md, "API contract")."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.api.http import CampaignId, documented, json_response, principal, unstated
from router.models.campaign import CampaignCreate, CampaignView
from router.services.campaigns import campaign_deps, resolve, submit, view

router = Router()


CAMPAIGN_RULES = {
    "deadline": "must be in the future (deadline_s counts from creation)",
    "manifest": "must be s3://<the API's bucket>/campaigns/<tenant>/<name>.jsonl, under the caller's own tenant",
    "budget_usd": "at most 4 decimal places, also as a JSON number",
}


@router.post("/v1/campaigns", summary="Create a campaign; the same name again returns the existing one",
             **unstated(CAMPAIGN_RULES, " A bad item fails nothing: it is reported in `invalid_items` with its "
                                        "line and field, as a manifest's line is."),
             responses=documented({202: "created; expansion runs in the background",
                                   200: "a campaign of this name already exists: it, unchanged"}, body=True))
def create_campaign(body: Annotated[CampaignCreate, Body(embed=False)]) -> Response[CampaignView]:
    campaign, created = submit(body, principal(router).tenant, campaign_deps())
    return json_response(campaign, status=202 if created else 200)


@router.get("/v1/campaigns/<campaign_id>", summary="A campaign, by id or name: counts, spend, projections, plan, "
            "invalid lines", responses=documented({200: "the campaign"}, {400: None, 404: None}))
def get_campaign(campaign_id: CampaignId) -> Response[CampaignView]:
    tenant, deps = principal(router).tenant, campaign_deps()
    return json_response(view(tenant, resolve(tenant, campaign_id, deps), deps))
