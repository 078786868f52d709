"""What every stage handler gets, and the table of stages both runners (Kafka and embedded) walk.

A handler is a plain function ``(event, StageContext) -> list of events``. It reads and writes objects through
``ctx.storage``, reports progress as a fraction of its own work, and raises an error with a ``code`` attribute when a
job cannot succeed. It knows nothing of Kafka, MinIO or threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from smartcrop.errors import ErrorCode, SmartcropError
from smartcrop.runtime.config import Settings
from smartcrop.runtime.secrets import SecretBox

if TYPE_CHECKING:
    import numpy as np

    from smartcrop.framedata import FrameData
    from smartcrop.job import JobSpec
    from smartcrop.media.probe import MediaInfo


class JobCancelled(SmartcropError):
    code = ErrorCode.CANCELLED


class RenderAhead(Protocol):
    """A runner's offer to render shots while later ones are still analysed (the embedded run's
    ``smartcrop.overlap.ShotRenderer``); the Kafka runner has none, its encoder is another process."""

    def begin(self, job: "JobSpec", media: "MediaInfo", source: Path) -> None:
        """The analysis of ``source`` starts."""

    def closed(self, start: int, detections: "FrameData") -> None:
        """The detections of the finished shots from frame ``start`` on (see ``analyse(on_closed=...)``)."""

    def rendered(self, format_index: int, windows: "np.ndarray",
                 progress: Callable[[float], None]) -> tuple[Path, list[Path]] | None:
        """The output (file or folder, and its entry points) already rendered along exactly ``windows``, waiting for
        it to finish; None when there is none and the encoder must render."""


@dataclass
class StageContext:
    settings: Settings
    storage: object  # smartcrop.runtime.storage.Storage
    secrets: SecretBox = field(default_factory=SecretBox.ephemeral)
    progress: Callable[[float], None] = lambda fraction: None
    is_cancelled: Callable[[], bool] = lambda: False
    count_frames: Callable[[int], None] = lambda frames: None  # decoded frames, for throughput metrics
    count_inference: Callable[[float], None] = lambda seconds: None  # model time, for metrics
    ahead: RenderAhead | None = None  # renders finished shots during the analysis (embedded run only)

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


@dataclass(frozen=True)
class Place:
    """Where a stage sits in the pipeline, without its handler (which pulls in the stage's libraries)."""

    name: str
    input_topic: str  # a key of smartcrop.runtime.config.TOPICS; the event published there names it as its TOPIC
    span: tuple[float, float]


# The one table of stages, in pipeline order: names, input topics, CLI choices and service lists derive from it.
PIPELINE: tuple[Place, ...] = (
    Place("detector", "jobs", (0.0, 45.0)),
    Place("tracker", "detections", (45.0, 55.0)),
    Place("planner", "tracks", (55.0, 60.0)),
    Place("encoder", "plans", (60.0, 100.0)),
)
STAGE_NAMES: tuple[str, ...] = tuple(place.name for place in PIPELINE)
INPUT_TOPICS: dict[str, str] = {place.name: place.input_topic for place in PIPELINE}


def stages() -> dict[str, Stage]:
    """Imported lazily: the detector pulls in torch, which the planner and the CLI's light commands do not need."""
    from smartcrop.detector.stage import detect
    from smartcrop.encoder.stage import encode
    from smartcrop.planner.stage import plan
    from smartcrop.tracker.stage import track

    handlers = {"detector": detect, "tracker": track, "planner": plan, "encoder": encode}
    return {place.name: Stage(place.name, place.input_topic, handlers[place.name], place.span) for place in PIPELINE}
