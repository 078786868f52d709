"""The transactional committer: a job's output events, any dead letter and the input offset in one transaction.

Either all of it is visible to read_committed consumers or none. A producer that fails or stops answering is replaced
by a new one with the same ``transactional.id``, which fences the old one and aborts its open transaction.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from smartcrop.runtime.retry import backoff

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 8
TXN_CALL_SECONDS = 10  # per transactional call; the watchdog allows both and some slack
TXN_WATCHDOG_SECONDS = 30

# the partition moved to another member (or our producer was fenced): committing again cannot succeed
LOST_PARTITION = (KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.ILLEGAL_GENERATION,
                  KafkaError.UNKNOWN_MEMBER_ID)


class TransactionStuck(RuntimeError):
    pass


def run_with_watchdog(action: Callable[[], None], seconds: float) -> None:
    """Run a blocking client call on a daemon thread and give up waiting after ``seconds``; the thread is left
    behind (it holds no lock of ours), and the caller replaces the client it is stuck in."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="transaction", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TransactionStuck(f"no answer in {seconds:.0f} s")
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
    False when they never will be from here (the partition was lost, or every attempt failed): the caller then
    takes the message again so that whoever owns the partition redoes it.

    ``new_producer`` builds a producer with our ``transactional.id``; ``init`` runs ``init_transactions`` on it
    (retrying as long as the service lives); ``wait`` sleeps between attempts while keeping the consumer in its
    group; ``on_retry`` counts a retry."""

    def __init__(self, new_producer: Callable[[], object], *, init: Callable[[object], None],
                 wait: Callable[[float], None], on_retry: Callable[[], None] = lambda: None,
                 attempts: int = COMMIT_ATTEMPTS, watchdog_seconds: float = TXN_WATCHDOG_SECONDS):
        self.new_producer, self.init, self.wait, self.on_retry = new_producer, init, wait, on_retry
        self.attempts, self.watchdog_seconds = attempts, watchdog_seconds
        self.producer = None
        self.renew_before_next = False

    def start(self) -> None:
        """A fresh producer; its ``init_transactions`` fences any earlier one with the same id."""
        self.producer = self.new_producer()
        self.init(self.producer)

    def renew(self) -> None:
        """Start the next commit from a fresh producer. After a broker comes back, librdkafka's transactional
        producer may keep a stale group coordinator and wait forever in ``send_offsets_to_transaction``
        (confluentinc/librdkafka#5456, #5511)."""
        self.renew_before_next = True

    def commit(self, records: list[Record], offset: TopicPartition, group_metadata) -> bool:
        if self.renew_before_next:
            self.renew_before_next = False
            self.start()
        for attempt in range(self.attempts):
            try:
                run_with_watchdog(lambda: self._transact(records, offset, group_metadata), self.watchdog_seconds)
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
                    log.warning("lost the partition while committing; the next owner redoes the job")
                    return False
                log.warning("commit failed, retrying: %s", error)
                self.on_retry()
                self._abort_or_replace(error)
                self.wait(backoff(attempt))
        log.error("could not commit after %d attempts; the job will be redone", self.attempts)
        return False

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
        try:
            if error.fatal():
                raise KafkaException(error)
            self.producer.abort_transaction(TXN_CALL_SECONDS)
        except KafkaException:
            self.start()
