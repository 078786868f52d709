"""All four stages in one process: an in-memory bus and a local directory instead of Kafka and MinIO.

Events still go through the Avro serializer, so the embedded run exercises the same contracts as the services.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from smartcrop.core.errors import ErrorCode, classify
from smartcrop.core.events import (
    CropPlanned,
    ErrorInfo,
    Event,
    JobRequested,
    JobState,
    JobStatus,
    decode_event,
    encode_event,
)
from smartcrop.core.framedata import CropPath
from smartcrop.core.job import JobSpec
from smartcrop.core.ports import StageContext
from smartcrop.core.secrets import SecretBox
from smartcrop.core.stage import STAGE_NAMES, Stage
from smartcrop.runtime.config import Settings
from smartcrop.runtime.edge import DeploymentEdge
from smartcrop.runtime.storage import LocalStorage
from smartcrop.stages import stages

log = logging.getLogger(__name__)

ProgressCallback = Callable[[str, float], None]  # (stage, whole-job percent)


@dataclass
class PipelineResult:
    status: JobStatus
    plans: list[CropPlanned] = field(default_factory=list)
    paths: dict[int, CropPath] = field(default_factory=dict)  # the crop path of each format
    events: list[Event] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage
    ahead: object | None = None  # smartcrop.overlap.AheadStats: what was rendered during the analysis


class InMemoryBus:
    """Topics as FIFO queues of encoded events, keyed by job id like the Kafka topics."""

    def __init__(self, box: SecretBox):
        self.box = box
        self.topics: dict[str, deque[tuple[str, bytes]]] = {}

    def publish(self, topic: str, event: Event) -> None:
        self.topics.setdefault(topic, deque()).append((event.job_id, encode_event(event, self.box)))

    def take(self, topic: str) -> Event | None:
        queue = self.topics.get(topic)
        if not queue:
            return None
        _, data = queue.popleft()
        return decode_event(data)


def run_job(job: JobSpec, *, settings: Settings | None = None, work_dir: Path | None = None,
            progress: ProgressCallback | None = None) -> PipelineResult:
    """Run a validated job to the end; the result's status is ``completed`` or ``failed`` with a code.

    Local paths are the user's own files here: they are read and written wherever they are. The network guard
    applies as in the services.
    """
    settings = replace(settings or Settings.from_env(), embedded=True)
    from smartcrop.detector.stage import preload

    preload(job, settings)  # first: the models load while the other stages import and the source is fetched
    box = SecretBox.ephemeral()
    bus = InMemoryBus(box)
    table = stages()
    order = [table[name] for name in STAGE_NAMES]
    result = PipelineResult(status=JobStatus(job.job_id, JobState.QUEUED, "submit", 0.0))
    with tempfile.TemporaryDirectory(prefix="smartcrop-run-") as scratch, contextlib.ExitStack() as cleanup:
        storage = LocalStorage(Path(work_dir or scratch))
        edge = DeploymentEdge(settings, storage)
        ahead = None
        if settings.render_ahead:  # the first format renders shot by shot while the analysis goes on
            from smartcrop.overlap import ShotRenderer

            (Path(scratch) / "ahead").mkdir()
            ahead = ShotRenderer(settings.analysis_fps, Path(scratch) / "ahead", settings.device,
                                 hold_bytes=settings.hold_mb << 20)
            cleanup.callback(ahead.close)
            result.ahead = ahead.stats
        bus.publish(JobRequested.TOPIC, JobRequested(job=job))
        while True:
            stage, event = _next(bus, order)
            if stage is None:
                break
            ctx = StageContext(settings=settings, storage=storage, edge=edge, secrets=box,
                               progress=_reporter(stage, progress), ahead=ahead)
            started = time.perf_counter()
            try:
                outputs = stage.handler(event, ctx)
            except Exception as exc:  # the job fails, with a code; the caller decides how loud to be
                failure = classify(exc)
                log.debug("stage %s failed", stage.name, exc_info=True)
                result.status = JobStatus(job.job_id, JobState.FAILED, stage.name, stage.percent(0.0),
                                          error=ErrorInfo(failure.code, failure.message))
                return result
            finally:
                result.seconds[stage.name] = result.seconds.get(stage.name, 0.0) + time.perf_counter() - started
            for output in outputs:
                result.events.append(output)
                if isinstance(output, JobStatus):
                    result.status = output
                else:
                    if isinstance(output, CropPlanned):
                        result.plans.append(output)
                    bus.publish(output.TOPIC, output)
        if result.status.status is not JobState.COMPLETED:
            result.status = JobStatus(job.job_id, JobState.FAILED, order[-1].name, result.status.percent,
                                      error=ErrorInfo(ErrorCode.INTERNAL,
                                                      "the pipeline ended without completing the job"))
        for planned in result.plans:
            result.paths[planned.format_index] = CropPath.from_avro(storage.get_bytes(planned.plan_uri))
    return result


def _next(bus: InMemoryBus, order: list[Stage]) -> tuple[Stage | None, Event | None]:
    """The next message of the most downstream stage with work, so one job finishes before the bus grows."""
    for stage in reversed(order):
        event = bus.take(stage.input_topic)
        if event is not None:
            return stage, event
    return None, None


def _reporter(stage: Stage, progress: ProgressCallback | None) -> Callable[[float], None]:
    if progress is None:
        return lambda fraction: None
    return lambda fraction: progress(stage.name, stage.percent(fraction))

