"""Named tasks: a registry of typed functions whose arguments and results travel as JSON."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from functools import partial
from types import GenericAlias
from typing import Any, Generic, ParamSpec, TypeVar, cast, get_type_hints, overload

from pydantic import TypeAdapter, ValidationError

from .._checks import label
from .._retry import RetryOn, RetryPolicy
from .._task import Args, Task
from ._transport import encode

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# A call's arguments: positional, then by name.
Arguments = tuple[list[Any], dict[str, Any]]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class Retry:
    """How a worker tries a named task again: up to ``attempts`` tries, the first included.

    After the n-th failure the task waits ``sleep * 2 ** (n - 1)`` seconds
    plus a jitter of up to half that, at most ``max_wait``, then runs again,
    on whichever worker is free: the message is queued again as a delayed
    one, so a retry outlives the worker that failed. ``on`` chooses the
    errors to retry (types, or a function of the error), as
    ``Task.with_retry`` does. The sender sees the last error, or the value,
    and ``handle.attempts`` says how many tries it took.

    Example::

        @registry.task("charge", retry=Retry(5, sleep=1.0, on=ConnectionError))
        async def charge(order: Order) -> Receipt: ...
    """

    __slots__ = ("policy",)

    def __init__(
        self,
        attempts: int,
        sleep: float | timedelta = 1.0,
        *,
        max_wait: float | timedelta = 300.0,
        on: RetryOn = Exception,
    ) -> None:
        self.policy: RetryPolicy = RetryPolicy.checked("Retry", attempts, sleep, max_wait, on)

    def __repr__(self) -> str:
        return f"Retry({self.policy})"


class Named(Generic[P, R_co]):
    """A function registered under a name, so that workers elsewhere can run it.

    Its parameters and result are typed; they travel as JSON (pydantic's
    JSON mode: dataclasses, models, datetimes and the like are fine), are
    checked against the annotations when sent and again when received, and
    never as pickle. Send it with ``Remote.send``; ``fn`` is the plain
    function, for local calls and tests.

    Example::

        registry = Registry()

        @registry.task("add")
        async def add(a: int, b: int) -> int:
            return a + b

        assert add.name == "add" and await add.fn(1, 2) == 3
    """

    __slots__ = ("_adapters", "_base", "_is_async", "_result", "_signature", "fn", "name", "retry")

    def __init__(self, name: str, fn: Callable[..., Any], retry: Retry | None = None) -> None:
        self.name: str = name
        self.fn: Callable[..., Any] = fn
        self.retry: Retry | None = _checked_retry(name, retry)
        self._is_async = inspect.iscoroutinefunction(fn)
        self._signature = inspect.signature(fn)
        hints = get_type_hints(fn)
        self._adapters: dict[str, TypeAdapter[Any]] = {}
        for parameter in self._signature.parameters.values():
            if parameter.name not in hints:
                msg = f"Registry.task({name!r}): parameter {parameter.name!r} needs a type annotation"
                raise TypeError(msg)
            hint: Any = hints[parameter.name]
            if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                hint = GenericAlias(tuple, (hint, ...))
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                hint = GenericAlias(dict, (str, hint))
            self._adapters[parameter.name] = TypeAdapter(hint)
        if "return" not in hints:
            msg = f"Registry.task({name!r}): the function needs a return annotation"
            raise TypeError(msg)
        self._result: TypeAdapter[Any] = TypeAdapter(hints["return"])
        self._base: Task[Arguments, Arguments, Any] | None = None

    def __repr__(self) -> str:
        return f"<Named {self.name!r}>"

    def encode_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments as JSON data, by parameter name; a wrong one raises ``TypeError``."""
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as error:
            msg = f"{self.name}: {error}"
            raise TypeError(msg) from None
        encoded: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            adapter = self._adapters[name]
            try:
                encoded[name] = adapter.dump_python(adapter.validate_python(value), mode="json")
            except (ValidationError, ValueError, TypeError) as error:
                msg = f"{self.name}: argument {name!r} cannot be sent as {_kind(adapter)}: got {value!r}"
                raise TypeError(msg) from error
            try:
                encode(encoded[name])
            except ValueError:
                # JSON has no inf or nan: refused here rather than arriving as null.
                msg = (
                    f"{self.name}: argument {name!r} holds inf or nan, which JSON cannot carry: got {value!r}"
                )
                raise TypeError(msg) from None
        return encoded

    def by_name(self, values: list[Any]) -> dict[str, Any]:
        """Arguments given by position (a flow's step), by name; ``ValueError`` if they do not fit."""
        try:
            bound = self._signature.bind(*values)
        except TypeError as error:
            msg = f"{self.name}: {error}"
            raise ValueError(msg) from None
        # *args arrive as a tuple: JSON's is a list.
        return {
            name: list(value) if isinstance(value, tuple) else value  # pyright: ignore[reportUnknownArgumentType]
            for name, value in bound.arguments.items()
        }

    def decode_arguments(self, data: object) -> tuple[list[Any], dict[str, Any]]:
        """Positional and keyword arguments from JSON data; bad data raises ``ValueError``."""
        if not isinstance(data, dict):
            msg = f"{self.name}: arguments must be a JSON object, got {data!r}"
            raise ValueError(msg)  # noqa: TRY004 - bad data in a message, not a caller's wrong type
        data = cast("dict[str, object]", data)
        unknown = data.keys() - self._adapters.keys()
        if unknown:
            msg = f"{self.name}: unknown arguments {sorted(unknown)!r}"
            raise ValueError(msg)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        gap = False  # after a parameter left to its default, the rest go by name
        for parameter in self._signature.parameters.values():
            if parameter.name not in data:
                gap = True
                continue  # bind() below reports a missing one; a default fills in the rest
            try:
                value = self._adapters[parameter.name].validate_python(data[parameter.name])
            except ValidationError as error:
                msg = f"{self.name}: argument {parameter.name!r} is not valid: {error}"
                raise ValueError(msg) from None
            if parameter.kind in _POSITIONAL and not gap:
                args.append(value)
            elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
                args.extend(value)
            elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
                kwargs.update(value)
            else:
                kwargs[parameter.name] = value
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as error:
            # So does a positional-only argument sent after one left to its default.
            msg = f"{self.name}: {error}"
            raise ValueError(msg) from None
        return args, kwargs

    def as_task(self, args: list[Any], kwargs: dict[str, Any]) -> Task[Arguments, Arguments, Any]:
        """The call as a task named after this function, whose value is its result as JSON data.

        A worker runs it through its pool's layers like any task: an
        ``async def`` on the event loop, a plain ``def`` in a worker thread.
        """
        if self._base is None:
            self._base = self._make_base()
        return self._base.with_input((args, kwargs))

    def _make_base(self) -> Task[Arguments, Arguments, Any]:
        # One task per function, its input the call's arguments: a worker
        # makes no new spec for each message.
        fn = self.fn
        encode = partial(self._result.dump_python, mode="json", warnings="error")
        if self._is_async:

            async def call_async(call: Args[Arguments]) -> Any:
                args, kwargs = call.input
                return encode(await fn(*args, **kwargs))

            return Task(call_async).with_name(self.name)

        def call_sync(call: Args[Arguments]) -> Any:
            args, kwargs = call.input
            return encode(fn(*args, **kwargs))

        return Task(call_sync).with_name(self.name)

    def decode_result(self, data: object) -> R_co:
        """The typed result from its JSON data."""
        value: R_co = self._result.validate_python(data)
        return value


