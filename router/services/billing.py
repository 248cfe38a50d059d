"""What an attempt cost: its ledger row, from the offer's pricing, the units the provider billed and the cost basis
of the owned GPU — and recording it, which settles its budget hold exactly once (services.money)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from router.models.common import money as to_money
from router.models.job import Attempt, Job
from router.models.ledger import LedgerEntry
from router.models.offer import LocalEnergyPricing, Offer
from router.models.outcome import AttemptOutcome, Billed
from router.services import money
from router.services.deps import Deps


def record_ledger(job: Job, attempt: Attempt, deps: Deps, outcome: AttemptOutcome, billed: Billed,
                  uri: str | None, provider_cost: Decimal | None = None, rendered: bool | None = None) -> Decimal:
    """Write the attempt's ledger row (once per attempt) and settle its budget hold; what it cost, in USD."""
    entry = ledger_entry(job, attempt, priced_offer(deps, attempt), deps.catalog.version, deps.clock(), outcome,
                         billed, uri, provider_cost, rendered)
    money.charge(deps, entry)
    return entry.actual_usd


def ledger_entry(job: Job, attempt: Attempt, offer: Offer, pricing_version: str, ended_at: datetime,
                 outcome: AttemptOutcome, billed: Billed, uri: str | None, provider_cost: Decimal | None = None,
                 rendered: bool | None = None) -> LedgerEntry:
    """An attempt's ledger row, from the offer's pricing (and the owned GPU's cost basis) and the billed units.

    The provider's own stated charge wins where it gives one (RunPod's `cost`); otherwise units times unit price,
    by the provider's billing: GPU time is billed whatever the outcome, per-second and per-video prices only for
    a video the provider rendered (delivered, or refused by our checks: it bills it all the same), and a
    content-filtered output is never billed."""
    spec = attempt.delivered
    gpu_seconds = Decimal(f"{billed.gpu_seconds or 0.0:.3f}")
    output_seconds = Decimal(f"{spec.duration_s:.3f}")
    priced = offer.price_for(spec.width, spec.height, spec.duration_s)
    if priced is None:  # the catalog changed under a running attempt: record the units, charge nothing we can't price
        unit, price = "none", Decimal(0)
    else:
        unit, price = priced[0], priced[1].quantize(Decimal("1e-10"))
    # A video the provider rendered is billed even when we no longer wanted it (a cancel it couldn't stop).
    delivered = outcome == AttemptOutcome.SUCCEEDED if rendered is None else rendered
    quantity = {"gpu_second": gpu_seconds, "output_second": output_seconds if delivered else Decimal(0),
                "video": Decimal(1 if delivered else 0)}.get(unit, Decimal(0))
    actual = to_money(price * quantity)
    if outcome == AttemptOutcome.CONTENT_FILTERED:
        actual = Decimal("0.0000")
    elif provider_cost is not None:
        actual = to_money(provider_cost)
    # The owned GPU: energy is what the render cost; its share of depreciation is kept beside it, charged or not.
    local = offer.pricing if isinstance(offer.pricing, LocalEnergyPricing) else None
    energy = to_money(local.energy_usd_per_gpu_second * gpu_seconds) if local is not None else None
    amortized = to_money(local.depreciation_usd_per_gpu_second * gpu_seconds) if local is not None else None
    return LedgerEntry(
        tenant=job.tenant,
        job_id=job.id,
        attempt_id=attempt.id,
        campaign_id=job.request.campaign_id,
        provider=attempt.provider,
        offer=offer.id,
        model=offer.model,
        outcome=outcome,
        billed_units={"gpu_seconds": gpu_seconds, "output_seconds": output_seconds, "frames": Decimal(spec.frames)},
        unit=unit,
        unit_price_usd=price,
        pricing_version=pricing_version,
        estimated_usd=attempt.estimated_cost_usd,
        actual_usd=actual,
        cost_basis=local.cost_basis if local is not None else None,
        energy_usd=energy,
        amortized_usd=amortized,
        resolution=f"{spec.width}x{spec.height}",
        mode=job.request.mode,
        started_at=attempt.started_at,
        ended_at=ended_at,
        provider_job_id=attempt.provider_job_id,
        s3_uri=uri,
    )


def priced_offer(deps: Deps, attempt: Attempt) -> Offer:
    """The attempt's offer as it is billed: on a GPU box that registered its power draw, at that draw (the
    engine placed it at the same figure, `TargetState.power_kw`)."""
    offer = offer_of(deps, attempt.offer)
    if not isinstance(offer.pricing, LocalEnergyPricing):
        return offer
    record = deps.agents.get(attempt.target)
    power = record.registration.power_w if record is not None else None
    return offer if power is None else offer.on_power(Decimal(power) / 1000)


def offer_of(deps: Deps, offer_id: str) -> Offer:
    offer = deps.catalog.get(offer_id)
    if offer is None:
        raise LookupError(f"offer {offer_id} is not in catalog {deps.catalog.version}")
    return offer
