"""Kafka plumbing shared by the services and the CLI: client settings, topics, publishing, reading job status."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import Iterator

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from smartcrop.core.avro import SerdeError
from smartcrop.core.events import Event, JobStatus, decode_event, encode_event
from smartcrop.core.secrets import SecretBox
from smartcrop.runtime.config import TOPICS, Settings
from smartcrop.runtime.logs import kafka_client_logger

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 6


def log_client_error(error: KafkaError) -> None:
    """Every client's ``error_cb``: fatal errors (a fenced or broken idempotent producer, failed authorisation) are
    errors, the rest (a broker briefly unreachable) warnings the client recovers from by itself."""
    if error.fatal():
        log.error("fatal Kafka client error %s: %s", error.name(), error.str())
    else:
        log.warning("Kafka client error %s: %s", error.name(), error.str())


def client_config(settings: Settings, defaults: dict | None = None, **required) -> dict:
    """Bootstrap, our tunable defaults, then any ``SMARTCROP_KAFKA_CONF_*`` pass-through (TLS, SASL, timeouts ...),
    then the settings correctness depends on, which no pass-through may change."""
    return {"bootstrap.servers": settings.kafka_bootstrap, "logger": kafka_client_logger(),
            "error_cb": log_client_error, "reconnect.backoff.ms": 250, **(defaults or {}), **settings.kafka_extra,
            **required}


def producer_config(settings: Settings, defaults: dict | None = None, **required) -> dict:
    # murmur2 like the Java clients, so upstream producers and we agree on which partition a job id lands in
    return client_config(settings, {"linger.ms": 5, **(defaults or {})}, **{
        "enable.idempotence": True, "acks": "all", "partitioner": "murmur2_random", **required})


def admin_client(settings: Settings) -> AdminClient:
    return AdminClient(client_config(settings))


def topic_specs(settings: Settings, partitions: int = DEFAULT_PARTITIONS) -> list[NewTopic]:
    specs = []
    for name in TOPICS:
        config = {}
        if name in ("status", "control"):  # the latest per job id is what matters
            config = {"cleanup.policy": "compact,delete", "retention.ms": str(7 * 24 * 3600 * 1000),
                      "min.cleanable.dirty.ratio": "0.1", "segment.ms": str(3600 * 1000)}
        elif name == "dlq":
            config = {"retention.ms": str(14 * 24 * 3600 * 1000)}
        specs.append(NewTopic(settings.topic(name), num_partitions=partitions, replication_factor=1, config=config))
    return specs


def ensure_topics(settings: Settings, partitions: int = DEFAULT_PARTITIONS, timeout: float = 30.0) -> list[str]:
    """Create missing topics; returns the names created."""
    admin = admin_client(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in topic_specs(settings, partitions) if spec.topic not in existing]
    if not missing:
        return []
    for future in admin.create_topics(missing, operation_timeout=timeout).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return [spec.topic for spec in missing]


def wait_for_broker(settings: Settings, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin_client(settings).list_topics(timeout=5)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise


class DeliveryError(KafkaException):
    """The broker did not acknowledge an event: names the Kafka error (``MSG_SIZE_TOO_LARGE``,
    ``UNKNOWN_TOPIC_OR_PART``, ``_MSG_TIMED_OUT`` ...) and the topic."""

    def __init__(self, error: KafkaError, topic: str):
        super().__init__(error)
        self.error, self.topic = error, topic

    @property
    def kafka_code(self) -> str:
        return self.error.name()

    def __str__(self) -> str:
        return f"event not delivered to {self.topic}: {self.error.name()}: {self.error.str()}"


class EventPublisher:
    """Publishes events keyed by job id on their topics (idempotent producer, acks=all), each with a delivery
    report. ``publish_confirmed`` returns only once the broker acknowledged the event; otherwise, and for
    ``publish``, the first failed delivery or fatal client error is kept and raised by the next publish or flush,
    so nothing that failed looks delivered. A broker that is down fails a delivery within
    ``kafka_delivery_timeout_ms`` rather than never."""

    def __init__(self, settings: Settings, box: SecretBox | None = None):
        self.settings = settings
        self.box = box or SecretBox(settings.secret_key)
        self._error: DeliveryError | None = None
        self._known_topics: set[str] = set()
        self.producer = Producer(producer_config(
            settings, {"message.timeout.ms": settings.kafka_delivery_timeout_ms}, error_cb=self._on_error))

    def _on_error(self, error: KafkaError) -> None:
        log_client_error(error)
        if error.fatal() and self._error is None:
            self._error = DeliveryError(error, "(client)")

    def _on_delivery(self, error: KafkaError | None, message) -> None:
        if error is not None and self._error is None:
            self._error = DeliveryError(error, message.topic())

    def _raise_kept_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _check_topic(self, topic: str) -> None:
        """A topic that does not exist fails at once with UNKNOWN_TOPIC_OR_PART instead of waiting out the
        delivery timeout (the broker does not create topics on first use)."""
        if topic in self._known_topics:
            return
        timeout = self.settings.kafka_delivery_timeout_ms / 1000
        try:
            metadata = self.producer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise DeliveryError(exc.args[0], topic) from None
        error = metadata.topics[topic].error if topic in metadata.topics else None
        if error is not None:
            raise DeliveryError(error, topic)
        self._known_topics.add(topic)

    def publish(self, event: Event) -> None:
        self._raise_kept_error()
        topic = self.settings.topic(event.TOPIC)
        self._check_topic(topic)
        try:
            value = encode_event(event, self.box, codec=self.settings.codec, topic=topic)
            self.producer.produce(topic, key=event.job_id.encode(), value=value, on_delivery=self._on_delivery)
        except KafkaException as exc:  # refused before it left: too large for the client, queue full ...
            raise DeliveryError(exc.args[0], topic) from None
        self.producer.poll(0)

    def publish_confirmed(self, event: Event) -> None:
        """Publish and wait for the broker's ack (acks=all); raises DeliveryError naming the Kafka error."""
        self.publish(event)
        self.flush()

    def deliver(self, event: Event, timeout: float | None = None) -> None:
        """Publish one event and wait for its own delivery report: safe from many threads at once (the gateway),
        since a failure is raised only to the caller whose event failed."""
        topic = self.settings.topic(event.TOPIC)
        self._check_topic(topic)
        done = threading.Event()
        failure: list[KafkaError] = []

        def on_delivery(error: KafkaError | None, _message) -> None:
            if error is not None:
                failure.append(error)
            done.set()

        try:
            self.producer.produce(topic, key=event.job_id.encode(), value=encode_event(event, self.box),
                                  on_delivery=on_delivery)
        except KafkaException as exc:
            raise DeliveryError(exc.args[0], topic) from None
        deadline = time.monotonic() + (timeout or self.settings.kafka_delivery_timeout_ms / 1000 + 5)
        while not done.is_set():
            if time.monotonic() > deadline:
                raise DeliveryError(KafkaError(KafkaError._MSG_TIMED_OUT, "no delivery report"), topic)
            self.producer.poll(0.05)
        if failure:
            raise DeliveryError(failure[0], topic)

    def flush(self, timeout: float | None = None) -> None:
        if timeout is None:  # the delivery timeout plus a margin for the callbacks to run
            timeout = self.settings.kafka_delivery_timeout_ms / 1000 + 5
        remaining = self.producer.flush(timeout)
        self._raise_kept_error()
        if remaining:
            raise DeliveryError(KafkaError(KafkaError._MSG_TIMED_OUT, f"{remaining} events not delivered"),
                                "(pending)")