def _checked_retry(name: str, retry: object) -> Retry | None:
    if retry is not None and not isinstance(retry, Retry):
        msg = f"Registry.task({name!r}): retry must be a Retry, got {retry!r} ({type(retry).__name__})"
        raise TypeError(msg)
    return retry


def _kind(adapter: TypeAdapter[Any]) -> str:
    schema = adapter.core_schema
    return str(schema.get("type", "its annotation"))


class Registry:
    """The named tasks that workers may run: a name not in it is rejected, never run.

    Clients and workers import the same registry, usually from one module,
    and a worker runs it with ``python -m go_async.worker module:registry``.

    Example::

        registry = Registry()

        @registry.task("resize")
        async def resize(path: str, width: int) -> str: ...

        @registry.task("checksum")
        def checksum(data: bytes) -> str: ...  # a plain def runs in a worker thread
    """

    __slots__ = ("_tasks",)

    def __init__(self) -> None:
        self._tasks: dict[str, Named[..., Any]] = {}

    @overload
    def task(self, name: str, /, *, retry: Retry | None = None) -> _Decorator: ...
    @overload
    def task(
        self, name: str, fn: Callable[P, Coroutine[Any, Any, R]], /, *, retry: Retry | None = None
    ) -> Named[P, R]: ...
    @overload
    def task(self, name: str, fn: Callable[P, R], /, *, retry: Retry | None = None) -> Named[P, R]: ...
    def task(self, name: str, fn: Callable[..., Any] | None = None, /, *, retry: Retry | None = None) -> Any:
        """Register ``fn`` under ``name``; without ``fn``, a decorator that does.

        ``retry`` (a ``Retry``) has workers try it again when it fails.
        """
        label("Registry.task", "name", name)
        _checked_retry(name, retry)
        if name in self._tasks:
            msg = f"Registry.task: the name {name!r} is already registered"
            raise ValueError(msg)
        if fn is None:
            return _Decorator(self, name, retry)
        if not callable(fn):
            msg = f"Registry.task: fn must be a function, got {fn!r} ({type(fn).__name__})"
            raise TypeError(msg)
        named: Named[..., Any] = Named(name, fn, retry)
        self._tasks[name] = named
        return named

    def get(self, name: str) -> Named[..., Any] | None:
        """The task registered under ``name``, if any."""
        return self._tasks.get(name)

    def __contains__(self, task: object) -> bool:
        return isinstance(task, Named) and self._tasks.get(task.name) is task

    def __iter__(self) -> Iterator[Named[..., Any]]:
        return iter(self._tasks.values())

    def __len__(self) -> int:
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"<Registry {sorted(self._tasks)!r}>"


class _Decorator:
    """``@registry.task(name)``: registers the decorated function, typed by it."""

    __slots__ = ("_name", "_registry", "_retry")

    def __init__(self, registry: Registry, name: str, retry: Retry | None) -> None:
        self._registry = registry
        self._name = name
        self._retry = retry

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Named[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Named[P, R]: ...
    def __call__(self, fn: Callable[..., Any], /) -> Any:
        return self._registry.task(self._name, fn, retry=self._retry)
