"""The Kafka runner: consume a stage's topic, call its handler, produce its events, exactly once.

Per input message:
- decode it; bytes that are not one of our events go to the dead-letter topic with headers saying why;
- pause the assignment and run the handler on a worker thread while this thread keeps polling, so a job that takes
  minutes keeps the consumer in its group without a huge ``max.poll.interval.ms``;
- produce the output events, the final status and the input offset in one Kafka transaction
  (``send_offsets_to_transaction``): either all of it is visible to read_committed consumers or none;
- transient faults (broker, storage) are retried with bounded exponential backoff and jitter; a job that cannot
  succeed gets a ``failed`` status with a stable code and the partition moves on;
- a rebalance or SIGTERM mid-job aborts it without committing, so the partition's next owner redoes it. Object keys
  are deterministic, so the redo overwrites rather than duplicates;
- a cancel request (:mod:`smartcrop.cancellation`: a marker object or a request on the control topic) stops the job
  at its next checkpoint and commits ``cancelled``;
- a transactional producer that fails or stops answering is replaced by a new one with the same
  ``transactional.id``, which fences the old one and aborts its open transaction.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from smartcrop.cancellation import CancelWatch
from smartcrop.errors import CANCELLED, CODES, classify
from smartcrop.events import (
    TOPIC_TYPES,
    ErrorInfo,
    Event,
    JobRequested,
    JobState,
    JobStatus,
    decode_event,
    encode_event,
)
from smartcrop.idempotency import JobIdConflict, Origin, claim, fingerprint, start_once
from smartcrop.runtime import metrics
from smartcrop.runtime.config import Settings
from smartcrop.runtime.control import ControlListener
from smartcrop.runtime.kafka import admin_client, client_config, producer_config
from smartcrop.runtime.logs import current_job
from smartcrop.runtime.retry import backoff
from smartcrop.runtime.secrets import SecretBox
from smartcrop.runtime.serde import RegistryUnavailable, SerdeError
from smartcrop.runtime.storage import S3Storage, StorageError
from smartcrop.stage import Stage, StageContext

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 8
TXN_CALL_SECONDS = 10  # per transactional call; the watchdog allows both and some slack
TXN_WATCHDOG_SECONDS = 30
PROGRESS_INTERVAL = 1.0


@dataclass
class _Work:
    """The job in hand and why it might have to stop."""

    stop_reason: str | None = None  # "revoked", "shutdown"

    def cancelled(self) -> bool:
        return self.stop_reason is not None


class TransactionStuck(RuntimeError):
    pass


def run_with_watchdog(action, seconds: float) -> None:
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


class StageService:
    def __init__(self, stage: Stage, settings: Settings, *, storage=None, warmup=None):
        self.stage = stage
        self.settings = settings
        self.box = SecretBox(settings.secret_key)
        self.codec = settings.codec
        self.storage = storage
        self.warmup = warmup
        self.stopping = threading.Event()
        self.work: _Work | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=stage.name)
        self.group_id = f"{settings.topic_prefix}smartcrop-{stage.name}"
        self.input_topic = settings.topic(stage.input_topic)
        self._alive_at = time.monotonic()
        self._ready_cache = (0.0, False)
        self._renew_producer = False
        self._committed: dict[tuple[str, int], int] = {}  # owned partitions -> next offset committed here (or -1)
        self.control: ControlListener | None = None
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.status_producer: Producer | None = None
        self.admin = None

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    def start(self) -> None:
        metrics.initialise(self.stage.name, CODES)
        if self.storage is None:
            self.storage = S3Storage.from_settings(self.settings)
        self._retry_forever("create bucket", self.storage.ensure_bucket)
        if self.codec.framing == "registry":  # a registry that refuses our schemas fails the service now
            self._retry_forever("register schemas", lambda: self.codec.register(
                {self.settings.topic(key): name for key, name in TOPIC_TYPES.items()}))
        if self.warmup is not None:
            self.warmup(self.settings)
        self.control = ControlListener(self.settings).start()  # cancel requests on Kafka, before the first job
        # the main thread polls all through a job, so a short session timeout is safe and a dead instance's
        # partitions move on within seconds; max.poll.interval.ms stays at its default
        self.consumer = Consumer(client_config(
            self.settings, {"session.timeout.ms": self.settings.kafka_session_timeout_ms,
                            "heartbeat.interval.ms": max(500, self.settings.kafka_session_timeout_ms // 5),
                            "statistics.interval.ms": 15000,
                            # the next stage picks up a committed event within 0.1 s rather than the 0.5 s default
                            "fetch.wait.max.ms": 100},
            **{"group.id": self.group_id, "enable.auto.commit": False, "auto.offset.reset": "earliest",
               "isolation.level": "read_committed", "stats_cb": self._on_stats}))
        self._start_producer()
        self.status_producer = Producer(producer_config(self.settings))
        self.admin = admin_client(self.settings)
        self.consumer.subscribe([self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("%s consuming %s as %s", self.stage.name, self.input_topic, self.group_id)

    def _start_producer(self) -> None:
        """The transactional producer; a new one with the same ``transactional.id`` fences any earlier one and
        aborts its open transaction."""
        self.producer = Producer(producer_config(self.settings, **{
            "transactional.id": f"{self.group_id}-{self.settings.instance_id}", "transaction.timeout.ms": 60000}))
        self._retry_forever("init transactions", lambda: self.producer.init_transactions(30))

    def run(self) -> None:
        self.start()
        try:
            while not self.stopping.is_set():
                self._alive_at = time.monotonic()
                message = self.consumer.poll(1.0)
                if message is None:
                    continue
                if message.error():
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("consumer error: %s", message.error())
                    continue
                self._handle(message)
        finally:
            self.close()

    def stop(self, *_args) -> None:
        self.stopping.set()
        if self.work is not None:
            self.work.stop_reason = self.work.stop_reason or "shutdown"

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
        for producer in (self.status_producer,):
            if producer is not None:
                producer.flush(10)

    # ---- health ------------------------------------------------------------------------------------------------

    def live(self) -> bool:
        return time.monotonic() - self._alive_at < 60

    def ready(self) -> bool:
        checked_at, ok = self._ready_cache
        if time.monotonic() - checked_at < 5:
            return ok
        ok = self.admin is not None and self.storage is not None and self.storage.ping()
        if ok:
            try:  # a separate client: the consumer belongs to the main thread
                ok = self.admin.list_topics(self.input_topic, timeout=2).topics[self.input_topic].error is None
            except KafkaException:
                ok = False
        self._ready_cache = (time.monotonic(), ok)
        return ok

    # ---- one message -------------------------------------------------------------------------------------------

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
            self._rewind(message)
            self._sleep_polling(5.0)
            return
        token = current_job.set(event.job_id)
        self.consumer.pause(self.consumer.assignment())
        metrics.IN_FLIGHT.labels(self.stage.name).inc()
        started = time.monotonic()
        try:
            outcome = self._admit_job_id(event, message) or self._work_on(event, message)
            metrics.MESSAGES.labels(self.stage.name, outcome).inc()
            if outcome in ("completed", "failed", "cancelled"):
                metrics.STAGE_SECONDS.labels(self.stage.name).observe(time.monotonic() - started)
        finally:
            metrics.IN_FLIGHT.labels(self.stage.name).dec()
            current_job.reset(token)
            if self.consumer is not None:
                self.consumer.resume(self.consumer.assignment())

    def _admit_job_id(self, event: Event, message) -> str | None:
        """The first stage holds every job to one id, one job, one run (see ``smartcrop.idempotency``): a replay
        of a job another message started is committed and skipped, with no status; a different job under a taken
        id goes to the dead-letter topic with ``job_id_conflict`` and writes nothing under that id. None: run it."""
        if not isinstance(event, JobRequested):
            return None
        try:
            job_fingerprint = fingerprint(event.job, self.box, self.settings.secret_key)
        except Exception as exc:  # a secret sealed with another key: the stages fail the job as they always did
            log.warning("cannot fingerprint the job (%s); it runs without the replay check", type(exc).__name__)
            return None
        origin = Origin(message.topic(), message.partition(), message.offset())
        try:
            claim(self.storage, event.job_id, job_fingerprint)
            if start_once(self.storage, event.job_id, origin):
                return None
        except JobIdConflict as exc:
            log.warning("%s", exc, extra={"code": exc.code})
            headers = [("error", exc.code.encode()), ("message", str(exc).encode()[:1000]),
                       ("stage", self.stage.name.encode()), ("source_topic", message.topic().encode()),
                       ("source_partition", str(message.partition()).encode()),
                       ("source_offset", str(message.offset()).encode())]
            self._commit([], message, dlq=(message.value() or b"", headers))
            return "job_id_conflict"
        except StorageError as exc:  # the claim cannot be checked now: take the message again after a pause
            log.warning("cannot check the job id (%s); retrying", exc)
            metrics.RETRIES.labels(self.stage.name).inc()
            self._rewind(message)
            self._sleep_polling(5.0)
            return "abandoned"
        log.info("replay of a job already started by another message; skipped")
        self._commit([], message)
        return "replayed"

    def _work_on(self, event: Event, message) -> str:
        work = self.work = _Work()
        requested = CancelWatch(self.storage, event.job_id, control=self.control)
        throttle = metrics.Throttle(PROGRESS_INTERVAL)
        metrics.LAST_PROGRESS.labels(self.stage.name).set(time.time())  # the clock of "no progress" starts now
        self._send_status(JobStatus(event.job_id, JobState.RUNNING, self.stage.name, self.stage.percent(0.0)))

        def progress(fraction: float) -> None:
            metrics.LAST_PROGRESS.labels(self.stage.name).set(time.time())
            if throttle.ready():
                self._send_status(JobStatus(event.job_id, JobState.RUNNING, self.stage.name,
                                            self.stage.percent(fraction)))

        ctx = StageContext(settings=self.settings, storage=self.storage, secrets=self.box, progress=progress,
                           is_cancelled=lambda: work.cancelled() or requested(),
                           count_frames=metrics.FRAMES.labels(self.stage.name).inc,
                           count_inference=metrics.INFERENCE_SECONDS.labels(self.stage.name).inc)

        def handle() -> list[Event]:
            ctx.check_cancelled()  # a job cancelled while it waited in the topic is not started
            return list(self.stage.handler(event, ctx))

        try:
            for attempt in range(self.settings.job_attempts):
                future = self.executor.submit(handle)
                self._poll_while(future)
                if work.cancelled():
                    future.exception()  # let the handler finish unwinding; its result is thrown away
                    log.info("job abandoned (%s); the partition's next owner redoes it", work.stop_reason)
                    self._rewind(message)
                    return "abandoned"
                exc = future.exception()
                if exc is None:
                    outputs = future.result()
                    if not any(isinstance(o, JobStatus) for o in outputs):
                        outputs.append(JobStatus(event.job_id, JobState.RUNNING, self.stage.name,
                                                 self.stage.percent(1.0)))
                    self._commit(outputs, message)
                    if any(isinstance(o, JobStatus) and o.status is JobState.COMPLETED for o in outputs):
                        metrics.JOBS_COMPLETED.labels(self.stage.name).inc()
                    return "completed"
                failure = classify(exc)
                if failure.code == CANCELLED:
                    log.info("job cancelled")
                    self._commit([JobStatus(event.job_id, JobState.CANCELLED, self.stage.name,
                                            self.stage.percent(0.0), message=f"cancelled in the {self.stage.name}",
                                            error=ErrorInfo(failure.code, failure.message))], message)
                    return "cancelled"
                if failure.transient and attempt + 1 < self.settings.job_attempts:
                    delay = backoff(attempt)
                    metrics.RETRIES.labels(self.stage.name).inc()
                    log.warning("transient fault, retrying in %.1fs: %s", delay, failure.message,
                                extra={"attempt": attempt + 1})
                    self._sleep_polling(delay)
                    if self.stopping.is_set():
                        self._rewind(message)
                        return "abandoned"
                    continue
                log.error("job failed: %s", failure.message, extra={"code": failure.code},
                          exc_info=exc if failure.code == "internal" else None)
                metrics.FAILURES.labels(self.stage.name, failure.code).inc()
                self._commit([JobStatus(event.job_id, JobState.FAILED, self.stage.name, self.stage.percent(0.0),
                                        error=ErrorInfo(failure.code, failure.message))], message)
                return "failed"
            raise AssertionError("unreachable")
        finally:
            self.work = None

    def _poll_while(self, future: Future) -> None:
        """Keep the consumer in its group while the handler works; nothing is consumed (the assignment is paused).
        Waits on the future, not in poll(), so a finished handler is committed at once rather than up to a poll
        timeout later (four stages would add that to every job)."""
        while not future.done():
            self._alive_at = time.monotonic()
            wait([future], timeout=0.5)
            stray = self.consumer.poll(0)
            if stray is not None and not stray.error():
                # a partition assigned mid-job arrives unpaused: put the message back and pause it
                partition = TopicPartition(stray.topic(), stray.partition(), stray.offset())
                self.consumer.seek(partition)
                self.consumer.pause([partition])

    def _sleep_polling(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.stopping.is_set():
            self._alive_at = time.monotonic()
            self.consumer.poll(min(0.5, max(0.0, deadline - time.monotonic())))

    def _rewind(self, message) -> None:
        """Make the message the next one consumed again (if we still own its partition)."""
        if self.consumer is None:
            return
        owned = {(p.topic, p.partition) for p in self.consumer.assignment()}
        if (message.topic(), message.partition()) in owned:
            try:
                self.consumer.seek(TopicPartition(message.topic(), message.partition(), message.offset()))
            except KafkaException as exc:
                log.warning("cannot rewind: %s", exc)

    # ---- producing -----------------------------------------------------------------------------------------

    def _commit(self, outputs: list[Event], message, *, dlq: tuple[bytes, list] | None = None) -> None:
        """Outputs and the input offset in one transaction; on a retriable failure try again, else redo."""
        offsets = [TopicPartition(message.topic(), message.partition(), message.offset() + 1)]
        group = self.consumer.consumer_group_metadata()
        if self._renew_producer:
            self._renew_producer = False
            self._start_producer()

        def transact() -> None:
            self.producer.begin_transaction()
            for event in outputs:
                topic = self.settings.topic(event.TOPIC)
                self.producer.produce(topic, key=event.job_id.encode(),
                                      value=encode_event(event, self.box, codec=self.codec, topic=topic))
            if dlq is not None:
                value, headers = dlq
                self.producer.produce(self.settings.topic("dlq"), key=message.key(), value=value, headers=headers)
            self.producer.send_offsets_to_transaction(offsets, group, TXN_CALL_SECONDS)
            self.producer.commit_transaction(TXN_CALL_SECONDS)

        for attempt in range(COMMIT_ATTEMPTS):
            try:
                run_with_watchdog(transact, TXN_WATCHDOG_SECONDS)
                self._committed[(message.topic(), message.partition())] = message.offset() + 1
                return
            except TransactionStuck:
                # librdkafka can wait forever for a group coordinator that moved (a broker restart), whatever the
                # timeout asked for (confluentinc/librdkafka#5456, #5511): fence the stuck producer and try again
                log.error("the transactional producer is stuck; replacing it and committing again")
                metrics.RETRIES.labels(self.stage.name).inc()
                self._start_producer()
                continue
            except KafkaException as exc:
                error = exc.args[0]
                if error.code() in (KafkaError._FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                                    KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID):
                    log.warning("lost the partition while committing; the next owner redoes the job")
                    self._rewind(message)
                    return
                log.warning("commit failed, retrying: %s", error)
                metrics.RETRIES.labels(self.stage.name).inc()
                try:
                    if error.fatal():
                        raise exc
                    self.producer.abort_transaction(TXN_CALL_SECONDS)
                except KafkaException:  # fatal, or it cannot even abort: a new producer fences it and starts clean
                    self._start_producer()
                self._sleep_polling(backoff(attempt))
        log.error("could not commit after %d attempts; the job will be redone", COMMIT_ATTEMPTS)
        self._rewind(message)

    def _send_status(self, status: JobStatus) -> None:
        """Progress goes out at once, outside the transaction, so followers see it while the job runs."""
        try:
            topic = self.settings.topic("status")
            self.status_producer.produce(topic, key=status.job_id.encode(), on_delivery=_on_status_delivery,
                                         value=encode_event(status, self.box, codec=self.codec, topic=topic))
            self.status_producer.poll(0)
        except (KafkaException, BufferError, RegistryUnavailable) as exc:
            log.warning("progress event dropped: %s", exc)

    def _dead_letter(self, message, error: Exception) -> None:
        headers = [("error", str(error).encode()[:1000]), ("stage", self.stage.name.encode()),
                   ("source_topic", message.topic().encode()), ("source_partition", str(message.partition()).encode()),
                   ("source_offset", str(message.offset()).encode())]
        log.warning("undecodable message to the dead-letter topic: %s", error,
                    extra={"topic": message.topic(), "partition": message.partition(), "offset": message.offset()})
        metrics.MESSAGES.labels(self.stage.name, "dead_letter").inc()
        self._commit([], message, dlq=(message.value() or b"", headers))

    # ---- callbacks -----------------------------------------------------------------------------------------

    def _on_assign(self, consumer, partitions) -> None:
        """Take the partitions now, and pause them if a job is in hand: a partition keeps its paused flag across a
        revoke and a re-assign, so one lost mid-job would otherwise never be consumed again."""
        log.info("assigned %s", [f"{p.topic}[{p.partition}]" for p in partitions])
        consumer.assign(partitions)
        if self.work is not None:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        for tp in partitions:  # no blocking calls here: this runs inside poll(), mid-rebalance
            self._committed.setdefault((tp.topic, tp.partition), -1)

    def _on_revoke(self, consumer, partitions) -> None:
        log.info("revoked %s", [f"{p.topic}[{p.partition}]" for p in partitions])
        # partitions lost with the session usually mean the broker went away; after it returns, librdkafka's
        # transactional producer may keep a stale group coordinator and wait forever in send_offsets_to_transaction
        # (confluentinc/librdkafka#5456, #5511), so the next commit starts from a fresh producer
        self._renew_producer = self._renew_producer or bool(partitions)
        for tp in partitions:  # another instance reports these now
            self._committed.pop((tp.topic, tp.partition), None)
            try:
                metrics.CONSUMER_LAG.remove(self.stage.name, tp.topic, str(tp.partition))
            except KeyError:
                pass
        if self.work is not None:
            self.work.stop_reason = "revoked"

    def _on_stats(self, stats_json: str) -> None:
        """Lag per owned partition: the last stable offset minus where this group stands. librdkafka's own
        ``consumer_lag`` stays -1 here, because offsets are committed through the producer's transactions."""
        try:
            stats = json.loads(stats_json)
            for topic, data in stats.get("topics", {}).items():
                for partition, info in data.get("partitions", {}).items():
                    key = (topic, int(partition))
                    if key in self._committed:
                        lag = partition_lag(info, self._committed[key])
                        if lag is not None:
                            metrics.CONSUMER_LAG.labels(self.stage.name, topic, partition).set(lag)
        except (ValueError, AttributeError, TypeError):
            log.debug("unreadable client statistics", exc_info=True)

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


def partition_lag(info: dict, committed_here: int) -> int | None:
    """Messages not yet done in one partition, from librdkafka's statistics and our own last commit.

    Where the group stands is the furthest of: the offset committed when the partition was assigned
    (``committed_offset``), the next message handed to the application (``app_offset``) and what this instance
    committed since. With none known the group starts at the earliest offset (``auto.offset.reset``). A commit
    marker of an upstream transaction takes an offset too, so an idle partition may show a lag of 1.
    """
    end = info.get("ls_offset", -1)  # read_committed: the last stable offset
    if end is None or end < 0:
        return None
    position = max(info.get("committed_offset", -1), info.get("app_offset", -1), committed_here)
    if position < 0:
        position = max(0, info.get("lo_offset", 0))
    return max(0, end - position)


def serve(stage_name: str, settings: Settings | None = None) -> None:
    """``smartcrop serve <stage>``: run one stage until SIGTERM."""
    from smartcrop.runtime.logs import setup_service_logging
    from smartcrop.stage import stages

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
