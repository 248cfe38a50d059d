"""Settings every suite shares."""

import os

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
