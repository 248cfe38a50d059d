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
from router.models.outcome import AttemptCode

MAX_FAILURES_PER_OFFER = 2
# Failures that are about the offer, not the moment. An input we couldn't fetch (refused, or still failing after
# the bounded submit tries) rules out the offers that need our fetch; one that hands the provider the URL may still
# work. An exploring attempt stopped at its abandon point was too slow for this job, and trying it again would spend
# the time kept for the fallback. A provider that left the job in its queue for half an hour has no capacity for it
# now, and a second try there would wait as long again; one that ran a render far past its time is likely to hang
# again.
OFFER_FAULTS = frozenset({AttemptCode.REJECTED, AttemptCode.OUTPUT_REJECTED, AttemptCode.OUTPUT_MISMATCH,
                          AttemptCode.OUTPUT_UNPLAYABLE, AttemptCode.INPUT_REJECTED, AttemptCode.INPUT_UNAVAILABLE,
                          AttemptCode.EXPLORATION_ABANDONED, AttemptCode.QUEUE_STALLED,
                          AttemptCode.RENDER_STALLED})
PROVIDER_FAULTS = frozenset({AttemptCode.CONTENT_FILTERED})


def excluded_offers(failures: Iterable[tuple[str, ProviderKind, AttemptCode | None]], offers: Sequence[Offer],
                    max_failures: int = MAX_FAILURES_PER_OFFER) -> frozenset[str]:
    """`failures`: (offer id, provider, why it failed) of each failed attempt of one job."""
    excluded: set[str] = set()
    count: Counter[str] = Counter()
    filtered: set[ProviderKind] = set()
    for offer_id, provider, code in failures:
        count[offer_id] += 1
        if code in OFFER_FAULTS or count[offer_id] >= max_failures:
            excluded.add(offer_id)
        if code in PROVIDER_FAULTS:
            filtered.add(provider)
    excluded |= {o.id for o in offers if o.provider in filtered}
    return frozenset(excluded)
