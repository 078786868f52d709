"""Property-based checks of the two doors hostile input comes through: the job parser and the event deserializer.

The parser must either return a job that every later step accepts or raise a :class:`JobError` naming a field, in
one line. The deserializer must raise only :class:`SerdeError` on bytes that are not one of our events, which the
runner sends to the dead-letter topic without calling the stage.
"""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartcrop.core.avro import EVENT_TYPES, SINGLE_OBJECT_MARKER, SerdeError, schema_fingerprint
from smartcrop.core.events import JobRequested, decode_event, encode_event
from smartcrop.core.job import JobError, JobSpec, parse_job, validate_spec
from smartcrop.core.secrets import SecretBox

BOX = SecretBox(SecretBox.generate_key())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12)
interesting = st.sampled_from([
    "9:16", "1:1", " 4 : 5 ", "0:16", "16:0", "-9:16", "9:16:1", "١:٢", "mp4", "hls", "advanced_dash", "webm",
    "stable", "gravity", "1080x1920", "0x0", "99999x1", "s3://minio:9000/media/in.mp4", "s3://h/b", "s3://h/bad-/k",
    "https://example.com/in.mp4?sig=1", "http://[::1/x", "http://h:70000/x", "http://user:pw@h/x", "file:///etc/passwd",
    "ftp://h/x", "/videos/in.mp4", "\x00", "h264", "veryslow", "", " ", 0, 1, 2, -1, 16, 8192, 8193, 2**31, 2**63,
    1.5, True, None, [], {}])
field_value = interesting | json_values
VALID = {  # good values, so that many documents get deep into the parser and some parse
    "source": ["s3://minio:9000/media/in.mp4", "https://example.com/a/in.mp4", "/videos/in.mp4", "file:///v/in.mp4"],
    "output": ["mp4", "hls", "advanced_dash"], "aspect_ratio": ["9:16", "1:1", "21:9"], "smart_crop": [0, 1],
    "smart_crop_mode": ["stable", "responsive"], "smart_crop_method": ["adaptive", "talking_person"],
    "width": [720, 16], "height": [1280, 8192], "size": ["1080x1920"], "video_codec": ["h264"], "preset": ["slow"],
    "bitrate": [4000, "2500"], "quality": [23, 0], "job_id": ["job-1", "a.b_c"],
    "url": ["s3://minio:9000/out/x.mp4", "s3://minio:9000/out/dir/", "/tmp/out.mp4"], "key": ["AK"], "secret": ["SK"],
}


def value(name: str):
    if name not in VALID:
        return field_value
    return st.integers(0, 3).flatmap(lambda i: st.sampled_from(VALID[name]) if i else field_value)  # 3/4 good


FORMAT_FIELDS = ["output", "aspect_ratio", "smart_crop", "smart_crop_mode", "smart_crop_method", "width", "height",
                 "size", "video_codec", "preset", "bitrate", "quality", "stream", "destination"]
destination = st.fixed_dictionaries({}, optional={name: value(name) for name in ("url", "key", "secret",
                                                                                 "permissions")})
stream = st.fixed_dictionaries({}, optional={name: value(name) for name in ("size", "width", "height", "bitrate")})
fmt = st.builds(lambda raw, extra: {**raw, **extra},
                st.fixed_dictionaries({}, optional={name: value(name) for name in FORMAT_FIELDS[:-2]}),
                st.fixed_dictionaries({}, optional={"destination": destination | field_value,
                                                    "stream": st.lists(stream, max_size=3) | field_value}))
query = st.fixed_dictionaries({"source": value("source")}, optional={
    "job_id": value("job_id") | st.text(alphabet="ab./-_", max_size=6),
    "format": st.lists(fmt, max_size=3) | fmt | field_value,
    **{name: value(name) for name in ["aspect_ratio", "smart_crop", "smart_crop_mode", "output"]},
    "destination": destination | field_value})
documents = st.one_of(query.map(lambda q: {"query": q}), query, json_values)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_the_parser_returns_a_runnable_job_or_names_the_field(document):
    try:
        job = parse_job(document)
    except JobError as exc:
        assert exc.field and exc.message and str(exc) == f"{exc.field}: {exc.message}"
        assert "\n" not in str(exc) and exc.code == "invalid_job"
        return
    assert isinstance(job, JobSpec) and job.source.strip() == job.source and job.formats
    validate_spec(job)  # what the first stage checks again
    event = decode_event(encode_event(JobRequested(job=job), BOX))  # the Avro contract holds every parsed job
    assert event.job.job_id == job.job_id and len(event.job.formats) == len(job.formats)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_a_serde_error(data):
    try:
        decode_event(data)
    except SerdeError:
        return
    raise AssertionError(f"random bytes decoded: {data!r}")


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(EVENT_TYPES), st.binary(max_size=300))
def test_a_known_schema_with_a_random_body_decodes_or_is_a_serde_error(name, body):
    try:
        event = decode_event(SINGLE_OBJECT_MARKER + schema_fingerprint(name) + body)
    except SerdeError:
        return
    assert type(event).__name__ == name


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_damaged_real_events_decode_or_are_a_serde_error(data):
    job = parse_job({"query": {"source": "s3://minio:9000/media/in.mp4", "format": [
        {"output": "advanced_hls", "stream": [{"size": "720x1280", "bitrate": 2000}],
         "destination": {"url": "s3://minio:9000/out/x/", "key": "AK", "secret": "SK"}}]}})
    encoded = bytearray(encode_event(JobRequested(job=job), BOX))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(10, len(encoded) - 1))
        encoded[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(10, len(encoded)))
    try:
        decode_event(bytes(encoded[:cut]))
    except SerdeError:
        pass


def test_the_fingerprint_layout_is_what_the_fuzzers_assume():
    assert len(schema_fingerprint("JobStatus")) == len(struct.pack("<Q", 0)) == 8


class FakeMessage:
    def __init__(self, value: bytes):
        self._value = value

    def value(self):
        return self._value

    def key(self):
        return b"job-key"

    def topic(self):
        return "smartcrop.jobs.v1"

    def partition(self):
        return 0

    def offset(self):
        return 41


class FakeKafka:
    """The producer and consumer calls of one transaction, recorded."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["detector", "tracker", "planner", "encoder"]),
       st.binary(max_size=200) | st.binary(max_size=200).map(
           lambda body: SINGLE_OBJECT_MARKER + schema_fingerprint("JobRequested") + body))
def test_each_service_sends_undecodable_bytes_to_the_dead_letter_topic(stage_name, data):
    from smartcrop.core.stage import Stage
    from smartcrop.runtime.config import Settings
    from smartcrop.runtime.service import StageService

    called = []
    topics = {"detector": "jobs", "tracker": "detections", "planner": "tracks", "encoder": "plans"}
    stage = Stage(stage_name, topics[stage_name], lambda *a: called.append(a), (0, 1))
    service = StageService(stage, Settings(secret_key=SecretBox.generate_key()), storage=object())
    service.consumer, service.committer.producer = FakeKafka(), FakeKafka()
    service._handle(FakeMessage(data))
    assert called == []  # the stage never sees it
    names = [name for name, _, _ in service.committer.producer.calls]
    assert names == ["begin_transaction", "produce", "send_offsets_to_transaction", "commit_transaction"]
    _, (topic,), produced = service.committer.producer.calls[1]
    headers = dict(produced["headers"])
    assert topic == "smartcrop.dlq.v1" and produced["value"] == data and produced["key"] == b"job-key"
    assert headers["stage"] == stage_name.encode() and headers["source_offset"] == b"41" and headers["error"]
