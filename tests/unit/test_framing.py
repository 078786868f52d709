"""Two framings on the wire: Avro single-object encoding and the Confluent wire format with a Schema Registry.

A writer uses one; every reader takes both, told apart by the first byte, so a fleet can migrate a service at a time.
"""

import io
import json
import struct

import fastavro
import pytest
from fastavro.schema import fingerprint, to_parsing_canonical_form

from smartcrop.core.events import JobControl, JobState, JobStatus, decode_event, encode_event
from smartcrop.runtime import serde
from smartcrop.runtime.config import Settings
from tests.schema_registry import Incompatible, can_read
from tests.schema_registry import serve as serve_registry

TOPIC = "t.smartcrop.status.v1"


class FakeRegistry:
    """The three registry calls the codec makes, in memory, with a log of what was asked."""

    def __init__(self, first_id: int = 41):
        self.calls: list[tuple] = []
        self.by_id: dict[int, str] = {}
        self.next_id = first_id
        self.down = False

    def set_compatibility(self, subject, level="BACKWARD"):
        self.calls.append(("config", subject, level))

    def register(self, subject, text):
        self.calls.append(("register", subject))
        for schema_id, known in self.by_id.items():
            if known == text:
                return schema_id
        self.next_id += 1
        self.by_id[self.next_id] = text
        return self.next_id

    def schema_text(self, schema_id):
        self.calls.append(("get", schema_id))
        if self.down:
            raise serde.RegistryUnavailable("registry down")
        if schema_id not in self.by_id:
            raise serde.SerdeError(f"HTTP 404: schema {schema_id} not found")
        return self.by_id[schema_id]


def status(job_id="job-1"):
    return JobStatus(job_id, JobState.RUNNING, "detector", 12.5, message="m")


def v2_status_schema() -> dict:
    """JobStatus with one more optional field: what a later release might write."""
    document = json.loads(serde.schema_json("JobStatus"))
    document["fields"].append({"name": "priority", "type": ["null", "int"], "default": None})
    return document


def test_registry_framing_is_magic_zero_a_big_endian_id_and_the_plain_avro_body():
    registry = FakeRegistry()
    data = encode_event(status(), codec=serde.Codec(registry), topic=TOPIC)
    assert data[:1] == b"\x00"
    assert struct.unpack(">I", data[1:5]) == (42,)
    body = fastavro.schemaless_reader(io.BytesIO(data[5:]), serde.schema("JobStatus"), serde.schema("JobStatus"))
    assert (body["job_id"], body["status"], body["percent"], body["message"]) == ("job-1", "running", 12.5, "m")


def test_subjects_follow_topic_name_strategy_with_backward_set_first_and_ids_are_cached():
    registry = FakeRegistry()
    codec = serde.Codec(registry)
    for _ in range(3):
        codec.encode("JobStatus", serde.SINGLE_OBJECT.decode(encode_event(status()))[1], TOPIC)
    assert registry.calls == [("config", f"{TOPIC}-value", "BACKWARD"), ("register", f"{TOPIC}-value")]
    assert serde.subject("smartcrop.jobs.v1") == "smartcrop.jobs.v1-value"


def test_a_reader_takes_both_framings_and_a_mixed_stream_decodes_to_the_same_events():
    codec = serde.Codec(FakeRegistry())
    events = [status("a"), JobControl("b", reason="user asked"), status("c")]
    framed = [encode_event(events[0], codec=codec, topic=TOPIC), encode_event(events[1]),
              encode_event(events[2], codec=codec, topic="t.smartcrop.control.v1")]
    assert [data[:1] for data in framed] == [b"\x00", b"\xc3", b"\x00"]
    decoded = [decode_event(data, codec) for data in framed]
    assert [(e.job_id, type(e).__name__) for e in decoded] == [("a", "JobStatus"), ("b", "JobControl"),
                                                               ("c", "JobStatus")]
    assert decoded[1].reason == "user asked"


def test_single_object_framing_with_a_registry_still_reads_registry_frames():
    registry = FakeRegistry()
    writer = serde.Codec(registry)
    migrating = serde.Codec(registry, "single-object")
    assert encode_event(status(), codec=migrating, topic=TOPIC)[:2] == b"\xc3\x01"
    assert decode_event(encode_event(status(), codec=writer, topic=TOPIC), migrating).job_id == "job-1"


def test_without_a_registry_a_registry_frame_is_refused_with_the_reason():
    data = encode_event(status(), codec=serde.Codec(FakeRegistry()), topic=TOPIC)
    with pytest.raises(serde.SerdeError, match="no schema registry is set"):
        decode_event(data)


def test_a_v1_reader_reads_a_v2_event_and_drops_the_field_it_does_not_know():
    registry = FakeRegistry()
    v2 = v2_status_schema()
    schema_id = registry.register(f"{TOPIC}-value", json.dumps(v2))
    record = {**serde.SINGLE_OBJECT.decode(encode_event(status()))[1], "priority": 7}
    buffer = io.BytesIO()
    buffer.write(b"\x00" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(v2), record)
    event = decode_event(buffer.getvalue(), serde.Codec(registry))
    assert event == JobStatus("job-1", JobState.RUNNING, "detector", 12.5, message="m", updated_at=event.updated_at)
    assert not hasattr(event, "priority")


