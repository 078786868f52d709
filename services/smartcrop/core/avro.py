"""The Avro contracts in ``schemas/*.avsc``: loading them, single-object encoding, and object container files.

This is the part of the wire format that needs no network: an event in single-object encoding (marker ``C3 01``, the
writer schema's CRC-64-AVRO fingerprint, then the body) names its own schema, and per-frame data is written as Avro
object container files, which carry their schema in the header. The Schema Registry framing, which asks a server for
schema ids, lives in :mod:`smartcrop.runtime.serde`.
"""

from __future__ import annotations

import io
import struct
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

NAMESPACE = "io.smartcrop.v1"
SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"  # the Schema Registry framing (smartcrop.runtime.serde): named here to refuse it clearly
EVENT_TYPES = ("JobRequested", "DetectionsReady", "TracksReady", "CropPlanned", "JobStatus", "JobControl")


class SerdeError(ValueError):
    """Bytes that are not one of our events: the runner sends them to the dead-letter topic."""


def schema_dir() -> Path:
    """The packaged copy in a wheel, else the repository's ``schemas/`` (source checkout, editable install)."""
    packaged = Path(__file__).resolve().parent.parent / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "schemas"


@cache
def schema(name: str) -> dict:
    """The parsed schema of a record type, e.g. ``schema("JobStatus")``."""
    path = schema_dir() / f"{NAMESPACE}.{name}.avsc"
    if not path.is_file():
        raise FileNotFoundError(f"no Avro schema for {name} at {path}")
    return load_schema(str(path))


@cache
def schema_fingerprint(name: str) -> bytes:
    return struct.pack("<Q", int(fingerprint(to_parsing_canonical_form(schema(name)), "CRC-64-AVRO"), 16))


@cache
def _names_by_fingerprint() -> dict[bytes, str]:
    return {schema_fingerprint(name): name for name in EVENT_TYPES}


def encode(name: str, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    buffer.write(SINGLE_OBJECT_MARKER)
    buffer.write(schema_fingerprint(name))
    fastavro.schemaless_writer(buffer, schema(name), record)
    return buffer.getvalue()


def decode(data: bytes) -> tuple[str, dict[str, Any]]:
    """``(record type name, record)`` of a single-object encoded event; :class:`SerdeError` if it is not one."""
    if data is not None and len(data) >= 5 and data[:1] == CONFLUENT_MAGIC:
        schema_id = struct.unpack(">I", data[1:5])[0]
        raise SerdeError(f"registry-framed message (schema id {schema_id}) but no schema registry is set")
    if data is None or len(data) < 10 or data[:2] != SINGLE_OBJECT_MARKER:
        raise SerdeError("not Avro single-object encoded (missing C3 01 marker)")
    name = _names_by_fingerprint().get(bytes(data[2:10]))
    if name is None:
        raise SerdeError(f"unknown schema fingerprint {bytes(data[2:10]).hex()}")
    return name, read_body(name, bytes(data[10:]), schema(name))


def read_body(name: str, body: bytes, writer) -> dict[str, Any]:
    """One record written with ``writer``, read as our schema of ``name``; the whole body or :class:`SerdeError`."""
    try:
        buffer = io.BytesIO(body)
        record = fastavro.schemaless_reader(buffer, writer, schema(name))
    except Exception as exc:  # fastavro raises many types on garbage: EOFError, UnicodeDecodeError, IndexError ...
        raise SerdeError(f"undecodable {name} body: {type(exc).__name__}: {exc}") from None
    if buffer.tell() != len(body):
        raise SerdeError(f"{name} body has {len(body) - buffer.tell()} trailing bytes")
    return record


class EventCodec(Protocol):
    """How events are framed on the wire; :mod:`smartcrop.runtime.serde` adds the Schema Registry framing."""

    framing: str

    def encode(self, name: str, record: dict[str, Any], topic: str | None = None) -> bytes: ...

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]: ...


class SingleObject:
    """The codec an event needs without a registry: writes and reads single-object encoding only."""

    framing = "single-object"

    def encode(self, name: str, record: dict[str, Any], topic: str | None = None) -> bytes:
        return encode(name, record)

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        return decode(data)


def write_container(name: str, records: Iterable[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema(name), records, codec="deflate")
    return buffer.getvalue()


def read_container(data: bytes) -> Iterator[dict[str, Any]]:
    yield from fastavro.reader(io.BytesIO(data))


SINGLE_OBJECT = SingleObject()
