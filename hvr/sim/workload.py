"""Seeded month workloads built from the studio's use cases (issue 9), saved as JSON Lines of
`{"arrival": ISO 8601, "request": VideoRequest}`.

The mix is by count and exact (largest remainder), so a 1,000-video month always holds 400 social clips, 150 product
demos, 150 image-to-video product shots, 80 commercials, 70 lipsync avatars, 50 camera shots and 100 campaign clips.
Arrivals follow a diurnal, weekday-heavy intensity (sampled by rejection); a campaign burst arrives as one manifest,
its clips fanned out seconds apart and sharing one absolute deadline.

Choices the issue leaves open, made here and kept fixed: 512x512 social clips are drafts (the only offer rendering
512x512 is AnimateDiff, quality 3, so a "standard" one could never be served and would only inflate `infeasible`);
camera shots last 3-5 s; campaign clips are 480p or 720p vertical or wide, 4-8 s; lipsync clips are standard quality.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from router.models.common import iso
from router.models.request import VideoRequest

CLASS_KEY = "workload_class"  # request.metadata key naming the use case a request was drawn from
MONTH_START = datetime(2026, 11, 1, tzinfo=UTC)
MONTH_DAYS = 30
HOUR = 3600

# (class, share by count); the shares are the issue's.
MIX: tuple[tuple[str, float], ...] = (
    ("social", 0.40),
    ("product_demo", 0.15),
    ("product_i2v", 0.15),
    ("commercial", 0.08),
    ("lipsync", 0.07),
    ("camera", 0.05),
    ("burst", 0.10),
)
BURST_SIZE = (50, 300)
FANOUT_S = 2.0  # a campaign manifest's items reach the router seconds apart (SQS fan-out)

# Relative arrival intensity by hour of day (UTC, the studio's working day); weekends carry a third of a weekday.
_HOURLY = (0.15, 0.15, 0.15, 0.15, 0.15, 0.15, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0,
           1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.7, 0.45, 0.45, 0.45, 0.25, 0.2)
_WEEKEND = 0.35

_PROMPTS = {
    "social": ["a neon cat dancing on a rooftop", "coffee pouring in slow motion, warm light",
               "sneakers bouncing on a trampoline", "confetti falling over a city street at night"],
    "product_demo": ["a wireless speaker rotating on a turntable", "a smartwatch face lighting up",
                     "a backpack opening to show its compartments"],
    "product_i2v": ["the product slowly turns to face the camera", "gentle light sweeps across the product"],
    "commercial": ["a family breakfast scene, golden hour, brand mug in focus",
                   "a runner at dawn on a coastal road, cinematic"],
    "lipsync": ["the presenter greets the viewer and introduces the offer"],
    "camera": ["a lighthouse on a cliff at dusk", "a vintage car parked in a desert"],
    "burst": ["holiday sale banner animation", "black friday deal countdown", "new collection teaser"],
}
_MOTIONS = ("pan_left", "pan_right", "zoom_in", "zoom_out", "rotate_cw", "pan_up")


@dataclass(frozen=True)
class Arrival:
    at: datetime
    request: VideoRequest

    @property
    def klass(self) -> str:
        return str((self.request.metadata or {}).get(CLASS_KEY, "other"))

    def deadline(self) -> datetime | None:
        return self.request.resolved_deadline(self.at)


def quotas(videos: int, mix: Sequence[tuple[str, float]] = MIX) -> dict[str, int]:
    """Counts per class summing to `videos`, each its share rounded by largest remainder."""
    raw = [(name, share * videos) for name, share in mix]
    counts = {name: int(value) for name, value in raw}
    short = videos - sum(counts.values())
    by_remainder = sorted(raw, key=lambda item: (-(item[1] - int(item[1])), item[0]))
    for name, _ in by_remainder[:short]:
        counts[name] += 1
    return counts


def generate(videos: int = 1000, seed: int = 0, start: datetime = MONTH_START, days: int = MONTH_DAYS) -> list[Arrival]:
    """A month of `videos` requests, sorted by arrival; the same seed gives the same month."""
    if videos < 1:
        raise ValueError("a workload needs at least one video")
    rng = random.Random(f"hvr-workload:{seed}")
    counts = quotas(videos)
    singles = [name for name, _ in MIX if name != "burst" for _ in range(counts[name])]
    rng.shuffle(singles)
    out: list[Arrival] = []
    for n, klass in enumerate(singles):
        at = _arrival_time(rng, start, days)
        out.append(Arrival(at, VideoRequest.model_validate(_single(rng, klass, n))))
    remaining, burst_n = counts["burst"], 0
    while remaining > 0:
        size = min(rng.randint(*BURST_SIZE), remaining)
        if remaining - size < BURST_SIZE[0]:
            size = remaining  # a leftover smaller than a burst joins this one
        out += _burst(rng, burst_n, size, _arrival_time(rng, start, days))
        remaining -= size
        burst_n += 1
    out.sort(key=lambda a: (a.at, a.request.prompt, a.request.seed or 0))
    return out


def _arrival_time(rng: random.Random, start: datetime, days: int) -> datetime:
    while True:
        offset = rng.uniform(0, days * 24 * HOUR)
        at = start + timedelta(seconds=round(offset))
        weight = _HOURLY[at.hour] * (_WEEKEND if at.weekday() >= 5 else 1.0)
        if rng.random() < weight:
            return at


def _money(rng: random.Random, low: float, high: float) -> str:
    return f"{rng.uniform(low, high):.2f}"


def _half_seconds(rng: random.Random, low: float, high: float) -> float:
    return rng.randint(int(low * 2), int(high * 2)) / 2


def _single(rng: random.Random, klass: str, n: int) -> dict[str, Any]:
    body: dict[str, Any] = {"prompt": rng.choice(_PROMPTS[klass]), "seed": rng.randrange(2**32),
                            "metadata": {CLASS_KEY: klass}}
    image = f"s3://hvr-uploads/workload/{klass}-{n}.png"
    if klass == "social":
        square = rng.random() < 0.5
        body |= {"mode": "t2v", "duration_s": _half_seconds(rng, 2, 8), "deadline_s": rng.randint(60, 360) * 60,
                 "max_cost_usd": _money(rng, 0.30, 1.00), "priority": "interactive"}
        if square:
            body |= {"resolution": "512x512", "aspect_ratio": "1:1", "quality": "draft"}
        else:
            body |= {"resolution": "480p", "aspect_ratio": "9:16", "quality": rng.choice(["draft", "standard"])}
    elif klass == "product_demo":
        body |= {"mode": "t2v", "resolution": "720p", "duration_s": 5, "quality": "standard",
                 "deadline_s": 24 * HOUR, "priority": "batch"}
    elif klass == "product_i2v":
        body |= {"mode": "i2v", "image": image, "resolution": "720p", "duration_s": 5, "quality": "standard",
                 "aspect_ratio": rng.choice(["16:9", "16:9", "9:16"]), "deadline_s": 24 * HOUR, "priority": "batch"}
    elif klass == "commercial":
        body |= {"mode": "t2v", "resolution": "1080p", "duration_s": float(rng.randint(5, 8)), "quality": "premium",
                 "aspect_ratio": rng.choice(["16:9", "16:9", "16:9", "9:16"]), "deadline_s": 48 * HOUR,
                 "max_cost_usd": _money(rng, 3.0, 6.0), "priority": "batch"}
    elif klass == "lipsync":
        body |= {"mode": "s2v", "image": image, "audio": f"s3://hvr-uploads/workload/{klass}-{n}.wav",
                 "resolution": rng.choice(["480p", "720p"]), "aspect_ratio": rng.choice(["16:9", "9:16"]),
                 "duration_s": 10, "quality": "standard", "deadline_s": 12 * HOUR, "priority": "interactive"}
    elif klass == "camera":
        body |= {"mode": "camera", "image": image, "resolution": "720p", "duration_s": _half_seconds(rng, 3, 5),
                 "camera": {"motion": rng.choice(_MOTIONS), "speed": round(rng.uniform(0.5, 1.5), 2)},
                 "quality": "premium", "deadline_s": 48 * HOUR, "priority": "batch"}
    else:
        raise ValueError(f"unknown workload class {klass!r}")
    return body


def _burst(rng: random.Random, n: int, size: int, at: datetime) -> list[Arrival]:
    """One campaign manifest: clips of one shape and quality, one absolute deadline 8-24 h after the drop."""
    deadline = at + timedelta(hours=rng.randint(8, 24))
    shape = {"mode": "t2v", "resolution": rng.choice(["480p", "720p"]), "aspect_ratio": rng.choice(["9:16", "16:9"]),
             "quality": rng.choice(["draft", "standard"]), "deadline": iso(deadline), "priority": "batch",
             "campaign_id": f"campaign-{n + 1}", "metadata": {CLASS_KEY: "burst"}}
    return [Arrival(at + timedelta(seconds=FANOUT_S * item), VideoRequest.model_validate(
        {**shape, "prompt": rng.choice(_PROMPTS["burst"]), "seed": rng.randrange(2**32),
         "duration_s": _half_seconds(rng, 4, 8)}))
        for item in range(size)]


# --- JSON Lines ------------------------------------------------------------------------------------------------


def dumps(arrivals: Iterable[Arrival]) -> str:
    lines = [json.dumps({"arrival": iso(a.at), "request": a.request.model_dump(mode="json", exclude_none=True)},
                        separators=(",", ":"), sort_keys=True)
             for a in arrivals]
    return "\n".join(lines) + "\n"


def save(arrivals: Iterable[Arrival], path: str | Path) -> None:
    Path(path).write_text(dumps(arrivals))


def loads(text: str, source: str = "<workload>") -> list[Arrival]:
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            at = datetime.fromisoformat(row["arrival"].replace("Z", "+00:00"))
            request = VideoRequest.model_validate(row["request"])  # stored requests: no wall-clock checks
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{source}:{number}: {exc}") from exc
        if at.tzinfo is None:
            raise ValueError(f"{source}:{number}: arrival must include a timezone")
        out.append(Arrival(at.astimezone(UTC), request))
    out.sort(key=lambda a: a.at)
    return out


def load(path: str | Path) -> list[Arrival]:
    return loads(Path(path).read_text(), str(path))
