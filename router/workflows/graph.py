"""A ComfyUI API-format graph under construction: `{"<id>": {"class_type", "inputs"}}`, links `["<id>", slot]`."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

Link = list[str | int]


@dataclass(frozen=True)
class Node:
    id: str

    def out(self, slot: int = 0) -> Link:
        return [self.id, slot]


class Graph:
    def __init__(self) -> None:
        self._nodes: dict[str, dict[str, Any]] = {}

    def add(self, class_type: str, **inputs: Any) -> Node:
        """Append a node; inputs given as None are left out (how an unconnected optional input looks)."""
        node_id = str(len(self._nodes) + 1)
        self._nodes[node_id] = {
            "class_type": class_type,
            "inputs": {name: value for name, value in inputs.items() if value is not None},
        }
        return Node(node_id)

    def to_api(self) -> dict[str, Any]:
        return copy.deepcopy(self._nodes)
