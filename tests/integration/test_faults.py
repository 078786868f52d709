"""Faults a production deployment meets: a service killed mid-job, the broker restarted, the store down for 20 s.

These run on a stack of their own (a second Kafka and MinIO on free ports, reusing the downloaded binaries), so
stopping the broker or the store never disturbs the session's other tests. Each test checks the outcome the way an
operator would: the job completes, with exactly one ``completed`` status, exactly one event per job on every stage
topic (read_committed), and exactly one output object.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from dataclasses import replace

import pytest

from smartcrop import stack
from smartcrop.core.events import JobState
from smartcrop.runtime.config import Settings
from smartcrop.runtime.kafka import follow_status
from smartcrop.runtime.storage import S3Storage

from ..conftest import shared_media
from .conftest import a_job, committed_events, final_status, four_services, publish_job

pytestmark = pytest.mark.integration

CLIP = "A_man_talking_restaurant_720p_visualvoice.mp4"
LONG_CLIP = "C_pedestrians_vtest_opencvdoc.avi"  # 79 s: the detector is surely mid-job when the fault lands


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory):
    shared = stack.StackConfig.from_env()
    stack.install_kafka(shared, echo=lambda m: print(m, file=sys.stderr))
    stack.install_minio(shared, echo=lambda m: print(m, file=sys.stderr))
    kafka, controller, minio, console = _free_ports(4)
    config = stack.StackConfig(home=tmp_path_factory.mktemp("fault-stack"), kafka_port=kafka,
                               controller_port=controller, minio_port=minio, console_port=console,
                               metrics_base_port=0)
    config.kafka_libs.parent.mkdir(parents=True)
    config.kafka_libs.symlink_to(shared.kafka_libs)
    config.minio_binary.parent.mkdir(parents=True)
    config.minio_binary.symlink_to(shared.minio_binary)
    stack.up(config=config, echo=lambda m: print(m, file=sys.stderr))
    try:
        yield config
    finally:
        stack.down(config=config, echo=lambda m: None)


@pytest.fixture(scope="module")
def fault_settings(fault_stack) -> Settings:
    env = stack.stack_env(fault_stack)
    return replace(Settings.from_env(), kafka_bootstrap=env["SMARTCROP_KAFKA_BOOTSTRAP"],
                   s3_endpoint=env["SMARTCROP_S3_ENDPOINT"], s3_access_key=env["SMARTCROP_S3_ACCESS_KEY"],
                   s3_secret_key=env["SMARTCROP_S3_SECRET_KEY"], secret_key=env["SMARTCROP_SECRET_KEY"],
                   topic_prefix="")


@pytest.fixture(scope="module")
def fault_services(fault_stack, fault_settings, detector_model, tmp_path_factory):
    # the broker's minimum session timeout, so a killed instance's partitions move on in seconds
    with four_services(fault_settings, stack.stack_env(fault_stack), tmp_path_factory.mktemp("fault-service-logs"),
                       extra_env={"SMARTCROP_KAFKA_SESSION_TIMEOUT_MS": "6000",
                                  "SMARTCROP_HOME": str(fault_stack.home)}) as running:
        yield running


@pytest.fixture(scope="module")
def fault_clip(fault_settings, fault_stack):
    return S3Storage.from_settings(fault_settings).put_file(f"inputs/{CLIP}", shared_media(CLIP))


@pytest.fixture(scope="module")
def long_clip(fault_settings, fault_stack):
    return S3Storage.from_settings(fault_settings).put_file(f"inputs/{LONG_CLIP}", shared_media(LONG_CLIP))


def wait_until_running_in(settings: Settings, job_id: str, stage: str, timeout: float = 180) -> float:
    """Block until the job reports progress from inside ``stage``; returns that percent."""
    lo, hi = {"detector": (0, 45), "encoder": (60, 100)}[stage]
    for status in follow_status(settings, job_id, wait=True, timeout=timeout):
        assert not status.status.is_final, f"the job ended before the fault: {status.to_json()}"
        if status.stage == stage and status.status is JobState.RUNNING and lo <= status.percent < hi - 5:
            return status.percent
    raise AssertionError(f"job {job_id} never ran in the {stage}")


def assert_exactly_once(settings: Settings, job_id: str, formats: int = 1) -> None:
    """One event per stage topic, ``formats`` plans, one completed status and one output object per format."""
    assert len(committed_events(settings, "jobs", job_id)) == 1
    assert len(committed_events(settings, "detections", job_id)) == 1
    assert len(committed_events(settings, "tracks", job_id)) == 1
    assert len(committed_events(settings, "plans", job_id)) == formats
    finals = [s for s in committed_events(settings, "status", job_id) if s.status.is_final]
    assert [s.status for s in finals] == [JobState.COMPLETED], [s.to_json() for s in finals]
    (completed,) = finals
    assert len(completed.outputs) == formats
    store = S3Storage.from_settings(settings)
    outputs = [o.object_name for o in store.client.list_objects(settings.s3_bucket, prefix=f"jobs/{job_id}/outputs/",
                                                                recursive=True)]
    assert len(outputs) == formats, outputs


@pytest.mark.parametrize("victim, long, fmt", [
    ("detector", True, {}),
    ("encoder", False, {"preset": "slower"}),  # a slow preset, so the kill lands while the encoder renders
])
def test_a_service_killed_mid_job_is_redone_by_its_restart_exactly_once(fault_services, fault_settings, fault_clip,
                                                                        long_clip, victim, long, fmt):
    job_id = f"kill-{victim}-{os.urandom(3).hex()}"
    publish_job(fault_settings, a_job(long_clip if long else fault_clip, job_id, **fmt))
    wait_until_running_in(fault_settings, job_id, victim)
    fault_services.kill(victim)
    fault_services.start(victim)
    final = final_status(fault_settings, job_id)
    assert final.status is JobState.COMPLETED, final.to_json()
    assert_exactly_once(fault_settings, job_id)
    assert f'smartcrop_messages_total{{outcome="completed",stage="{victim}"}} 1.0' in fault_services.metrics(victim)


def test_a_broker_restart_mid_job_is_ridden_out(fault_stack, fault_services, fault_settings, long_clip):
    job_id = f"broker-{os.urandom(3).hex()}"
    publish_job(fault_settings, a_job(long_clip, job_id))
    wait_until_running_in(fault_settings, job_id, "detector")
    stack.stop_component(fault_stack, "kafka", echo=lambda m: None)
    time.sleep(5)
    stack.start_kafka(fault_stack, echo=lambda m: None)
    final = final_status(fault_settings, job_id)
    assert final.status is JobState.COMPLETED, final.to_json()
    assert_exactly_once(fault_settings, job_id)
    assert all(process.poll() is None for process in fault_services.processes.values())


def test_object_storage_down_for_20_seconds_mid_job_is_ridden_out(fault_stack, fault_services, fault_settings,
                                                                    long_clip):
    job_id = f"storage-{os.urandom(3).hex()}"
    publish_job(fault_settings, a_job(long_clip, job_id))
    wait_until_running_in(fault_settings, job_id, "detector")
    stack.stop_component(fault_stack, "minio", echo=lambda m: None)
    down_at = time.monotonic()
    time.sleep(8)  # longer than the readiness cache
    ready_while_down = fault_services.ready("tracker")
    time.sleep(max(0.0, 20 - (time.monotonic() - down_at)))
    stack.start_minio(fault_stack, echo=lambda m: None)
    final = final_status(fault_settings, job_id)
    assert final.status is JobState.COMPLETED, final.to_json()
    assert not ready_while_down, "a service must not report ready while its object store is down"
    assert_exactly_once(fault_settings, job_id)
    fault_services.wait_ready(timeout=30)


def test_sigterm_mid_job_stops_cleanly_and_commits_nothing_half_done(fault_services, fault_settings, long_clip):
    job_id = f"sigterm-{os.urandom(3).hex()}"
    publish_job(fault_settings, a_job(long_clip, job_id))
    wait_until_running_in(fault_settings, job_id, "detector")
    process = fault_services.processes["detector"]
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    assert "job abandoned (shutdown)" in fault_services.log("detector")
    assert committed_events(fault_settings, "detections", job_id) == []
    fault_services.start("detector")
    final = final_status(fault_settings, job_id)
    assert final.status is JobState.COMPLETED, final.to_json()
    assert_exactly_once(fault_settings, job_id)
