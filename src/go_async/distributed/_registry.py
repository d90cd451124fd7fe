"""Named tasks: a registry of typed functions whose arguments and results travel as JSON."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from types import GenericAlias
from typing import Any, Generic, ParamSpec, TypeVar, cast, get_type_hints, overload

from pydantic import TypeAdapter, ValidationError

from .._checks import label
from .._task import Args, Task
from ._transport import encode

P = ParamSpec("P")
R = TypeVar("R")

# A call's arguments: positional, then by name.
Arguments = tuple[list[Any], dict[str, Any]]

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class Named(Generic[P, R]):
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

    __slots__ = ("_adapters", "_base", "_is_async", "_result", "_signature", "fn", "name")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name: str = name
        self.fn: Callable[..., Any] = fn
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

    def decode_result(self, data: object) -> R:
        """The typed result from its JSON data."""
        value: R = self._result.validate_python(data)
        return value


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
    def task(self, name: str, /) -> _Decorator: ...
    @overload
    def task(self, name: str, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Named[P, R]: ...
    @overload
    def task(self, name: str, fn: Callable[P, R], /) -> Named[P, R]: ...
    def task(self, name: str, fn: Callable[..., Any] | None = None, /) -> Any:
        """Register ``fn`` under ``name``; without ``fn``, a decorator that does."""
        label("Registry.task", "name", name)
        if name in self._tasks:
            msg = f"Registry.task: the name {name!r} is already registered"
            raise ValueError(msg)
        if fn is None:
            return _Decorator(self, name)
        if not callable(fn):
            msg = f"Registry.task: fn must be a function, got {fn!r} ({type(fn).__name__})"
            raise TypeError(msg)
        named: Named[..., Any] = Named(name, fn)
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

    __slots__ = ("_name", "_registry")

    def __init__(self, registry: Registry, name: str) -> None:
        self._registry = registry
        self._name = name

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Named[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Named[P, R]: ...
    def __call__(self, fn: Callable[..., Any], /) -> Any:
        return self._registry.task(self._name, fn)
