"""The fast kwargs check of task handlers agrees with ``inspect.Signature.bind``."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqsx.exceptions import TaskArgumentsError
from sqsx.signature import signature_of


def plain(context, a, b=1): ...  # type: ignore[no-untyped-def]
def extra(context, a, **more): ...  # type: ignore[no-untyped-def]
def keyword_only(context, *, a, b=2): ...  # type: ignore[no-untyped-def]
def star_context(*args, **more): ...  # type: ignore[no-untyped-def]
def no_params(): ...  # type: ignore[no-untyped-def]
def positional_only(context, a, /, b): ...  # type: ignore[no-untyped-def]
def star_args(context, *rest, a=0): ...  # type: ignore[no-untyped-def]


HANDLERS = [plain, extra, keyword_only, star_context, no_params, positional_only, star_args]
NAMES = st.sampled_from(["context", "a", "b", "more", "rest", "args", "z"])


@pytest.mark.parametrize("handler", [pytest.param(h, id=h.__name__) for h in HANDLERS])
@given(kwargs=st.dictionaries(NAMES, st.integers(), max_size=4))
def test_fast_check_accepts_exactly_what_bind_accepts(handler: Any, kwargs: dict[str, int]) -> None:
    try:
        inspect.signature(handler).bind(None, **kwargs)
        expected = True
    except TypeError:
        expected = False
    try:
        got = signature_of(handler).bind("t", kwargs)
    except TaskArgumentsError:
        accepted = False
    else:
        accepted = True
        assert got == kwargs
    assert accepted is expected


def test_the_error_names_the_task_and_the_argument() -> None:
    with pytest.raises(TaskArgumentsError, match=r"task 't'.*missing a required argument: 'a'"):
        signature_of(plain).bind("t", {"b": 2})
    with pytest.raises(TaskArgumentsError, match="unexpected keyword argument 'z'"):
        signature_of(plain).bind("t", {"a": 1, "z": 2})
    with pytest.raises(TaskArgumentsError, match="multiple values for argument 'context'"):
        signature_of(extra).bind("t", {"a": 1, "context": 2})
    only_kwargs = signature_of(lambda ctx, **kwargs: None)
    assert only_kwargs.bind("t", {"a": 1, "b": [2]}) == {"a": 1, "b": [2]}
    with pytest.raises(TaskArgumentsError, match="multiple values for argument 'ctx'"):
        only_kwargs.bind("t", {"a": 1, "ctx": 2})


def typed(
    context: dict[str, Any],
    n: int,
    s: str = "",
    f: float = 0.0,
    b: bool = False,
    a: Any = None,
    **more: Any,
) -> None: ...


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=5,
)


_SLOW = type(signature_of(typed))(typed)
_SLOW._plain = None  # pydantic for every message


@settings(deadline=None)  # the first example builds pydantic's validators
@given(
    kwargs=st.dictionaries(st.sampled_from(["n", "s", "f", "b", "a", "z"]), JSON_VALUES, max_size=5)
)
def test_typed_kwargs_skip_validation_only_when_pydantic_would_change_nothing(
    kwargs: dict[str, Any],
) -> None:
    # Given a handler with plain annotations, checked with and without the exact-type shortcut
    fast, slow = signature_of(typed), _SLOW
    # When both bind the same kwargs from the wire
    outcomes: list[tuple[str, Any]] = []
    for signature in (fast, slow):
        try:
            outcomes.append(("ok", signature.bind("t", {"n": 1, **kwargs})))
        except TaskArgumentsError as err:
            outcomes.append(("refused", str(err)))
    # Then they agree, value for value and type for type (a bool for an int is converted)
    assert outcomes[0] == outcomes[1]
    if outcomes[0][0] == "ok":
        bound = outcomes[0][1]
        assert {k: type(v) for k, v in bound.items()} == {
            k: type(v) for k, v in outcomes[1][1].items()
        }
