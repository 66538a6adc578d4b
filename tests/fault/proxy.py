"""A fault-injecting TCP proxy on 127.0.0.1 for the outage scenarios.

``FaultProxy(upstream_port)`` forwards every connection to ``127.0.0.1:upstream_port``.
``outage(seconds, mode)`` makes the endpoint stop answering for ``seconds`` (``None``: until
``close``):

- ``mode="hang"``: every open connection is dropped at once (requests in progress fail);
  new connections are accepted and then never answered (the client waits for its read
  timeout) until the outage ends, when they are closed;
- ``mode="refuse"``: open connections are dropped; new ones are reset once accepted;
- ``mode="stall"``: SQS hangs as a whole. Open connections stay open but nothing more is
  relayed either way (a request in progress never gets its answer), and new connections
  are accepted and never answered.
"""

from __future__ import annotations

import math
import selectors
import socket
import struct
import threading
import time
from typing import Literal

__all__ = ["FaultProxy", "OutageMode"]

OutageMode = Literal["hang", "refuse", "stall"]

_POLL_SECONDS = 0.1
_CHUNK_BYTES = 65_536


class FaultProxy:
    """A TCP proxy bound to 127.0.0.1 (a free port) that can stage outages.

    Args:
        upstream_port: the port on 127.0.0.1 to forward to.
    """

    def __init__(self, upstream_port: int) -> None:
        self._upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_POLL_SECONDS)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._generation = 0  # bumped by each outage: older connections are dropped
        self._outage_until = 0.0  # time.time() at which the current outage ends
        self._mode: OutageMode = "hang"
        self._hung: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self.accepted = 0
        self.refused = 0
        self.hung = 0
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the proxy listens on."""
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, an endpoint URL for boto3."""
        return f"http://127.0.0.1:{self.address[1]}"

    def outage(self, seconds: float | None, mode: OutageMode = "hang") -> float:
        """Stop answering for ``seconds`` from now (``None``: until ``close``); returns
        when it ends (``time.time()``, ``inf`` for never)."""
        with self._lock:
            if mode != "stall":
                self._generation += 1
            self._mode = mode
            self._outage_until = math.inf if seconds is None else time.time() + seconds
            ends = self._outage_until
        if seconds is not None:
            self._timer = threading.Timer(seconds, self._close_hung)
            self._timer.daemon = True
            self._timer.start()
        return ends

    def in_outage(self) -> bool:
        """True while an outage lasts."""
        with self._lock:
            return time.time() < self._outage_until

    def close(self) -> None:
        """Stop accepting and drop every connection."""
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self._generation += 1
        self._thread.join(5)
        self._listener.close()
        self._close_hung()

    def _close_hung(self) -> None:
        with self._lock:
            hung, self._hung = self._hung, []
        for conn in hung:
            conn.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                down = time.time() < self._outage_until
                mode, generation = self._mode, self._generation
                if down and mode in ("hang", "stall"):
                    self.hung += 1
                    self._hung.append(conn)
                    continue
                if down:
                    self.refused += 1
            if down:
                # SO_LINGER with a zero timeout: close() sends a reset, as a dead peer would.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                continue
            threading.Thread(
                target=self._relay, args=(conn, generation), name="fault-proxy-relay", daemon=True
            ).start()

    def _relay(self, client: socket.socket, generation: int) -> None:
        try:
            upstream = socket.create_connection(self._upstream, timeout=5)
        except OSError:
            client.close()
            return
        peers = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            try:
                while not self._stopped.is_set():
                    with self._lock:
                        if self._generation != generation:
                            return  # an outage started: drop this connection
                        stalled = self._mode == "stall" and time.time() < self._outage_until
                    if stalled:  # hold the bytes: the peer waits for an answer
                        self._stopped.wait(_POLL_SECONDS)
                        continue
                    for key, _ in selector.select(_POLL_SECONDS):
                        source = key.fileobj
                        assert isinstance(source, socket.socket)
                        data = source.recv(_CHUNK_BYTES)
                        if not data:
                            return
                        peers[source].sendall(data)
            except OSError:
                return
            finally:
                client.close()
                upstream.close()
