"""What a stage handler gets from outside the domain: the only doors from stage code to storage, the deployment's
rules and delivery.

A handler is a plain function ``(event, StageContext) -> list of events``. It reads and writes objects through
``ctx.storage``, admits, fetches and delivers through ``ctx.edge``, reports progress as a fraction of its own work,
and raises an error with a ``code`` when a job cannot succeed. It knows nothing of Kafka, MinIO or threads: the
runners (:mod:`smartcrop.runtime`, the embedded :mod:`smartcrop.pipeline`) build the context and implement each port.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from smartcrop.core.errors import ErrorCode, SmartcropError
from smartcrop.core.secrets import SecretBox

if TYPE_CHECKING:
    import numpy as np

    from smartcrop.core.framedata import FrameData
    from smartcrop.core.job import JobSpec
    from smartcrop.core.mediainfo import MediaInfo


class StorageError(SmartcropError, RuntimeError):
    """A storage operation failed for reasons outside the job (server down, network): worth a retry."""

    code = ErrorCode.STORAGE_UNAVAILABLE
    transient = True


class ObjectNotFound(StorageError):
    code = ErrorCode.SOURCE_UNREADABLE
    transient = False


class Storage(Protocol):
    """Objects named by URIs (``s3://host:port/bucket/key``, ``file:///path``) under deterministic keys;
    :mod:`smartcrop.runtime.storage` implements it for MinIO and for a local directory."""

    def uri(self, key: str) -> str: ...

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str: ...

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str: ...

    def get_bytes(self, uri: str) -> bytes: ...

    def local_copy(self, uri: str) -> contextlib.AbstractContextManager[Path]: ...

    def exists(self, key: str) -> bool: ...

    def reference_file(self, key: str, path: Path) -> str:
        """A URI later stages can read a local file by: the file itself where they share the disk, else an upload
        to ``key``."""

    def size_in_store(self, uri: str) -> int | None:
        """The size of ``uri`` when it is an object of this store (read in place, never copied), else None."""


class Edge(Protocol):
    """Where a job meets the world outside the store, by the deployment's rules (allowed networks, file roots,
    limits); :class:`smartcrop.runtime.edge.DeploymentEdge` implements it for the services and the embedded run."""

    def admit(self, job: "JobSpec") -> None:
        """Raise ``JobError`` for the first rule the job breaks, before any work."""

    def admit_media(self, job: "JobSpec", media: "MediaInfo") -> None:
        """The rules that need the probed source: duration and resolution limits, a crop that is still a picture."""

    def fetch_source(self, job: "JobSpec") -> str:
        """The URI of the job's source in the store, fetched there once (a local file, HTTP, a foreign S3)."""

    def deliver(self, rendered: Path, entry_points: list[Path], job: "JobSpec", format_index: int,
                secret: str | None) -> list[str]:
        """Put one format's output where its destination says; the URIs of what was delivered."""


class StageSettings(Protocol):
    """The configuration stage code reads (:class:`smartcrop.runtime.config.Settings` has it all)."""

    @property
    def detector_model(self) -> str: ...

    @property
    def face_model(self) -> str: ...

    @property
    def landmark_model(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def inference_threads(self) -> int: ...

    @property
    def analysis_fps(self) -> float: ...

    @property
    def detector_batch(self) -> int: ...


class JobCancelled(SmartcropError):
    code = ErrorCode.CANCELLED


class RenderAhead(Protocol):
    """A runner's offer to render shots while later ones are still analysed (the embedded run's
    ``smartcrop.overlap.ShotRenderer``); the Kafka runner has none, its encoder is another process."""

    def begin(self, job: "JobSpec", media: "MediaInfo", source: Path) -> None:
        """The analysis of ``source`` starts."""

    def closed(self, start: int, detections: "FrameData") -> None:
        """The detections of the finished shots from frame ``start`` on (see ``analyse(on_closed=...)``)."""

    # set by ``begin``: where the analysis hands each picture and sound frame it decodes, for the render to take
    # instead of decoding them again (see ``analyse(hold=...)``); None where this clip is not held
    hold: Callable[[object], None] | None

    def rendered(self, format_index: int, windows: "np.ndarray",
                 progress: Callable[[float], None]) -> tuple[Path, list[Path]] | None:
        """The output (file or folder, and its entry points) already rendered along exactly ``windows``, waiting for
        it to finish; None when there is none and the encoder must render."""


@dataclass
class StageContext:
    settings: StageSettings
    storage: Storage
    edge: Edge
    secrets: SecretBox = field(default_factory=SecretBox.ephemeral)
    progress: Callable[[float], None] = lambda fraction: None
    is_cancelled: Callable[[], bool] = lambda: False
    count_frames: Callable[[int], None] = lambda frames: None  # decoded frames, for throughput metrics
    count_inference: Callable[[float], None] = lambda seconds: None  # model time, for metrics
    ahead: RenderAhead | None = None  # renders finished shots during the analysis (embedded run only)

    def check_cancelled(self) -> None:
        if self.is_cancelled():
            raise JobCancelled("the job was cancelled")


