"""The runner's parts that need no broker: outcomes, the retry decision, the committer's state machine, and the
consumer loop while the transactional producer is in trouble."""

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
    """Records transactional calls (``init_transactions`` apart, as ``inited``); ``fail`` maps a call name to the
    errors its next calls raise; ``hang`` names a call that blocks until ``released`` is set."""

    def __init__(self, fail: dict[str, list[BaseException]] | None = None, hang: str | None = None):
        self.calls: list[str] = []
        self.inited = False
        self.fail = fail or {}
        self.hang = hang
        self.released = threading.Event()

    def _call(self, name: str, *args, **kwargs) -> None:
        if name != "init_transactions":
            self.calls.append(name)
        if name == self.hang:
            self.released.wait()
        if self.fail.get(name):
            raise self.fail[name].pop(0)
        if name == "init_transactions":
            self.inited = True

    def __getattr__(self, name):
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)


def committer_over(*producers: FakeProducer, attempts: int = 3, watchdog: float = 5.0):
    """A committer over these producers, in order, started; answers it, the waits between attempts, the producers
    initialised so far (a live list) and the retries counted."""
    made, waits, retries = list(producers), [], []

    def new_producer():
        return made.pop(0)

    committer = Committer(new_producer, poll=lambda: None, wait=waits.append, on_retry=lambda: retries.append(1),
                          attempts=attempts, watchdog_seconds=watchdog)
    committer.start()
    inits = InitedList(producers)
    return committer, waits, inits, retries


class InitedList:
    """The producers whose transactions were initialised, compared as a list when asked."""

    def __init__(self, producers):
        self.producers = producers

    def __eq__(self, other):
        return [p for p in self.producers if p.inited] == other

    def __repr__(self):
        return repr([p for p in self.producers if p.inited])


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


# ---- the consumer loop while the transactional producer is in trouble -----------------------------------------------


class GroupMember:
    """The stage's consumer as librdkafka runs it: once its group session has ended (``end_session``, as when the
    broker goes away), the next poll hands the assignment back through on_lost, and only a later poll rejoins the
    group (on_assign). Nothing happens between polls: a consumer that is not polled never rejoins."""

    def __init__(self, service, topic: str, partitions: int = 6):
        self.service = service
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.owned = list(self.partitions)
        self.session_ended = threading.Event()
        self.events: list[str] = []
        self.polls = 0
        self.seeks: list[tuple[str, int, int]] = []

    def end_session(self) -> None:
        self.session_ended.set()

    def poll(self, timeout: float):
        self.polls += 1
        if self.session_ended.is_set() and self.owned:
            self.session_ended.clear()
            lost, self.owned = self.owned, []
            self.events.append("lost")
            self.service._on_lost(self, lost)
        elif not self.owned and self.events[-1:] == ["lost"]:
            self.events.append("assigned")
            self.service._on_assign(self, list(self.partitions))
        else:
            threading.Event().wait(min(timeout, 0.05))
        return None

    def assign(self, partitions) -> None:
        self.owned = list(partitions)

    def assignment(self):
        return list(self.owned)

    def seek(self, partition) -> None:
        self.seeks.append((partition.topic, partition.partition, partition.offset))

    def pause(self, partitions) -> None: ...
    def resume(self, partitions) -> None: ...

    def consumer_group_metadata(self):
        return "group-metadata"


class HangingProducer(FakeProducer):
    """A producer whose ``hang`` call blocks; ``on_hang`` runs as it starts blocking."""

    def __init__(self, on_hang=lambda: None, **kwargs):
        super().__init__(**kwargs)
        self.on_hang = on_hang

    def _call(self, name: str, *args, **kwargs) -> None:
        if name == self.hang:
            self.on_hang()
        super()._call(name, *args, **kwargs)


