"""Wrong and hostile jobs through the four services: each fails with a code and a message, the services go on, and a
destination secret never shows up in a log, a status event, the dead-letter topic or any topic in clear.

Jobs are published straight onto the jobs topic, as an upstream producer that skips ``smartcrop submit`` would, so
the first stage's own validation is what is tested.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import replace

import pytest

from smartcrop.core.events import JobRequested, JobState
from smartcrop.core.job import AspectRatio, Destination, JobSpec, parse_job
from smartcrop.runtime.config import TOPICS
from smartcrop.runtime.kafka import EventPublisher, follow_status
from tests.clips import make_clip

from .conftest import committed_events, committed_messages, final_status, service_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def short_clip(storage, tmp_path_factory):
    """A 2 s clip in our own bucket: cheap for every stage."""
    path = make_clip(tmp_path_factory.mktemp("clip") / "short.mp4", frames=30)
    return storage.put_file(f"inputs/hostile-{uuid.uuid4().hex[:6]}/short.mp4", path)


def spec(source: str, **fmt) -> JobSpec:
    """A job as an upstream producer might build it: the parser's output, then altered past its checks."""
    job = parse_job({"query": {"source": "s3://placeholder:9000/media/x.mp4", "format": [{"output": "mp4"}]}})
    return replace(job, job_id=f"hostile-{uuid.uuid4().hex[:10]}", source=source,
                   formats=(replace(job.formats[0], **fmt),))


