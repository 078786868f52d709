"""Avro on the wire and at rest, from the ``schemas/*.avsc`` contracts.

Events have two framings, and every reader accepts both (told apart by the first byte), so a fleet can move from
one to the other a service at a time:

- Avro single-object encoding (marker ``C3 01``, the writer schema's CRC-64-AVRO fingerprint, then the body): every
  message names its own schema without a registry. The default.
- The Confluent wire format (magic ``00``, the schema's 4-byte big-endian id in a Schema Registry, then the body),
  which Kafka platforms with a registry expect. Written when ``SMARTCROP_SCHEMA_REGISTRY_URL`` is set. Subjects follow
  TopicNameStrategy (``<topic>-value``), each with compatibility BACKWARD, so a reader with an older schema reads
  events of a newer one: the reader resolves the registry's writer schema against its own.

The schemas, single-object encoding and the container files of per-frame data are in :mod:`smartcrop.core.avro`;
this module adds the registry framing, which needs a server.
"""

from __future__ import annotations

import io
import json
import struct
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import fastavro

from smartcrop.core.avro import CONFLUENT_MAGIC, EVENT_TYPES, NAMESPACE, SerdeError, decode, encode, read_body, schema
from smartcrop.core.errors import ErrorCode, SmartcropError

FRAMINGS = ("single-object", "registry")
COMPATIBILITY = "BACKWARD"


class RegistryUnavailable(SmartcropError, RuntimeError):
    """The Schema Registry did not answer: a transient fault, the message is taken again later (never dead-lettered)."""

    code = ErrorCode.REGISTRY_UNAVAILABLE
    transient = True


def schema_json(name: str) -> str:
    """The full schema as registered: named types inlined once, docs and defaults kept (the registry's
    compatibility check needs the defaults)."""

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if not k.startswith("__")}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(schema(name)), separators=(",", ":"))


def subject(topic: str) -> str:
    """TopicNameStrategy: the value schema of ``topic`` is the subject ``<topic>-value``."""
    return f"{topic}-value"


class SchemaRegistry:
    """The few calls of the Confluent Schema Registry REST API we need (Apicurio's ``/apis/ccompat/v7`` serves the
    same), over plain HTTP; credentials may ride in the URL (``https://user:secret@host``)."""

    def __init__(self, url: str, timeout: float = 10.0):
        import requests

        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.shown = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))
                                ) if parts.hostname else self.url  # for messages: never the credentials
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Content-Type"] = "application/vnd.schemaregistry.v1+json"

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        import requests

        try:
            response = self.session.request(method, self.url + path, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RegistryUnavailable(f"schema registry {self.shown}{path}: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise RegistryUnavailable(f"schema registry {self.shown}{path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise SerdeError(f"schema registry {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def set_compatibility(self, subject_name: str, level: str = COMPATIBILITY) -> None:
        self._call("PUT", f"/config/{subject_name}", {"compatibility": level})

    def register(self, subject_name: str, schema_text: str) -> int:
        """The id of ``schema_text`` under the subject, registering it as a new version if it is new."""
        return int(self._call("POST", f"/subjects/{subject_name}/versions",
                              {"schema": schema_text, "schemaType": "AVRO"})["id"])

    def schema_text(self, schema_id: int) -> str:
        return self._call("GET", f"/schemas/ids/{schema_id}")["schema"]


class Codec:
    """Writes events in one framing and reads either. Registry ids are cached both ways, so after the first event
    of each kind the registry is asked nothing more."""

    def __init__(self, registry: SchemaRegistry | None = None, framing: str | None = None):
        framing = framing or ("registry" if registry is not None else "single-object")
        if framing not in FRAMINGS:
            raise ValueError(f"event framing must be one of {', '.join(FRAMINGS)}, got {framing!r}")
        if framing == "registry" and registry is None:
            raise ValueError("registry framing needs a schema registry URL (SMARTCROP_SCHEMA_REGISTRY_URL)")
        self.registry, self.framing = registry, framing
        self._ids: dict[tuple[str, str], int] = {}  # (subject, type name) -> schema id
        self._writers: dict[int, tuple[str, Any]] = {}  # schema id -> (type name, parsed writer schema)
        self._lock = threading.Lock()

    def schema_id(self, name: str, topic: str) -> int:
        """Our schema of ``name`` under ``<topic>-value``: compatibility BACKWARD set, then registered."""
        key = (subject(topic), name)
        if key not in self._ids:
            with self._lock:
                if key not in self._ids:
                    self.registry.set_compatibility(key[0])
                    self._ids[key] = self.registry.register(key[0], schema_json(name))
        return self._ids[key]

    def register(self, topics: dict[str, str]) -> dict[str, int]:
        """Register each ``topic: type name`` at start, so a bad registry fails the service before any job."""
        return {topic: self.schema_id(name, topic) for topic, name in topics.items()}

    def encode(self, name: str, record: dict[str, Any], topic: str | None = None) -> bytes:
        if self.framing == "single-object":
            return encode(name, record)
        if topic is None:
            raise ValueError("registry framing names the subject by topic: pass the topic")
        buffer = io.BytesIO()
        buffer.write(CONFLUENT_MAGIC + struct.pack(">I", self.schema_id(name, topic)))
        fastavro.schemaless_writer(buffer, schema(name), record)
        return buffer.getvalue()

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """Either framing, by the first byte; a registry-framed event is read with its writer schema from the
        registry resolved against ours, so a v2 event (a new optional field) reads as our v1."""
        if data is None or data[:1] != CONFLUENT_MAGIC:
            return decode(data)
        if len(data) < 5:
            raise SerdeError("Confluent-framed message shorter than its 5-byte header")
        schema_id = struct.unpack(">I", data[1:5])[0]
        name, writer = self._writer(schema_id)
        return name, read_body(name, data[5:], writer)

    def _writer(self, schema_id: int) -> tuple[str, Any]:
        if schema_id not in self._writers:
            if self.registry is None:
                raise SerdeError(f"registry-framed message (schema id {schema_id}) but no schema registry is set")
            try:
                document = json.loads(self.registry.schema_text(schema_id))
                parsed = fastavro.parse_schema(document)
            except (ValueError, TypeError, KeyError, fastavro.schema.SchemaParseException) as exc:
                raise SerdeError(f"schema id {schema_id} is not an Avro schema: {exc}") from None
            full_name = document.get("name", "") if isinstance(document, dict) else ""
            if "." not in full_name and isinstance(document, dict) and document.get("namespace"):
                full_name = f"{document['namespace']}.{full_name}"
            namespace, _, name = full_name.rpartition(".")
            if namespace != NAMESPACE or name not in EVENT_TYPES:
                raise SerdeError(f"schema id {schema_id} is {full_name or 'unnamed'}, not one of our events")
            self._writers[schema_id] = (name, parsed)
        return self._writers[schema_id]


SINGLE_OBJECT = Codec()  # the default framing, with the registry framing's reader
_codecs: dict[tuple[str, str], Codec] = {}


def codec_for(registry_url: str, framing: str = "") -> Codec:
    """One codec (and id cache) per registry and framing in a process; no URL: single-object encoding only."""
    if not registry_url:
        if framing == "registry":
            raise ValueError("SMARTCROP_EVENT_FRAMING=registry needs SMARTCROP_SCHEMA_REGISTRY_URL")
        return SINGLE_OBJECT
    key = (registry_url, framing or "registry")
    if key not in _codecs:
        _codecs[key] = Codec(SchemaRegistry(registry_url), key[1])
    return _codecs[key]
