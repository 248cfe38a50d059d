"""Which offers a job's next attempt may not use, given how its earlier attempts ended.

A failure that says something about the offer itself rules it out at once: the provider refused the job, its
output broke the rules or the spec, or its safety filter struck (then every offer of that provider, whose other
models filter alike). Anything else — a crashed worker, a timeout, a submit that was never confirmed — is
taken as bad luck: the offer stays eligible until it has failed the job `MAX_FAILURES_PER_OFFER` times, so a job
whose best (often only) offer hiccups once is tried there again rather than moved somewhere dearer or worse.
The services and the simulator both call this, so the benchmark measures the rule that runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from router.models.common import ProviderKind
from router.models.offer import Offer

MAX_FAILURES_PER_OFFER = 2
# Reason prefixes (`<code>: detail`) that are about the offer, not the moment. An input we couldn't fetch (refused,
# or still failing after the bounded submit tries) rules out the offers that need our fetch; one that hands the
# provider the URL may still work. An exploring attempt stopped at its abandon point was too slow for this job, and
# trying it again would spend the time kept for the fallback.
OFFER_FAULTS = ("rejected", "output_rejected", "output_mismatch", "output_unplayable", "input_rejected",
                "input_unavailable", "exploration_abandoned")
PROVIDER_FAULTS = ("content_filtered",)


def _code(reason: str | None) -> str:
    return (reason or "").split(":", 1)[0].strip()


def excluded_offers(failures: Iterable[tuple[str, ProviderKind, str | None]], offers: Sequence[Offer],
                    max_failures: int = MAX_FAILURES_PER_OFFER) -> frozenset[str]:
    """`failures`: (offer id, provider, reason) of each failed attempt of one job."""
    excluded: set[str] = set()
    count: Counter[str] = Counter()
    filtered: set[ProviderKind] = set()
    for offer_id, provider, reason in failures:
        code = _code(reason)
        count[offer_id] += 1
        if code in OFFER_FAULTS or count[offer_id] >= max_failures:
            excluded.add(offer_id)
        if code in PROVIDER_FAULTS:
            filtered.add(provider)
    excluded |= {o.id for o in offers if o.provider in filtered}
    return frozenset(excluded)
