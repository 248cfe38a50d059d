"""A fleet whose boxes come from the fleet registry (`HVR_AGENTS=registry`): each registered box at the tunnel URL it
announced, every call to it signed with its own key (the one its last heartbeat was signed with), never a secret
shared by the fleet.

The registry is read again at most every REFRESH_S, so a box that registers is reachable within that, and a box
whose address or key changes is reached at the new one; a box stays listed while it is registered, down or draining
(its running attempts still need their polls; routing judges it by the registry, `services.context`). A box whose
key was revoked is dropped at the next read: the router can't sign for it any more than it accepts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from router.providers.agent import AgentProvider
from router.providers.base import VideoProvider
from router.store.agent_keys import KeyRefused
from router.store.protocols import AgentKeyStore, AgentRegistry

REFRESH_S = 10.0

logger = logging.getLogger(__name__)


class RegistryBoxes:
    """Callable: the boxes now, as `FleetProvider` reads them."""

    def __init__(self, agents: AgentRegistry, keys: AgentKeyStore, clock: Callable[[], datetime],
                 refresh_s: float = REFRESH_S, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._agents, self._keys, self._clock = agents, keys, clock
        self._refresh_s, self._monotonic = refresh_s, monotonic
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._boxes: dict[str, VideoProvider] = {}
        self._made: dict[str, tuple[str, str]] = {}  # box → (url, secret) its provider was made with

    def __call__(self) -> Mapping[str, VideoProvider]:
        with self._lock:
            now = self._monotonic()
            if self._read_at is None or now - self._read_at >= self._refresh_s:
                self._boxes = self._read()
                self._read_at = now
            return self._boxes

    def _read(self) -> dict[str, VideoProvider]:
        boxes: dict[str, VideoProvider] = {}
        for record in sorted(self._agents.all(), key=lambda r: r.name):
            try:
                secret = self._keys.secret(record.name, record.key_id, self._clock())
            except KeyRefused as exc:
                logger.warning("GPU box %s left out of the fleet: %s", record.name, exc)
                continue
            url = record.registration.tunnel_url
            if self._made.get(record.name) != (url, secret) or record.name not in self._boxes:
                # A new client only where the address or key changed: the others keep their connections.
                self._made[record.name] = (url, secret)
                boxes[record.name] = AgentProvider(url, secret, record.name)
            else:
                boxes[record.name] = self._boxes[record.name]
        return boxes
