"""Async context managers that say how to use them when they are awaited or used in `with`.

`elect(...)` and `open_election(...)` return an object for ``async with`` only. Python's
own errors for ``await elect(...)`` and ``with elect(...)`` name a private class of
contextlib and no fix; `async_with_only` wraps an `asynccontextmanager` function so that
both misuses raise a `TypeError` that shows the right line.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Generic, NoReturn, ParamSpec, TypeVar, final

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractAsyncContextManager
    from types import TracebackType

__all__ = ["AsyncWithOnly", "async_with_only"]

T = TypeVar("T")
P = ParamSpec("P")


@final
class AsyncWithOnly(Generic[T]):
    """An async context manager for ``async with`` only; see the module docstring."""

    __slots__ = ("_manager", "_name")

    def __init__(self, manager: AbstractAsyncContextManager[T], name: str) -> None:
        self._manager = manager
        self._name = name

    def __repr__(self) -> str:
        return f"<{self._name}(...): use it as `async with {self._name}(...) as ...:`>"

    async def __aenter__(self) -> T:
        return await self._manager.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._manager.__aexit__(exc_type, exc, tb)

    def _misused(self, how: str) -> TypeError:
        return TypeError(
            f"{self._name}(...) cannot be used with {how}: use `async with "
            f"{self._name}(...) as ...:` (it campaigns on entry and releases on exit)"
        )

    if not TYPE_CHECKING:  # type checkers flag these misuses themselves

        def __await__(self) -> NoReturn:
            raise self._misused("`await`")

        def __enter__(self) -> NoReturn:
            raise self._misused("a plain `with`")

        def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ raises
            return None


def async_with_only(
    name: str,
) -> Callable[[Callable[P, AbstractAsyncContextManager[T]]], Callable[P, AsyncWithOnly[T]]]:
    """Wrap an `asynccontextmanager` function `name` so that it returns `AsyncWithOnly`."""

    def wrap(
        function: Callable[P, AbstractAsyncContextManager[T]],
    ) -> Callable[P, AsyncWithOnly[T]]:
        @functools.wraps(function)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncWithOnly[T]:
            return AsyncWithOnly(function(*args, **kwargs), name)

        return wrapper

    return wrap
