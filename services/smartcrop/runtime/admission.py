"""Admission: every rule a job can be judged by before any work, in one place.

``smartcrop run``, ``smartcrop submit`` and the detector (the first stage, for jobs an upstream system produces
straight onto Kafka) all call :func:`admit`, so a job that cannot succeed fails in milliseconds with the field named,
instead of after analysis, tracking, planning and a render have been paid for. :func:`admit_media` holds the rules
that need the probed source (duration, resolution, crop size); the detector runs them right after the probe, before
anything is decoded.

``submit`` judges by its own environment (``SMARTCROP_MAX_*``, ``SMARTCROP_ALLOWED_NETWORKS``,
``SMARTCROP_FILE_SOURCE_ROOTS``), which is meant to be the services' own; the detector judges again by the
services' environment, so a job is never run on a client's word alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from smartcrop.core.job import JobError, JobSpec, check_against_source, check_source_media, validate_spec
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.runtime.config import Settings
from smartcrop.runtime.storage import S3Location
from smartcrop.runtime.transfer import check_file_source, host_port, network_policy

SERVICES_DELIVER_TO_S3 = "the services deliver to s3:// destinations only; local paths are for smartcrop run"


def admit(job: JobSpec, settings: Settings) -> None:
    """Raise :class:`JobError` (code ``invalid_job``) for the first rule the job breaks; ``settings.embedded`` tells
    a one-process run on the user's own machine (local sources and destinations are the user's files) from the
    services."""
    validate_spec(job, settings.limits)
    _admit_source(job.source, settings)
    policy = network_policy(settings)
    for index, fmt in enumerate(job.formats):
        destination, field = fmt.destination, f"format[{index}].destination.url"
        if destination is None:
            continue
        if not destination.is_s3:
            if not settings.embedded:
                raise JobError(field, SERVICES_DELIVER_TO_S3)
            continue
        endpoint = S3Location.parse(destination.url).endpoint
        if not settings.is_own_s3_host(endpoint):
            policy.check(*host_port(endpoint, settings.s3_uses_tls(endpoint)), field)


def _admit_source(source: str, settings: Settings) -> None:
    scheme = source.split("://", 1)[0].lower() if "://" in source else "file"
    if scheme == "file":
        check_file_source(source, settings)
    elif scheme in ("http", "https"):
        parts = urlsplit(source)
        network_policy(settings).check(parts.hostname, parts.port or (443 if scheme == "https" else 80), "source")
    elif scheme == "s3":
        endpoint = S3Location.parse(source).endpoint
        if not settings.is_own_s3_host(endpoint):
            network_policy(settings).check(*host_port(endpoint, settings.s3_uses_tls(endpoint)), "source")


def admit_media(job: JobSpec, media: MediaInfo, settings: Settings) -> None:
    """The rules that need the probed source: the deployment's duration and resolution limits, and a crop of every
    format's ratio that is still a picture."""
    check_source_media(media.duration, media.display_width, media.display_height, settings.limits)
    for index, fmt in enumerate(job.formats):
        check_against_source(fmt, media.display_width, media.display_height, f"format[{index}]")
