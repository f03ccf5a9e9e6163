"""A loopback TCP proxy a test can cut: an outage of PostgreSQL or RabbitMQ for one process, not for the machine.

`cut()` resets every open connection and closes the listening port (new connections are refused, as from a
server that is down); `restore()` listens on the same port again. A slow link, settable at any time: `rate`
caps each connection's bytes per second in each direction, `delay` holds every chunk that long before passing
it on (a round trip of a request-response protocol then takes at least 2 x delay).
"""

import socket
import struct
import threading
import time
from contextlib import suppress
from urllib.parse import urlsplit

from support.stack import free_port


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, rate: float | None = None,
                 delay: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rate = rate  # bytes per second per connection and direction; None: as fast as loopback goes
        self.delay = delay  # seconds each chunk waits before it is passed on
        self.port = free_port()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.restore()

    def through(self, url: str) -> str:
        """`url` (a database or broker URL of the upstream) with this proxy's port in place of the upstream's."""
        parts = urlsplit(url)
        return parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{self.port}")).geturl()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for conn in connections:
            # SO_LINGER 0: close with a reset, like a server process that died. shutdown() first: close() alone
            # would wait for the pump thread blocked in recv() on the same socket, and nothing would be sent.
            with suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        self.cut()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut while connecting
                    client.close()
                    server.close()
                    return
                self._connections |= {client, server}
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            # Small reads while throttled, so the sender's socket fills up and its writes wait, as on a slow link.
            while data := source.recv(4096 if self.rate else 65536):
                if self.delay:
                    time.sleep(self.delay)
                if self.rate:
                    time.sleep(len(data) / self.rate)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self._lock:
                self._connections -= {source, sink}
