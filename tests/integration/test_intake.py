"""How a stage runtime takes in messages that arrive while it works: it holds them, in order, and handles them next,
without pausing its consumer (a pause makes librdkafka drop its prefetched messages and fetch again about a second
after the resume, once per job); a rebalance mid-job hands the held messages of the partitions it loses to their
new owner, who handles them instead.

The runtime is :class:`StageService`, the one the four services use, on threads against the session's broker and
store, with a handler that blocks on the first job until the test lets it go.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import replace

import pytest

from smartcrop.core.events import JobState, JobStatus
from smartcrop.core.stage import Stage
from smartcrop.runtime import service as service_module
from smartcrop.runtime.config import TOPICS
from smartcrop.runtime.kafka import EventPublisher, admin_client, ensure_topics
from smartcrop.runtime.service import StageService

from .conftest import committed_events, tracks_ready

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def own_topics(settings, name: str, partitions: int):
    """Topics of the test's own, so no other runtime of the session sees its events."""
    own = replace(settings, topic_prefix=f"{settings.topic_prefix}{name}.")
    ensure_topics(own, partitions=partitions)
    try:
        yield own
    finally:
        admin = admin_client(own)
        for deleted in admin.delete_topics([own.topic(topic) for topic in TOPICS]).values():
            deleted.result()


def wait_until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class GatedStage:
    """A stage on the tracks topic that completes each job, recording who handled what. Its first call for the job
    named ``gate`` blocks until :attr:`release` is set or the runtime stops the job; later calls pass."""

    def __init__(self, gate: str):
        self.gate = gate
        self.started = threading.Event()
        self.release = threading.Event()
        self.handled: list[tuple[str, str]] = []  # (instance, job id) per completed call, in order

    def runtime(self, settings, instance: str) -> StageService:
        def handle(event, ctx):
            if event.job_id == self.gate and not self.started.is_set():
                self.started.set()
                while not self.release.wait(0.05):
                    ctx.check_cancelled()  # a revoke stops the job here, uncommitted
            self.handled.append((instance, event.job_id))
            return [JobStatus(event.job_id, JobState.COMPLETED, "echo", 100.0)]

        return StageService(Stage("echo", "tracks", handle, (0.0, 100.0)),
                            replace(settings, instance_id=f"intake-{instance}"))


@contextlib.contextmanager
def running(service: StageService):
    thread = threading.Thread(target=service.run, name=service.settings.instance_id, daemon=True)
    thread.start()
    try:
        yield service
    finally:
        service.stop()
        thread.join(60)


def publish(settings, job_ids: list[str]) -> None:
    publisher = EventPublisher(settings)
    for job_id in job_ids:
        publisher.publish(tracks_ready(job_id))
    publisher.flush()


def completions(settings, job_ids: set[str]) -> Counter:
    """Committed ``completed`` statuses per job."""
    return Counter(s.job_id for s in committed_events(settings, "status")
                   if isinstance(s, JobStatus) and s.job_id in job_ids and s.status is JobState.COMPLETED)


def test_messages_that_arrive_during_a_job_are_held_and_handled_next_in_order_each_once(settings):
    with own_topics(settings, "intake-order", partitions=1) as own:
        jobs = [f"held-{i}-{time.monotonic_ns()}" for i in range(6)]
        stage = GatedStage(gate=jobs[0])
        with running(stage.runtime(own, "a")) as runtime:
            publish(own, jobs[:1])
            assert stage.started.wait(60), "the first job never started"
            publish(own, jobs[1:])
            # taken in while the first job runs, not fetched again after it
            wait_until(lambda: len(runtime.held) == 5, timeout=30, what="the five later jobs held during the first")
            assert not runtime.paused
            stage.release.set()
            wait_until(lambda: len(stage.handled) == 6, timeout=60, what="all six jobs handled")
            assert [job for _, job in stage.handled] == jobs
            assert not runtime.held
        assert completions(own, set(jobs)) == Counter(dict.fromkeys(jobs, 1))


def test_beyond_the_hold_limit_the_consumer_pauses_and_resumes_where_the_held_messages_end(settings, monkeypatch):
    monkeypatch.setattr(service_module, "HOLD_LIMIT", 2)
    with own_topics(settings, "intake-limit", partitions=1) as own:
        jobs = [f"limit-{i}-{time.monotonic_ns()}" for i in range(7)]
        stage = GatedStage(gate=jobs[0])
        with running(stage.runtime(own, "a")) as runtime:
            publish(own, jobs[:1])
            assert stage.started.wait(60), "the first job never started"
            publish(own, jobs[1:])
            wait_until(lambda: runtime.paused, timeout=30, what="the pause at the hold limit")
            time.sleep(1.0)  # a paused consumer takes in nothing more
            assert len(runtime.held) == 2
            stage.release.set()
            wait_until(lambda: len(stage.handled) == 7, timeout=60, what="all seven jobs handled")
            assert [job for _, job in stage.handled] == jobs, "nothing skipped or repeated across the pause"
            assert not runtime.paused
        assert completions(own, set(jobs)) == Counter(dict.fromkeys(jobs, 1))


def test_a_rebalance_mid_job_hands_the_held_messages_to_the_new_owner_and_each_job_completes_once(settings):
    with own_topics(settings, "intake-rebalance", partitions=4) as own:
        jobs = [f"moved-{i}-{time.monotonic_ns()}" for i in range(12)]
        stage = GatedStage(gate=jobs[0])
        with running(stage.runtime(own, "a")) as first:
            publish(own, jobs[:1])
            assert stage.started.wait(60), "the first job never started"
            publish(own, jobs[1:])
            wait_until(lambda: len(first.held) == 11, timeout=30, what="the later jobs held by the first instance")
            # the second joins the group: the partitions are shared out again, which stops the first job (its
            # redo passes the gate) and takes the held messages of every partition the first instance loses
            with running(stage.runtime(own, "b")):
                wait_until(lambda: {job for _, job in stage.handled} == set(jobs), timeout=120,
                           what="every job handled by one of the two")
                time.sleep(2.0)  # a held message handled twice would show up now
                by_instance = Counter(instance for instance, _ in stage.handled)
                assert by_instance["b"] > 0, "the second instance took over some partitions"
                handled = Counter(job for _, job in stage.handled)
                assert max(handled.values()) == 1, f"a job handled by the old owner and the new one: {handled}"
            stage.release.set()
        assert completions(own, set(jobs)) == Counter(dict.fromkeys(jobs, 1))
