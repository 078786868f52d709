"""What every stage handler gets, and the table of stages both runners (Kafka and embedded) walk.

A handler is a plain function ``(event, StageContext) -> list of events``. It reads and writes objects through
``ctx.storage``, reports progress as a fraction of its own work, and raises an error with a ``code`` attribute when a
job cannot succeed. It knows nothing of Kafka, MinIO or threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from smartcrop.errors import ErrorCode, SmartcropError
from smartcrop.runtime.config import Settings
from smartcrop.runtime.secrets import SecretBox


class JobCancelled(SmartcropError):
    code = ErrorCode.CANCELLED


@dataclass
class StageContext:
    settings: Settings
    storage: object  # smartcrop.runtime.storage.Storage
    secrets: SecretBox = field(default_factory=SecretBox.ephemeral)
    progress: Callable[[float], None] = lambda fraction: None
    is_cancelled: Callable[[], bool] = lambda: False
    count_frames: Callable[[int], None] = lambda frames: None  # decoded frames, for throughput metrics
    count_inference: Callable[[float], None] = lambda seconds: None  # model time, for metrics

    def check_cancelled(self) -> None:
        if self.is_cancelled():
            raise JobCancelled("the job was cancelled")


@dataclass(frozen=True)
class Stage:
    name: str
    input_topic: str
    handler: Callable
    span: tuple[float, float]  # the share of whole-job progress (percent) this stage covers

    def percent(self, fraction: float) -> float:
        lo, hi = self.span
        return lo + (hi - lo) * min(1.0, max(0.0, fraction))


def stages() -> dict[str, Stage]:
    """Imported lazily: the detector pulls in torch, which the planner and the CLI's light commands do not need."""
    from smartcrop.detector.stage import detect
    from smartcrop.encoder.stage import encode
    from smartcrop.planner.stage import plan
    from smartcrop.tracker.stage import track

    return {
        "detector": Stage("detector", "jobs", detect, (0.0, 45.0)),
        "tracker": Stage("tracker", "detections", track, (45.0, 55.0)),
        "planner": Stage("planner", "tracks", plan, (55.0, 60.0)),
        "encoder": Stage("encoder", "plans", encode, (60.0, 100.0)),
    }

