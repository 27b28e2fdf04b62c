"""A TCP proxy on a free loopback port between the relay and a server, that can cut or
freeze every connection through it (fault tests: doc/design.md §2 under network trouble)."""

import selectors
import socket
import struct
import threading

from .util import register_cleanup, unregister_cleanup


class Proxy:
    """Forwards 127.0.0.1:port to 127.0.0.1:target_port on a thread of its own.

    drop(): resets every current connection (RST, as a dead path looks).
    freeze() / thaw(): stops and resumes forwarding while keeping the sockets open, as a
    frozen peer or a black-holed path looks.
    downstream / upstream: bytes forwarded from the server and to it, over every connection.
    """

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.peers = {}             # socket -> the socket it forwards to
        self.frozen = threading.Event()
        self.lock = threading.Lock()
        self.accepted = 0
        self.servers = set()        # the sockets to the target
        self.downstream = 0
        self.upstream = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        register_cleanup(self.close)

    def _run(self):
        while not self.stopping:
            for key, _ in self.selector.select(timeout=0.05):
                with self.lock:
                    if key.fileobj is self.listener:
                        self._accept()
                    elif not self.frozen.is_set():
                        self._forward(key.fileobj)

    def _accept(self):
        client, _ = self.listener.accept()
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        self.accepted += 1
        for sock in (client, server):
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, None)
        self.peers[client] = server
        self.peers[server] = client
        self.servers.add(server)

    def _forward(self, sock):
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        other = self.peers.get(sock)
        if not data or other is None:
            self._close_pair(sock)
            return
        if sock in self.servers:
            self.downstream += len(data)
        else:
            self.upstream += len(data)
        try:
            other.setblocking(True)
            other.sendall(data)
            other.setblocking(False)
        except OSError:
            self._close_pair(sock)

    def _close_pair(self, sock, reset=False):
        for s in (sock, self.peers.get(sock)):
            if s is None or s not in self.peers:
                continue
            try:
                self.selector.unregister(s)
            except (KeyError, ValueError):
                pass
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            del self.peers[s]
            self.servers.discard(s)

    def connections(self):
        with self.lock:
            return len(self.peers) // 2

    def received(self):
        """Bytes forwarded from the server so far."""
        with self.lock:
            return self.downstream

    def drop(self):
        with self.lock:
            for sock in list(self.peers):
                if sock in self.peers:
                    self._close_pair(sock, reset=True)

    def freeze(self):
        self.frozen.set()

    def thaw(self):
        self.frozen.clear()

    def close(self):
        unregister_cleanup(self.close)
        self.stopping = True
        self.thread.join(5)
        self.drop()
        self.selector.close()
        self.listener.close()
