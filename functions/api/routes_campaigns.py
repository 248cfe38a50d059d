"""Campaigns: create from inline items or an s3:// manifest, and follow one (ARCHITECTURE §4)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.api.http import json_response, principal
from router.models.campaign import CampaignCreate, CampaignView
from router.services.campaigns import campaign_deps, submit, view

router = Router()


@router.post("/v1/campaigns", summary="Create a campaign; the same name again returns the existing one",
             responses={202: {"description": "created; expansion runs in the background"}})
def create_campaign(body: Annotated[CampaignCreate, Body(embed=False)]) -> Response[CampaignView]:
    campaign, created = submit(body, principal(router).tenant, campaign_deps())
    return json_response(campaign, status=202 if created else 200)


@router.get("/v1/campaigns/<campaign_id>", summary="A campaign: counts, spend, projections, plan, invalid lines")
def get_campaign(campaign_id: str) -> Response[CampaignView]:
    return json_response(view(principal(router).tenant, campaign_id, campaign_deps()))
