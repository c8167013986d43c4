"""Credentials for each request: a static token, a rotating token file, basic auth, or an
exec credential plugin (tokens or client certificates, cached until they expire)."""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

import anyio

from ._errors import KubeConfigError
from ._exec import run_exec

if TYPE_CHECKING:
    from ._config import KubeConfig
    from ._exec import ExecResult

__all__ = ["Credentials"]

logger = logging.getLogger("trio_election.kube")

TOKEN_FILE_REREAD = 60.0
"""A token file (bound service-account tokens rotate) is re-read at least this often."""


class Credentials:
    """Produces the `Authorization` header for each request and refreshes it on a 401."""

    def __init__(self, config: KubeConfig) -> None:
        self._config = config
        self._file_token: str | None = None
        self._file_read_at = -float("inf")
        self._exec: ExecResult | None = None
        self._exec_lock = anyio.Lock()
        self._generation = 0

    @property
    def refreshable(self) -> bool:
        """True when a 401 may be cured by reading or running something again."""
        return self._config.token_file is not None or self._config.exec is not None

    async def headers(self) -> dict[str, str]:
        config = self._config
        if config.exec is not None:
            result = await self.exec_result()
            if result.token:
                return {"Authorization": f"Bearer {result.token}"}
            return {}
        if config.token_file is not None:
            return {"Authorization": f"Bearer {self._read_token_file()}"}
        if config.token:
            return {"Authorization": f"Bearer {config.token}"}
        if config.username is not None and config.password is not None:
            pair = f"{config.username}:{config.password}".encode()
            return {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
        return {}

    @property
    def generation(self) -> int:
        """Counts the credentials obtained so far (plugin runs, token file changes)."""
        return self._generation

    async def refresh(self, generation: int) -> None:
        """Forget cached credentials after a 401, so the next request reads them anew.

        `generation` is the one the refused request was sent with: a 401 that answers a
        request sent before the credentials were renewed (requests run concurrently) is no
        news, and does not run the plugin once more.
        """
        if generation == self._generation:
            self._file_read_at = -float("inf")
            self._exec = None
        await anyio.lowlevel.checkpoint()

    def _read_token_file(self) -> str:
        path = self._config.token_file
        assert path is not None
        now = anyio.current_time()
        if self._file_token is None or now - self._file_read_at >= TOKEN_FILE_REREAD:
            try:
                token = path.read_text().strip()
            except UnicodeDecodeError:
                raise KubeConfigError(
                    f"the token file {path} ({self._config.source}) is not UTF-8 text: it must "
                    f"hold the bearer token"
                ) from None
            except OSError as exc:
                if self._file_token is not None:
                    logger.warning("cannot re-read token file %s: %s", path, exc.strerror)
                    return self._file_token
                raise KubeConfigError(
                    f"cannot read the token file {path} ({self._config.source}): {exc.strerror}"
                ) from None
            if not token:
                raise KubeConfigError(f"the token file {path} is empty ({self._config.source})")
            if token != self._file_token:
                self._generation += 1
            self._file_token = token
            self._file_read_at = now
        return self._file_token

    async def exec_result(self) -> ExecResult:
        """The exec plugin's credential, running the plugin when none is cached or valid."""
        async with self._exec_lock:
            cached = self._exec
            if cached is not None and (
                cached.expires_at is None or anyio.current_time() < cached.expires_at
            ):
                return cached
            assert self._config.exec is not None
            self._exec = await run_exec(self._config.exec, self._config)
            self._generation += 1
            return self._exec
