"""A/B experiments (admin): define one, list them, read one's results."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from functions.api.http import documented, json_response, principal, unstated
from router.models.experiment import NAME_PATTERN, ExperimentSpec
from router.services import experiments
from router.services.deps import default_deps
from router.services.experiments import ExperimentList, ExperimentView

router = Router()
ExperimentName = Annotated[str, Path(pattern=NAME_PATTERN, description="lower-case letters, digits, - and _")]


@router.put("/v1/experiments/<name>", summary="Define or redefine an A/B experiment between two arms (admin)",
            **unstated({"arms": "must each name an offer id or a model family of the catalog, sharing no offer; "
                                "fixed (with `stickiness`) once jobs are assigned: a 409",
                        "spend_cap_usd": "more than 0 and at most 4 decimal places, also as a string (a pattern "
                                         "can't say it of decimal strings)"}),
            responses=documented({200: "the experiment, redefined", 201: "the experiment, created"},
                                 {409: "arms or stickiness changed after jobs were assigned, or a concurrent change"},
                                 body=True))
def put_experiment(name: ExperimentName,
                   body: Annotated[ExperimentSpec, Body(embed=False)]) -> Response[ExperimentView]:
    caller = principal(router, admin=True)
    found, created = experiments.define(name, body, default_deps(), by=f"api:{caller.tenant}")
    return json_response(found, status=201 if created else 200)


@router.get("/v1/experiments", summary="Every experiment with what it has committed (admin)",
            responses=documented({200: "every experiment, by name"}))
def list_experiments() -> Response[ExperimentList]:
    principal(router, admin=True)
    return json_response(experiments.listing(default_deps()))


@router.get("/v1/experiments/<name>", summary="One experiment and its results: per arm ratings, cost, time and "
                                          "failures with intervals, the preference share, and a verdict (admin)",
            responses=documented({200: "the experiment and its results"}, {400: None, 404: None}))
def get_experiment(name: ExperimentName) -> Response[ExperimentView]:
    principal(router, admin=True)
    return json_response(experiments.view(name, default_deps()))
