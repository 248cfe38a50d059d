"""Which offers a job's next attempt may use after failures (`router.policy.fallback`)."""

import pytest

from router.models.common import ProviderKind
from router.models.outcome import AttemptCode, AttemptReason
from router.policy.catalog import load_catalog
from router.policy.fallback import excluded_offers

OFFERS = load_catalog().offers
RUNPOD_COMFY = "runpod/wan21-14b-comfy"
VEO = ProviderKind.VEO


def test_one_crashed_render_leaves_the_offer_eligible() -> None:
    assert excluded_offers([(RUNPOD_COMFY, ProviderKind.RUNPOD, AttemptCode.PROVIDER_FAILED)], OFFERS) == set()


def test_a_second_failure_on_the_same_offer_excludes_it_and_only_it() -> None:
    failures = [(RUNPOD_COMFY, ProviderKind.RUNPOD, AttemptCode.PROVIDER_UNREACHABLE),
                (RUNPOD_COMFY, ProviderKind.RUNPOD, None)]
    assert excluded_offers(failures, OFFERS) == {RUNPOD_COMFY}


@pytest.mark.parametrize("reason", ["rejected: 422 input.num_frames", "output_mismatch: 832x480 not 480x832",
                                    "output_rejected: HTTP 404", "output_unplayable: no video stream"])
def test_a_failure_about_the_offer_excludes_it_at_once(reason: str) -> None:
    code = AttemptReason.from_text(reason).code  # as a stored attempt's reason reads back
    assert excluded_offers([(RUNPOD_COMFY, ProviderKind.RUNPOD, code)], OFFERS) == {RUNPOD_COMFY}


def test_a_content_filter_rules_out_the_providers_other_models_too() -> None:
    excluded = excluded_offers([("veo/veo-3.1-fast", VEO, AttemptCode.CONTENT_FILTERED)], OFFERS)
    assert excluded == {o.id for o in OFFERS if o.provider is VEO}


def test_failures_on_different_offers_count_apart() -> None:
    failures = [(RUNPOD_COMFY, ProviderKind.RUNPOD, AttemptCode.PROVIDER_FAILED),
                ("replicate/wan-2.1-t2v-480p", ProviderKind.REPLICATE, AttemptCode.PROVIDER_FAILED)]
    assert excluded_offers(failures, OFFERS) == set()


@pytest.mark.parametrize("text", ["worker exited with code 137", "timeout: 600 s", "", "a: b: c"])
def test_a_stored_reason_that_names_no_code_reads_back_as_the_providers_failure(text: str) -> None:
    reason = AttemptReason.from_text(text)
    assert reason.code is AttemptCode.PROVIDER_FAILED and reason.detail == text


@pytest.mark.parametrize("code", list(AttemptCode))
def test_every_code_survives_its_text(code: AttemptCode) -> None:
    reason = AttemptReason(code, "detail: with a colon")
    assert AttemptReason.from_text(str(reason)) == reason
