"""The Avro schemas are the contract: events round-trip through single-object encoding and match the dataclasses."""

import dataclasses
import io
import json

import fastavro
import pytest

from smartcrop.core import avro
from smartcrop.core.events import (
    EVENT_CLASSES,
    CropPlanned,
    DetectionsReady,
    ErrorInfo,
    JobRequested,
    JobState,
    JobStatus,
    TracksReady,
    decode_event,
    encode_event,
)
from smartcrop.core.job import Destination, JobSpec, OutputFormat, Rendition, parse_job
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.core.secrets import SecretBox, SecretKeyError

MEDIA = MediaInfo(width=1280, height=720, display_width=1280, display_height=720, rotation=0, sample_aspect=1.0,
                  fps=25.0, duration=9.0, frame_count=225, video_codec="h264", has_audio=True, audio_codec="aac")


def a_job(**fmt) -> JobSpec:
    return parse_job({"query": {"source": "s3://minio:9000/media/clip.mp4", "format": [
        {"output": "advanced_hls", "aspect_ratio": "4:5", "smart_crop": 1, "smart_crop_mode": "stable",
         "stream": [{"size": "720x900", "bitrate": 2000}], **fmt}]}}, job_id="job-1")


def all_events(job: JobSpec):
    return [JobRequested(job=job),
            DetectionsReady(job=job, media=MEDIA, source_uri="s3://h/b/src.mp4", detections_uri="s3://h/b/d.avro",
                            analysis_fps=5.0),
            TracksReady(job=job, media=MEDIA, source_uri="s3://h/b/src.mp4", tracks_uri="s3://h/b/t.avro"),
            CropPlanned(job=job, media=MEDIA, source_uri="s3://h/b/src.mp4", format_index=0,
                        plan_uri="s3://h/b/plan-0.avro", crop_width=576, crop_height=720),
            JobStatus(job_id="job-1", status=JobState.FAILED, stage="detector", percent=12.5,
                      error=ErrorInfo("source_unreadable", "no video stream"))]


@pytest.mark.parametrize("index", range(5))
def test_every_event_round_trips(index):
    box = SecretBox.ephemeral()
    event = all_events(a_job())[index]
    data = encode_event(event, box)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == avro.schema_fingerprint(type(event).__name__)
    decoded = decode_event(data)
    if isinstance(event, JobRequested):  # timestamp-millis keeps milliseconds only
        assert abs((decoded.requested_at - event.requested_at).total_seconds()) < 0.001
        decoded = dataclasses.replace(decoded, requested_at=event.requested_at)
    if isinstance(event, JobStatus):
        decoded = dataclasses.replace(decoded, updated_at=event.updated_at)
    assert decoded == event


def test_destination_secret_travels_sealed_and_only_the_key_holder_reads_it():
    box = SecretBox(SecretBox.generate_key())
    job = a_job(destination={"url": "s3://minio:9000/out/", "key": "AK", "secret": "TOPSECRET-123"})
    data = encode_event(JobRequested(job=job), box)
    assert b"TOPSECRET" not in data
    sealed = decode_event(data).job.formats[0].destination.secret
    assert sealed.sealed and "TOPSECRET" not in sealed.value
    assert box.unseal(sealed) == "TOPSECRET-123"
    with pytest.raises(SecretKeyError, match="different SMARTCROP_SECRET_KEY"):
        SecretBox(SecretBox.generate_key()).unseal(sealed)
    with pytest.raises(SecretKeyError, match="not configured"):
        encode_event(JobRequested(job=job), SecretBox(None))


@pytest.mark.parametrize("garbage", [b"", b"\x00" * 20, b"\xc3\x01" + b"\x00" * 8 + b"x",
                                     b"\xc3\x01" + avro.schema_fingerprint("JobStatus") + b"\xff\xff\xff"])
def test_garbage_is_a_serde_error(garbage):
    with pytest.raises(avro.SerdeError):
        decode_event(garbage)


def _avro_fields(schema, name):
    """Field names of the named record anywhere inside a parsed schema."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "record":
                found[node["name"].split(".")[-1]] = [f["name"] for f in node["fields"]]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found[name]


@pytest.mark.parametrize("cls, schema_name, record", [
    (JobSpec, "JobSpec", "JobSpec"), (OutputFormat, "JobSpec", "OutputFormat"),
    (Destination, "JobSpec", "Destination"), (Rendition, "JobSpec", "Rendition"),
    (MediaInfo, "MediaInfo", "MediaInfo"), (ErrorInfo, "JobStatus", "JobError"),
    *[(cls, name, name) for name, cls in EVENT_CLASSES.items()],
])
def test_dataclasses_match_their_schemas(cls, schema_name, record):
    fields = [f.name for f in dataclasses.fields(cls)]
    assert fields == _avro_fields(avro.schema(schema_name), record)


def test_schema_files_are_valid_avro_with_docs():
    paths = sorted(avro.schema_dir().glob("*.avsc"))
    assert {path.stem.rsplit(".", 1)[-1] for path in paths} >= {"JobSpec", "JobRequested", "JobStatus", "MediaInfo"}
    for path in paths:
        document = json.loads(path.read_text())
        assert document["namespace"] == "io.smartcrop.v1"
        assert document.get("doc"), f"{path.name} needs a doc"
        fastavro.parse_schema(avro.schema(document["name"]))


def test_container_files_round_trip():
    records = [{"index": i, "t": i / 25, "x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0, "cut": i == 0} for i in range(3)]
    data = avro.write_container("CropWindow", records)
    assert list(avro.read_container(data)) == records
    assert fastavro.reader(io.BytesIO(data)).writer_schema["name"] == "io.smartcrop.v1.CropWindow"
