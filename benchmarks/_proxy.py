"""A loopback TCP proxy that counts the connections it carries (each one TLS handshake:
TLS is end to end, the proxy sees only bytes).

It runs in a process of its own (`python benchmarks/_proxy.py HOST PORT`), so that moving
a thousand connections' bytes takes nothing from the harness or the measured process; it
prints its port, then `<accepted> <open>` twice a second."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
from pathlib import Path


class CountingProxy:
    """Forwards 127.0.0.1:<port> to `upstream` on an asyncio loop in a thread of its own."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.accepted = 0
        self.open = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name="counting-proxy")
        self._thread.start()
        self._ready.wait(10)

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            self.open -= 1
            return
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        except asyncio.CancelledError:
            pass  # closed with the proxy
        finally:
            self.open -= 1
            for w in (writer, up_writer):
                w.close()

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    with contextlib.suppress(OSError):
        dst.write_eof()


class ProxyProcess:
    """`CountingProxy` in a child process; `accepted` and `open` as it last reported."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.accepted = 0
        self.open = 0
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), upstream[0], str(upstream[1])],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        self.port = int(self._process.stdout.readline())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def address(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            accepted, open_now = line.split()
            self.accepted, self.open = int(accepted), int(open_now)

    def close(self) -> None:
        self._process.kill()
        self._process.wait(10)
        self._reader.join(5)


def _serve() -> None:
    import time

    proxy = CountingProxy((sys.argv[1], int(sys.argv[2])))
    print(proxy.port, flush=True)
    while True:
        time.sleep(0.5)
        print(proxy.accepted, proxy.open, flush=True)


if __name__ == "__main__":
    _serve()
