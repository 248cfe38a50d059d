"""Scenario files for `hvr simulate --scenario FILE.yaml`: the world a run simulates, in one reviewable file.

    description: GPU 20x faster than the catalog, energy-only pricing   # optional, shown in the report
    seed: 7                        # truth draws and exploration; default 1
    truth:
      time_bias: {local: 0.05, replicate/wan-2.2-t2v-fast: 2.0}   # x the catalog's times; by kind or offer id
      failure_rate: {veo: 0.10}                                   # per attempt, by kind or offer id
      cold_start_s: {runpod: 240}                                 # a cloud offer's real cold start
      outages: [{provider: veo, from_day: 9, hours: 18}]          # a kind or an offer id; day 0 is the first
      local_slots: 1                                              # the one GPU's slots
      rating_mean: {local/animatediff-sd15: 2.6, local/wan21-1.3b: 4.4}  # raters' mean score, 1-5 (hvr.sim.ratings)
    workload: {videos: 1000, seed: 3}        # or {file: samples/workloads/month-1000.jsonl}
    budget_usd: 400                          # monthly, global; default none
    local_cost_basis: marginal               # or full; default: as the catalog prices it
    targets: {cost_ratio_to_cheapest_feasible: 0.70}   # optional: tighten or add to issue 14's targets

A fleet of GPU boxes instead of the one GPU (not with `local_slots`), each {card or vram_mb, name, speed, slots,
ram_mb}:

    truth:
      local_boxes:
        - {card: 5090}            # 5090, 4090, 3090 or 3080; named after it (a second 3090: 3090-2); 64 GB of RAM
        - {card: 3090, slots: 2, speed: 1.8}      # x the render time; default the card's (truth.CARDS); 1 slot
        - {name: big, vram_mb: 49152, speed: 0.8}  # no card: name, vram_mb and speed
      outages: [{provider: local@3090, from_day: 3, hours: 6}]   # one box down (or local/wan21-14b@3090)

An offer id wins over its kind; truth keys left out keep the simulator's defaults (`truth.TruthConfig`). A workload
`file` is read relative to the current directory, else to the repository root (so the sample paths work from
anywhere); a generated workload without its own seed takes the scenario's. Every unknown key and bad value is
refused as `FILE:LINE: key: problem`, the line taken from PyYAML's node marks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

import yaml
from yaml.constructor import SafeConstructor

from hvr.sim.compare import SCENARIO_TARGETS, Comparison, Targets
from hvr.sim.truth import BOX_RAM_MB, CARDS, DEFAULT_FAILURE_RATE, LocalBox, Outage, TruthConfig
from hvr.sim.workload import Arrival
from router.models.common import ProviderKind
from router.models.offer import LocalCostBasis, Offer, with_local_cost_basis

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SEED = 1
DEFAULT_VIDEOS = 1000
KINDS = frozenset(kind.value for kind in ProviderKind)
# Scenario key → `Targets` field.
TARGET_KEYS = {
    "deadline_hit_rate": "hit_rate",
    "cost_ratio_to_optimum": "optimum_ratio",
    "second_half_cost_ratio_to_optimum": "second_half_optimum_ratio",
    "gpu_utilization_share_of_optimum": "gpu_share_of_optimum",
    "cost_ratio_to_cheapest_feasible": "cheapest_feasible_ratio",
}
BOX_KEYS = {"name", "card", "vram_mb", "ram_mb", "speed", "slots"}
# A box's name is part of learned-model keys (`offer@box`) and of the fleet's job ids (`box/attempt`).
BOX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ScenarioError(ValueError):
    """`FILE:LINE: key: problem`."""


@dataclass(frozen=True)
class Scenario:
    path: Path
    seed: int = DEFAULT_SEED
    truth: TruthConfig = field(default_factory=TruthConfig)
    workload_file: Path | None = None
    videos: int = DEFAULT_VIDEOS
    workload_seed: int | None = None  # None: the scenario's seed
    budget_usd: Decimal | None = None
    local_cost_basis: LocalCostBasis | None = None  # None: as the catalog prices it
    description: str = ""
    targets: Targets = SCENARIO_TARGETS

    @property
    def name(self) -> str:
        return self.path.stem

    def with_seed(self, seed: int) -> Scenario:
        """The same world drawn again from another seed (a generated workload without its own seed follows)."""
        return dataclasses.replace(self, seed=seed, truth=dataclasses.replace(self.truth, seed=seed))

    def offers(self, catalog: Sequence[Offer]) -> tuple[Offer, ...]:
        """The catalog priced on the scenario's basis: hvr, the baselines and the optimum all see these."""
        if self.local_cost_basis is None:
            return tuple(catalog)
        return with_local_cost_basis(catalog, self.local_cost_basis)

    def arrivals(self) -> list[Arrival]:
        """The scenario's requests: its file (OSError or ValueError when it can't be read), or a generated month."""
        from hvr.sim import workload

        if self.workload_file is not None:
            return workload.load(self.workload_file)
        return workload.generate(self.videos, seed=self.workload_seed if self.workload_seed is not None else self.seed)

    def workload_label(self) -> str:
        if self.workload_file is not None:
            path = self.workload_file
            return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path)
        seed = self.workload_seed if self.workload_seed is not None else self.seed
        return f"generated: {self.videos} videos, seed {seed}"

    def label(self) -> str:
        parts = [f"scenario {self.path.name}", self.workload_label()]
        if self.local_cost_basis is not None:
            parts.append(f"{self.local_cost_basis.value} local cost basis")
        return "; ".join(parts) + (f" ({self.description})" if self.description else "")


