"""Moving media in and out: sources from paths, file://, s3:// and http(s)://; outputs to S3 or a directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from smartcrop.core.errors import ErrorCode, SmartcropError
from smartcrop.core.job import Destination, JobError, check_source_size
from smartcrop.core.ports import Storage, StorageError
from smartcrop.runtime.config import Settings
from smartcrop.runtime.netpolicy import BlockedAddress, NetworkPolicy, guarded_pool_manager
from smartcrop.runtime.storage import S3Location, file_path, s3_client

MAX_REDIRECTS = 5
REDIRECTS = (301, 302, 303, 307, 308)


class SourceError(SmartcropError, RuntimeError):
    """The source cannot be fetched: missing file, HTTP error, unknown bucket."""

    code = ErrorCode.SOURCE_UNREADABLE


class DestinationError(SmartcropError, RuntimeError):
    code = ErrorCode.DESTINATION_UNREACHABLE


def _suffix(name: str) -> str:
    suffix = Path(urlsplit(name).path).suffix.lower()
    return suffix if 1 < len(suffix) <= 6 and suffix[1:].isalnum() else ".bin"


def network_policy(settings: Settings) -> NetworkPolicy:
    return NetworkPolicy.parse(settings.allowed_networks)


def ingest_source(source: str, storage: Storage, job_id: str, settings: Settings) -> str:
    """Make the source readable by every later stage and return its URI.

    A local file stays where it is for local storage; everything else is copied once to ``jobs/{job_id}/source.*``.
    """
    key = f"jobs/{job_id}/source{_suffix(source)}"
    scheme = source.split("://", 1)[0].lower() if "://" in source else "file"
    if scheme == "file":
        path = local_source(source, settings)
        check_source_size(path.stat().st_size, settings.limits)
        return storage.reference_file(key, path)
    with tempfile.TemporaryDirectory(prefix="smartcrop-src-") as tmp:
        local = Path(tmp) / f"source{_suffix(source)}"
        if scheme in ("http", "https"):
            download_http(source, local, settings)
        elif scheme == "s3":
            stored = storage.size_in_store(source)
            if stored is not None:  # already in our store: read it in place
                check_source_size(stored, settings.limits)
                return source
            location = S3Location.parse(source)
            _download_s3(location, local, settings, settings.is_own_s3_host(location.endpoint))
        else:
            raise SourceError(f"unsupported source scheme {scheme!r}")
        return storage.put_file(key, local)


def host_port(endpoint: str, tls: bool) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":") if endpoint.rsplit(":", 1)[-1].isdigit() else (endpoint, "", "")
    return host, int(port or (443 if tls else 80))


def local_source(source: str, settings: Settings) -> Path:
    """The file behind a path or ``file://`` source.

    An embedded run reads any file of its user. A service reads only files inside ``SMARTCROP_FILE_SOURCE_ROOTS``,
    after resolving symlinks and ``..``, so a job cannot read the service's own secrets or configuration.
    """
    path = check_file_source(source, settings)
    if not path.is_file():
        raise SourceError(f"source file not found: {path}")
    return path


def check_file_source(source: str, settings: Settings) -> Path:
    """The path a local source names, if the process may read it (see :func:`local_source`); symlinks and ``..``
    resolved for the services."""
    path = file_path(source)
    if settings.embedded:
        return path
    if not settings.file_source_roots:
        raise JobError("source", "local files are not read by the services; use http(s):// or s3://, or set "
                                 "SMARTCROP_FILE_SOURCE_ROOTS to the folders they may read")
    if not path.is_absolute():
        raise JobError("source", f"expected an absolute path, got {str(path)!r}")
    real = path.resolve()
    if not any(real.is_relative_to(Path(root).resolve()) for root in settings.file_source_roots):
        raise JobError("source", f"{str(path)!r} is outside the folders the services may read "
                                 f"(SMARTCROP_FILE_SOURCE_ROOTS)")
    return real


def download_http(url: str, target: Path, settings: Settings) -> None:
    """Fetch an http(s) source through the SSRF guard, following redirects one checked hop at a time."""
    from urllib3.exceptions import HTTPError

    manager = guarded_pool_manager(network_policy(settings), "source", connect_timeout=settings.http_connect_timeout,
                                   read_timeout=settings.http_read_timeout)
    try:
        for hop in range(MAX_REDIRECTS + 1):
            try:
                response = manager.request("GET", url, redirect=False, retries=False, preload_content=False)
            except BlockedAddress as exc:
                if hop == 0:
                    raise
                raise BlockedAddress("source", f"redirected to {redact(url)}: {exc.message}") from None
            try:
                if response.status in REDIRECTS and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    if urlsplit(url).scheme not in ("http", "https"):
                        raise JobError("source", f"redirected to an unsupported scheme: {redact(url)}")
                    continue
                if response.status != 200:
                    raise SourceError(f"source download failed: HTTP {response.status} from {redact(url)}")
                length = response.headers.get("Content-Length", "")
                if length.isdigit():
                    check_source_size(int(length), settings.limits)
                written = 0
                with target.open("wb") as out:
                    for chunk in response.stream(1 << 20):
                        written += len(chunk)
                        check_source_size(written, settings.limits)
                        out.write(chunk)
                return
            finally:
                response.release_conn()
        raise SourceError(f"source download failed: more than {MAX_REDIRECTS} redirects from {redact(url)}")
    except HTTPError as exc:
        raise SourceError(f"source download failed: {_describe(exc)} for {redact(url)}") from None
    finally:
        manager.clear()


def _describe(exc: Exception) -> str:
    """An HTTP client error in a few words: its kind, never its message (which may quote URLs with tokens)."""
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError, ReadTimeoutError

    for kind, words in ((NameResolutionError, "host name does not resolve"), (NewConnectionError, "connection refused"),
                        (ConnectTimeoutError, "connect timeout"), (ReadTimeoutError, "read timeout")):
        if isinstance(exc, kind) or isinstance(getattr(exc, "reason", None), kind):
            return words
    return type(exc).__name__


def foreign_s3_client(endpoint: str, access_key: str | None, secret_key: str | None, settings: Settings,
                      field: str):
    """A client for an S3 host a job names: through the SSRF guard, unless it is our own store."""
    if settings.is_own_s3_host(endpoint):
        return s3_client(endpoint, access_key, secret_key, secure=settings.s3_uses_tls(endpoint),
                         ca_bundle=settings.s3_ca_bundle or None)
    tls = settings.s3_uses_tls(endpoint)
    policy = network_policy(settings)
    policy.check(*host_port(endpoint, tls), field)
    import urllib3

    pool = guarded_pool_manager(policy, field, connect_timeout=settings.http_connect_timeout,
                                read_timeout=max(settings.http_read_timeout, 300.0),
                                retries=urllib3.Retry(total=3, backoff_factor=0.2, connect=0,
                                                      status_forcelist=[500, 502, 503, 504]))
    return s3_client(endpoint, access_key, secret_key, secure=tls, http_client=pool)


def _check_s3_size(client, location: S3Location, settings: Settings) -> None:
    from minio.error import S3Error

    try:
        check_source_size(client.stat_object(location.bucket, location.key).size or 0, settings.limits)
    except S3Error as exc:
        raise SourceError(f"source {location} unreadable: {exc.code}") from None


def _download_s3(location: S3Location, target: Path, settings: Settings, own: bool) -> None:
    from minio.error import S3Error
    from urllib3.exceptions import HTTPError

    credentials = (settings.s3_access_key, settings.s3_secret_key) if own else (None, None)
    client = foreign_s3_client(location.endpoint, *credentials, settings, "source")
    try:
        _check_s3_size(client, location, settings)
        client.fget_object(location.bucket, location.key, str(target))
    except S3Error as exc:
        raise SourceError(f"source {location} unreadable: {exc.code}") from None
    except (HTTPError, OSError) as exc:
        raise SourceError(f"source {location} unreachable: {_describe(exc)}") from None


def redact(url: str) -> str:
    """A URL without its query string or user info, which may carry tokens."""
    try:
        parts = urlsplit(url)
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname or ""
        return f"{parts.scheme}://{host}{':' + str(parts.port) if parts.port else ''}{parts.path}"
    except ValueError:
        return "(malformed URL)"


# ---------------------------------------------------------------------------------------------------------------------
# outputs


def publish_outputs(rendered: Path, entry_points: list[Path], *, destination: Destination | None, secret: str | None,
                    storage: Storage, job_id: str, format_index: int, is_directory: bool,
                    settings: Settings) -> list[str]:
    """Put a rendered output (one file, or a directory of playlists and segments) where the job wants it.

    Returns the URIs of the entry points. For MP4 a destination URL names the file (a trailing ``/`` makes it a
    folder); for HLS/DASH it names the folder, as in Qencode jobs.
    """
    files = sorted(p for p in rendered.rglob("*") if p.is_file()) if is_directory else [rendered]
    base = rendered if is_directory else rendered.parent

    if destination is None:
        prefix = f"jobs/{job_id}/outputs/{format_index}"
        uris = {p: storage.put_file(f"{prefix}/{p.relative_to(base).as_posix()}", p, _content_type(p)) for p in files}
        return [uris[p] for p in entry_points]

    if destination.is_s3:
        location = S3Location.parse(destination.url)
        if not location.bucket:
            raise DestinationError("destination.url has no bucket")
        if is_directory or location.key.endswith("/") or not location.key:
            prefix = location.key.rstrip("/")
            keys = {p: "/".join(filter(None, [prefix, p.relative_to(base).as_posix()])) for p in files}
        else:
            keys = {rendered: location.key}
        endpoint = location.endpoint
        field = f"format[{format_index}].destination.url"
        client = foreign_s3_client(endpoint, destination.key, secret, settings, field)
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        try:  # messages carry the error's kind and code only: a client's message may quote signed requests
            if not client.bucket_exists(location.bucket):
                raise DestinationError(f"destination bucket {location.bucket!r} does not exist on {endpoint}")
            for path, key in keys.items():
                client.fput_object(location.bucket, key, str(path), content_type=_content_type(path))
        except S3Error as exc:
            raise DestinationError(f"destination s3://{endpoint}/{location.bucket} refused the upload: "
                                   f"{exc.code}") from None
        except (HTTPError, OSError, StorageError, ValueError) as exc:
            raise DestinationError(f"destination s3://{endpoint} unreachable: {_describe(exc)}") from None
        return [f"s3://{endpoint}/{location.bucket}/{keys[p]}" for p in entry_points]

    target = file_path(destination.url)  # the services never get here: admission allows them s3:// only
    if is_directory:
        target.mkdir(parents=True, exist_ok=True)
        for path in files:
            out = target / path.relative_to(base)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), out)
        return [(target / p.relative_to(base)).resolve().as_uri() for p in entry_points]
    if destination.url.endswith("/") or target.is_dir():
        target = target / rendered.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(rendered), target)
    return [target.resolve().as_uri()]


_CONTENT_TYPES = {".mp4": "video/mp4", ".m3u8": "application/vnd.apple.mpegurl", ".ts": "video/mp2t",
                  ".mpd": "application/dash+xml", ".m4s": "video/iso.segment", ".json": "application/json",
                  ".png": "image/png"}


def _content_type(path: Path) -> str:
    return _CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


__all__ = ["ingest_source", "publish_outputs", "SourceError", "DestinationError"]
