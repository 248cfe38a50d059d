"""Settings every suite shares."""

import os
from collections.abc import Iterator

import pytest

# Exploration draws from each job's id, and ids are random: left on, about one route in ten could try the local GPU
# instead of the offer a test expects. Tests of exploration turn it on for their own stack.
os.environ.setdefault("HVR_EXPLORATION_SHARE", "0")


def pytest_sessionfinish(session, exitstatus) -> None:  # type: ignore[no-untyped-def]
    """A run that passed but left a sandbox's temp folder or a child process behind fails (issue 19): every
    process and file the project starts or makes is stopped or removed, on success and on failure."""
    from tests.leaks import leaks

    left = leaks()
    if left:
        print("\nleft behind by this test run:\n  " + "\n  ".join(left))
        if exitstatus == 0:
            session.exitstatus = 1


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """A locked moto server rather than in-process `mock_aws`: the concurrency tests need moto's conditional writes
    serialized, and `mock_aws` would also capture the calls of any embedded stack another test left running."""
    from hvr.local.moto_server import LockedMotoServer

    server = LockedMotoServer().start()
    yield server.url
    server.stop()
