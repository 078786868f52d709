"""Cancelling on Kafka: a JobControl request on ``smartcrop.control.v1`` stops a job like the marker object does.

Runs on the session's four real services. No marker object is written in these tests, so only the control topic
can have stopped the jobs.
"""

from __future__ import annotations

import json
import os

import pytest

from smartcrop.core.events import ControlAction, JobControl, JobState
from smartcrop.runtime.cancellation import marker_key
from smartcrop.runtime.kafka import EventPublisher, follow_status

from ..conftest import shared_media
from .conftest import a_job, cancelled_count, committed_events, final_status, publish_job, smartcrop_cli

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def long_clip(storage) -> str:
    """79 s of pedestrians: the detector works on it for half a minute or more."""
    name = "C_pedestrians_vtest_opencvdoc.avi"
    return storage.put_file(f"inputs/{name}", shared_media(name))


def job_objects(storage, job_id: str) -> set[str]:
    prefix = f"jobs/{job_id}/"
    return {o.object_name[len(prefix):] for o in storage.client.list_objects(storage.bucket, prefix, recursive=True)}


def test_a_cancel_on_the_control_topic_stops_the_detector_mid_job_and_nothing_is_output(services, settings,
                                                                                        storage, long_clip):
    cancelled_before = cancelled_count(services)
    job = publish_job(settings, a_job(long_clip, f"kafka-cancel-{os.urandom(3).hex()}"))
    for status in follow_status(settings, job.job_id, wait=True, timeout=120):
        if status.stage == "detector" and status.percent > 2:
            break
    EventPublisher(settings).publish_confirmed(JobControl(job.job_id, ControlAction.CANCEL, "upstream changed"))
    final = final_status(settings, job.job_id)
    assert (final.status, final.stage, final.error.code, final.outputs) == (JobState.CANCELLED, "detector",
                                                                           "cancelled", ())
    assert final.percent < 45.0
    for topic in ("detections", "tracks", "plans"):
        assert committed_events(settings, topic, job.job_id) == []
    assert not [s for s in committed_events(settings, "status", job.job_id) if s.status is JobState.COMPLETED]
    assert job_objects(storage, job.job_id) <= {"job.json", "started.json"}  # no detections, plans or results
    assert not storage.exists(marker_key(job.job_id))
    assert cancelled_count(services) == cancelled_before + 1


def test_a_job_cancelled_on_the_control_topic_before_it_is_consumed_never_starts(services, settings, storage,
                                                                                uploaded_clip):
    job_id = f"kafka-precancel-{os.urandom(3).hex()}"
    EventPublisher(settings).publish_confirmed(JobControl(job_id, ControlAction.CANCEL, "never mind"))
    publish_job(settings, a_job(uploaded_clip, job_id))
    final = final_status(settings, job_id)
    assert (final.status, final.stage, final.percent) == (JobState.CANCELLED, "detector", 0.0)
    assert committed_events(settings, "detections", job_id) == []


def test_smartcrop_cancel_via_kafka_publishes_the_request_and_writes_no_marker(services, settings, stack_env,
                                                                              storage, uploaded_clip):
    job = publish_job(settings, a_job(uploaded_clip, f"kafka-cli-{os.urandom(3).hex()}"))
    next(follow_status(settings, job.job_id, wait=True, timeout=120))
    result = smartcrop_cli(settings, stack_env, "cancel", job.job_id, "--via", "kafka", "--reason", "by cli",
                           "--wait", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    requested, final = (json.loads(line) for line in result.stdout.splitlines())
    assert requested == {"job_id": job.job_id, "cancel": "requested"}
    assert final["status"] == "cancelled" and final["error"]["code"] == "cancelled"
    (request,) = committed_events(settings, "control", job.job_id)
    assert (request.job_id, request.action, request.reason) == (job.job_id, ControlAction.CANCEL, "by cli")
    assert not storage.exists(marker_key(job.job_id))