def test_a_writer_schema_is_fetched_once_per_id():
    registry = FakeRegistry()
    codec = serde.Codec(registry)
    data = encode_event(status(), codec=codec, topic=TOPIC)
    reader = serde.Codec(registry)
    for _ in range(3):
        decode_event(data, reader)
    assert [call for call in registry.calls if call[0] == "get"] == [("get", 42)]


@pytest.mark.parametrize("case, expected", [
    ("short", "shorter than its 5-byte header"),
    ("unknown id", "HTTP 404"),
    ("foreign schema", "not one of our events"),
    ("trailing bytes", "trailing bytes"),
    ("truncated body", "undecodable JobStatus body"),
])
def test_bad_registry_frames_are_serde_errors(case, expected):
    registry = FakeRegistry()
    codec = serde.Codec(registry)
    good = encode_event(status(), codec=codec, topic=TOPIC)
    foreign = registry.register("other-value", json.dumps({"type": "record", "name": "com.acme.Order",
                                                           "fields": [{"name": "id", "type": "string"}]}))
    data = {"short": b"\x00\x00\x00", "unknown id": b"\x00" + struct.pack(">I", 999) + good[5:],
            "foreign schema": b"\x00" + struct.pack(">I", foreign) + b"\x02x",
            "trailing bytes": good + b"\x00", "truncated body": good[:12]}[case]
    with pytest.raises(serde.SerdeError, match=expected):
        decode_event(data, serde.Codec(registry))


def test_a_registry_that_does_not_answer_is_transient_not_a_bad_message():
    registry = FakeRegistry()
    data = encode_event(status(), codec=serde.Codec(registry), topic=TOPIC)
    registry.down = True
    with pytest.raises(serde.RegistryUnavailable):
        decode_event(data, serde.Codec(registry))
    assert not issubclass(serde.RegistryUnavailable, serde.SerdeError)


@pytest.mark.parametrize("name", serde.EVENT_TYPES)
def test_the_registered_schema_is_ours_whole_with_its_defaults(name):
    text = serde.schema_json(name)
    assert "__" not in text
    parsed = fastavro.parse_schema(json.loads(text))
    assert fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO") == \
        fingerprint(to_parsing_canonical_form(serde.schema(name)), "CRC-64-AVRO")
    if name == "JobStatus":
        assert {"name": "message", "type": ["null", "string"], "default": None} in json.loads(text)["fields"]


def test_settings_choose_the_framing(monkeypatch):
    monkeypatch.delenv("SMARTCROP_SCHEMA_REGISTRY_URL", raising=False)
    monkeypatch.delenv("SMARTCROP_EVENT_FRAMING", raising=False)
    assert Settings.from_env().codec is serde.SINGLE_OBJECT
    monkeypatch.setenv("SMARTCROP_SCHEMA_REGISTRY_URL", "http://127.0.0.1:1/apis/ccompat/v7")
    codec = Settings.from_env().codec
    assert (codec.framing, codec.registry.url) == ("registry", "http://127.0.0.1:1/apis/ccompat/v7")
    assert Settings.from_env().codec is codec  # one id cache per process
    monkeypatch.setenv("SMARTCROP_EVENT_FRAMING", "single-object")
    assert Settings.from_env().codec.framing == "single-object"
    monkeypatch.delenv("SMARTCROP_SCHEMA_REGISTRY_URL")
    monkeypatch.setenv("SMARTCROP_EVENT_FRAMING", "registry")
    with pytest.raises(ValueError, match="needs SMARTCROP_SCHEMA_REGISTRY_URL"):
        _ = Settings.from_env().codec


def test_the_http_client_speaks_the_registry_api():
    server, _ = serve_registry()
    try:
        client = serde.SchemaRegistry(f"http://127.0.0.1:{server.server_port}")
        client.set_compatibility("s-value")
        first = client.register("s-value", serde.schema_json("JobStatus"))
        assert client.register("s-value", serde.schema_json("JobStatus")) == first
        assert client.register("other-value", serde.schema_json("JobStatus")) == first  # one id per schema
        assert json.loads(client.schema_text(first))["name"] == "io.smartcrop.v1.JobStatus"
        with pytest.raises(serde.SerdeError, match="HTTP 404"):
            client.schema_text(first + 100)
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(serde.RegistryUnavailable) as down:
        serde.SchemaRegistry(f"http://user:hunter2@127.0.0.1:{server.server_port}", timeout=2).schema_text(1)
    assert f"schema registry http://127.0.0.1:{server.server_port}/schemas/ids/1: ConnectionError" == str(down.value)


def test_the_test_registry_checks_backward_compatibility_by_avro_resolution():
    v1 = json.loads(serde.schema_json("JobStatus"))
    can_read(v2_status_schema(), v1)  # a new optional field: v2 reads v1 data
    required = json.loads(serde.schema_json("JobStatus"))
    required["fields"].append({"name": "priority", "type": "int"})
    with pytest.raises(Incompatible, match="'priority' is new and has no default"):
        can_read(required, v1)
    narrowed = json.loads(serde.schema_json("JobStatus"))
    narrowed["fields"][3]["type"] = "int"  # percent: float -> int
    with pytest.raises(Incompatible, match="cannot read writer type float"):
        can_read(narrowed, v1)
