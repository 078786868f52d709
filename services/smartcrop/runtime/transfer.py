"""Moving media in and out: sources from paths, file://, s3:// and http(s)://; outputs to S3 or a directory."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from smartcrop.job import Destination
from smartcrop.runtime.config import Settings
from smartcrop.runtime.storage import LocalStorage, ObjectNotFound, S3Location, StorageError, file_path, s3_client

MAX_DOWNLOAD_BYTES = int(os.environ.get("SMARTCROP_MAX_DOWNLOAD_BYTES", str(20 * 1024**3)))
HTTP_TIMEOUT = (10, 60)  # connect, read


class SourceError(RuntimeError):
    """The source cannot be fetched: missing file, HTTP error, unknown bucket."""

    code = "source_unreadable"


class DestinationError(RuntimeError):
    code = "destination_unreachable"


def _suffix(name: str) -> str:
    suffix = Path(urlsplit(name).path).suffix.lower()
    return suffix if 1 < len(suffix) <= 6 and suffix[1:].isalnum() else ".bin"


def ingest_source(source: str, storage, job_id: str, settings: Settings) -> str:
    """Make the source readable by every later stage and return its URI.

    A local file stays where it is for local storage; everything else is copied once to ``jobs/{job_id}/source.*``.
    """
    key = f"jobs/{job_id}/source{_suffix(source)}"
    scheme = source.split("://", 1)[0].lower() if "://" in source else "file"
    if scheme == "file":
        path = file_path(source)
        if not path.is_file():
            raise SourceError(f"source file not found: {path}")
        if isinstance(storage, LocalStorage):
            return path.resolve().as_uri()
        return storage.put_file(key, path)
    with tempfile.TemporaryDirectory(prefix="smartcrop-src-") as tmp:
        local = Path(tmp) / f"source{_suffix(source)}"
        if scheme in ("http", "https"):
            _download_http(source, local)
        elif scheme == "s3":
            location = S3Location.parse(source)
            own = getattr(storage, "host", None) == location.endpoint
            if own and getattr(storage, "bucket", None) == location.bucket:
                return source  # already in our store: read it in place
            credentials = (settings.s3_access_key, settings.s3_secret_key) if own else (None, None)
            _download_s3(location, local, credentials, settings.s3_uses_tls(location.endpoint))
        else:
            raise SourceError(f"unsupported source scheme {scheme!r}")
        return storage.put_file(key, local)


def _download_http(url: str, target: Path) -> None:
    import requests

    try:
        with requests.get(url, stream=True, timeout=HTTP_TIMEOUT) as response:
            if response.status_code != 200:
                raise SourceError(f"source download failed: HTTP {response.status_code} from {_redact(url)}")
            written = 0
            with target.open("wb") as out:
                for chunk in response.iter_content(1 << 20):
                    written += len(chunk)
                    if written > MAX_DOWNLOAD_BYTES:
                        raise SourceError(f"source is larger than the {MAX_DOWNLOAD_BYTES} byte limit")
                    out.write(chunk)
    except requests.RequestException as exc:
        raise SourceError(f"source download failed: {type(exc).__name__} for {_redact(url)}") from None


def _download_s3(location: S3Location, target: Path, credentials: tuple[str | None, str | None], tls: bool) -> None:
    from minio.error import S3Error

    client = s3_client(location.endpoint, *credentials, secure=tls)
    try:
        client.fget_object(location.bucket, location.key, str(target))
    except S3Error as exc:
        raise SourceError(f"source {location} unreadable: {exc.code}") from None
    except OSError as exc:
        raise SourceError(f"source {location} unreachable: {type(exc).__name__}") from None


def _redact(url: str) -> str:
    """A URL without its query string or user info, which may carry tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"


# ---------------------------------------------------------------------------------------------------------------------
# outputs


def publish_outputs(rendered: Path, entry_points: list[Path], *, destination: Destination | None, secret: str | None,
                    storage, job_id: str, format_index: int, is_directory: bool, settings: Settings) -> list[str]:
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
        client = s3_client(endpoint, destination.key, secret, secure=settings.s3_uses_tls(endpoint))
        from minio.error import S3Error

        try:
            if not client.bucket_exists(location.bucket):
                raise DestinationError(f"destination bucket {location.bucket!r} does not exist on {endpoint}")
            for path, key in keys.items():
                client.fput_object(location.bucket, key, str(path), content_type=_content_type(path))
        except S3Error as exc:
            raise DestinationError(f"destination s3://{endpoint}/{location.bucket} refused the upload: "
                                   f"{exc.code}") from None
        except (OSError, StorageError) as exc:
            raise DestinationError(f"destination s3://{endpoint} unreachable: {type(exc).__name__}") from None
        return [f"s3://{endpoint}/{location.bucket}/{keys[p]}" for p in entry_points]

    target = file_path(destination.url)
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


__all__ = ["ingest_source", "publish_outputs", "SourceError", "DestinationError", "ObjectNotFound"]
