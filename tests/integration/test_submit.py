"""``smartcrop submit`` as a user runs it: the job id is printed only once the broker acknowledged the job.

Each test gets topics of its own (a topic prefix of its own) on the real local Kafka, so a refusing topic or a
missing one affects nobody else.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from dataclasses import replace

import pytest
from confluent_kafka.admin import NewTopic

from smartcrop.runtime.config import TOPICS
from smartcrop.runtime.kafka import admin_client, ensure_topics

from .conftest import committed_events, free_port, service_env

pytestmark = pytest.mark.integration


def run_submit(settings, stack_env, tmp_path, job_id: str, **env):
    path = tmp_path / f"{job_id}.json"
    path.write_text(json.dumps({"query": {"job_id": job_id, "source": "s3://smartcrop/inputs/none.mp4", "format": [
        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1}]}}))
    return subprocess.run([sys.executable, "-m", "smartcrop", "submit", str(path)],
                          env={**service_env(settings, stack_env), **env}, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def own_prefix(settings):
    """Settings on a topic prefix of this test's own; its topics are deleted afterwards."""
    mine = replace(settings, topic_prefix=f"submit-{uuid.uuid4().hex[:8]}.")
    yield mine
    admin_client(mine).delete_topics([mine.topic(name) for name in TOPICS])


def assert_failed_loudly(result, *codes: str) -> None:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert any(code in lines[0] for code in codes), lines[0]


def test_a_topic_that_refuses_the_job_fails_submit_and_names_the_error(own_prefix, stack_env, tmp_path):
    admin = admin_client(own_prefix)
    for future in admin.create_topics([NewTopic(own_prefix.topic("jobs"), num_partitions=1, replication_factor=1,
                                                config={"max.message.bytes": "100"})]).values():
        future.result()
    ensure_topics(own_prefix, partitions=1)
    result = run_submit(own_prefix, stack_env, tmp_path, f"too-large-{uuid.uuid4().hex[:6]}")
    assert_failed_loudly(result, "MSG_SIZE_TOO_LARGE")
    assert committed_events(own_prefix, "jobs") == []


def test_topics_that_do_not_exist_fail_submit_at_once(own_prefix, stack_env, tmp_path):
    result = run_submit(own_prefix, stack_env, tmp_path, f"no-topic-{uuid.uuid4().hex[:6]}")
    assert_failed_loudly(result, "UNKNOWN_TOPIC_OR_PART")
    existing = admin_client(own_prefix).list_topics(timeout=10).topics
    assert not [name for name in existing if name.startswith(own_prefix.topic_prefix)]  # nothing auto-created


def test_a_broker_that_is_down_fails_submit_within_the_delivery_timeout(settings, stack_env, tmp_path):
    result = run_submit(settings, stack_env, tmp_path, f"no-broker-{uuid.uuid4().hex[:6]}",
                        SMARTCROP_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
                        SMARTCROP_KAFKA_DELIVERY_TIMEOUT_MS="3000")
    assert_failed_loudly(result, "_TRANSPORT", "_TIMED_OUT", "_MSG_TIMED_OUT", "_ALL_BROKERS_DOWN")


def test_a_submit_retried_after_the_broker_was_down_delivers_the_job_once(own_prefix, stack_env, tmp_path):
    ensure_topics(own_prefix, partitions=1)
    job_id = f"retried-{uuid.uuid4().hex[:6]}"
    down = run_submit(own_prefix, stack_env, tmp_path, job_id, SMARTCROP_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
                      SMARTCROP_KAFKA_DELIVERY_TIMEOUT_MS="3000")
    assert down.returncode == 1 and down.stdout == ""
    retried = run_submit(own_prefix, stack_env, tmp_path, job_id)
    assert retried.returncode == 0, retried.stderr
    assert json.loads(retried.stdout) == {"job_id": job_id}
    assert [event.job_id for event in committed_events(own_prefix, "jobs")] == [job_id]
    assert [event.status.value for event in committed_events(own_prefix, "status")] == ["queued"]
