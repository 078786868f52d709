"""Settings from the environment: one place that knows every ``SMARTCROP_*`` variable.

Services are configured the twelve-factor way (Compose, Kubernetes ConfigMaps and Secrets), the CLI reads the same
variables, and ``smartcrop stack env`` prints the ones the local stack needs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from smartcrop.core.home import cache_home
from smartcrop.core.job import Limits

DEFAULT_DETECTOR_MODEL = "yolo11n.pt"  # an official ultralytics name: downloaded by ultralytics on first use
DEFAULT_FACE_MODEL = "face_detection_yunet_2023mar.onnx"
DEFAULT_LANDMARK_MODEL = "face_landmarker.task"

TOPICS = {
    "jobs": "smartcrop.jobs.v1",
    "detections": "smartcrop.detections.v1",
    "tracks": "smartcrop.tracks.v1",
    "plans": "smartcrop.plans.v1",
    "status": "smartcrop.status.v1",
    "control": "smartcrop.control.v1",
    "dlq": "smartcrop.dlq.v1",
}


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    value = _env(name)
    try:
        return float(value) if value is not None else default
    except ValueError:
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _env_int(name: str, default: int) -> int:
    value = _env(name)
    try:
        return int(value) if value is not None else default
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None


def _env_list(name: str, separator: str = ",") -> tuple[str, ...]:
    return tuple(item.strip() for item in (_env(name, "") or "").split(separator) if item.strip())


def _limits_from_env() -> Limits:
    resolution = _env("SMARTCROP_MAX_RESOLUTION")
    try:
        max_resolution = Limits.parse_resolution(resolution) if resolution else Limits.max_resolution
    except ValueError as exc:
        raise ValueError(f"SMARTCROP_MAX_RESOLUTION: {exc}") from None
    return Limits(max_formats=_env_int("SMARTCROP_MAX_FORMATS", Limits.max_formats),
                  max_duration=_env_float("SMARTCROP_MAX_DURATION", Limits.max_duration),
                  max_resolution=max_resolution,
                  max_source_bytes=_env_int("SMARTCROP_MAX_SOURCE_BYTES", Limits.max_source_bytes))


def _local_stack_credentials() -> dict[str, str]:
    try:
        return json.loads((cache_home() / "credentials.json").read_text())
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_extra: dict[str, str] = field(default_factory=dict, repr=False)
    topic_prefix: str = ""
    s3_endpoint: str = "http://127.0.0.1:19000"
    s3_access_key: str = field(default="", repr=False)
    s3_secret_key: str = field(default="", repr=False)
    s3_bucket: str = "smartcrop"
    s3_plain_http_hosts: tuple[str, ...] = ()
    s3_ca_bundle: str = ""  # PEM file of the CAs trusted for our https:// S3 endpoint (a private CA)
    secret_key: str = field(default="", repr=False)
    detector_model: str = DEFAULT_DETECTOR_MODEL
    face_model: str = DEFAULT_FACE_MODEL
    landmark_model: str = DEFAULT_LANDMARK_MODEL
    device: str = ""
    inference_threads: int = 0  # threads the detector runtime may use; 0: every core this process may run on
    analysis_fps: float = 5.0
    detector_batch: int = 8
    metrics_port: int = 0
    instance_id: str = ""
    kafka_session_timeout_ms: int = 15000  # how soon a dead instance's partitions move to another
    kafka_delivery_timeout_ms: int = 20000  # how long a submit waits for the broker's ack before it fails
    storage_retry_seconds: float = 60.0  # how long a storage read/write rides out an outage before the job retries
    job_attempts: int = 6  # tries per job and stage on transient faults, with backoff between them
    limits: Limits = field(default_factory=Limits)
    allowed_networks: tuple[str, ...] = ()  # CIDRs, addresses or host names jobs may reach despite the SSRF guard
    file_source_roots: tuple[str, ...] = ()  # folders whose files a service may read as sources
    embedded: bool = False  # a one-process run on the user's own machine: any local path is the user's own file
    render_ahead: bool = True  # embedded: render finished shots while later ones are analysed (smartcrop.overlap)
    hold_mb: int = 320  # embedded: a clip whose decoded pictures fit in this many MiB is decoded once, not twice
    http_connect_timeout: float = 10.0
    http_read_timeout: float = 60.0
    schema_registry_url: str = field(default="", repr=False)  # set: events are written in the Confluent wire format
    event_framing: str = ""  # "registry" or "single-object"; empty: registry when a registry URL is set

    @property
    def codec(self):
        """How this process writes events (it reads both framings); one id cache per registry in the process."""
        from smartcrop.runtime.serde import codec_for

        return codec_for(self.schema_registry_url, self.event_framing)

    @classmethod
    def from_env(cls) -> "Settings":
        """The environment, falling back to the local stack's credentials (``smartcrop stack up``) when unset."""
        local = _local_stack_credentials()
        extra = {key[len("SMARTCROP_KAFKA_CONF_"):].lower().replace("_", "."): value
                 for key, value in os.environ.items() if key.startswith("SMARTCROP_KAFKA_CONF_")}
        return cls(
            kafka_bootstrap=_env("SMARTCROP_KAFKA_BOOTSTRAP", cls.kafka_bootstrap),
            kafka_extra=extra,
            topic_prefix=_env("SMARTCROP_TOPIC_PREFIX", ""),
            s3_endpoint=_env("SMARTCROP_S3_ENDPOINT", cls.s3_endpoint),
            s3_access_key=_env("SMARTCROP_S3_ACCESS_KEY", local.get("s3_access_key", "")),
            s3_secret_key=_env("SMARTCROP_S3_SECRET_KEY", local.get("s3_secret_key", "")),
            s3_bucket=_env("SMARTCROP_S3_BUCKET", cls.s3_bucket),
            s3_plain_http_hosts=_env_list("SMARTCROP_S3_PLAIN_HTTP_HOSTS"),
            secret_key=_env("SMARTCROP_SECRET_KEY", local.get("secret_key", "")),
            detector_model=_env("SMARTCROP_DETECTOR_MODEL", DEFAULT_DETECTOR_MODEL),
            face_model=_env("SMARTCROP_FACE_MODEL", DEFAULT_FACE_MODEL),
            landmark_model=_env("SMARTCROP_LANDMARK_MODEL", DEFAULT_LANDMARK_MODEL),
            device=_env("SMARTCROP_DEVICE", ""),
            inference_threads=max(0, _env_int("SMARTCROP_INFERENCE_THREADS", 0)),
            analysis_fps=_env_float("SMARTCROP_ANALYSIS_FPS", cls.analysis_fps),
            detector_batch=_env_int("SMARTCROP_DETECTOR_BATCH", cls.detector_batch),
            metrics_port=_env_int("SMARTCROP_METRICS_PORT", 0),
            instance_id=_env("SMARTCROP_INSTANCE_ID", "") or f"{os.uname().nodename}-{os.getpid()}",
            kafka_session_timeout_ms=_env_int("SMARTCROP_KAFKA_SESSION_TIMEOUT_MS", cls.kafka_session_timeout_ms),
            kafka_delivery_timeout_ms=_env_int("SMARTCROP_KAFKA_DELIVERY_TIMEOUT_MS",
                                               cls.kafka_delivery_timeout_ms),
            storage_retry_seconds=_env_float("SMARTCROP_STORAGE_RETRY_SECONDS", cls.storage_retry_seconds),
            job_attempts=max(1, _env_int("SMARTCROP_JOB_ATTEMPTS", cls.job_attempts)),
            s3_ca_bundle=_env("SMARTCROP_S3_CA_BUNDLE", ""),
            limits=_limits_from_env(),
            allowed_networks=_env_list("SMARTCROP_ALLOWED_NETWORKS"),
            file_source_roots=_env_list("SMARTCROP_FILE_SOURCE_ROOTS", os.pathsep),
            http_connect_timeout=_env_float("SMARTCROP_HTTP_CONNECT_TIMEOUT", cls.http_connect_timeout),
            http_read_timeout=_env_float("SMARTCROP_HTTP_READ_TIMEOUT", cls.http_read_timeout),
            schema_registry_url=_env("SMARTCROP_SCHEMA_REGISTRY_URL", ""),
            event_framing=_env("SMARTCROP_EVENT_FRAMING", ""),
            render_ahead=_env("SMARTCROP_RENDER_AHEAD", "1") not in ("0", "false", "no", "off"),
            hold_mb=max(0, _env_int("SMARTCROP_HOLD_MB", cls.hold_mb)),
        )

    def s3_uses_tls(self, host: str) -> bool:
        """TLS for every S3 host (sources, destinations) except our own plain-http endpoint and listed ones."""
        own = urlsplit(self.s3_endpoint if "://" in self.s3_endpoint else f"//{self.s3_endpoint}")
        if host == own.netloc:
            return own.scheme == "https"
        return host not in self.s3_plain_http_hosts

    def is_own_s3_host(self, host: str) -> bool:
        """The deployment's own object store: always reachable, with the deployment's credentials."""
        return host == urlsplit(self.s3_endpoint if "://" in self.s3_endpoint else f"//{self.s3_endpoint}").netloc

    def topic(self, name: str) -> str:
        return self.topic_prefix + TOPICS[name]