def test_bad_jobs_fail_with_a_code_and_a_message_and_a_good_job_still_completes(services, settings, storage,
                                                                                   short_clip, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    not_video = storage.put_file(f"inputs/hostile-{uuid.uuid4().hex[:6]}/notes.mp4", text)
    host = short_clip.split("/")[2]
    cases = [
        (spec("ftp://example.com/in.mp4"), "invalid_job",
         "source: unsupported scheme 'ftp'; expected http(s)://, s3://, file:// or a path"),
        (spec(short_clip, aspect_ratio=AspectRatio(0, 16)), "invalid_job",
         "format[0].aspect_ratio: expected \"W:H\" with positive integers (e.g. \"9:16\"), got '0:16'"),
        (spec(short_clip, width=100000), "invalid_job",
         "format[0].width: expected an integer number of pixels between 16 and 8192, got 100000"),
        (spec("/etc/passwd"), "invalid_job", "source: local files are not read by the services; use http(s):// or "
                                             "s3://, or set SMARTCROP_FILE_SOURCE_ROOTS to the folders they may read"),
        (spec(f"http://{host}/minio/health/live"), "invalid_job",
         "source: 127.0.0.1 is a loopback address, which jobs may not reach; allow it with SMARTCROP_ALLOWED_NETWORKS"),
        (spec("http://169.254.169.254/latest/meta-data/iam/security-credentials/x.mp4"), "invalid_job",
         "source: 169.254.169.254 is a cloud metadata address, which jobs may not reach; allow it with "
         "SMARTCROP_ALLOWED_NETWORKS"),
        (spec("s3://10.0.0.8:9000/media/in.mp4"), "invalid_job",
         "source: 10.0.0.8 is a private address, which jobs may not reach; allow it with SMARTCROP_ALLOWED_NETWORKS"),
        (spec(short_clip, destination=Destination("s3://169.254.169.254/bucket/out.mp4")), "invalid_job",
         "format[0].destination.url: 169.254.169.254 is a cloud metadata address, which jobs may not reach; allow it "
         "with SMARTCROP_ALLOWED_NETWORKS"),
        (spec(not_video), "source_unreadable",
         "not a readable media file: Invalid data found when processing input"),
        (spec(short_clip, aspect_ratio=AspectRatio(1, 40)), "invalid_job",
         "format[0].aspect_ratio: 1:40 leaves a 6x240 crop of the 320x240 source; each side must be at least 64 px"),
        (spec(short_clip, destination=Destination("/tmp/delivered.mp4")), "invalid_job",
         "format[0].destination.url: the services deliver to s3:// destinations only; local paths are for smartcrop "
         "run"),
    ]
    publisher = EventPublisher(settings)
    for job, _, _ in cases:
        publisher.publish(JobRequested(job=job))
    publisher.flush()
    for job, code, message in cases:
        status = final_status(settings, job.job_id)
        assert (status.status, status.error.code, status.error.message) == (JobState.FAILED, code, message)

    good = spec(short_clip, aspect_ratio=AspectRatio(1, 1), smart_crop=True)
    publisher.publish(JobRequested(job=good))
    publisher.flush()
    status = final_status(settings, good.job_id)
    assert status.status is JobState.COMPLETED, status
    assert "Traceback" not in services.log("detector") + services.log("encoder")


def test_a_destination_secret_never_leaks_when_the_destination_refuses(services, settings, storage, short_clip):
    secret = f"LEAKCHECK-{uuid.uuid4().hex}"
    host = short_clip.split("/")[2]
    job = parse_job({"query": {"job_id": f"leak-{uuid.uuid4().hex[:10]}", "source": short_clip, "format": [
        {"output": "mp4", "aspect_ratio": "1:1", "destination": {
            "url": f"s3://{host}/deliveries-{uuid.uuid4().hex[:6]}/out.mp4", "key": settings.s3_access_key,
            "secret": secret}}]}})
    publisher = EventPublisher(settings)
    publisher.publish(JobRequested(job=job))
    publisher.flush()

    status = final_status(settings, job.job_id)
    assert (status.status, status.stage, status.error.code) == (JobState.FAILED, "encoder", "destination_unreachable")
    assert status.error.message.startswith(f"destination s3://{host}/deliveries-")
    assert status.error.message.endswith("refused the upload: SignatureDoesNotMatch")

    events = list(follow_status(settings, job.job_id, wait=True, timeout=60))
    assert len(events) >= 3 and all(secret not in str(event.to_json()) for event in events)
    for name in ("detector", "tracker", "planner", "encoder"):
        assert secret not in services.log(name), f"the secret is in the {name} log"
    for topic in TOPICS:  # in clear nowhere: the jobs, detections, tracks and plans carry it sealed
        for message in committed_messages(settings, topic):
            assert secret.encode() not in (message.value() or b""), f"the secret is in clear on {topic}"
            assert all(secret.encode() not in (value or b"") for _, value in message.headers() or []), topic
    assert committed_messages(settings, "jobs"), "the scan above read nothing"


@pytest.mark.parametrize("url", ["file:///tmp/smartcrop-delivered.mp4", "/tmp/smartcrop-delivered.mp4"])
def test_a_local_destination_fails_at_the_first_stage_before_any_detection(services, settings, short_clip, url):
    job = spec(short_clip, destination=Destination(url), smart_crop=True)
    publisher = EventPublisher(settings)
    publisher.publish(JobRequested(job=job))
    publisher.flush()
    status = final_status(settings, job.job_id)
    assert (status.status, status.stage, status.error.code, status.error.message) == (
        JobState.FAILED, "detector", "invalid_job", "format[0].destination.url: the services deliver to s3:// "
                                                    "destinations only; local paths are for smartcrop run")
    assert committed_events(settings, "detections", job.job_id) == []
    assert {event.stage for event in committed_events(settings, "status", job.job_id)} == {"detector"}


@pytest.mark.parametrize("url, line", [
    ("file:///tmp/smartcrop-delivered.mp4", "error: format[0].destination.url: the services deliver to s3:// "
                                            "destinations only; local paths are for smartcrop run"),
    ("http://example.com/out.mp4", "error: format[0].destination.url: unsupported scheme 'http'; expected s3:// or "
                                   "a local path"),
])
def test_submit_refuses_a_doomed_job_before_publishing(settings, stack_env, short_clip, tmp_path, url, line):
    job_id = f"doomed-{uuid.uuid4().hex[:10]}"
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"query": {"job_id": job_id, "source": short_clip, "format": [
        {"output": "mp4", "destination": {"url": url}}]}}))
    result = subprocess.run([sys.executable, "-m", "smartcrop", "submit", str(path)],
                            env=service_env(settings, stack_env), capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr.splitlines()) == (2, "", [line])
    assert committed_events(settings, "jobs", job_id) == []
    assert committed_events(settings, "status", job_id) == []
