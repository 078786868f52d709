"""The events stages exchange, as typed dataclasses that mirror ``schemas/*.avsc`` field for field.

A test checks every dataclass against its schema, so the Avro files stay the one contract. Conversion is generic:
dataclasses become records, enums their symbols, and a destination :class:`~smartcrop.core.job.Secret` is sealed on the
way out and stays sealed on the way in.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from functools import cache
from typing import Any, ClassVar, Union

from smartcrop.core import avro
from smartcrop.core.job import JobSpec, Secret
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.core.secrets import SecretBox
from smartcrop.core.stage import INPUT_TOPICS


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class JobRequested:
    TOPIC: ClassVar[str] = INPUT_TOPICS["detector"]
    job: JobSpec
    requested_at: datetime = field(default_factory=utcnow)

    @property
    def job_id(self) -> str:
        return self.job.job_id


@dataclass(frozen=True)
class DetectionsReady:
    TOPIC: ClassVar[str] = INPUT_TOPICS["tracker"]
    job: JobSpec
    media: MediaInfo
    source_uri: str
    detections_uri: str
    analysis_fps: float

    @property
    def job_id(self) -> str:
        return self.job.job_id


@dataclass(frozen=True)
class TracksReady:
    TOPIC: ClassVar[str] = INPUT_TOPICS["planner"]
    job: JobSpec
    media: MediaInfo
    source_uri: str
    tracks_uri: str

    @property
    def job_id(self) -> str:
        return self.job.job_id


@dataclass(frozen=True)
class CropPlanned:
    TOPIC: ClassVar[str] = INPUT_TOPICS["encoder"]
    job: JobSpec
    media: MediaInfo
    source_uri: str
    format_index: int
    plan_uri: str
    crop_width: int
    crop_height: int

    @property
    def job_id(self) -> str:
        return self.job.job_id


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str


@dataclass(frozen=True)
class JobStatus:
    TOPIC: ClassVar[str] = "status"
    job_id: str
    status: JobState
    stage: str
    percent: float
    message: str | None = None
    outputs: tuple[str, ...] = ()
    error: ErrorInfo | None = None
    updated_at: datetime = field(default_factory=utcnow)

    def to_json(self) -> dict[str, Any]:
        """The JSON line the CLI prints (``submit --wait``, ``status``)."""
        return {"job_id": self.job_id, "status": self.status.value, "stage": self.stage,
                "percent": round(float(self.percent), 1), "message": self.message, "outputs": list(self.outputs),
                "error": dataclasses.asdict(self.error) if self.error else None,
                "updated_at": self.updated_at.isoformat()}


class ControlAction(str, Enum):
    CANCEL = "cancel"


@dataclass(frozen=True)
class JobControl:
    """An upstream system's request about a job, on the control topic keyed by job id (see ``cancellation``)."""

    TOPIC: ClassVar[str] = "control"
    job_id: str
    action: ControlAction = ControlAction.CANCEL
    reason: str | None = None
    requested_at: datetime = field(default_factory=utcnow)


Event = Union[JobRequested, DetectionsReady, TracksReady, CropPlanned, JobStatus, JobControl]
EVENT_CLASSES: dict[str, type] = {cls.__name__: cls for cls in typing.get_args(Event)}
TOPIC_TYPES: dict[str, str] = {cls.TOPIC: name for name, cls in EVENT_CLASSES.items()}  # topic key -> its one type


# ---------------------------------------------------------------------------------------------------------------------
# dataclass <-> Avro record


def to_record(value: Any, box: SecretBox | None) -> Any:
    if isinstance(value, Secret):
        if box is None:
            raise ValueError("a SecretBox is needed to write a destination secret")
        return box.seal(value)
    if dataclasses.is_dataclass(value):
        return {f.name: to_record(getattr(value, f.name), box) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [to_record(item, box) for item in value]
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_record(kind: Any, value: Any) -> Any:
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return from_record(inner, value)
    if origin in (tuple, list):
        (inner, *_) = typing.get_args(kind)
        return tuple(from_record(inner, item) for item in value)
    if kind is Secret:
        return Secret(value, sealed=True)
    if dataclasses.is_dataclass(kind):
        hints = _hints(kind)
        return kind(**{f.name: from_record(hints[f.name], value[f.name])
                       for f in dataclasses.fields(kind) if f.init and f.name in value})
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if kind is float:
        return float(value)
    return value


def encode_event(event: Event, box: SecretBox | None = None, *, codec: avro.EventCodec | None = None,
                 topic: str | None = None) -> bytes:
    """Single-object encoded unless ``codec`` says otherwise; registry framing needs the ``topic`` (its subject)."""
    return (codec or avro.SINGLE_OBJECT).encode(type(event).__name__, to_record(event, box), topic)


def decode_event(data: bytes, codec: avro.EventCodec | None = None) -> Event:
    """Bytes from the wire, in either framing, to an event; :class:`avro.SerdeError` if they are not one of ours.
    Registry-framed events need a ``codec`` with a registry to look their schema up."""
    name, record = (codec or avro.SINGLE_OBJECT).decode(data)
    try:
        return from_record(EVENT_CLASSES[name], record)
    except (KeyError, TypeError, ValueError) as exc:
        raise avro.SerdeError(f"{name} does not fit its dataclass: {exc}") from None
