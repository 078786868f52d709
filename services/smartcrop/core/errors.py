"""Stable error codes: what an upstream system can switch on when a job fails.

:class:`ErrorCode` is the one vocabulary (its values are the strings on the wire: ``JobStatus.error.code``, the DLQ's
``error`` header, the ``code`` label of the failure metric). Every error the stages raise for a job derives from
:class:`SmartcropError`, which carries its code and whether the fault is worth a retry, so :func:`classify` reads both
instead of knowing every error class.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar


class ErrorCode(StrEnum):
    INVALID_JOB = "invalid_job"
    SOURCE_UNREADABLE = "source_unreadable"
    DESTINATION_UNREACHABLE = "destination_unreachable"
    MODEL_UNAVAILABLE = "model_unavailable"
    CANCELLED = "cancelled"
    INTERNAL = "internal"
    STORAGE_UNAVAILABLE = "storage_unavailable"  # transient: only final once the retries are spent
    BROKER_UNAVAILABLE = "broker_unavailable"  # transient, likewise
    JOB_ID_CONFLICT = "job_id_conflict"  # the job id names a different job: refused, the first job untouched
    REGISTRY_UNAVAILABLE = "registry_unavailable"  # transient, never final: the message is read again later


# The names the rest of the code has always imported; each is the enum member itself.
INVALID_JOB = ErrorCode.INVALID_JOB
SOURCE_UNREADABLE = ErrorCode.SOURCE_UNREADABLE
DESTINATION_UNREACHABLE = ErrorCode.DESTINATION_UNREACHABLE
MODEL_UNAVAILABLE = ErrorCode.MODEL_UNAVAILABLE
CANCELLED = ErrorCode.CANCELLED
INTERNAL = ErrorCode.INTERNAL
STORAGE_UNAVAILABLE = ErrorCode.STORAGE_UNAVAILABLE
BROKER_UNAVAILABLE = ErrorCode.BROKER_UNAVAILABLE
JOB_ID_CONFLICT = ErrorCode.JOB_ID_CONFLICT
REGISTRY_UNAVAILABLE = ErrorCode.REGISTRY_UNAVAILABLE
# The codes a job's failure can carry (the failure metric's labels); a registry outage never fails a job.
CODES = tuple(code for code in ErrorCode if code is not ErrorCode.REGISTRY_UNAVAILABLE)


class SmartcropError(Exception):
    """The base of every error with a stable code; ``transient`` says the fault is in the environment, not the job."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    transient: ClassVar[bool] = False


class ModelError(SmartcropError, RuntimeError):
    """The configured model cannot be loaded: a deployment problem, reported loudly, never skipped."""

    code = ErrorCode.MODEL_UNAVAILABLE


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    transient: bool  # worth retrying: the fault is in the environment, not in the job


def classify(exc: BaseException) -> Failure:
    if isinstance(exc, SmartcropError):
        return Failure(exc.code, str(exc) or type(exc).__name__, transient=exc.transient)
    code = getattr(exc, "code", None)
    if isinstance(code, str) and code:
        return Failure(code, str(exc) or type(exc).__name__, transient=False)
    return Failure(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}", transient=False)
