"""Test harness of outbox-relay: real PostgreSQL and Mosquitto on free loopback ports,
the MQTT recorder, and the relay under test. Python 3 standard library plus psycopg2."""

from .case import (IntegrationCase, OUTBOX_DDL, expected, insert_event, main, parse_lsn,
                   received)
from .mosquitto import Mosquitto
from .mqtt_publish import Publisher
from .postgres import Database, Postgres
from .proxy import Proxy
from .recorder import Recorder, event_id, payload_bytes, user_properties, user_property
from .relay import Relay, default_route, relay_config, to_yaml
from .util import free_port, make_workdir, wait_until
from .writer import Writer

__all__ = [
    "Database", "IntegrationCase", "Mosquitto", "OUTBOX_DDL", "Postgres", "Proxy", "Publisher",
    "Recorder", "Relay", "default_route", "event_id", "expected", "free_port", "insert_event",
    "main", "make_workdir", "parse_lsn", "payload_bytes", "received", "relay_config",
    "to_yaml", "user_properties", "user_property", "wait_until", "Writer",
]
