"""Submitting a job: the one path ``smartcrop submit`` and the gateway share.

Admission first (a job the services would refuse is never published), then the job id's claim (one id, one job), then
the ``queued`` status and the ``JobRequested`` event, each acknowledged by the broker (acks=all) before the next. A
replay publishes only what an earlier submit may have failed to deliver, never a status over the job's real one:
``current`` is the job's latest status as the caller knows it (a topic read for the CLI, the status view for the
gateway).
"""

from __future__ import annotations

from typing import Callable

from smartcrop.core.events import JobRequested, JobState, JobStatus
from smartcrop.core.job import JobSpec
from smartcrop.runtime.admission import admit
from smartcrop.runtime.config import Settings
from smartcrop.runtime.idempotency import Claim, claim, fingerprint


def admit_and_claim(job: JobSpec, settings: Settings, storage) -> Claim:
    """Raise JobError for a job the services would refuse and JobIdConflict for a taken id; nothing is published."""
    admit(job, settings)
    return claim(storage, job.job_id, fingerprint(job, None, settings.secret_key))


def publish_job(job: JobSpec, claimed: Claim, publisher, current: Callable[[str], JobStatus | None]) -> None:
    """Publish what the job still needs, each event confirmed by the broker; raises DeliveryError otherwise."""
    status = None if claimed is Claim.NEW else current(job.job_id)
    if status is None:
        publisher.deliver(JobStatus(job.job_id, JobState.QUEUED, "submit", 0.0))
    if status is None or (status.stage == "submit" and status.status is JobState.QUEUED):
        publisher.deliver(JobRequested(job=job))  # the detector runs a job once, however often sent
