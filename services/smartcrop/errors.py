"""Stable error codes: what an upstream system can switch on when a job fails."""

from __future__ import annotations

from dataclasses import dataclass

from smartcrop.runtime.storage import ObjectNotFound, StorageError

INVALID_JOB = "invalid_job"
SOURCE_UNREADABLE = "source_unreadable"
DESTINATION_UNREACHABLE = "destination_unreachable"
MODEL_UNAVAILABLE = "model_unavailable"
CANCELLED = "cancelled"
INTERNAL = "internal"
STORAGE_UNAVAILABLE = "storage_unavailable"  # transient: only final once the retries are spent
BROKER_UNAVAILABLE = "broker_unavailable"  # transient, likewise
JOB_ID_CONFLICT = "job_id_conflict"  # the job id names a different job: refused, the first job untouched
CODES = (INVALID_JOB, SOURCE_UNREADABLE, DESTINATION_UNREACHABLE, MODEL_UNAVAILABLE, CANCELLED, INTERNAL,
         STORAGE_UNAVAILABLE, BROKER_UNAVAILABLE, JOB_ID_CONFLICT)


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    transient: bool  # worth retrying: the fault is in the environment, not in the job


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, ObjectNotFound):
        return Failure(SOURCE_UNREADABLE, str(exc), transient=False)
    if isinstance(exc, StorageError):
        return Failure(STORAGE_UNAVAILABLE, str(exc), transient=True)
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return Failure(code, str(exc) or type(exc).__name__, transient=False)
    try:
        from confluent_kafka import KafkaException

        if isinstance(exc, KafkaException):
            return Failure(BROKER_UNAVAILABLE, str(exc), transient=True)
    except ImportError:  # pragma: no cover
        pass
    return Failure(INTERNAL, f"{type(exc).__name__}: {exc}", transient=False)