def read_topic(settings: Settings, topic: str, *, follow: bool, key: str | None = None,
               timeout: float | None = None) -> Iterator:
    """Every committed message of one of our topics (optionally only ``key``'s), oldest first, as a read_committed
    consumer sees them. Without ``follow`` it stops at the end of every partition: partition-EOF events say where
    that is, since offsets cannot (transaction markers take offsets of their own). Ends quietly at ``timeout``."""
    consumer = Consumer(client_config(settings, **{
        "group.id": f"{settings.topic_prefix}smartcrop-reader-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "isolation.level": "read_committed", "enable.partition.eof": True}))
    name = settings.topic(topic)
    try:
        metadata = consumer.list_topics(name, timeout=10)
        if metadata.topics[name].error is not None:
            raise KafkaException(metadata.topics[name].error)
        partitions = list(metadata.topics[name].partitions)
        consumer.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                    if not follow and len(at_end) == len(partitions):
                        return
                elif message.error().fatal():
                    raise KafkaException(message.error())
                continue  # transient (a broker restarting): the client reconnects by itself
            if key is None or message.key() == key.encode():
                yield message
    finally:
        consumer.close()


def follow_status(settings: Settings, job_id: str, *, wait: bool, timeout: float | None = None
                  ) -> Iterator[JobStatus]:
    """Every status event of a job, oldest first; with ``wait``, keeps following until a final state."""
    with contextlib.closing(read_topic(settings, "status", follow=wait, key=job_id, timeout=timeout)) as messages:
        for message in messages:
            try:
                event = decode_event(message.value(), settings.codec)
            except SerdeError:
                continue
            if isinstance(event, JobStatus):
                yield event
                if wait and event.status.is_final:
                    return


def latest_status(settings: Settings, job_id: str, *, wait: bool = False, timeout: float | None = None
                  ) -> JobStatus | None:
    last = None
    for status in follow_status(settings, job_id, wait=wait, timeout=timeout):
        last = status
    return last