def load(path: Path, offers: Sequence[Offer]) -> Scenario:
    """Read and check a scenario; ScenarioError names the file, line and key of the first problem."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"{path}:1: file: {exc.strerror or exc}") from exc
    return parse(text, path, offers)


def parse(text: str, path: Path, offers: Sequence[Offer]) -> Scenario:
    try:
        root = yaml.compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ScenarioError(f"{path}:{line}: yaml: {exc.problem or exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}:1: yaml: {exc}") from exc
    if root is None:
        raise ScenarioError(f"{path}:1: scenario: the file is empty; expected a mapping of scenario keys")
    return _Reader(path, offers).scenario(root)


Entries = dict[str, tuple[yaml.Node, yaml.Node]]  # key → (key node, value node)


class _Reader:
    def __init__(self, path: Path, offers: Sequence[Offer]) -> None:
        self.path = path
        self.offer_ids = frozenset(o.id for o in offers)
        self._construct = SafeConstructor()

    def fail(self, node: yaml.Node, key: str, problem: str) -> NoReturn:
        raise ScenarioError(f"{self.path}:{node.start_mark.line + 1}: {key}: {problem}")

    # --- the document ---------------------------------------------------------------------------------------

    def scenario(self, root: yaml.Node) -> Scenario:
        top = self.mapping(root, "scenario", {"description", "seed", "truth", "workload", "budget_usd",
                                              "local_cost_basis", "targets"})
        seed = self.integer(top["seed"][1], "seed") if "seed" in top else DEFAULT_SEED
        found: dict[str, Any] = {"path": self.path, "seed": seed}
        if "description" in top:
            found["description"] = self.text(top["description"][1], "description")
        found["truth"] = self.truth(top["truth"][1], seed) if "truth" in top else TruthConfig(seed=seed)
        if "workload" in top:
            found.update(self.workload(top["workload"][1]))
        if "budget_usd" in top:
            found["budget_usd"] = self.money(top["budget_usd"][1], "budget_usd")
        if "local_cost_basis" in top:
            found["local_cost_basis"] = LocalCostBasis(self.choice(top["local_cost_basis"][1], "local_cost_basis",
                                                                   [b.value for b in LocalCostBasis]))
        if "targets" in top:
            found["targets"] = self.targets(top["targets"][1])
        return Scenario(**found)

    def truth(self, node: yaml.Node, seed: int) -> TruthConfig:
        entries = self.mapping(node, "truth", {"time_bias", "failure_rate", "cold_start_s", "outages",
                                               "local_slots", "local_boxes", "rating_mean"})
        found: dict[str, Any] = {"seed": seed}
        if "local_slots" in entries and "local_boxes" in entries:
            self.fail(entries["local_slots"][0], "truth.local_slots",
                      "not with truth.local_boxes: give each box its own `slots`")
        boxes: tuple[LocalBox, ...] = ()
        if "local_boxes" in entries:
            boxes = found["local_boxes"] = self.boxes(entries["local_boxes"][1])
        if "time_bias" in entries:
            found["time_bias"] = self.by_offer(entries["time_bias"][1], "truth.time_bias",
                                               lambda n, k: self.number(n, k, above=0.0))
        if "failure_rate" in entries:
            rates = self.by_offer(entries["failure_rate"][1], "truth.failure_rate",
                                  lambda n, k: self.number(n, k, at_least=0.0, at_most=1.0))
            found["failure_rate"] = {**DEFAULT_FAILURE_RATE, **rates}
        if "cold_start_s" in entries:
            colds = self.by_offer(entries["cold_start_s"][1], "truth.cold_start_s",
                                  lambda n, k: self.number(n, k, at_least=0.0))
            for name, (key_node, _) in self.mapping(entries["cold_start_s"][1], "truth.cold_start_s").items():
                if name == ProviderKind.LOCAL.value or name.startswith("local/"):
                    self.fail(key_node, f"truth.cold_start_s.{name}", "the local GPU has no cold start")
            found["cold_start_s"] = colds
        if "rating_mean" in entries:
            found["rating_mean"] = self.by_offer(entries["rating_mean"][1], "truth.rating_mean",
                                                 lambda n, k: self.number(n, k, at_least=1.0, at_most=5.0))
        if "outages" in entries:
            found["outages"] = self.outages(entries["outages"][1], {box.name for box in boxes})
        if "local_slots" in entries:
            found["local_slots"] = self.integer(entries["local_slots"][1], "truth.local_slots", minimum=1)
        return TruthConfig(**found)

    def boxes(self, node: yaml.Node) -> tuple[LocalBox, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, "truth.local_boxes", "expected a list of boxes, each {card or vram_mb, name, speed, "
                                                 "slots, ram_mb}")
        if not node.value:
            self.fail(node, "truth.local_boxes", "name at least one box")
        found: list[LocalBox] = []
        for n, item in enumerate(node.value):
            where = f"truth.local_boxes[{n}]"
            entries = self.mapping(item, where, BOX_KEYS)
            card = None
            if "card" in entries:
                card = self.card(entries["card"][1], f"{where}.card")
            elif "vram_mb" not in entries:
                self.fail(item, f"{where}.card", f"missing: give a card ({', '.join(CARDS)}) or the box's vram_mb")
            vram, speed = CARDS[card] if card is not None else (None, None)
            if "vram_mb" in entries:
                vram = self.integer(entries["vram_mb"][1], f"{where}.vram_mb", minimum=1)
            if "speed" in entries:
                speed = self.number(entries["speed"][1], f"{where}.speed", above=0.0)
            elif speed is None:
                self.fail(item, f"{where}.speed", "missing: a box without a card has no speed to take (x the "
                                                  "studio's card's render time)")
            if "name" in entries:
                name_node = entries["name"][1]
                name = self.text(name_node, f"{where}.name")
                if not BOX_NAME.fullmatch(name):
                    self.fail(name_node, f"{where}.name",
                              f"{name!r}: letters, digits, `.`, `_` and `-`, starting with a letter or digit")
            elif card is not None:  # as the embedded stack's `--agents` names them: 3090, 3090-2, ...
                name, n = card, 1
                while any(box.name == name for box in found):
                    n += 1
                    name = f"{card}-{n}"
            else:
                self.fail(item, f"{where}.name", "missing: a box without a card needs a name")
            if any(box.name == name for box in found):
                self.fail(entries["name"][1] if "name" in entries else item, f"{where}.name",
                          f"{name!r} names two boxes")
            found.append(LocalBox(
                name=name, vram_mb=vram, speed=speed,
                slots=self.integer(entries["slots"][1], f"{where}.slots", minimum=1) if "slots" in entries else 1,
                ram_mb=(self.integer(entries["ram_mb"][1], f"{where}.ram_mb", minimum=1) if "ram_mb" in entries
                        else BOX_RAM_MB)))
        return tuple(found)

    def outages(self, node: yaml.Node, boxes: set[str]) -> tuple[Outage, ...]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, "truth.outages", "expected a list of {provider, from_day, hours}")
        found = []
        for n, item in enumerate(node.value):
            where = f"truth.outages[{n}]"
            entries = self.mapping(item, where, {"provider", "from_day", "hours"})
            for required in ("provider", "from_day", "hours"):
                if required not in entries:
                    self.fail(item, f"{where}.{required}", "missing")
            provider_node = entries["provider"][1]
            provider = self.text(provider_node, f"{where}.provider")
            what, at, box = provider.partition("@")
            if what not in KINDS and what not in self.offer_ids:
                self.fail(provider_node, f"{where}.provider", self._unknown_provider(what))
            if at and what != ProviderKind.LOCAL.value and not what.startswith("local/"):
                self.fail(provider_node, f"{where}.provider", f"{provider!r}: only a local outage names a box")
            if at and box not in boxes:
                known = f"truth.local_boxes has {', '.join(sorted(boxes))}" if boxes else "no truth.local_boxes"
                self.fail(provider_node, f"{where}.provider", f"{provider!r}: no box {box!r} ({known})")
            found.append(Outage(provider=provider,
                                from_day=self.number(entries["from_day"][1], f"{where}.from_day", at_least=0.0),
                                hours=self.number(entries["hours"][1], f"{where}.hours", above=0.0)))
        return tuple(found)

    def workload(self, node: yaml.Node) -> dict[str, Any]:
        entries = self.mapping(node, "workload", {"videos", "seed", "file"})
        if "file" in entries:
            for other in ("videos", "seed"):
                if other in entries:
                    self.fail(entries[other][0], f"workload.{other}", "a workload is a `file` or generated, not both")
            file_node = entries["file"][1]
            return {"workload_file": self.workload_path(file_node)}
        found: dict[str, Any] = {}
        if "videos" in entries:
            found["videos"] = self.integer(entries["videos"][1], "workload.videos", minimum=1)
        if "seed" in entries:
            found["workload_seed"] = self.integer(entries["seed"][1], "workload.seed")
        return found

    def workload_path(self, node: yaml.Node) -> Path:
        raw = Path(self.text(node, "workload.file"))
        for candidate in ([raw] if raw.is_absolute() else [raw, REPO_ROOT / raw]):
            if candidate.is_file():
                return candidate
        self.fail(node, "workload.file", f"no such file: {raw} (read from the current directory, then {REPO_ROOT})")

    def targets(self, node: yaml.Node) -> Targets:
        entries = self.mapping(node, "targets", set(TARGET_KEYS))
        changes = {TARGET_KEYS[name]: self.number(value, f"targets.{name}", above=0.0)
                   for name, (_, value) in entries.items()}
        return dataclasses.replace(SCENARIO_TARGETS, **changes)

    # --- values ---------------------------------------------------------------------------------------------

    def mapping(self, node: yaml.Node, key: str, allowed: set[str] | None = None) -> Entries:
        """The mapping's entries by key; an unknown (when `allowed` is given), duplicate or non-text key is refused
        at its own line."""
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, key, "expected a mapping")
        entries: Entries = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != "tag:yaml.org,2002:str":
                self.fail(key_node, key, f"keys are names; got {key_node.value!r}")
            name = str(key_node.value)
            if allowed is not None and name not in allowed:
                known = ", ".join(sorted(allowed))
                self.fail(key_node, f"{key}.{name}" if key != "scenario" else name, f"unknown key (known: {known})")
            if name in entries:
                self.fail(key_node, f"{key}.{name}" if key != "scenario" else name, "given twice")
            entries[name] = (key_node, value_node)
        return entries

    def by_offer(self, node: yaml.Node, key: str, value: Callable[[yaml.Node, str], float]) -> dict[str, float]:
        """A mapping from provider kind or offer id to a value."""
        found = {}
        for name, (key_node, value_node) in self.mapping(node, key).items():
            if name not in KINDS and name not in self.offer_ids:
                self.fail(key_node, f"{key}.{name}", self._unknown_provider(name))
            found[name] = value(value_node, f"{key}.{name}")
        return found

    def scalar(self, node: yaml.Node, key: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.fail(node, key, "expected a single value")
        return self._construct.construct_object(node, deep=True)

    def text(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value.strip():
            self.fail(node, key, f"expected text, got {value!r}")
        return value

    def choice(self, node: yaml.Node, key: str, allowed: list[str]) -> str:
        value = self.scalar(node, key)
        if value not in allowed:
            self.fail(node, key, f"expected one of {', '.join(allowed)}; got {value!r}")
        return str(value)

    def card(self, node: yaml.Node, key: str) -> str:
        value = self.scalar(node, key)
        name = str(value) if type(value) is int else value  # `card: 5090` reads as a number
        if name not in CARDS:
            self.fail(node, key, f"expected one of {', '.join(CARDS)}; got {value!r}")
        return str(name)

    def integer(self, node: yaml.Node, key: str, minimum: int | None = None) -> int:
        value = self.scalar(node, key)
        if type(value) is not int:  # a YAML bool is an int to Python, and no count
            self.fail(node, key, f"expected a whole number, got {value!r}")
        if minimum is not None and value < minimum:
            self.fail(node, key, f"must be at least {minimum}; got {value}")
        return value

    def number(self, node: yaml.Node, key: str, above: float | None = None, at_least: float | None = None,
               at_most: float | None = None) -> float:
        value = self.scalar(node, key)
        if isinstance(value, str) and getattr(node, "style", None) is None:  # YAML 1.1 reads `1e3` as text
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(node, key, f"expected a number, got {value!r}")
        number = float(value)
        if above is not None and number <= above:
            self.fail(node, key, f"must be over {above:g}; got {number:g}")
        if at_least is not None and number < at_least:
            self.fail(node, key, f"must be at least {at_least:g}; got {number:g}")
        if at_most is not None and number > at_most:
            self.fail(node, key, f"must be at most {at_most:g}; got {number:g}")
        return number

    def money(self, node: yaml.Node, key: str) -> Decimal:
        value = self.scalar(node, key)
        try:
            amount = Decimal(str(value)) if not isinstance(value, bool) else None
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite() or amount <= 0:
            self.fail(node, key, f"expected an amount in USD over 0, got {value!r}")
        return amount

    def _unknown_provider(self, name: str) -> str:
        return f"{name!r} is neither a provider kind ({', '.join(sorted(KINDS))}) nor an offer in the catalog"


def simulate_scenario(scenario: Scenario, catalog: Sequence[Offer], arrivals: Sequence[Arrival] | None = None,
                      policies: Sequence[str] | None = None, matched_bounds: bool = False,
                      time_limit_s: float | None = None) -> Comparison:
    """Run a scenario (on `arrivals`, default its own workload): its truth and basis, every policy, the optimum."""
    from hvr.sim import optimal
    from hvr.sim.compare import DEFAULT_POLICIES, compare
    from hvr.sim.simulator import SimConfig

    return compare(arrivals if arrivals is not None else scenario.arrivals(), scenario.offers(catalog),
                   seed=scenario.seed, policies=policies or DEFAULT_POLICIES,
                   config=SimConfig(budget_usd=scenario.budget_usd), workload=scenario.label(),
                   truth_config=scenario.truth, time_limit_s=time_limit_s or optimal.TIME_LIMIT_S,
                   matched_bounds=matched_bounds, targets=scenario.targets)
