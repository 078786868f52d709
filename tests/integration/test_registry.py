"""Schema Registry framing through real Kafka topics, and a mixed fleet during a migration.

The registry is the Confluent-compatible one in ``tests/schema_registry.py`` (no registry server installs here; see
its docstring); the clients are ours and confluent-kafka's own ``SchemaRegistryClient`` and ``AvroSerializer``.
A stage runtime (:class:`StageService`, the one the four services use) runs here on a thread with a handler that
reports each input as completed, so what is tested is the runtime's reading and writing, not a stage's work.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import replace

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from smartcrop.core.events import JobRequested, JobState, JobStatus, to_record
from smartcrop.core.job import parse_job
from smartcrop.core.stage import Stage
from smartcrop.runtime import serde
from smartcrop.runtime.config import TOPICS
from smartcrop.runtime.kafka import EventPublisher, admin_client, ensure_topics, follow_status, read_topic
from smartcrop.runtime.service import StageService
from tests.schema_registry import serve as serve_registry

from .conftest import Services, tracks_ready

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registry():
    server, state = serve_registry()
    yield f"http://127.0.0.1:{server.server_port}", state
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def plain(settings):
    """Topics of this module's own, so the session's services never see its events (nor it theirs)."""
    own = replace(settings, topic_prefix=f"{settings.topic_prefix}registry.")
    ensure_topics(own, partitions=3)
    yield own
    admin = admin_client(own)
    for deleted in admin.delete_topics([own.topic(name) for name in TOPICS]).values():
        deleted.result()


@pytest.fixture(scope="module")
def framed(plain, registry):
    """The module's settings, writing the Confluent wire format."""
    return replace(plain, schema_registry_url=registry[0])


