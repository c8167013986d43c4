"""The event loops the tests of both runtimes run on, for anyio's pytest plugin.

A test module marked `pytest.mark.anyio` defines its `anyio_backend` fixture with
``params=BACKENDS``, returning ``request.param``; a test that needs the name (``"trio"`` or
``"asyncio"``) takes anyio's `anyio_backend_name` fixture.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sniffio

__all__ = ["BACKENDS", "Backend", "loop_of", "running_loop"]

Backend = str | tuple[str, dict[str, Any]]
"""What anyio's plugin takes as `anyio_backend`: a name, or a name and its options."""

BACKENDS = [
    pytest.param("trio", id="trio"),
    pytest.param("asyncio", id="asyncio"),
    # uvloop's loop: its own signal handling, sockets and TLS under the same anyio calls
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
]


def loop_of(backend: Backend) -> str:
    """``"trio"``, ``"asyncio"`` or ``"uvloop"``: the event loop `backend` asks for."""
    if isinstance(backend, str):
        return backend
    name, options = backend
    return "uvloop" if name == "asyncio" and options.get("use_uvloop") else name


def running_loop() -> str:
    """``"trio"``, ``"asyncio"`` or ``"uvloop"``: the event loop this task runs on."""
    library = sniffio.current_async_library()
    if library != "asyncio":
        return library
    module = type(asyncio.get_running_loop()).__module__
    return "uvloop" if module.partition(".")[0] == "uvloop" else "asyncio"
