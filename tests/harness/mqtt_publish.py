"""A minimal MQTT 5 publisher over a plain socket (QoS 0 and 1).

The harness uses it to fence a subscriber (publish a marker, wait for it) and to check the
recorder against a client that does not share its library.
"""

import socket
import struct

CONNECT, CONNACK, PUBLISH, PUBACK, DISCONNECT = 1, 2, 3, 4, 14

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
    def __init__(self, port, client_id="harness-publisher", host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.next_id = 1
        body = _string("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 60) + _varint(0)
        self.sock.sendall(_packet(CONNECT, 0, body + _string(client_id)))
        kind, body = self._read_packet()
        if kind != CONNACK or body[1] != 0:
            raise RuntimeError(f"MQTT connection refused: packet {kind}, {body[:2].hex()}")

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
        """Publishes and, for QoS 1, waits for the PUBACK (raises on a failure reason)."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        body = _string(topic)
        packet_id = None
        if qos:
            packet_id = self.next_id
            self.next_id = self.next_id % 65535 + 1
            body += struct.pack("!H", packet_id)
        body += _properties(**props) + payload
        self.sock.sendall(_packet(PUBLISH, qos << 1 | int(retain), body))
        if qos:
            self._wait_puback(packet_id)

    def _wait_puback(self, packet_id):
        kind, body = self._read_packet()
        if kind != PUBACK or struct.unpack("!H", body[:2])[0] != packet_id:
            raise RuntimeError(f"expected PUBACK for {packet_id}, got packet {kind}")
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
