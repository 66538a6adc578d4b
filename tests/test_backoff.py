"""The backoff policy: pure unit tests, no server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqsx.backoff import MAX_VISIBILITY_TIMEOUT_SECONDS, BackoffPolicy, backoff_seconds

FORMULA = [
    # min(min_backoff * 2 ** (receive_count - 1), max_backoff, 43200)
    pytest.param(1, 30, 900, 30, id="first-failure-gets-min"),
    pytest.param(2, 30, 900, 60, id="second-doubles"),
    pytest.param(3, 30, 900, 120, id="third-doubles-again"),
    pytest.param(5, 30, 900, 480, id="fifth"),
    pytest.param(6, 30, 900, 900, id="capped-at-max"),
    pytest.param(1_000, 30, 900, 900, id="huge-count-still-max"),
    pytest.param(0, 30, 900, 30, id="unknown-count-as-first"),
    pytest.param(-3, 30, 900, 30, id="negative-count-as-first"),
    pytest.param(1, 0, 900, 0, id="zero-min-honoured"),
    pytest.param(10, 0, 900, 0, id="zero-min-stays-zero"),
    pytest.param(4, 7, 7, 7, id="min-equals-max"),
    pytest.param(20, 30, 100_000, MAX_VISIBILITY_TIMEOUT_SECONDS, id="sqs-cap-43200"),
    pytest.param(17, 1, 10**9, MAX_VISIBILITY_TIMEOUT_SECONDS, id="exponent-beyond-cap"),
]


@pytest.mark.parametrize(("count", "low", "high", "expected"), FORMULA)
def test_backoff_formula(count: int, low: int, high: int, expected: int) -> None:
    assert backoff_seconds(count, low, high) == expected


def test_sqs_cap_is_twelve_hours() -> None:
    assert MAX_VISIBILITY_TIMEOUT_SECONDS == 12 * 60 * 60


@given(
    count=st.integers(min_value=-5, max_value=10_000),
    low=st.integers(min_value=0, max_value=MAX_VISIBILITY_TIMEOUT_SECONDS),
    span=st.integers(min_value=0, max_value=MAX_VISIBILITY_TIMEOUT_SECONDS),
)
def test_backoff_is_bounded_and_never_shrinks(count: int, low: int, span: int) -> None:
    high = min(low + span, MAX_VISIBILITY_TIMEOUT_SECONDS)
    delay = backoff_seconds(count, low, high)
    assert low <= delay <= high
    assert backoff_seconds(count + 1, low, high) >= delay


# -- BackoffPolicy -------------------------------------------------------------------------


def test_policy_defaults_are_the_seeds() -> None:
    policy = BackoffPolicy()
    assert (policy.min_seconds, policy.max_seconds) == (30, 900)
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6)] == [30, 60, 120, 240, 480, 900]


@pytest.mark.parametrize(
    ("low", "high"),
    [
        pytest.param(-1, 10, id="negative-min"),
        pytest.param(20, 10, id="min-above-max"),
        pytest.param(0, MAX_VISIBILITY_TIMEOUT_SECONDS + 1, id="max-above-43200"),
    ],
)
def test_policy_refuses_bad_bounds(low: int, high: int) -> None:
    with pytest.raises(ValueError, match="43200"):
        BackoffPolicy(low, high)


OVERRIDES = [
    # (queue min, queue max), Retry(min, max), receive count -> delay
    pytest.param((30, 900), (None, None), 2, 60, id="none-keeps-queue-values"),
    pytest.param((30, 900), (0, None), 5, 0, id="retry-min-zero-honoured"),
    pytest.param((30, 900), (0, 0), 1, 0, id="retry-zero-zero"),
    pytest.param((30, 900), (100, 200), 1, 100, id="retry-bounds-first"),
    pytest.param((30, 900), (100, 200), 3, 200, id="retry-bounds-capped"),
    pytest.param((30, 900), (5, None), 3, 20, id="retry-min-only"),
    pytest.param((30, 900), (None, 45), 4, 45, id="retry-max-only"),
    pytest.param((30, 900), (500, 100), 1, 100, id="crossed-bounds-clamped"),
    pytest.param((30, 900), (-5, -1), 3, 0, id="negative-bounds-clamped"),
    pytest.param((30, 900), (40_000, 10**6), 2, MAX_VISIBILITY_TIMEOUT_SECONDS, id="above-cap"),
]


@pytest.mark.parametrize(("queue", "retry", "count", "expected"), OVERRIDES)
def test_retry_overrides(
    queue: tuple[int, int], retry: tuple[int | None, int | None], count: int, expected: int
) -> None:
    policy = BackoffPolicy(*queue).overridden(*retry)
    assert policy.delay(count) == expected


def test_fractional_retry_bounds_are_rounded_up_to_whole_seconds() -> None:
    from sqsx.backoff import BackoffPolicy

    policy = BackoffPolicy(30, 900).overridden(0.5, 1.5)  # type: ignore[arg-type]
    assert (policy.min_seconds, policy.max_seconds) == (1, 2)
    assert isinstance(policy.delay(3), int)
