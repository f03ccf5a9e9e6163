"""The benchmarks' HTTP target: a minimal asyncio server answering every request with one fixed response.

Run in a process of its own; prints its port on the first line of stdout, then serves until killed.
"""

from __future__ import annotations

import asyncio

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def serve(response: bytes = OK, *, delay: float = 0.0, backlog: int = 8192) -> None:
    """Answer each request (after `delay` seconds, if any) with `response`, then close the connection."""

    class Target(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            if b"\r\n\r\n" in self.buffer:
                self.buffer = b""
                if delay:
                    asyncio.get_running_loop().call_later(delay, self.answer)
                else:
                    self.answer()

        def answer(self) -> None:
            if not self.transport.is_closing():
                self.transport.write(response)  # type: ignore[attr-defined]
                self.transport.close()

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Target, "127.0.0.1", 0, backlog=backlog)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())
