"""The table of stages both runners (Kafka and embedded) walk: names, input topics and progress spans.

The handlers are bound in :mod:`smartcrop.stages`, which imports the stage packages; this table does not, so events,
the CLI and the deploy files read it without loading any model library.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


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
