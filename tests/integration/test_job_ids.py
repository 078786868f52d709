"""A job id is an idempotency key, on the real stack with the four services: the same job again is a replay that
runs nothing; a different job under a taken id is refused (``job_id_conflict``) and leaves the first job alone.

Replays are sent both as a user does (``smartcrop submit`` again) and as an upstream system does (a JobRequested
straight onto the jobs topic). Counts are read back as a read_committed consumer sees them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smartcrop.core.events import JobRequested, JobState
from smartcrop.core.job import parse_job
from smartcrop.runtime.kafka import EventPublisher, follow_status
from smartcrop.runtime.storage import S3Location
from tests.clips import cut_clip

from ..conftest import shared_media
from .conftest import a_job, committed_events, service_env

pytestmark = pytest.mark.integration

LONG_CLIP = "C_pedestrians_vtest_opencvdoc.avi"  # 79 s: surely still running when the replay arrives
FAST = {"preset": "ultrafast"}


def smartcrop_submit(settings, stack_env, tmp_path, job: dict, *, wait: bool, timeout: float = 900):
    path = tmp_path / f"job-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(job))
    command = [sys.executable, "-m", "smartcrop", "submit", str(path)]
    if wait:
        command += ["--wait", "--timeout", str(timeout)]
    return subprocess.run(command, env=service_env(settings, stack_env), capture_output=True, text=True,
                          timeout=timeout + 60)


def printed(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def upstream_replay(settings, job: dict) -> None:
    """What an upstream system retrying does: the JobRequested again, straight onto the jobs topic."""
    publisher = EventPublisher(settings)
    publisher.publish_confirmed(JobRequested(job=parse_job(job)))


def messages(services, outcome: str) -> float:
    for family in text_string_to_metric_families(services.metrics("detector")):
        for sample in family.samples:
            if (sample.name == "smartcrop_messages_total" and sample.labels["stage"] == "detector"
                    and sample.labels["outcome"] == outcome):
                return sample.value
    raise AssertionError(f"no smartcrop_messages_total for outcome {outcome}")


def wait_for_count(services, outcome: str, at_least: float, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while messages(services, outcome) < at_least:
        assert time.monotonic() < deadline, f"the detector counted no {outcome} message in {timeout}s"
        time.sleep(0.5)


def per_topic(settings, job_id: str) -> dict[str, int]:
    return {topic: len(committed_events(settings, topic, job_id)) for topic in ("jobs", "detections", "tracks",
                                                                                "plans")}


def stat(storage, uri: str):
    location = S3Location.parse(uri)
    info = storage.client.stat_object(location.bucket, location.key)
    return info.etag, info.last_modified


def one_run(settings, job_id: str) -> list:
    """The job's status events, checked to be those of exactly one run that completed."""
    statuses = committed_events(settings, "status", job_id)
    assert [s.status for s in statuses].count(JobState.COMPLETED) == 1, statuses
    percents = [s.percent for s in statuses]
    assert percents == sorted(percents), statuses  # a second run would start again from 0
    assert statuses[-1].status is JobState.COMPLETED
    return statuses


@pytest.fixture(scope="module")
def short_source(storage, tmp_path_factory):
    target = cut_clip(shared_media("A_man_talking_restaurant_720p_visualvoice.mp4"),
                      tmp_path_factory.mktemp("short") / "short.mp4")
    return storage.put_file("inputs/job-ids-short-360p.mp4", target)


@pytest.fixture(scope="module")
def finished(services, settings, stack_env, short_source, tmp_path_factory):
    """One job submitted and run to completion: (its document, its final status as printed)."""
    job = a_job(short_source, f"replay-{uuid.uuid4().hex[:8]}", **FAST)
    result = smartcrop_submit(settings, stack_env, tmp_path_factory.mktemp("first"), job, wait=True)
    assert result.returncode == 0, result.stderr
    final = printed(result)[-1]
    assert final["status"] == "completed"
    return job, final


def test_the_same_job_again_is_a_replay_that_runs_nothing(services, settings, stack_env, storage, finished,
                                                          tmp_path):
    job, first = finished
    job_id = job["query"]["job_id"]
    (output,) = first["outputs"]
    before = stat(storage, output)
    replayed = messages(services, "replayed")

    again = smartcrop_submit(settings, stack_env, tmp_path, job, wait=True)
    assert again.returncode == 0, again.stderr
    assert printed(again)[0] == {"job_id": job_id}
    assert printed(again)[-1]["status"] == "completed" and printed(again)[-1]["outputs"] == [output]
    upstream_replay(settings, job)
    wait_for_count(services, "replayed", replayed + 1)

    assert per_topic(settings, job_id) == {"jobs": 2, "detections": 1, "tracks": 1, "plans": 1}  # 2: the upstream's
    one_run(settings, job_id)
    assert stat(storage, output) == before
    outputs = [o.object_name for o in storage.client.list_objects(storage.bucket, prefix=f"jobs/{job_id}/",
                                                                  recursive=True) if o.object_name.endswith(".mp4")]
    assert len(outputs) == 1


def test_a_different_job_under_a_taken_id_is_refused_and_the_first_is_untouched(
        services, settings, stack_env, storage, finished, tmp_path):
    job, first = finished
    job_id = job["query"]["job_id"]
    (output,) = first["outputs"]
    before = (per_topic(settings, job_id), committed_events(settings, "status", job_id), stat(storage, output))
    other = a_job(job["query"]["source"], job_id, aspect_ratio="1:1", **FAST)

    refused = smartcrop_submit(settings, stack_env, tmp_path, other, wait=True)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "job_id_conflict" in refused.stderr and job_id in refused.stderr

    conflicts = messages(services, "job_id_conflict")
    upstream_replay(settings, other)  # the same conflict straight onto Kafka
    wait_for_count(services, "job_id_conflict", conflicts + 1)
    (dead,) = [m for m in committed_events(settings, "dlq") if m.key() == job_id.encode()]
    assert dict((k, v.decode()) for k, v in dead.headers())["error"] == "job_id_conflict"

    jobs_before, statuses_before, output_before = before
    assert per_topic(settings, job_id) == {**jobs_before, "jobs": jobs_before["jobs"] + 1}  # only the upstream's
    assert committed_events(settings, "status", job_id) == statuses_before
    assert stat(storage, output) == output_before


def test_a_replay_while_the_first_run_is_in_progress_follows_that_run(services, settings, stack_env, storage,
                                                                       tmp_path):
    source = storage.put_file(f"inputs/{LONG_CLIP}", shared_media(LONG_CLIP))
    job = a_job(source, f"in-progress-{uuid.uuid4().hex[:8]}", width=180, height=320, **FAST)
    job_id = job["query"]["job_id"]
    first = smartcrop_submit(settings, stack_env, tmp_path, job, wait=False)
    assert first.returncode == 0, first.stderr
    for status in follow_status(settings, job_id, wait=True, timeout=300):
        if status.stage == "detector" and status.status is JobState.RUNNING and status.percent > 0:
            break
    else:
        raise AssertionError("the first run never got going")
    replayed = messages(services, "replayed")
    upstream_replay(settings, job)
    again = smartcrop_submit(settings, stack_env, tmp_path, job, wait=True)
    assert again.returncode == 0, again.stderr
    final = printed(again)[-1]
    assert final["status"] == "completed"
    wait_for_count(services, "replayed", replayed + 1)

    counts = per_topic(settings, job_id)
    assert counts["jobs"] == 2 and counts["detections"] == counts["tracks"] == counts["plans"] == 1, counts
    statuses = one_run(settings, job_id)
    assert final["outputs"] == list(statuses[-1].outputs)
