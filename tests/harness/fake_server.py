"""A TCP server on a free loopback port that is not what its clients expect: it answers
each connection with fixed bytes and closes it, and counts the connections (retry storms,
doc/design.md §20: a broker port that leads elsewhere, a broker that refuses the protocol
version)."""

import socket
import threading
import time

from .util import register_cleanup, unregister_cleanup

HTTP_ERROR = b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
# MQTT 3.1.1 CONNACK, return code 1: unacceptable protocol version. A 3.1.1 broker answers
# an MQTT 5 CONNECT so; libmosquitto reports it to an MQTT 5 client as reason 0x84.
CONNACK_BAD_PROTOCOL = b"\x20\x02\x00\x01"


class FakeServer:
    """Accepts on 127.0.0.1:port; to each client writes reply (after reading what the client
    sends first, when wait_for_request) and closes. accepted holds the monotonic time of
    every connection."""

    def __init__(self, reply=HTTP_ERROR, wait_for_request=False):
        self.reply = reply
        self.wait_for_request = wait_for_request
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.accepted = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        register_cleanup(self.close)

    def _run(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            with client:
                client.settimeout(2)
                try:
                    if self.wait_for_request:
                        client.recv(4096)
                    client.sendall(self.reply)
                except OSError:
                    pass

    def close(self):
        unregister_cleanup(self.close)
        self.stopping = True
        self.thread.join(5)
        self.listener.close()