@contextlib.contextmanager
def echo_stage(settings, name: str):
    """A stage runtime on the tracks topic whose handler completes every job it is given."""

    def complete(event, ctx):
        return [JobStatus(event.job_id, JobState.COMPLETED, name, 100.0, message=type(event).__name__)]

    service = StageService(Stage(name, "tracks", complete, (0.0, 100.0)), settings)
    thread = threading.Thread(target=service.run, name=name, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop()
        thread.join(60)


def raw_statuses(settings, job_id: str) -> list[bytes]:
    return [m.value() for m in read_topic(settings, "status", follow=False, key=job_id, timeout=30)]


def final(settings, job_id: str) -> JobStatus:
    statuses = list(follow_status(settings, job_id, wait=True, timeout=90))
    assert statuses and statuses[-1].status.is_final, f"no final status for {job_id}"
    return statuses[-1]


def test_events_round_trip_in_the_confluent_wire_format_through_a_real_topic(framed, registry):
    url, state = registry
    job_id = f"framed-{os.urandom(3).hex()}"
    sent = JobStatus(job_id, JobState.RUNNING, "submit", 3.5, message="hello")
    EventPublisher(framed).publish_confirmed(sent)
    (value,) = raw_statuses(framed, job_id)
    subject = f"{framed.topic('status')}-value"
    assert value[:1] == b"\x00"
    assert int.from_bytes(value[1:5], "big") == state.subjects[subject][-1]
    assert state.levels[subject] == "BACKWARD"
    (received,) = follow_status(framed, job_id, wait=False, timeout=30)
    assert received == replace(sent, updated_at=received.updated_at)


@pytest.mark.parametrize("producer_framing, service_framing", [("registry", "single-object"),
                                                               ("single-object", "registry")])
def test_a_mixed_fleet_interoperates(framed, producer_framing, service_framing):
    """Each side writes its own framing and reads the other's."""
    job_id = f"mixed-{producer_framing}-{os.urandom(3).hex()}"
    with echo_stage(replace(framed, event_framing=service_framing), f"echo-{service_framing}"):
        EventPublisher(replace(framed, event_framing=producer_framing)).publish_confirmed(tracks_ready(job_id))
        done = final(framed, job_id)
    assert (done.status, done.message) == (JobState.COMPLETED, "TracksReady")
    written = {value[:1] for value in raw_statuses(framed, job_id)}
    assert written == ({b"\x00"} if service_framing == "registry" else {b"\xc3"})


def test_a_service_without_a_registry_dead_letters_registry_frames_and_says_why(plain, framed):
    job_id = f"no-registry-{os.urandom(3).hex()}"
    with echo_stage(plain, "echo-plain"):
        EventPublisher(framed).publish_confirmed(tracks_ready(job_id))
        for message in read_topic(plain, "dlq", follow=True, key=job_id, timeout=60):
            headers = dict(message.headers())
            break
        else:
            raise AssertionError("nothing reached the dead-letter topic")
    assert headers["stage"] == b"echo-plain"
    assert b"no schema registry is set" in headers["error"]


def test_a_v1_consumer_reads_a_v2_event_registered_under_backward(framed, registry):
    url, state = registry
    EventPublisher(framed).publish_confirmed(JobStatus(f"v1-{os.urandom(3).hex()}", JobState.QUEUED, "submit", 0.0))
    subject = f"{framed.topic('status')}-value"
    v2 = json.loads(serde.schema_json("JobStatus"))
    v2["fields"].append({"name": "priority", "type": ["null", "int"], "default": None, "doc": "added in v2"})
    client = SchemaRegistryClient({"url": url})
    assert client.get_compatibility(subject) == "BACKWARD"
    v3 = json.loads(json.dumps(v2))
    v3["fields"].append({"name": "region", "type": "string"})  # required and new: v3 cannot read v2 events
    serializer = AvroSerializer(client, json.dumps(v2))
    with pytest.raises(SchemaRegistryError) as refused:
        AvroSerializer(client, json.dumps(v3))({"job_id": "x"}, SerializationContext(framed.topic("status"),
                                                                                     MessageField.VALUE))
    assert refused.value.http_status_code == 409

    job_id = f"v2-{os.urandom(3).hex()}"
    record = {**to_record(JobStatus(job_id, JobState.RUNNING, "upstream", 50.0), None), "priority": 3}
    producer = Producer({"bootstrap.servers": framed.kafka_bootstrap})
    producer.produce(framed.topic("status"), key=job_id.encode(),
                     value=serializer(record, SerializationContext(framed.topic("status"), MessageField.VALUE)))
    assert producer.flush(30) == 0
    assert len(state.subjects[subject]) == 2  # v1 by us, v2 by the upstream serializer
    (received,) = follow_status(framed, job_id, wait=False, timeout=30)
    assert received == JobStatus(job_id, JobState.RUNNING, "upstream", 50.0, updated_at=received.updated_at)


def test_bytes_from_confluent_kafkas_avro_serializer_are_read_by_our_stage(framed, registry):
    url, _ = registry
    job_id = f"confluent-{os.urandom(3).hex()}"
    topic = framed.topic("tracks")
    serializer = AvroSerializer(SchemaRegistryClient({"url": url}), serde.schema_json("TracksReady"))
    value = serializer(to_record(tracks_ready(job_id), None), SerializationContext(topic, MessageField.VALUE))
    assert value[:1] == b"\x00"
    with echo_stage(framed, "echo-confluent"):
        producer = Producer({"bootstrap.servers": framed.kafka_bootstrap})
        producer.produce(topic, key=job_id.encode(), value=value)
        assert producer.flush(30) == 0
        done = final(framed, job_id)
    assert (done.status, done.stage, done.message) == (JobState.COMPLETED, "echo-confluent", "TracksReady")


def test_a_mixed_fleet_of_real_services_completes_a_job(plain, stack_env, registry, uploaded_clip, detector_model,
                                                        tmp_path):
    """Detector and planner write the Confluent wire format, tracker and encoder single-object (with the registry
    URL, to read the others), on topics of their own: the clip comes out, and each topic has its writer's framing."""
    fleet = replace(plain, topic_prefix=f"{plain.topic_prefix}fleet.", schema_registry_url=registry[0])
    ensure_topics(fleet, partitions=3)
    running = Services(fleet, stack_env, tmp_path)
    for name, framing in (("detector", "registry"), ("tracker", "single-object"), ("planner", "registry"),
                          ("encoder", "single-object")):
        running.extra_env = {"SMARTCROP_SCHEMA_REGISTRY_URL": registry[0], "SMARTCROP_EVENT_FRAMING": framing}
        running.start(name)
    try:
        running.wait_ready()
        job_id = f"fleet-{os.urandom(3).hex()}"
        EventPublisher(fleet).publish_confirmed(JobRequested(job=parse_job({"query": {
            "source": uploaded_clip, "format": [{"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1}]}},
            job_id=job_id)))
        statuses = list(follow_status(fleet, job_id, wait=True, timeout=300))
        assert statuses[-1].status is JobState.COMPLETED, statuses[-1]
        assert len(statuses[-1].outputs) == 1
        framings = {topic: {m.value()[:1] for m in read_topic(fleet, topic, follow=False, key=job_id, timeout=30)}
                    for topic in ("jobs", "detections", "tracks", "plans")}
        assert framings == {"jobs": {b"\x00"}, "detections": {b"\x00"}, "tracks": {b"\xc3"}, "plans": {b"\x00"}}
    finally:
        running.stop()
        admin = admin_client(fleet)
        for deleted in admin.delete_topics([fleet.topic(name) for name in TOPICS]).values():
            deleted.result()
