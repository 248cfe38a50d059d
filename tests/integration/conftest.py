from collections.abc import Iterator
from pathlib import Path

import pytest

from hvr.local.embedded import EmbeddedStack
from hvr.local.moto_server import LOCAL_ENV
from router.models.common import ProviderKind

# Fast enough that AnimateDiff's 16 frames (~2,400 modelled GPU-seconds) render in about half a second,
# slow enough that a 480p WAN job is still running when a test kills the agent.
TIME_SCALE = 5000.0


@pytest.fixture
def in_process_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in this process (`mock_aws`), for tests of the embedded stack's moto patches one call at a time."""
    from moto import mock_aws

    for name, value in LOCAL_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    # Not in the background: the tests drive the queue consumers themselves, so every run is deterministic.
    with EmbeddedStack(Path(tmp_path_factory.mktemp("stack")), time_scale=TIME_SCALE, background=False) as local:
        yield local


@pytest.fixture
def deps(stack: EmbeddedStack) -> Iterator:
    deps = stack.deps
    original = dict(deps.providers)
    yield deps
    deps.providers.clear()
    deps.providers.update(original)
    if stack.agent is not None and not stack.agent.running:
        stack.agent.start()


class SpyProvider:
    """Delegates to the real adapter, counting real submissions; `crash` simulates the worker dying
    right before or right after the provider call (the intent record is already written); `refuse` answers that
    many calls first as a provider that is down would, sending nothing."""

    def __init__(self, inner, crash: str | None = None) -> None:
        self.inner = inner
        self.crash = crash
        self.refuse = 0
        self.submits = 0
        self.target_name = inner.target_name

    def submit(self, submission):
        if self.refuse:
            from router.providers.errors import Unavailable

            self.refuse -= 1
            raise Unavailable("the target refused the connection")
        if self.crash == "before":
            self.crash = None
            raise RuntimeError("worker killed before the provider call")
        self.submits += 1
        status = self.inner.submit(submission)
        if self.crash == "after":
            self.crash = None
            raise RuntimeError("worker killed after the provider accepted the job")
        return status

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def spy(deps) -> SpyProvider:
    spy = SpyProvider(deps.providers[ProviderKind.LOCAL])
    deps.providers[ProviderKind.LOCAL] = spy
    return spy
