"""The service manager's end of NOTIFY_SOCKET, for tests of the relay's sd_notify messages."""

import os
import socket
import threading


class NotifySocket:
    """Collects every datagram sent to a unix socket, in order."""

    def __init__(self, path, others_may_send=False):
        """others_may_send: let a relay running as another user send too."""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        if others_may_send:
            os.chmod(path, 0o666)
        self.sock.settimeout(0.2)
        self.messages = []
        self.stopped = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.stopped:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                continue

    def lines(self):
        return [line for msg in list(self.messages) for line in msg.splitlines()]

    def close(self):
        self.stopped = True
        self.thread.join()
        self.sock.close()
