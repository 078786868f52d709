"""One job in one stage: the replay check, the handler on a worker thread, retries, cancellation, and what to
commit at the end. Every path answers an :class:`Outcome`; the Kafka calls belong to the consumer loop (``Host``)."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from confluent_kafka import KafkaException

from smartcrop.core.errors import CANCELLED, ErrorCode, Failure, classify
from smartcrop.core.events import ErrorInfo, Event, JobRequested, JobState, JobStatus
from smartcrop.core.ports import StageContext, StorageError
from smartcrop.core.secrets import SecretBox
from smartcrop.core.stage import Stage
from smartcrop.runtime import metrics
from smartcrop.runtime.cancellation import CancelWatch
from smartcrop.runtime.config import Settings
from smartcrop.runtime.edge import DeploymentEdge
from smartcrop.runtime.idempotency import JobIdConflict, Origin, claim, fingerprint, start_once
from smartcrop.runtime.outcome import Outcome
from smartcrop.runtime.retry import backoff

log = logging.getLogger(__name__)


def failure_of(exc: BaseException) -> Failure:
    """A job's error as a failure; a broker fault mid-job is the environment's, worth a retry."""
    if isinstance(exc, KafkaException):
        return Failure(ErrorCode.BROKER_UNAVAILABLE, str(exc), transient=True)
    return classify(exc)

PROGRESS_INTERVAL = 1.0
UNCHECKED_RETRY_SECONDS = 5.0  # a job id that cannot be checked now is taken again after this


class Host(Protocol):
    """What a job attempt needs from the consumer loop."""

    stopping: threading.Event

    def wait_polling(self, future: Future) -> None: ...  # until the future is done, staying in the group
    def sleep_polling(self, seconds: float) -> None: ...
    def rewind(self, message) -> None: ...  # the message is the next one consumed again
    def commit(self, outputs: list[Event], message, *, dlq: tuple[bytes, list] | None = None) -> None: ...
    def send_status(self, status: JobStatus) -> None: ...


@dataclass
class Work:
    """The job in hand and why it might have to stop."""

    stop_reason: str | None = None  # "revoked", "lost", "shutdown"

    def cancelled(self) -> bool:
        return self.stop_reason is not None


class Decision(Enum):
    """What to do with a handler that raised."""

    CANCEL = "cancel"  # commit ``cancelled``
    RETRY = "retry"  # run it again after a backoff
    FAIL = "fail"  # commit ``failed`` with the failure's code


def decide(failure: Failure, attempt: int, attempts: int) -> Decision:
    """``attempt`` counts from 0; a transient fault is retried while attempts are left, anything else is final."""
    if failure.code == CANCELLED:
        return Decision.CANCEL
    if failure.transient and attempt + 1 < attempts:
        return Decision.RETRY
    return Decision.FAIL


def source_headers(message) -> list[tuple[str, bytes]]:
    """Where a dead letter came from."""
    return [("source_topic", message.topic().encode()), ("source_partition", str(message.partition()).encode()),
            ("source_offset", str(message.offset()).encode())]


def undecodable_headers(message, stage: str, error: Exception) -> list[tuple[str, bytes]]:
    return [("error", str(error).encode()[:1000]), ("stage", stage.encode()), *source_headers(message)]


def conflict_headers(message, stage: str, exc: JobIdConflict) -> list[tuple[str, bytes]]:
    return [("error", exc.code.encode()), ("message", str(exc).encode()[:1000]), ("stage", stage.encode()),
            *source_headers(message)]


class JobAttempts:
    """Runs jobs of one stage for one consumer loop; ``work`` is the job in hand, which a rebalance or a shutdown
    stops through ``Work.stop_reason``."""

    def __init__(self, stage: Stage, settings: Settings, box: SecretBox, executor: Executor, host: Host):
        self.stage, self.settings, self.box, self.executor, self.host = stage, settings, box, executor, host
        self.storage = None
        self.control = None
        self.work: Work | None = None

    def stop(self, reason: str) -> None:
        if self.work is not None:
            self.work.stop_reason = self.work.stop_reason or reason

    def admit(self, event: Event, message) -> Outcome | None:
        """The first stage holds every job to one id, one job, one run (see ``smartcrop.runtime.idempotency``): a replay
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
            self.host.commit([], message, dlq=(message.value() or b"", conflict_headers(message, self.stage.name,
                                                                                         exc)))
            return Outcome.JOB_ID_CONFLICT
        except StorageError as exc:  # the claim cannot be checked now: take the message again after a pause
            log.warning("cannot check the job id (%s); retrying", exc)
            metrics.RETRIES.labels(self.stage.name).inc()
            self.host.rewind(message)
            self.host.sleep_polling(UNCHECKED_RETRY_SECONDS)
            return Outcome.ABANDONED
        log.info("replay of a job already started by another message; skipped")
        self.host.commit([], message)
        return Outcome.REPLAYED

    def run(self, event: Event, message) -> Outcome:
        """The handler, up to ``job_attempts`` times, then one commit of what it came to."""
        work = self.work = Work()
        try:
            handle = self._handler(event, work)
            for attempt in range(self.settings.job_attempts):
                future = self.executor.submit(handle)
                self.host.wait_polling(future)
                if work.cancelled():
                    if future.exception() is None and work.stop_reason == "shutdown":
                        # the handler returned before the stop reached it: the work is done, and this instance
                        # still owns the partition, so commit it rather than make the next owner redo it
                        return self._complete(event, message, future.result())
                    # let the handler finish unwinding; its result is thrown away (after a revoke or a lost
                    # assignment another member may already be redoing it)
                    log.info("job abandoned (%s); the partition's next owner redoes it", work.stop_reason)
                    self.host.rewind(message)
                    return Outcome.ABANDONED
                exc = future.exception()
                if exc is None:
                    return self._complete(event, message, future.result())
                failure = failure_of(exc)
                decision = decide(failure, attempt, self.settings.job_attempts)
                if decision is Decision.RETRY:
                    delay = backoff(attempt)
                    metrics.RETRIES.labels(self.stage.name).inc()
                    log.warning("transient fault, retrying in %.1fs: %s", delay, failure.message,
                                extra={"attempt": attempt + 1})
                    self.host.sleep_polling(delay)
                    if self.host.stopping.is_set():
                        self.host.rewind(message)
                        return Outcome.ABANDONED
                    continue
                return self._finish(event, message, failure, exc, decision)
            raise AssertionError("unreachable")
        finally:
            self.work = None

    def _handler(self, event: Event, work: Work):
        """The handler call for the worker thread, with a context reporting progress and answering cancel checks."""
        name = self.stage.name
        requested = CancelWatch(self.storage, event.job_id, control=self.control)
        throttle = metrics.Throttle(PROGRESS_INTERVAL)
        metrics.LAST_PROGRESS.labels(name).set(time.time())  # the clock of "no progress" starts now
        self.host.send_status(JobStatus(event.job_id, JobState.RUNNING, name, self.stage.percent(0.0)))

        def progress(fraction: float) -> None:
            metrics.LAST_PROGRESS.labels(name).set(time.time())
            if throttle.ready():
                self.host.send_status(JobStatus(event.job_id, JobState.RUNNING, name, self.stage.percent(fraction)))

        ctx = StageContext(settings=self.settings, storage=self.storage,
                           edge=DeploymentEdge(self.settings, self.storage),
                           secrets=self.box, progress=progress,
                           is_cancelled=lambda: work.cancelled() or requested(),
                           count_frames=metrics.FRAMES.labels(name).inc,
                           count_inference=metrics.INFERENCE_SECONDS.labels(name).inc)

        def handle() -> list[Event]:
            ctx.check_cancelled()  # a job cancelled while it waited in the topic is not started
            return list(self.stage.handler(event, ctx))

        return handle

    def _complete(self, event: Event, message, outputs: list[Event]) -> Outcome:
        if not any(isinstance(o, JobStatus) for o in outputs):
            outputs.append(JobStatus(event.job_id, JobState.RUNNING, self.stage.name, self.stage.percent(1.0)))
        self.host.commit(outputs, message)
        if any(isinstance(o, JobStatus) and o.status is JobState.COMPLETED for o in outputs):
            metrics.JOBS_COMPLETED.labels(self.stage.name).inc()
        return Outcome.COMPLETED

    def _finish(self, event: Event, message, failure: Failure, exc: BaseException, decision: Decision) -> Outcome:
        name = self.stage.name
        if decision is Decision.CANCEL:
            log.info("job cancelled")
            self.host.commit([JobStatus(event.job_id, JobState.CANCELLED, name, self.stage.percent(0.0),
                                        message=f"cancelled in the {name}",
                                        error=ErrorInfo(failure.code, failure.message))], message)
            return Outcome.CANCELLED
        log.error("job failed: %s", failure.message, extra={"code": failure.code},
                  exc_info=exc if failure.code == ErrorCode.INTERNAL else None)
        metrics.FAILURES.labels(name, failure.code).inc()
        self.host.commit([JobStatus(event.job_id, JobState.FAILED, name, self.stage.percent(0.0),
                                    error=ErrorInfo(failure.code, failure.message))], message)
        return Outcome.FAILED
