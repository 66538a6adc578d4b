"""Handler signatures: check, and where a handler is typed convert, a task's kwargs before
the handler runs (and, opt-in, before the task is sent).

An untyped handler only needs its arguments to bind. A handler with annotated parameters
(``def charge(context, order: Order, amount: Decimal)``, where ``Order`` may be a pydantic
model) gets its kwargs validated and converted by pydantic. Either way a mismatch is a
``TaskArgumentsError`` naming the task and the fields, never a handler failure.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqsx.clip import clip, shown
from sqsx.exceptions import HandlerSignatureError, TaskArgumentsError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

__all__ = ["TaskSignature", "check_raw_handler", "check_task_handler", "signature_of"]

# The longest list of problems quoted in a TaskArgumentsError (then a marker).
MAX_REASON_CHARS = 600


class TaskSignature:
    """What a task handler ``fn(context, **kwargs)`` accepts.

    Args:
        handler: the task handler; its first parameter receives the context.
    """

    def __init__(self, handler: Callable[..., Any]) -> None:
        self._signature: inspect.Signature | None
        try:
            self._signature = inspect.signature(handler)
        except (TypeError, ValueError):  # some builtins and C callables have none
            self._signature = None
        self._model = _kwargs_model(handler, self._signature) if self._signature else None
        self._shape = _Shape.of(self._signature) if self._signature else None
        self._plain = (
            _plain_types(handler, self._signature) if self._model and self._signature else None
        )
        # Untyped and plain: kwargs naming exactly its parameters need no closer look.
        shape = self._shape
        self._exact = shape.names if shape is not None and self._model is None else None
        # Untyped ``fn(context, **kwargs)``: any kwargs bind but one naming the context.
        self._open = (
            shape.context
            if shape is not None and shape.extra and not shape.names and self._model is None
            else None
        )

    def bind(self, task_name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The kwargs to call the handler with (converted when it is typed).

        Raises:
            TaskArgumentsError: the kwargs do not fit; the message names the fields.
        """
        if self._exact is not None and type(kwargs) is dict and kwargs.keys() == self._exact:
            return kwargs  # every parameter given by name, nothing else: it binds as it is
        if self._open is not None and type(kwargs) is dict and self._open not in kwargs:
            return kwargs
        if self._signature is None:
            return dict(kwargs)
        problem = (
            self._shape.problem(kwargs) if self._shape else _bind_problem(self._signature, kwargs)
        )
        if problem:
            raise TaskArgumentsError(
                f"kwargs do not fit the handler of task {shown(task_name)}: {problem}"
            )
        if self._model is None:
            return dict(kwargs)
        plain = self._plain
        if plain is not None and all(
            plain.get(name, object) in (object, type(value)) for name, value in kwargs.items()
        ):
            return dict(kwargs)  # each value already has its annotated type: nothing to convert
        from pydantic import ValidationError

        try:
            validated = self._model.model_validate(kwargs)
        except ValidationError as err:
            raise TaskArgumentsError(
                f"kwargs of task {shown(task_name)} are invalid: {_describe(err)}"
            ) from err
        converted = {name: getattr(validated, name) for name in type(validated).model_fields}
        converted.update(validated.model_extra or {})
        return {name: value for name, value in converted.items() if name in kwargs}


@dataclass(frozen=True, slots=True)
class _Shape:
    """A plain ``fn(context, name, ..., **extra)`` signature, as sets: checking kwargs
    against it costs a set difference per message instead of ``Signature.bind``."""

    context: str
    names: frozenset[str]
    required: frozenset[str]
    extra: bool

    @classmethod
    def of(cls, signature: inspect.Signature) -> _Shape | None:
        parameters = list(signature.parameters.values())
        if not parameters or parameters[0].kind not in _POSITIONAL:
            return None  # unusual: left to Signature.bind
        rest = parameters[1:]
        if any(p.kind in (_KIND.POSITIONAL_ONLY, _KIND.VAR_POSITIONAL) for p in rest):
            return None
        named = [p for p in rest if p.kind is not _KIND.VAR_KEYWORD]
        first = parameters[0]
        return cls(
            context="" if first.kind is _KIND.VAR_POSITIONAL else first.name,
            names=frozenset(p.name for p in named),
            required=frozenset(p.name for p in named if p.default is _KIND.empty),
            extra=len(named) < len(rest),
        )

    def problem(self, kwargs: Mapping[str, Any]) -> str | None:
        """What ``Signature.bind`` would say is wrong, or ``None``."""
        if self.context and self.context in kwargs:
            return f"multiple values for argument {self.context!r}"
        missing = self.required.difference(kwargs)
        if missing:
            return f"missing a required argument: {min(missing)!r}"
        if not self.extra:
            unexpected = kwargs.keys() - self.names
            if unexpected:
                return f"got an unexpected keyword argument {shown(min(unexpected))}"
        return None


_KIND = inspect.Parameter
_POSITIONAL = (_KIND.POSITIONAL_ONLY, _KIND.POSITIONAL_OR_KEYWORD, _KIND.VAR_POSITIONAL)