def service_over(monkeypatch, *producers: FakeProducer, watchdog: float = 1.5):
    """A stage service on a GroupMember consumer whose transactional producers are ``producers``, in order,
    started as the service starts them; a commit waits ``watchdog`` s for a producer call."""
    from smartcrop.core.secrets import SecretBox
    from smartcrop.runtime.service import StageService

    made = list(producers)
    monkeypatch.setattr(StageService, "_new_producer", lambda self: made.pop(0))
    service = StageService(Stage("echo", "tracks", lambda event, ctx: [], (0.0, 100.0)),
                           Settings(secret_key=SecretBox.generate_key()), storage=object())
    service.consumer = member = GroupMember(service, service.input_topic)
    service.committer.watchdog_seconds = watchdog
    service.committer.start()
    return service, member


def input_message(service, partition: int = 2, offset: int = 41):
    return SimpleNamespace(topic=lambda: service.input_topic, partition=lambda: partition, offset=lambda: offset,
                           key=lambda: b"job-1", value=lambda: b"")


def commit_in_background(service, message) -> threading.Event:
    """The loop's commit of ``message`` on a thread of its own; set when it returns."""
    done = threading.Event()

    def run() -> None:
        try:
            service.commit([], message)
        finally:
            done.set()

    threading.Thread(target=run, name="loop", daemon=True).start()
    return done


def test_a_lost_assignment_is_handed_back_and_the_group_rejoined_while_a_commit_waits_on_a_stuck_producer(
        monkeypatch):
    """The broker restarts while a commit waits in send_offsets_to_transaction (librdkafka may never answer): the
    group session ends meanwhile. The loop keeps polling, so the assignment is handed back and the group rejoined
    during the wait; the commit stops there, and the message is taken again from the same offset."""
    member = None
    stuck = HangingProducer(hang="send_offsets_to_transaction", on_hang=lambda: member.end_session())
    fresh = FakeProducer(fail={"send_offsets_to_transaction": [kafka_error(KafkaError.UNKNOWN_MEMBER_ID)]})
    service, member = service_over(monkeypatch, stuck, fresh)
    done = commit_in_background(service, input_message(service))
    try:
        assert done.wait(30), "the commit never returned"
        events_when_the_commit_ended = list(member.events)
    finally:
        stuck.released.set()
    assert events_when_the_commit_ended == ["lost", "assigned"], \
        "the consumer was not polled while the producer was stuck, so it could not rejoin its group"
    assert member.seeks == [(service.input_topic, 2, 41)], "the message is taken again"
    assert fresh.inited and fresh.calls == [], "nothing committed with the group metadata of the lost assignment"


@pytest.mark.parametrize("broken", [
    pytest.param(lambda: FakeProducer(hang="init_transactions"), id="init never answers"),
    pytest.param(lambda: FakeProducer(fail={"init_transactions": [
        kafka_error(KafkaError._FENCED, fatal=True) for _ in range(1000)]}), id="init fails fatally"),
])
def test_a_replacement_producer_that_cannot_be_initialised_is_replaced_while_the_consumer_keeps_polling(
        monkeypatch, broken):
    """After a stuck producer, its replacement can be no better: a fatal error stays, and librdkafka can wait past
    the timeout asked for. Asking the same producer again, without polling, would keep the loop from its group
    for good; a fresh producer is made instead, and the consumer is polled all along."""
    stuck, bad, good = FakeProducer(hang="send_offsets_to_transaction"), broken(), FakeProducer()
    service, member = service_over(monkeypatch, stuck, bad, good)
    polls_before = member.polls
    done = commit_in_background(service, input_message(service))
    try:
        assert done.wait(30), "the commit never returned: the loop is stuck on a producer that cannot start"
    finally:
        service.stopping.set()
        for producer in (stuck, bad):
            producer.released.set()
    assert service.lag.committed == {(service.input_topic, 2): 42} and member.seeks == []
    assert service.committer.producer is good
    assert good.calls == ["begin_transaction", "send_offsets_to_transaction", "commit_transaction"]
    assert member.polls > polls_before
