"""The stages' door to the world outside the store, by this deployment's settings: admission, fetching the source
and delivering outputs (the :class:`smartcrop.core.ports.Edge` port), for the services and the embedded run alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from smartcrop.core.job import JobSpec, OutputKind
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.core.ports import Storage
from smartcrop.runtime.admission import admit, admit_media
from smartcrop.runtime.config import Settings
from smartcrop.runtime.transfer import ingest_source, publish_outputs


@dataclass(frozen=True)
class DeploymentEdge:
    settings: Settings
    storage: Storage

    def admit(self, job: JobSpec) -> None:
        admit(job, self.settings)

    def admit_media(self, job: JobSpec, media: MediaInfo) -> None:
        admit_media(job, media, self.settings)

    def fetch_source(self, job: JobSpec) -> str:
        return ingest_source(job.source, self.storage, job.job_id, self.settings)

    def deliver(self, rendered: Path, entry_points: list[Path], job: JobSpec, format_index: int,
                secret: str | None) -> list[str]:
        fmt = job.formats[format_index]
        return publish_outputs(rendered, entry_points, destination=fmt.destination, secret=secret,
                               storage=self.storage, job_id=job.job_id, format_index=format_index,
                               is_directory=fmt.output is not OutputKind.MP4, settings=self.settings)
