"""Avro on the wire and at rest, from the ``schemas/*.avsc`` contracts.

Events use Avro single-object encoding (marker ``C3 01``, the writer schema's CRC-64-AVRO fingerprint, then the
body), so every Kafka message names its own schema without a registry. Per-frame data is written as Avro object
container files, which carry their schema in the header.
"""

from __future__ import annotations

import io
import struct
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Iterator

import fastavro
from fastavro.schema import fingerprint, load_schema, to_parsing_canonical_form

NAMESPACE = "io.smartcrop.v1"
SINGLE_OBJECT_MARKER = b"\xc3\x01"
EVENT_TYPES = ("JobRequested", "DetectionsReady", "TracksReady", "CropPlanned", "JobStatus")


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
    if data is None or len(data) < 10 or data[:2] != SINGLE_OBJECT_MARKER:
        raise SerdeError("not Avro single-object encoded (missing C3 01 marker)")
    name = _names_by_fingerprint().get(bytes(data[2:10]))
    if name is None:
        raise SerdeError(f"unknown schema fingerprint {bytes(data[2:10]).hex()}")
    try:
        buffer = io.BytesIO(data[10:])
        record = fastavro.schemaless_reader(buffer, schema(name), schema(name))
    except Exception as exc:  # fastavro raises many types on garbage: EOFError, UnicodeDecodeError, IndexError ...
        raise SerdeError(f"undecodable {name} body: {type(exc).__name__}: {exc}") from None
    if buffer.tell() != len(data) - 10:
        raise SerdeError(f"{name} body has {len(data) - 10 - buffer.tell()} trailing bytes")
    return name, record


def write_container(name: str, records: Iterable[dict[str, Any]]) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, schema(name), records, codec="deflate")
    return buffer.getvalue()


def read_container(data: bytes) -> Iterator[dict[str, Any]]:
    yield from fastavro.reader(io.BytesIO(data))
