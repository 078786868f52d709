"""The transactional committer: a job's output events, any dead letter and the input offset in one transaction.

Either all of it is visible to read_committed consumers or none. A producer that fails or stops answering is replaced
by a new one with the same ``transactional.id``, which fences the old one and aborts its open transaction.

Every call into the transactional producer (``init_transactions``, the transaction, ``abort_transaction``) runs on a
thread of its own while the consumer's thread keeps polling (``poll``): a producer that waits on a broker, or waits
forever (librdkafka can overrun the timeouts asked for), must never keep the consumer from its group. A consumer that
is not polled cannot hand back a lost assignment nor rejoin its group, so the partition would never be redone.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from smartcrop.runtime.retry import backoff

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 8
TXN_CALL_SECONDS = 10  # per transactional call; the watchdog allows both and some slack
TXN_WATCHDOG_SECONDS = 30
POLL_EVERY_SECONDS = 0.5  # while a producer call runs, the consumer is polled at least this often

# the partition moved to another member (or our producer was fenced): committing again cannot succeed
LOST_PARTITION = (KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.ILLEGAL_GENERATION,
                  KafkaError.UNKNOWN_MEMBER_ID)


class TransactionStuck(RuntimeError):
    pass


def _fatal(exc: KafkaException) -> bool:
    error = exc.args[0] if exc.args else None
    return not isinstance(error, KafkaError) or error.fatal()


def run_with_watchdog(action: Callable[[], None], seconds: float,
                      between: Callable[[], None] = lambda: None) -> None:
    """Run a blocking client call on a daemon thread and give up waiting after ``seconds``, calling ``between``
    every ``POLL_EVERY_SECONDS`` while it runs (the consumer's poll). A call that finishes is answered at once. The
    thread of a call given up on is left behind (it holds no lock of ours), and the caller replaces the client it is
    stuck in."""
    done = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            # without its traceback: the frames would hold the client, and this list, in a reference cycle that
            # only the garbage collector breaks, on whichever thread it happens to run
            failure.append(exc.with_traceback(None))
        finally:
            done.set()

    thread = threading.Thread(target=target, name="transaction", daemon=True)
    deadline = time.monotonic() + seconds
    thread.start()
    while not done.wait(max(0.0, min(POLL_EVERY_SECONDS, deadline - time.monotonic()))):
        if time.monotonic() >= deadline:
            raise TransactionStuck(f"no answer in {seconds:.0f} s")
        between()
    if failure:
        raise failure[0]


@dataclass(frozen=True)
class Record:
    """One message to produce inside the transaction, already encoded."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] | None = None


class Committer:
    """Owns the transactional producer. ``commit`` answers True once the records and the offset are committed, and
    False when they never will be from here (the partition was lost or revoked, or every attempt failed): the caller
    then takes the message again so that whoever owns the partition redoes it.

    ``new_producer`` builds a producer with our ``transactional.id``; ``poll`` keeps the consumer in its group while
    a producer call runs; ``wait`` sleeps between attempts, polling too; ``stopping`` says the service is shutting
    down (a producer that cannot be started then is not retried); ``on_retry`` counts a retry."""

    def __init__(self, new_producer: Callable[[], object], *, poll: Callable[[], None],
                 wait: Callable[[float], None], stopping: Callable[[], bool] = lambda: False,
                 on_retry: Callable[[], None] = lambda: None, attempts: int = COMMIT_ATTEMPTS,
                 watchdog_seconds: float = TXN_WATCHDOG_SECONDS):
        self.new_producer, self.poll, self.wait, self.stopping, self.on_retry = (
            new_producer, poll, wait, stopping, on_retry)
        self.attempts, self.watchdog_seconds = attempts, watchdog_seconds
        self.producer = None
        self.renew_before_next = False

    def start(self) -> None:
        """A fresh producer with transactions initialised; its ``init_transactions`` fences any earlier one with the
        same id and aborts that one's open transaction. Retried, polling, as long as the service runs: a timeout is
        resumed on the same producer, as librdkafka documents; a producer that failed fatally or stopped answering
        is replaced rather than asked again."""
        attempt = 0
        producer = self.new_producer()
        while True:
            try:
                self._call(lambda p=producer: p.init_transactions(TXN_CALL_SECONDS), self.watchdog_seconds)
                self.producer = producer
                return
            except (KafkaException, TransactionStuck) as exc:
                if self.stopping():
                    raise
                delay = backoff(min(attempt, 5))
                log.warning("init transactions failed, retrying in %.1fs: %s", delay, exc)
                self.on_retry()
                self.wait(delay)
                if isinstance(exc, TransactionStuck) or _fatal(exc):
                    producer = self.new_producer()
                attempt += 1

    def renew(self) -> None:
        """The assignment was given up (lost or revoked): a commit in progress stops, and the next one starts from a
        fresh producer. After a broker comes back, librdkafka's transactional producer may keep a stale group
        coordinator and wait forever in ``send_offsets_to_transaction`` (confluentinc/librdkafka#5456, #5511)."""
        self.renew_before_next = True

    def commit(self, records: list[Record], offset: TopicPartition, group_metadata) -> bool:
        if self.renew_before_next:
            self.renew_before_next = False
            self.start()
        for attempt in range(self.attempts):
            if self.renew_before_next:  # given up while this commit polled: the partition's next owner redoes it
                log.warning("the partition was given up while committing; the next owner redoes the job")
                return False
            try:
                self._call(lambda: self._transact(records, offset, group_metadata), self.watchdog_seconds)
                return True
            except TransactionStuck:
                # librdkafka can wait forever for a group coordinator that moved (a broker restart), whatever the
                # timeout asked for (confluentinc/librdkafka#5456, #5511): fence the stuck producer and try again
                log.error("the transactional producer is stuck; replacing it and committing again")
                self.on_retry()
                self.start()
                continue
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() in LOST_PARTITION:
                    # the transaction is left open (or the producer fenced): the next commit starts afresh
                    log.warning("lost the partition while committing; the next owner redoes the job")
                    self.renew_before_next = True
                    return False
                log.warning("commit failed, retrying: %s", error)
                self.on_retry()
                self._abort_or_replace(error)
                self.wait(backoff(attempt))
        log.error("could not commit after %d attempts; the job will be redone", self.attempts)
        return False

    def _call(self, action: Callable[[], None], seconds: float) -> None:
        run_with_watchdog(action, seconds, between=self.poll)

    def _transact(self, records: list[Record], offset: TopicPartition, group_metadata) -> None:
        producer = self.producer
        producer.begin_transaction()
        for record in records:
            if record.headers is None:
                producer.produce(record.topic, key=record.key, value=record.value)
            else:
                producer.produce(record.topic, key=record.key, value=record.value, headers=record.headers)
        producer.send_offsets_to_transaction([offset], group_metadata, TXN_CALL_SECONDS)
        producer.commit_transaction(TXN_CALL_SECONDS)

    def _abort_or_replace(self, error: KafkaError) -> None:
        """Abort the open transaction; a fatal error, or a producer that cannot even abort, is fenced by a new one
        that starts clean."""
        producer = self.producer
        try:
            if error.fatal():
                raise KafkaException(error)
            self._call(lambda: producer.abort_transaction(TXN_CALL_SECONDS), self.watchdog_seconds)
        except (KafkaException, TransactionStuck):
            self.start()
