"""The job: a Qencode ``start_encode2`` query, parsed and validated once, at the edge.

Every later stage receives the already-validated :class:`JobSpec` inside its event, so nothing downstream re-checks
fields. Errors name the field (``format[0].aspect_ratio``) and what was expected, so an upstream team can fix their
producer from the message alone.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from smartcrop.core.errors import ErrorCode, SmartcropError

MIN_CROP_SIDE = 64
"""A crop narrower or shorter than this (in source display pixels) is not a useful picture."""

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # it names object keys: no slashes, no "..", bounded
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{1,61}[A-Za-z0-9]$")  # what S3 clients accept (legacy names too)


class Mode(str, Enum):
    STABLE = "stable"
    BALANCED = "balanced"
    RESPONSIVE = "responsive"


class Method(str, Enum):
    ADAPTIVE = "adaptive"
    SINGLE_OBJECT = "single_object"
    TALKING_PERSON = "talking_person"
    MAX_WEIGHT = "max_weight"
    MAX_MOVEMENT = "max_movement"
    GRAVITY = "gravity"


class OutputKind(str, Enum):
    MP4 = "mp4"
    HLS = "advanced_hls"
    DASH = "advanced_dash"


OUTPUT_ALIASES = {"mp4": OutputKind.MP4, "hls": OutputKind.HLS, "advanced_hls": OutputKind.HLS,
                  "dash": OutputKind.DASH, "advanced_dash": OutputKind.DASH}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


class JobError(SmartcropError, ValueError):
    """A job that cannot be run as written. ``field`` is the dotted path of the offending field."""

    code = ErrorCode.INVALID_JOB

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Limits:
    """What one job may ask of a deployment (``SMARTCROP_MAX_*``); the defaults fit a single machine."""

    max_formats: int = 10
    max_duration: float = 4 * 3600.0  # seconds of source video
    max_resolution: tuple[int, int] = (7680, 4320)  # long side x short side of the displayed source
    max_source_bytes: int = 20 * 1024**3

    @staticmethod
    def parse_resolution(value: str) -> tuple[int, int]:
        match = re.match(r"^\s*(\d+)\s*x\s*(\d+)\s*$", value)
        if match is None or int(match[1]) <= 0 or int(match[2]) <= 0:
            raise ValueError(f"expected WIDTHxHEIGHT, e.g. 7680x4320, got {value!r}")
        return max(int(match[1]), int(match[2])), min(int(match[1]), int(match[2]))


@dataclass(frozen=True)
class AspectRatio:
    width: int
    height: int

    def __str__(self) -> str:
        return f"{self.width}:{self.height}"

    @property
    def value(self) -> float:
        return self.width / self.height


@dataclass(frozen=True)
class Secret:
    """A credential that prints as ``***`` wherever it goes (logs, reprs, tracebacks, JSON dumps).

    In events it travels ``sealed`` (encrypted with the deployment's key); only the encoder unseals it.
    """

    value: str = field(repr=False)
    sealed: bool = False

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True)
class Destination:
    """Where one format's output goes: ``s3://host[:port]/bucket/key-or-prefix`` or a local path (embedded runs)."""

    url: str
    key: str | None = None
    secret: Secret | None = None
    permissions: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")


@dataclass(frozen=True)
class Rendition:
    """One rung of an HLS/DASH ladder (Qencode ``stream[]``)."""

    width: int | None = None
    height: int | None = None
    bitrate_kbps: int | None = None


@dataclass(frozen=True)
class OutputFormat:
    output: OutputKind
    aspect_ratio: AspectRatio
    smart_crop: bool
    mode: Mode
    method: Method
    width: int | None = None
    height: int | None = None
    video_codec: str = "libx264"
    preset: str = "veryfast"
    bitrate_kbps: int | None = None
    quality: int | None = None  # x264 CRF; used when no bitrate is given
    streams: tuple[Rendition, ...] = ()
    destination: Destination | None = None


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    source: str
    formats: tuple[OutputFormat, ...]

    def to_document(self, *, redact_secrets: bool = False) -> dict[str, Any]:
        """The ``{"query": ...}`` document that :func:`parse_job` reads back as this spec: its inverse for every spec
        the parser builds (secrets in plaintext). ``redact_secrets`` stands a placeholder in for each secret, for
        checks where only its presence matters (a sealed secret cannot be read back as it was)."""
        return {"query": {"job_id": self.job_id, "source": self.source,
                          "format": [_format_document(fmt, redact_secrets) for fmt in self.formats]}}


# ---------------------------------------------------------------------------------------------------------------------
# parsing


def new_job_id() -> str:
    return uuid.uuid4().hex


def load_job_file(path: str | Path, job_id: str | None = None, limits: Limits | None = None) -> JobSpec:
    """Read a ``{"query": {...}}`` (or a bare query) JSON file."""
    try:
        document = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise JobError("job", f"file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise JobError("job", f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except (UnicodeDecodeError, IsADirectoryError, PermissionError) as exc:
        raise JobError("job", f"cannot read {path}: {type(exc).__name__}") from None
    return parse_job(document, job_id=job_id, limits=limits)


def parse_job(document: Any, job_id: str | None = None, limits: Limits | None = None) -> JobSpec:
    """Validate a Qencode-style job document; unknown fields are ignored, wrong ones raise :class:`JobError`."""
    limits = limits or Limits()
    if not isinstance(document, Mapping):
        raise JobError("job", f"expected a JSON object, got {_type_name(document)}")
    query = document.get("query", document)
    if not isinstance(query, Mapping):
        raise JobError("query", f"expected an object, got {_type_name(query)}")

    source = query.get("source")
    if not isinstance(source, str) or not source.strip():
        raise JobError("source", "required: a URL (http(s)://, s3://, file://) or a path to the input video")
    source = source.strip()
    _check_source(source)

    raw_formats = query.get("format")
    if raw_formats is None:
        raw_formats = [{"output": "mp4"}]
    if isinstance(raw_formats, Mapping):
        raw_formats = [raw_formats]
    if not isinstance(raw_formats, list) or not raw_formats:
        raise JobError("format", "expected a non-empty list of output formats")
    if len(raw_formats) > limits.max_formats:
        raise JobError("format", f"{len(raw_formats)} output formats; a job may have at most {limits.max_formats} "
                                 f"(SMARTCROP_MAX_FORMATS)")
    formats = tuple(_parse_format(raw, query, f"format[{i}]") for i, raw in enumerate(raw_formats))
    job_id = job_id or _optional_str(query, "job_id", "query") or new_job_id()
    if not _JOB_ID.match(job_id) or ".." in job_id:
        raise JobError("job_id", f"expected 1-128 letters, digits, '.', '_' or '-' (no '..'), got {job_id!r}")
    return JobSpec(job_id=job_id, source=source, formats=formats)


def _parse_format(raw: Any, query: Mapping[str, Any], where: str) -> OutputFormat:
    if not isinstance(raw, Mapping):
        raise JobError(where, f"expected an object, got {_type_name(raw)}")

    def pick(name: str) -> tuple[Any, str]:
        """A format field, falling back to the same field on the query (both placements are seen in the wild)."""
        if name in raw:
            return raw[name], f"{where}.{name}"
        return query.get(name), name

    output_value, output_field = pick("output")
    output_value = "mp4" if output_value is None else output_value
    output = OUTPUT_ALIASES.get(str(output_value).lower()) if isinstance(output_value, str) else None
    if output is None:
        raise JobError(output_field,
                       f"unknown output {output_value!r}; expected one of mp4, advanced_hls, advanced_dash")

    ratio_value, ratio_field = pick("aspect_ratio")
    aspect_ratio = parse_aspect_ratio("9:16" if ratio_value is None else ratio_value, ratio_field)

    smart_value, smart_field = pick("smart_crop")
    if smart_value is None:
        smart_crop = False
    elif smart_value in (0, 1) and not isinstance(smart_value, float):
        smart_crop = bool(smart_value)
    else:
        raise JobError(smart_field, f"expected 0 or 1, got {smart_value!r}")

    mode = _parse_enum(Mode, *pick("smart_crop_mode"), default=Mode.RESPONSIVE)
    method = _parse_enum(Method, *pick("smart_crop_method"), default=Method.ADAPTIVE)

    width = _optional_dimension(*pick("width"))
    height = _optional_dimension(*pick("height"))
    size_value, size_field = pick("size")
    if size_value is not None:
        if width is not None or height is not None:
            raise JobError(size_field, "give either size or width/height, not both")
        width, height = _parse_size(size_value, size_field)

    codec_value, codec_field = pick("video_codec")
    video_codec = "libx264" if codec_value in (None, "h264", "libx264") else None
    if video_codec is None:
        raise JobError(codec_field, f"unsupported video_codec {codec_value!r}; expected libx264 (h264)")

    preset_value, preset_field = pick("preset")
    preset = "veryfast" if preset_value is None else preset_value
    if preset not in X264_PRESETS:
        raise JobError(preset_field, f"unknown x264 preset {preset_value!r}; expected one of {', '.join(X264_PRESETS)}")

    bitrate = _optional_positive_int(*pick("bitrate"), unit="kbps")
    quality_value, quality_field = pick("quality")
    quality = None
    if quality_value is not None:
        if isinstance(quality_value, bool) or not isinstance(quality_value, int) or not 0 <= quality_value <= 51:
            raise JobError(quality_field, f"expected an x264 CRF between 0 and 51, got {quality_value!r}")
        quality = quality_value

    streams_value, streams_field = pick("stream")
    streams: tuple[Rendition, ...] = ()
    if streams_value is not None:
        if not isinstance(streams_value, list):
            raise JobError(streams_field, "expected a list of renditions")
        streams = tuple(_parse_rendition(s, f"{streams_field}[{i}]") for i, s in enumerate(streams_value))

    destination_value, destination_field = pick("destination")
    if isinstance(destination_value, list):  # Qencode allows a list; one destination per format is what we write
        if len(destination_value) != 1:
            raise JobError(destination_field, "expected exactly one destination")
        destination_value = destination_value[0]
        destination_field += "[0]"
    destination = _parse_destination(destination_value, destination_field) if destination_value is not None else None

    return OutputFormat(output=output, aspect_ratio=aspect_ratio, smart_crop=smart_crop, mode=mode, method=method,
                        width=width, height=height, video_codec=video_codec, preset=preset, bitrate_kbps=bitrate,
                        quality=quality, streams=streams, destination=destination)


_RATIO = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_aspect_ratio(value: Any, field: str = "aspect_ratio") -> AspectRatio:
    match = _RATIO.match(value) if isinstance(value, str) else None
    if match is None or int(match[1]) == 0 or int(match[2]) == 0:
        raise JobError(field, f"expected \"W:H\" with positive integers (e.g. \"9:16\"), got {value!r}")
    return AspectRatio(int(match[1]), int(match[2]))


def _parse_enum(enum: type[Enum], value: Any, field: str, default: Enum) -> Any:
    if value is None:
        return default
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise JobError(field, f"unknown value {value!r}; expected one of {choices}") from None


def _optional_dimension(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 8192:
        raise JobError(field, f"expected an integer number of pixels between 16 and 8192, got {value!r}")
    return value


def _parse_size(value: Any, field: str) -> tuple[int, int]:
    match = re.match(r"^\s*(\d+)\s*x\s*(\d+)\s*$", value) if isinstance(value, str) else None
    if match is None:
        raise JobError(field, f"expected \"WIDTHxHEIGHT\" (e.g. \"1080x1920\"), got {value!r}")
    return _optional_dimension(int(match[1]), field), _optional_dimension(int(match[2]), field)


MAX_BITRATE_KBPS = 1_000_000


def _optional_positive_int(value: Any, field: str, unit: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_BITRATE_KBPS:
        raise JobError(field, f"expected a positive integer up to {MAX_BITRATE_KBPS} ({unit}), got {value!r}")
    return value


def _parse_rendition(raw: Any, where: str) -> Rendition:
    if not isinstance(raw, Mapping):
        raise JobError(where, f"expected an object, got {_type_name(raw)}")
    width = _optional_dimension(raw.get("width"), f"{where}.width")
    height = _optional_dimension(raw.get("height"), f"{where}.height")
    if raw.get("size") is not None:
        width, height = _parse_size(raw["size"], f"{where}.size")
    return Rendition(width=width, height=height,
                     bitrate_kbps=_optional_positive_int(raw.get("bitrate"), f"{where}.bitrate", unit="kbps"))


def _parse_destination(raw: Any, where: str) -> Destination:
    if not isinstance(raw, Mapping):
        raise JobError(where, f"expected an object with url (and key/secret for s3), got {_type_name(raw)}")
    url = raw.get("url")
    if not isinstance(url, str) or not url.strip():
        raise JobError(f"{where}.url", "required: s3://host[:port]/bucket/key or a local path")
    url = url.strip()
    _check_characters(url, f"{where}.url")
    if url.startswith("s3://"):
        parts = _split_url(url, f"{where}.url")
        bucket = parts.path.lstrip("/").split("/", 1)[0]
        if not parts.hostname or not bucket:
            raise JobError(f"{where}.url", f"expected s3://host[:port]/bucket/key, got {url!r}")
        _check_bucket(bucket, f"{where}.url")
        if parts.username or parts.password:
            raise JobError(f"{where}.url", "credentials belong in key and secret, not in the URL")
    elif "://" in url and not url.startswith("file://"):
        raise JobError(f"{where}.url", f"unsupported scheme {url.split('://')[0]!r}; expected s3:// or a local path")
    key = _optional_str(raw, "key", where)
    secret_value = _optional_str(raw, "secret", where)
    permissions = _optional_str(raw, "permissions", where)
    if url.startswith("s3://") and (key is None) != (secret_value is None):
        raise JobError(where, "give both key and secret, or neither")
    return Destination(url=url, key=key, secret=Secret(secret_value) if secret_value is not None else None,
                       permissions=permissions)


def _check_source(source: str) -> None:
    _check_characters(source, "source")
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme and scheme not in ("http", "https", "s3", "file"):
        raise JobError("source", f"unsupported scheme {scheme!r}; expected http(s)://, s3://, file:// or a path")
    if scheme in ("http", "https", "s3"):
        parts = _split_url(source, "source")
        if not parts.hostname:
            raise JobError("source", f"URL has no host: {_shown(source)}")
        if scheme == "s3":
            bucket, _, key = parts.path.lstrip("/").partition("/")
            if not bucket or not key.strip("/"):
                raise JobError("source", f"expected s3://host[:port]/bucket/key, got {source!r}")
            _check_bucket(bucket, "source")


def _check_characters(value: str, field: str) -> None:
    if len(value) > 4096:
        raise JobError(field, f"longer than 4096 characters ({len(value)})")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise JobError(field, "contains control characters")


def _split_url(url: str, field: str):
    """``urlsplit`` that turns malformed hosts and ports into a :class:`JobError`."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in 0-65535
        return parts
    except ValueError as exc:
        raise JobError(field, f"malformed URL ({exc}): {_shown(url)}") from None


def _shown(url: str) -> str:
    """A URL for an error message: without user info and query, which may carry credentials or tokens."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        return repr(f"{parts.scheme}://{host}{parts.path}" if parts.scheme else url)
    except ValueError:
        return "(unparsable)"


def _check_bucket(bucket: str, field: str) -> None:
    if not _BUCKET.match(bucket) or any(pair in bucket for pair in ("..", ".-", "-.")):
        raise JobError(field, f"bucket {bucket!r} is not a valid S3 bucket name (3-63 letters, digits, '.', '-' or "
                              f"'_', starting and ending with a letter or digit)")


def _optional_str(raw: Mapping[str, Any], name: str, where: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise JobError(f"{where}.{name}" if where != "query" else name, f"expected a string, got {_type_name(value)}")
    return value


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------------------------------------------------
# checks that need the source's geometry


def crop_size(display_width: int, display_height: int, ratio: AspectRatio) -> tuple[int, int]:
    """The largest crop of the requested ratio that fits the display frame, in even pixels."""
    if display_width / display_height > ratio.value:
        height = display_height
        width = height * ratio.value
    else:
        width = display_width
        height = width / ratio.value
    return _even_floor(min(width, display_width)), _even_floor(min(height, display_height))


def check_against_source(fmt: OutputFormat, display_width: int, display_height: int, where: str) -> None:
    """Reject aspect ratios that leave a degenerate crop for this particular source."""
    width, height = crop_size(display_width, display_height, fmt.aspect_ratio)
    if width < MIN_CROP_SIDE or height < MIN_CROP_SIDE:
        raise JobError(f"{where}.aspect_ratio",
                       f"{fmt.aspect_ratio} leaves a {width}x{height} crop of the {display_width}x{display_height} "
                       f"source; each side must be at least {MIN_CROP_SIDE} px")


def _even_floor(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def check_source_media(duration: float, display_width: int, display_height: int, limits: Limits) -> None:
    """The deployment's limits on the probed source: duration and resolution."""
    if duration > limits.max_duration:
        raise JobError("source", f"the video lasts {duration:.0f} s; the limit is {limits.max_duration:.0f} s "
                                 f"(SMARTCROP_MAX_DURATION)")
    long_side, short_side = limits.max_resolution
    if max(display_width, display_height) > long_side or min(display_width, display_height) > short_side:
        raise JobError("source", f"the video is {display_width}x{display_height}; the limit is "
                                 f"{long_side}x{short_side} in either orientation (SMARTCROP_MAX_RESOLUTION)")


def check_source_size(size: int, limits: Limits) -> None:
    """The deployment's limit on the bytes of a source, checked while it is fetched."""
    if size > limits.max_source_bytes:
        raise JobError("source", f"the file is larger than the {limits.max_source_bytes} byte limit "
                                 f"(SMARTCROP_MAX_SOURCE_BYTES)")


# ---------------------------------------------------------------------------------------------------------------------
# jobs that arrive as events


def validate_spec(job: JobSpec, limits: Limits | None = None) -> None:
    """Check a :class:`JobSpec` that arrived already built (an upstream producer's event) by the same rules as JSON.

    The spec is written back as its document and parsed again, so there is still one set of rules and one set of
    messages. A sealed secret is stood in for by a placeholder: only its presence matters here.
    """
    if not job.job_id:
        raise JobError("job_id", "required")
    if not job.formats:
        raise JobError("format", "expected a non-empty list of output formats")
    parse_job(job.to_document(redact_secrets=True), limits=limits)


def _format_document(fmt: OutputFormat, redact_secrets: bool = True) -> dict[str, Any]:
    """One format as the parser reads it; with ``redact_secrets`` (the fingerprint's form) a secret shows as ``-``."""
    document: dict[str, Any] = {
        "output": fmt.output.value if isinstance(fmt.output, Enum) else fmt.output,
        "aspect_ratio": f"{fmt.aspect_ratio.width}:{fmt.aspect_ratio.height}", "smart_crop": int(fmt.smart_crop),
        "smart_crop_mode": fmt.mode.value if isinstance(fmt.mode, Enum) else fmt.mode,
        "smart_crop_method": fmt.method.value if isinstance(fmt.method, Enum) else fmt.method,
        "width": fmt.width, "height": fmt.height, "video_codec": fmt.video_codec, "preset": fmt.preset,
        "bitrate": fmt.bitrate_kbps, "quality": fmt.quality,
        "stream": [{"width": s.width, "height": s.height, "bitrate": s.bitrate_kbps} for s in fmt.streams]}
    if fmt.destination is not None:
        d = fmt.destination
        secret = None if d.secret is None else "-" if redact_secrets else d.secret.value
        document["destination"] = {"url": d.url, "key": d.key, "secret": secret, "permissions": d.permissions}
    return document


# ---------------------------------------------------------------------------------------------------------------------
# building jobs from CLI flags


def job_from_options(source: str, *, output: str = "mp4", aspect_ratio: str = "9:16", mode: str | None = None,
                     method: str | None = None, preset: str | None = None, smart_crop: bool = True,
                     width: int | None = None, height: int | None = None, job_id: str | None = None) -> JobSpec:
    """The job ``smartcrop run INPUT`` means, validated by the same parser as any other job."""
    fmt: dict[str, Any] = {"output": output, "aspect_ratio": aspect_ratio, "smart_crop": int(smart_crop)}
    for key, value in (("smart_crop_mode", mode), ("smart_crop_method", method), ("preset", preset),
                       ("width", width), ("height", height)):
        if value is not None:
            fmt[key] = value
    return parse_job({"query": {"source": source, "format": [fmt]}}, job_id=job_id)


def with_destination(job: JobSpec, index: int, destination: Destination) -> JobSpec:
    formats = list(job.formats)
    formats[index] = replace(formats[index], destination=destination)
    return replace(job, formats=tuple(formats))
