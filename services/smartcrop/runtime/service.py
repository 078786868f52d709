"""The Kafka runner: consume a stage's topic, call its handler, produce its events, exactly once.

Per input message:
- decode it; bytes that are not one of our events go to the dead-letter topic with headers saying why;
- run the handler on a worker thread while this thread keeps polling, so a job that takes minutes keeps the
  consumer in its group without a huge ``max.poll.interval.ms``. Messages that arrive meanwhile are held, in order,
  and handled next (up to ``HOLD_LIMIT``; beyond it the assignment is paused). Pausing for every job would cost each
  message a fetch restart: librdkafka drops a paused partition's prefetched messages and fetches again about a
  second after ``resume``, which capped a stage at one short job a second;
- produce the output events, the final status and the input offset in one Kafka transaction
  (:mod:`smartcrop.runtime.committer`): either all of it is visible to read_committed consumers or none;
- transient faults (broker, storage) are retried with bounded exponential backoff and jitter; a job that cannot
  succeed gets a ``failed`` status with a stable code and the partition moves on (:mod:`smartcrop.runtime.attempt`);
- a rebalance, a lost assignment or SIGTERM mid-job aborts it without committing, so the partition's next owner
  redoes it (a handler that had returned before SIGTERM is committed: its work is done and the partition is still
  ours). Object keys are deterministic, so the redo overwrites rather than duplicates;
- a cancel request (:mod:`smartcrop.runtime.cancellation`: a marker object or a request on the control topic) stops
  the job at its next checkpoint and commits ``cancelled``.

This module is the consumer loop and its rebalance callbacks; liveness, readiness and lag are in
:mod:`smartcrop.runtime.health`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from smartcrop.core.avro import SerdeError
from smartcrop.core.errors import CODES
from smartcrop.core.events import TOPIC_TYPES, Event, JobStatus, decode_event, encode_event
from smartcrop.core.ports import StorageError
from smartcrop.core.secrets import SecretBox
from smartcrop.core.stage import Stage
from smartcrop.runtime import metrics
from smartcrop.runtime.attempt import JobAttempts, undecodable_headers
from smartcrop.runtime.committer import Committer, Record
from smartcrop.runtime.config import Settings
from smartcrop.runtime.control import ControlListener
from smartcrop.runtime.health import Health, Lag
from smartcrop.runtime.kafka import admin_client, client_config, producer_config
from smartcrop.runtime.logs import current_job
from smartcrop.runtime.outcome import Outcome
from smartcrop.runtime.retry import backoff
from smartcrop.runtime.serde import RegistryUnavailable
from smartcrop.runtime.storage import S3Storage

log = logging.getLogger(__name__)

REGISTRY_RETRY_SECONDS = 5.0  # a schema that cannot be looked up now: the message is taken again after this
HOLD_LIMIT = 64  # messages held while a job runs before the assignment is paused (events are small: URIs, not media)


class StageService:
    def __init__(self, stage: Stage, settings: Settings, *, storage=None, warmup=None):
        self.stage = stage
        self.settings = settings
        self.box = SecretBox(settings.secret_key)
        self.codec = settings.codec
        self.storage = storage
        self.warmup = warmup
        self.stopping = threading.Event()
        self.group_id = f"{settings.topic_prefix}smartcrop-{stage.name}"
        self.input_topic = settings.topic(stage.input_topic)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=stage.name)
        self.jobs = JobAttempts(stage, settings, self.box, self.executor, host=self)
        self.committer = Committer(self._new_producer, poll=self._keep_polling, wait=self.sleep_polling,
                                   stopping=self.stopping.is_set, on_retry=metrics.RETRIES.labels(stage.name).inc)
        self.health = Health(self.input_topic)
        self.lag = Lag(stage.name)
        self.control: ControlListener | None = None
        self.consumer: Consumer | None = None
        self.status_producer: Producer | None = None
        self.held: deque = deque()  # messages polled while a job ran, not yet handled, oldest first
        self.paused = False  # the assignment is paused because HOLD_LIMIT messages are held

    # ---- the loop ----------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.start()
        try:
            while not self.stopping.is_set():
                self.health.beat()
                message = self.held.popleft() if self.held else self._poll(1.0)
                if message is not None:
                    self._handle(message)
        finally:
            self.close()

    def _poll(self, timeout: float):
        """The next message from the consumer, or None; resumes a paused assignment once every held message is
        handled."""
        if self.paused and not self.held:
            self.consumer.resume(self.consumer.assignment())
            self.paused = False
        message = self.consumer.poll(timeout)
        if message is None:
            return None
        if message.error():
            if message.error().code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", message.error())
            return None
        return message

    def _hold(self, message) -> None:
        """Keep a message polled while a job runs (or while a retry waits) for the loop to handle next."""
        self.held.append(message)
        if len(self.held) >= HOLD_LIMIT and not self.paused:
            self.consumer.pause(self.consumer.assignment())
            self.paused = True

    def _drop_held(self, partitions, from_offset: int | None = None) -> None:
        """Forget held messages of ``partitions`` (all of them, or from ``from_offset`` on): their next owner, or the
        fetch after a seek, delivers them again."""
        names = {(p.topic, p.partition) for p in partitions}
        self.held = deque(m for m in self.held if (m.topic(), m.partition()) not in names
                          or (from_offset is not None and m.offset() < from_offset))

    def _handle(self, message) -> None:
        try:
            event = decode_event(message.value(), self.codec)
            if type(event).TOPIC != self.stage.input_topic:
                raise SerdeError(f"{type(event).__name__} does not belong on {self.input_topic}")
        except SerdeError as exc:
            self._dead_letter(message, exc)
            return
        except RegistryUnavailable as exc:  # the schema of a good message cannot be looked up now: take it again
            log.warning("%s; retrying", exc)
            metrics.RETRIES.labels(self.stage.name).inc()
            self.rewind(message)
            self.sleep_polling(REGISTRY_RETRY_SECONDS)
            return
        token = current_job.set(event.job_id)
        metrics.IN_FLIGHT.labels(self.stage.name).inc()
        started = time.monotonic()
        try:
            outcome = self.jobs.admit(event, message) or self.jobs.run(event, message)
            metrics.MESSAGES.labels(self.stage.name, outcome.value).inc()
            if outcome.ran:
                metrics.STAGE_SECONDS.labels(self.stage.name).observe(time.monotonic() - started)
        finally:
            metrics.IN_FLIGHT.labels(self.stage.name).dec()
            current_job.reset(token)

    def _dead_letter(self, message, error: Exception) -> None:
        log.warning("undecodable message to the dead-letter topic: %s", error,
                    extra={"topic": message.topic(), "partition": message.partition(), "offset": message.offset()})
        metrics.MESSAGES.labels(self.stage.name, Outcome.DEAD_LETTER.value).inc()
        self.commit([], message, dlq=(message.value() or b"", undecodable_headers(message, self.stage.name, error)))

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        metrics.initialise(self.stage.name, CODES)
        if self.storage is None:
            self.storage = S3Storage.from_settings(self.settings)
        self.jobs.storage = self.health.storage = self.storage
        self._retry_forever("create bucket", self.storage.ensure_bucket)
        if self.codec.framing == "registry":  # a registry that refuses our schemas fails the service now
            self._retry_forever("register schemas", lambda: self.codec.register(
                {self.settings.topic(key): name for key, name in TOPIC_TYPES.items()}))
        if self.warmup is not None:
            self.warmup(self.settings)
        # cancel requests on Kafka, before the first job
        self.control = self.jobs.control = ControlListener(self.settings).start()
        # the main thread polls all through a job, so a short session timeout is safe and a dead instance's
        # partitions move on within seconds; max.poll.interval.ms stays at its default
        self.consumer = Consumer(client_config(
            self.settings, {"session.timeout.ms": self.settings.kafka_session_timeout_ms,
                            "heartbeat.interval.ms": max(500, self.settings.kafka_session_timeout_ms // 5),
                            "statistics.interval.ms": 15000,
                            # the next stage picks up a committed event within 0.1 s rather than the 0.5 s default
                            "fetch.wait.max.ms": 100},
            **{"group.id": self.group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest",
               "isolation.level": "read_committed", "stats_cb": self.lag.on_stats}))
        self.committer.start()
        self.status_producer = Producer(producer_config(self.settings))
        self.health.admin = admin_client(self.settings)
        self.consumer.subscribe([self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)
        log.info("%s consuming %s as %s", self.stage.name, self.input_topic, self.group_id)

    def stop(self, *_args) -> None:
        self.stopping.set()
        self.jobs.stop("shutdown")

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self.control is not None:
            self.control.stop()
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.status_producer is not None:
            self.status_producer.flush(10)

    def live(self) -> bool:
        return self.health.live()

    def ready(self) -> bool:
        return self.health.ready()

    # ---- what a job attempt asks of the loop (attempt.Host) ----------------------------------------------------

    def wait_polling(self, future: Future) -> None:
        """Keep the consumer in its group while the handler works, holding what arrives meanwhile. Waits on the
        future, not in poll(), so a finished handler is committed at once rather than up to a poll timeout later
        (four stages would add that to every job)."""
        while not future.done():
            wait([future], timeout=0.5)
            self._keep_polling()

    def _keep_polling(self) -> None:
        """One turn of the loop while something else runs (a handler, a producer call): the consumer stays in its
        group, serves its rebalance callbacks and rejoins after a lost assignment; what arrives is held."""
        self.health.beat()
        self._poll_into_held(0)

    def _poll_into_held(self, timeout: float) -> None:
        message = self._poll(timeout)
        if message is not None:
            self._hold(message)

    def sleep_polling(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            self.health.beat()
            self._poll_into_held(min(0.5, max(0.0, deadline - time.monotonic())))

    def rewind(self, message) -> None:
        """Make the message the next one consumed again (if we still own its partition)."""
        if self.consumer is None:
            return
        owned = {(p.topic, p.partition) for p in self.consumer.assignment()}
        if (message.topic(), message.partition()) in owned:
            partition = TopicPartition(message.topic(), message.partition(), message.offset())
            self._drop_held([partition], from_offset=message.offset())  # the fetch from the seek brings them again
            try:
                self.consumer.seek(partition)
            except KafkaException as exc:
                log.warning("cannot rewind: %s", exc)

    def commit(self, outputs: list[Event], message, *, dlq: tuple[bytes, list] | None = None) -> None:
        """Outputs (and a dead letter) with the input offset in one transaction; if it cannot be committed, the
        message is taken again so that the partition's owner redoes it."""
        records = []
        for event in outputs:
            topic = self.settings.topic(event.TOPIC)
            records.append(Record(topic, event.job_id.encode(),
                                  encode_event(event, self.box, codec=self.codec, topic=topic)))
        if dlq is not None:
            value, headers = dlq
            records.append(Record(self.settings.topic("dlq"), message.key(), value, headers))
        offset = TopicPartition(message.topic(), message.partition(), message.offset() + 1)
        if self.committer.commit(records, offset, self.consumer.consumer_group_metadata()):
            self.lag.committed_at(message.topic(), message.partition(), message.offset() + 1)
        else:
            self.rewind(message)

    def send_status(self, status: JobStatus) -> None:
        """Progress goes out at once, outside the transaction, so followers see it while the job runs."""
        try:
            topic = self.settings.topic("status")
            self.status_producer.produce(topic, key=status.job_id.encode(), on_delivery=_on_status_delivery,
                                         value=encode_event(status, self.box, codec=self.codec, topic=topic))
            self.status_producer.poll(0)
        except (KafkaException, BufferError, RegistryUnavailable) as exc:
            log.warning("progress event dropped: %s", exc)

    # ---- rebalance callbacks (they run inside poll(): no blocking calls) ---------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        """Take the partitions now, paused if the assignment is: a partition keeps its paused flag across a revoke
        and a re-assign, so one paused before would otherwise never be consumed again."""
        log.info("assigned %s", [f"{p.topic}[{p.partition}]" for p in partitions])
        consumer.assign(partitions)
        if self.paused:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        self.lag.owned(partitions)

    def _on_revoke(self, consumer, partitions) -> None:
        """Another member takes these partitions: the job in hand stops uncommitted and is redone there, and so does
        a commit in progress (these callbacks also run while a producer call is awaited). The next commit starts from
        a fresh producer, as after a lost assignment: a rebalance may follow a broker restart."""
        log.info("revoked %s", [f"{p.topic}[{p.partition}]" for p in partitions])
        self._give_up(partitions, "revoked")

    def _on_lost(self, consumer, partitions) -> None:
        """The session ended without a rebalance (the coordinator was unreachable, usually a broker that went
        away): the partitions may already be someone else's, and the transactional producer may hold a stale
        group coordinator once the broker returns (confluentinc/librdkafka#5456, #5511)."""
        log.warning("lost %s", [f"{p.topic}[{p.partition}]" for p in partitions])
        self._give_up(partitions, "lost")

    def _give_up(self, partitions, reason: str) -> None:
        self._drop_held(partitions)
        if partitions:
            self.committer.renew()
        self.lag.disowned(partitions)
        if self.jobs.work is not None:
            self.jobs.work.stop_reason = reason

    # ---- start-up ----------------------------------------------------------------------------------------------

    def _new_producer(self) -> Producer:
        """The transactional producer; a new one with the same ``transactional.id`` fences any earlier one and
        aborts its open transaction."""
        return Producer(producer_config(self.settings, **{
            "transactional.id": f"{self.group_id}-{self.settings.instance_id}", "transaction.timeout.ms": 60000}))

    def _retry_forever(self, what: str, action) -> None:
        attempt = 0
        while True:
            try:
                action()
                return
            except (KafkaException, StorageError, RegistryUnavailable) as exc:
                if self.stopping.is_set():
                    raise
                delay = backoff(min(attempt, 5))
                log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
                time.sleep(delay)
                attempt += 1


def _on_status_delivery(error, message) -> None:
    """Progress is best effort (the final status goes out in the stage's transaction), but never silently lost."""
    if error is not None:
        log.warning("progress event not delivered to %s: %s: %s", message.topic(), error.name(), error.str())


def serve(stage_name: str, settings: Settings | None = None) -> None:
    """``smartcrop serve <stage>``: run one stage until SIGTERM."""
    from smartcrop.runtime.logs import setup_service_logging
    from smartcrop.stages import stages

    setup_service_logging(stage_name)
    settings = settings or Settings.from_env()
    stage = stages()[stage_name]
    warmup = None
    if stage_name == "detector":
        from smartcrop.detector.models import load_detector

        def warmup(s: Settings) -> None:  # a misconfigured model fails the service at start, loudly
            from smartcrop.detector.faces import load_face_analyzer

            load_detector(s.detector_model, s.device, s.inference_threads)
            load_face_analyzer(s.face_model, s.landmark_model)

    service = StageService(stage, settings, warmup=warmup)
    service.install_signal_handlers()
    health = metrics.HealthServer(settings.metrics_port, live=service.live, ready=service.ready).start()
    log.info("%s metrics and health on port %d", stage_name, health.port)
    try:
        service.run()
    finally:
        health.stop()
