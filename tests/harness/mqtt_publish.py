"""A minimal MQTT 5 (or 3.1.1) publisher over a plain socket (QoS 0, 1 and 2).

The harness uses it to fence a subscriber (publish a marker, wait for it), to check the
recorder against a client that does not share its library, and to take a client id over
from another client (it always connects with a clean start and no session expiry, so the
broker ends the session it took over, as any simple client with that id would).
"""

import socket
import struct

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, DISCONNECT = 1, 2, 3, 4, 5, 6, 7, 14

PROP_PAYLOAD_FORMAT = 0x01
PROP_MESSAGE_EXPIRY = 0x02
PROP_CONTENT_TYPE = 0x03
PROP_RESPONSE_TOPIC = 0x08
PROP_CORRELATION_DATA = 0x09
PROP_USER_PROPERTY = 0x26


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _binary(b):
    return struct.pack("!H", len(b)) + b


def _string(s):
    return _binary(s.encode("utf-8"))


def _packet(kind, flags, body):
    return bytes([kind << 4 | flags]) + _varint(len(body)) + body


def _properties(user_properties=(), content_type=None, message_expiry=None,
                response_topic=None, correlation_data=None, payload_format=None):
    out = bytearray()
    if payload_format is not None:
        out += bytes([PROP_PAYLOAD_FORMAT, payload_format])
    if message_expiry is not None:
        out += bytes([PROP_MESSAGE_EXPIRY]) + struct.pack("!I", message_expiry)
    if content_type is not None:
        out += bytes([PROP_CONTENT_TYPE]) + _string(content_type)
    if response_topic is not None:
        out += bytes([PROP_RESPONSE_TOPIC]) + _string(response_topic)
    if correlation_data is not None:
        out += bytes([PROP_CORRELATION_DATA]) + _binary(correlation_data)
    for key, value in user_properties:
        out += bytes([PROP_USER_PROPERTY]) + _string(key) + _string(value)
    return _varint(len(out)) + bytes(out)


class Publisher:
    def __init__(self, port, client_id="harness-publisher", host="127.0.0.1", timeout=30,
                 protocol=5, username=None, password=None):
        """protocol: 5 or 311; username and password, for brokers that want them. local_port
        is this connection's port, as the broker logs it; session_present the CONNACK flag
        (always 0 after a clean start)."""
        if protocol not in (5, 311):
            raise ValueError(f"protocol must be 5 or 311, not {protocol!r}")
        self.v5 = protocol == 5
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.local_port = self.sock.getsockname()[1]
        self.next_id = 1
        flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
        body = _string("MQTT") + bytes([5 if self.v5 else 4, flags]) + struct.pack("!H", 60)
        if self.v5:
            body += _varint(0)
        body += _string(client_id)
        if username is not None:
            body += _string(username)
        if password is not None:
            body += _binary(password.encode("utf-8"))
        self.sock.sendall(_packet(CONNECT, 0, body))
        kind, body = self._read_packet()
        if kind != CONNACK or body[1] != 0:
            raise RuntimeError(f"MQTT connection refused: packet {kind}, {body[:2].hex()}")
        self.session_present = bool(body[0] & 1)

    def _read_exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _read_packet(self):
        kind = self._read_exact(1)[0] >> 4
        length, shift = 0, 0
        while True:
            byte = self._read_exact(1)[0]
            length += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        return kind, self._read_exact(length)

    def publish(self, topic, payload=b"", qos=1, retain=False, **props):
        """Publishes and waits for the PUBACK (QoS 1) or for PUBREC, then PUBCOMP after our
        PUBREL (QoS 2); raises on a failure reason."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        body = _string(topic)
        packet_id = None
        if qos:
            packet_id = self.next_id
            self.next_id = self.next_id % 65535 + 1
            body += struct.pack("!H", packet_id)
        if self.v5:
            body += _properties(**props)
        elif props:
            raise ValueError("MQTT 3.1.1 has no properties")
        body += payload
        self.sock.sendall(_packet(PUBLISH, qos << 1 | int(retain), body))
        if qos == 1:
            self._wait_ack(PUBACK, packet_id)
        elif qos == 2:
            self._wait_ack(PUBREC, packet_id)
            self.sock.sendall(_packet(PUBREL, 0x02, struct.pack("!H", packet_id)))
            self._wait_ack(PUBCOMP, packet_id)

    def _wait_ack(self, want, packet_id):
        kind, body = self._read_packet()
        if kind != want or struct.unpack("!H", body[:2])[0] != packet_id:
            raise RuntimeError(f"expected packet {want} for {packet_id}, got packet {kind}")
        if len(body) > 2 and body[2] >= 0x80:
            raise RuntimeError(f"publish refused, reason {body[2]:#x}")

    def close(self):
        try:
            self.sock.sendall(_packet(DISCONNECT, 0, b""))
        finally:
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