def _bind_problem(signature: inspect.Signature, kwargs: Mapping[str, Any]) -> str | None:
    try:
        signature.bind(None, **kwargs)
    except TypeError as err:  # its text quotes a kwarg name from the wire
        return clip(str(err), 2 * MAX_REASON_CHARS // 3)
    return None


@functools.lru_cache(maxsize=1024)
def _cached(handler: Callable[..., Any]) -> TaskSignature:
    return TaskSignature(handler)


def signature_of(handler: Callable[..., Any]) -> TaskSignature:
    """The (cached) ``TaskSignature`` of ``handler``."""
    try:
        return _cached(handler)
    except TypeError:  # an unhashable callable: not cached
        return TaskSignature(handler)


def check_task_handler(task_name: str, handler: object) -> None:
    """Refuse a task handler that cannot be called ``fn(context, **kwargs)``.

    ``async def`` handlers are checked the same way. A callable without an introspectable
    signature (some builtins) is accepted as it is.

    Raises:
        HandlerSignatureError: (a ``TypeError``) naming the handler and the problem.
    """
    signature = _signature_or_refuse(handler, f"the handler of task {task_name!r}")
    if signature is None:
        return
    problem = _context_problem(signature)
    if problem:
        raise HandlerSignatureError(
            f"the handler of task {task_name!r}, {_describe_callable(handler)}, cannot be "
            f"called as fn(context, **kwargs): {problem}"
        )


def check_raw_handler(handler: object) -> None:
    """Refuse a raw handler that cannot be called ``fn(queue_url, sqs_message)``.

    Raises:
        HandlerSignatureError: (a ``TypeError``) naming the handler and the problem.
    """
    signature = _signature_or_refuse(handler, "message_handler_function")
    if signature is None:
        return
    try:
        signature.bind("queue_url", {})
    except TypeError as err:
        raise HandlerSignatureError(
            f"message_handler_function {_describe_callable(handler)} cannot be called as "
            f"fn(queue_url, sqs_message): {err}"
        ) from None


def _signature_or_refuse(handler: object, what: str) -> inspect.Signature | None:
    if not callable(handler):
        raise HandlerSignatureError(f"{what} must be callable, got {type(handler).__name__}")
    try:
        return inspect.signature(handler)
    except (TypeError, ValueError):  # some builtins and C callables have none
        return None


def _context_problem(signature: inspect.Signature) -> str | None:
    """Why ``fn(context, **kwargs)`` can never bind, or ``None``."""
    parameters = list(signature.parameters.values())
    if not parameters or parameters[0].kind not in _POSITIONAL:
        return "it has no positional parameter to receive the context"
    for parameter in parameters[1:]:
        if parameter.kind is _KIND.POSITIONAL_ONLY and parameter.default is _KIND.empty:
            return f"parameter {parameter.name!r} is positional-only, but kwargs are passed by name"
    return None


def _describe_callable(handler: object) -> str:
    """``module.name (file:line)`` for functions; the repr for other callables."""
    name = getattr(handler, "__qualname__", None) or repr(handler)
    module = getattr(handler, "__module__", None)
    described = f"{module}.{name}" if module else str(name)
    code = getattr(inspect.unwrap(handler), "__code__", None)  # type: ignore[arg-type]
    if code is not None:
        described += f" ({code.co_filename}:{code.co_firstlineno})"
    return described


def _kwargs_model(
    handler: Callable[..., Any], signature: inspect.Signature
) -> type[BaseModel] | None:
    """A pydantic model of the handler's task parameters, or ``None`` if none is annotated."""
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # unresolvable forward references: fall back to binding only
        return None
    parameters = list(signature.parameters.values())[1:]  # the first one is the context
    fields: dict[str, Any] = {}
    extra = "ignore"
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            extra = "allow"
            continue
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        annotation = hints.get(parameter.name, Any)
        default = ... if parameter.default is inspect.Parameter.empty else parameter.default
        fields[parameter.name] = (annotation, default)
    if not any(name in hints for name in fields):
        return None
    from pydantic import ConfigDict, create_model  # loaded only for typed handlers

    config = ConfigDict(extra=extra, arbitrary_types_allowed=True)  # type: ignore[typeddict-item]
    name = f"{getattr(handler, '__name__', 'handler')}_kwargs"
    model: type[BaseModel] = create_model(name, __config__=config, **fields)
    return model


#: Annotations whose values pydantic returns unchanged when they already have that exact
#: type (``Any`` is ``object`` here).
_PLAIN = frozenset({int, float, str, bool, dict, list, object})


def _plain_types(
    handler: Callable[..., Any], signature: inspect.Signature
) -> dict[str, type] | None:
    """Task parameter name -> annotated type, when every annotation is a plain JSON type
    (or ``Any``): a message whose values have exactly those types needs no validation."""
    hints = typing.get_type_hints(handler)
    hints.pop("return", None)
    hints.pop(next(iter(signature.parameters)), None)  # the context
    types = {name: object if hint is Any else hint for name, hint in hints.items()}
    return types if all(hint in _PLAIN for hint in types.values()) else None


def _describe(err: ValidationError) -> str:
    """The failing fields and why, without the offending values (they may be sensitive)."""
    parts = []
    for error in err.errors(include_url=False, include_input=False):
        # a location names kwargs and dict keys from the wire
        location = ".".join(clip(str(part), 40) for part in error["loc"]) or "(kwargs)"
        parts.append(f"{clip(location)}: {clip(error['msg'])}")
    return clip("; ".join(parts), MAX_REASON_CHARS)
