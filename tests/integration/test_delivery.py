"""Delivery guarantees of the running services: poison messages, failed jobs, cancellation and a burst of jobs.

Runs on the session's services (real Kafka and MinIO). Counts are read back from the topics as a read_committed
consumer sees them, so "exactly one" means exactly one to every downstream consumer.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from smartcrop.core.events import JobState, JobStatus, encode_event
from smartcrop.runtime.cancellation import request_cancel
from smartcrop.runtime.kafka import EventPublisher, follow_status
from tests.clips import cut_clip

from ..conftest import shared_media
from .conftest import a_job, cancelled_count, committed_events, final_status, publish_job, smartcrop_cli

pytestmark = pytest.mark.integration

STAGE_INPUTS = {"detector": "jobs", "tracker": "detections", "planner": "tracks", "encoder": "plans"}


@pytest.fixture(scope="module")
def short_clip(storage, tmp_path_factory):
    """Two seconds of a real talking-head clip at 360p: jobs that take seconds, for bursts."""
    target = cut_clip(shared_media("A_man_talking_restaurant_720p_visualvoice.mp4"),
                      tmp_path_factory.mktemp("short") / "short.mp4")
    return storage.put_file("inputs/short-360p.mp4", target)


def test_poison_messages_on_every_input_topic_go_to_the_dead_letter_topic_and_work_goes_on(
        services, settings, short_clip):
    publisher = EventPublisher(settings)
    wrong_event = encode_event(JobStatus("poison-wrong-type", JobState.RUNNING, "x", 1.0))
    poison = {}
    for stage, topic in STAGE_INPUTS.items():
        for kind, value in (("garbage", os.urandom(64)), ("wrong-type", wrong_event), ("empty", b"")):
            key = f"poison-{stage}-{kind}-{os.urandom(2).hex()}"
            poison[key] = (stage, topic, value)
            publisher.producer.produce(settings.topic(topic), key=key.encode(), value=value)
    publisher.flush()
    good = publish_job(settings, a_job(short_clip, f"after-poison-{os.urandom(3).hex()}"))
    assert final_status(settings, good.job_id).status is JobState.COMPLETED

    deadline = time.monotonic() + 60  # poison on other partitions than the good job's may be handled a little later
    while True:
        dead = {m.key().decode(): m for m in committed_events(settings, "dlq") if m.key().decode() in poison}
        if set(dead) == set(poison) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert set(dead) == set(poison)
    for key, message in dead.items():
        stage, topic, value = poison[key]
        headers = {name: value.decode() for name, value in message.headers()}
        assert (message.value() or b"") == value
        assert headers["stage"] == stage and headers["source_topic"] == settings.topic(topic)
        assert int(headers["source_partition"]) >= 0 and int(headers["source_offset"]) >= 0
        assert headers["error"]
    for stage in STAGE_INPUTS:
        assert services.processes[stage].poll() is None, f"{stage} died on a poison message"
        assert f'smartcrop_messages_total{{outcome="dead_letter",stage="{stage}"}} 3.0' in services.metrics(stage)


def test_a_job_that_fails_gets_a_code_and_the_next_job_on_its_partition_completes(services, settings, short_clip):
    impossible = publish_job(settings, a_job(short_clip, f"degenerate-{os.urandom(3).hex()}", aspect_ratio="1:40"),
                             partition=0)
    good = publish_job(settings, a_job(short_clip, f"next-{os.urandom(3).hex()}"), partition=0)
    failed = final_status(settings, impossible.job_id)
    assert failed.status is JobState.FAILED and failed.stage == "detector"
    assert failed.error.code == "invalid_job" and "aspect_ratio" in failed.error.message
    assert final_status(settings, good.job_id).status is JobState.COMPLETED
    assert committed_events(settings, "detections", impossible.job_id) == []


@pytest.fixture(scope="module")
def long_clip(storage) -> str:
    """79 s of pedestrians: the detector works on it for half a minute or more."""
    name = "C_pedestrians_vtest_opencvdoc.avi"
    return storage.put_file(f"inputs/{name}", shared_media(name))


def test_a_cancel_request_stops_the_detector_mid_job_and_nothing_runs_downstream(services, settings, stack_env,
                                                                                  storage, long_clip):
    cancelled_before = cancelled_count(services)
    job = publish_job(settings, a_job(long_clip, f"cancel-{os.urandom(3).hex()}"))
    for status in follow_status(settings, job.job_id, wait=True, timeout=120):
        if status.stage == "detector" and status.percent > 2:
            break
    request_cancel(storage, job.job_id)
    final = final_status(settings, job.job_id)
    assert (final.status, final.stage, final.error.code) == (JobState.CANCELLED, "detector", "cancelled")
    assert committed_events(settings, "detections", job.job_id) == []
    assert cancelled_count(services) == cancelled_before + 1

    again = smartcrop_cli(settings, stack_env, "cancel", job.job_id)
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "cancelled"


def test_smartcrop_cancel_ends_a_running_job_as_cancelled(services, settings, stack_env, long_clip):
    # the long clip: a 9 s clip can pass all four stages before the command has started
    job = publish_job(settings, a_job(long_clip, f"cancel-cli-{os.urandom(3).hex()}"))
    next(follow_status(settings, job.job_id, wait=True, timeout=120))
    result = smartcrop_cli(settings, stack_env, "cancel", job.job_id, "--wait", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    requested, final = (json.loads(line) for line in result.stdout.splitlines())
    assert requested == {"job_id": job.job_id, "cancel": "requested"}
    assert final["status"] == "cancelled" and final["error"]["code"] == "cancelled"
    downstream = {"detector": "detections", "tracker": "tracks", "planner": "plans"}.get(final["stage"])
    if downstream:
        assert committed_events(settings, downstream, job.job_id) == []
    assert not [s for s in committed_events(settings, "status", job.job_id) if s.status is JobState.COMPLETED]


def test_cancel_refuses_unknown_and_finished_jobs_with_one_clear_line(services, settings, stack_env, short_clip):
    unknown = smartcrop_cli(settings, stack_env, "cancel", "no-such-job")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (f"error: no job 'no-such-job': it has no status on "
                                      f"{settings.topic('status')}")
    done = publish_job(settings, a_job(short_clip, f"done-{os.urandom(3).hex()}"))
    assert final_status(settings, done.job_id).status is JobState.COMPLETED
    finished = smartcrop_cli(settings, stack_env, "cancel", done.job_id)
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines()[-1] == (f"error: job {done.job_id} has already completed; there is "
                                                         "nothing to cancel")


def test_twenty_jobs_at_once_all_complete_exactly_once(services, settings, short_clip):
    started = time.monotonic()
    jobs = [publish_job(settings, a_job(short_clip, f"burst-{i:02d}-{os.urandom(3).hex()}",
                                        aspect_ratio=("9:16", "1:1", "4:5")[i % 3]))
            for i in range(20)]
    ids = {job.job_id for job in jobs}
    finals = {job.job_id: final_status(settings, job.job_id, timeout=600) for job in jobs}
    elapsed = time.monotonic() - started
    assert {job_id: s.status for job_id, s in finals.items()} == dict.fromkeys(ids, JobState.COMPLETED)

    for topic in ("jobs", "detections", "tracks", "plans"):
        counts = Counter(event.job_id for event in committed_events(settings, topic) if event.job_id in ids)
        assert counts == Counter(dict.fromkeys(ids, 1)), f"{topic}: {counts}"
    completed = Counter(s.job_id for s in committed_events(settings, "status")
                        if s.job_id in ids and s.status is JobState.COMPLETED)
    assert completed == Counter(dict.fromkeys(ids, 1))
    outputs = [uri for s in finals.values() for uri in s.outputs]
    assert len(set(outputs)) == 20
    print(f"20 jobs in {elapsed:.1f}s ({20 * 60 / elapsed:.1f} jobs/min)", file=sys.stderr)
    lag = [sample for family in text_string_to_metric_families(services.metrics("detector"))
           for sample in family.samples if sample.name == "smartcrop_consumer_lag"
           and sample.labels["topic"] == settings.topic("jobs")]
    assert {s.labels["partition"] for s in lag} == {"0", "1", "2"}, "lag is reported for every owned partition"
    assert all(s.value >= 0 for s in lag)
