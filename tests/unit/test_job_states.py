import pytest

from router.models.job import ALLOWED, TERMINAL, JobStatus, can_transition


def test_terminal_states_are_never_left() -> None:
    for status in TERMINAL:
        assert not ALLOWED[status]


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        (JobStatus.ACCEPTED, JobStatus.ROUTED, True),
        (JobStatus.ACCEPTED, JobStatus.REJECTED, True),
        (JobStatus.ACCEPTED, JobStatus.SUCCEEDED, False),
        (JobStatus.ROUTED, JobStatus.SUBMITTED, True),
        (JobStatus.SUBMITTED, JobStatus.ACCEPTED, False),
        (JobStatus.RUNNING, JobStatus.ROUTED, True),  # a fallback hop after a failed attempt
        (JobStatus.RUNNING, JobStatus.SUBMITTED, False),
        (JobStatus.SUCCEEDED, JobStatus.FAILED, False),
        (JobStatus.CANCELLED, JobStatus.RUNNING, False),
    ],
)
def test_transitions(current: JobStatus, target: JobStatus, ok: bool) -> None:
    assert can_transition(current, target) is ok
