"""The runner's parts that need no broker: outcomes, the retry decision, and the committer's state machine."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from smartcrop.core.errors import BROKER_UNAVAILABLE, CANCELLED, INTERNAL, Failure
from smartcrop.core.events import JobState, JobStatus
from smartcrop.core.stage import Stage
from smartcrop.runtime import metrics
from smartcrop.runtime.attempt import Decision, JobAttempts, decide, failure_of
from smartcrop.runtime.committer import Committer, Record
from smartcrop.runtime.config import Settings
from smartcrop.runtime.outcome import Outcome

OFFSET = TopicPartition("smartcrop.jobs.v1", 2, 42)
RECORD = Record("smartcrop.detections.v1", b"job-1", b"value")


def test_the_outcome_labels_are_the_enum_values():
    assert metrics.OUTCOMES == ("completed", "failed", "cancelled", "abandoned", "dead_letter", "replayed",
                                "job_id_conflict")
    assert Outcome("dead_letter") is Outcome.DEAD_LETTER and Outcome.FAILED == "failed"


def test_only_jobs_that_ran_to_an_end_count_as_stage_durations():
    assert {o for o in Outcome if o.ran} == {Outcome.COMPLETED, Outcome.FAILED, Outcome.CANCELLED}


def test_a_transient_fault_is_retried_while_attempts_are_left():
    failure = Failure(BROKER_UNAVAILABLE, "down", transient=True)
    assert [decide(failure, attempt, 3) for attempt in range(3)] == [Decision.RETRY, Decision.RETRY, Decision.FAIL]


def test_a_broker_fault_mid_job_is_the_environments_and_any_other_error_keeps_its_code():
    assert failure_of(KafkaException(KafkaError(KafkaError._TRANSPORT, "down"))) == \
        Failure(BROKER_UNAVAILABLE, "KafkaError{code=_TRANSPORT,val=-195,str=\"down\"}", transient=True)
    assert failure_of(ValueError("bad")) == Failure(INTERNAL, "ValueError: bad", transient=False)


def test_a_permanent_fault_fails_at_the_first_attempt():
    assert decide(Failure(INTERNAL, "bug", transient=False), 0, 3) is Decision.FAIL


def test_a_cancelled_job_is_cancelled_not_retried_nor_failed():
    assert decide(Failure(CANCELLED, "asked", transient=True), 0, 3) is Decision.CANCEL


class StoppedAfterTheHandler:
    """A consumer loop whose stop (``reason``) arrives after the handler has returned, before the attempt looks."""

    def __init__(self, reason: str):
        self.reason, self.attempts = reason, None
        self.stopping = threading.Event()
        self.committed, self.rewound = [], []

    def wait_polling(self, future) -> None:
        wait([future])
        self.stopping.set()
        self.attempts.stop(self.reason)

    def sleep_polling(self, seconds: float) -> None: ...
    def send_status(self, status) -> None: ...

    def rewind(self, message) -> None:
        self.rewound.append(message)

    def commit(self, outputs, message, *, dlq=None) -> None:
        self.committed.append((outputs, message))


def attempt_stopped_after_the_handler(reason: str) -> StoppedAfterTheHandler:
    done = JobStatus("job-1", JobState.COMPLETED, "echo", 100.0)
    stage = Stage("echo", "tracks", lambda event, ctx: [done], (0.0, 100.0))
    host = StoppedAfterTheHandler(reason)
    with ThreadPoolExecutor(max_workers=1) as executor:
        host.attempts = JobAttempts(stage, Settings(), box=None, executor=executor, host=host)
        host.attempts.storage = SimpleNamespace(exists=lambda key: False)
        host.outcome = host.attempts.run(SimpleNamespace(job_id="job-1"), "message")
    return host


def test_a_job_whose_handler_returned_before_a_shutdown_is_committed_not_redone():
    host = attempt_stopped_after_the_handler("shutdown")
    assert host.outcome is Outcome.COMPLETED
    assert [(status.status, message) for (status,), message in host.committed] == [(JobState.COMPLETED, "message")]
    assert host.rewound == []


@pytest.mark.parametrize("reason", ["revoked", "lost"])
def test_a_job_whose_partition_moved_is_abandoned_even_when_its_handler_returned(reason):
    host = attempt_stopped_after_the_handler(reason)
    assert host.outcome is Outcome.ABANDONED
    assert host.committed == [] and host.rewound == ["message"]


class FakeProducer:
    """Records transactional calls; ``fail`` maps a call name to the errors its next calls raise."""

    def __init__(self, fail: dict[str, list[BaseException]] | None = None, hang: str | None = None):
        self.calls: list[str] = []
        self.fail = fail or {}
        self.hang = hang
        self.released = threading.Event()

    def _call(self, name: str, *args, **kwargs) -> None:
        self.calls.append(name)
        if name == self.hang:
            self.released.wait()
        if self.fail.get(name):
            raise self.fail[name].pop(0)

    def __getattr__(self, name):
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)


def committer_over(*producers: FakeProducer, attempts: int = 3, watchdog: float = 5.0):
    made, waits, inits, retries = list(producers), [], [], []

    def new_producer():
        return made.pop(0)

    committer = Committer(new_producer, init=inits.append, wait=waits.append, on_retry=lambda: retries.append(1),
                          attempts=attempts, watchdog_seconds=watchdog)
    committer.start()
    return committer, waits, inits, retries


def kafka_error(code: int, fatal: bool = False) -> KafkaException:
    return KafkaException(KafkaError(code, "test", fatal=fatal))


def test_a_commit_is_one_transaction_with_the_records_and_the_offset():
    producer = FakeProducer()
    committer, waits, inits, _ = committer_over(producer)
    assert committer.commit([RECORD], OFFSET, "group") is True
    assert producer.calls == ["begin_transaction", "produce", "send_offsets_to_transaction", "commit_transaction"]
    assert inits == [producer] and waits == []


def test_a_retriable_failure_aborts_backs_off_and_commits_again_on_the_same_producer():
    producer = FakeProducer(fail={"commit_transaction": [kafka_error(KafkaError._TIMED_OUT)]})
    committer, waits, inits, retries = committer_over(producer)
    assert committer.commit([RECORD], OFFSET, "group") is True
    assert producer.calls == ["begin_transaction", "produce", "send_offsets_to_transaction", "commit_transaction",
                              "abort_transaction",
                              "begin_transaction", "produce", "send_offsets_to_transaction", "commit_transaction"]
    assert len(waits) == 1 and retries == [1] and inits == [producer]


def test_a_fatal_failure_replaces_the_producer_without_aborting():
    first = FakeProducer(fail={"send_offsets_to_transaction": [kafka_error(KafkaError._FATAL, fatal=True)]})
    second = FakeProducer()
    committer, _, inits, _ = committer_over(first, second)
    assert committer.commit([RECORD], OFFSET, "group") is True
    assert "abort_transaction" not in first.calls and inits == [first, second]
    assert second.calls[-1] == "commit_transaction"


def test_a_lost_partition_is_not_committed_again():
    producer = FakeProducer(fail={"send_offsets_to_transaction": [kafka_error(KafkaError.ILLEGAL_GENERATION)]})
    committer, waits, _, _ = committer_over(producer)
    assert committer.commit([RECORD], OFFSET, "group") is False
    assert producer.calls.count("begin_transaction") == 1 and waits == []


def test_the_committer_gives_up_after_its_attempts():
    producer = FakeProducer(fail={"commit_transaction": [kafka_error(KafkaError._TIMED_OUT) for _ in range(3)]})
    committer, waits, _, retries = committer_over(producer, attempts=3)
    assert committer.commit([RECORD], OFFSET, "group") is False
    assert producer.calls.count("commit_transaction") == 3 and len(waits) == 3 and len(retries) == 3


def test_a_stuck_producer_is_replaced_and_the_commit_made_on_the_new_one():
    stuck, fresh = FakeProducer(hang="send_offsets_to_transaction"), FakeProducer()
    committer, _, inits, retries = committer_over(stuck, fresh, watchdog=0.2)
    try:
        assert committer.commit([RECORD], OFFSET, "group") is True
    finally:
        stuck.released.set()
    assert inits == [stuck, fresh] and committer.producer is fresh and retries == [1]
    assert fresh.calls == ["begin_transaction", "produce", "send_offsets_to_transaction", "commit_transaction"]


def test_after_a_renewal_the_next_commit_starts_from_a_fresh_producer_once():
    old, new = FakeProducer(), FakeProducer()
    committer, _, inits, _ = committer_over(old, new)
    committer.renew()
    assert committer.commit([RECORD], OFFSET, "group") and committer.commit([RECORD], OFFSET, "group")
    assert old.calls == [] and new.calls.count("commit_transaction") == 2 and inits == [old, new]
