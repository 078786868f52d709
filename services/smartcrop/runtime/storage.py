"""Object storage for media and per-frame data: MinIO / any S3 API for services, a directory for embedded runs.

Every object is named by a URI that says where it lives: ``s3://host:port/bucket/key`` (the same form jobs use for
sources and destinations) or ``file:///path``. Keys are deterministic (``jobs/{job_id}/...``), so a stage that redoes a
job overwrites its own objects instead of leaving duplicates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

from smartcrop.core.ports import ObjectNotFound, StorageError
from smartcrop.runtime.config import Settings
from smartcrop.runtime.retry import retry_for

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------------------
# local directory


def file_path(uri: str) -> Path:
    """The local path behind ``file://`` URIs and plain paths."""
    if uri.startswith("file://"):
        return Path(unquote(urlsplit(uri).path))
    return Path(uri)


@dataclass
class LocalStorage:
    """Objects as files under ``root`` (embedded runs, tests)."""

    root: Path

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"object key escapes the storage root: {key!r}")
        return path

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return path.as_uri()

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(path).resolve() != target:
            shutil.copyfile(path, target)
        return target.as_uri()

    def get_bytes(self, uri: str) -> bytes:
        try:
            return file_path(uri).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"no such object: {uri}") from None

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        path = file_path(uri)
        if not path.exists():
            raise ObjectNotFound(f"no such object: {uri}")
        yield path

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def reference_file(self, key: str, path: Path) -> str:
        """A local file needs no copy in a directory store: later stages read it where it is."""
        return Path(path).resolve().as_uri()

    def size_in_store(self, uri: str) -> int | None:
        """An ``s3://`` object is never in a directory store."""
        return None

    def create_once(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``key`` only if it does not exist (atomically); False when it already did."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "xb") as out:
                out.write(data)
        except FileExistsError:
            return False
        return True



# ---------------------------------------------------------------------------------------------------------------------
# S3 (MinIO)


@dataclass(frozen=True)
class S3Location:
    endpoint: str  # host[:port]
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> "S3Location":
        parts = urlsplit(uri)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"expected s3://host[:port]/bucket/key, got {uri!r}")
        bucket, _, key = parts.path.lstrip("/").partition("/")
        return cls(parts.netloc, bucket, unquote(key))

    def __str__(self) -> str:
        return f"s3://{self.endpoint}/{self.bucket}/{self.key}"


def s3_client(endpoint: str, access_key: str | None, secret_key: str | None, secure: bool | None = None, *,
              ca_bundle: str | None = None, http_client=None, quick: bool = False):
    """A MinIO client; ``endpoint`` may carry a scheme (``https://``) which decides TLS.

    ``ca_bundle`` adds trusted CAs (a private CA's PEM) for TLS; ``http_client`` replaces the connection pool
    altogether (the SSRF-guarded one for hosts a job names). A ``quick`` client answers within seconds and never
    retries: for probes and checks that must not hang while the store is down.
    """
    from minio import Minio

    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if secure is None:
        secure = parts.scheme == "https"
    if http_client is None and (ca_bundle or quick):
        http_client = _pool(ca_bundle, quick)
    return Minio(parts.netloc, access_key=access_key or None, secret_key=secret_key or None, secure=secure,
                 http_client=http_client)


def _pool(ca_bundle: str | None, quick: bool):
    """MinIO's own default pool (or a quick one), trusting ``ca_bundle``; a missing file fails here, not at the
    first request."""
    import urllib3

    tls = {}
    if ca_bundle:
        if not Path(ca_bundle).is_file():
            raise StorageError(f"SMARTCROP_S3_CA_BUNDLE: no such file: {ca_bundle}")
        tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": ca_bundle}
    if quick:
        return urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=3), retries=urllib3.Retry(total=0),
                                   maxsize=2, **tls)
    return urllib3.PoolManager(timeout=urllib3.Timeout(connect=10, read=300), maxsize=10, **tls,
                               retries=urllib3.Retry(total=5, backoff_factor=0.2,
                                                     status_forcelist=[500, 502, 503, 504]))


def _wrap_s3_errors(action: str, location: str):
    """Turn the MinIO client's exceptions into ours, without credentials in the message."""
    from minio.error import S3Error
    from urllib3.exceptions import HTTPError

    @contextlib.contextmanager
    def guard():
        try:
            yield
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchObject"):
                raise ObjectNotFound(f"{action} {location}: {exc.code}") from None
            raise StorageError(f"{action} {location}: {exc.code}: {exc.message}") from None
        except (HTTPError, OSError) as exc:
            raise StorageError(f"{action} {location}: {type(exc).__name__}: {exc}") from None

    return guard()


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) and not isinstance(exc, ObjectNotFound)


class S3Storage:
    """Job data in one bucket of an S3 API server (MinIO in the local stack).

    Reads and writes ride out a storage outage of up to ``retry_seconds`` (a MinIO restart, a network blip) with
    backoff, so minutes of detection are not thrown away because the final write met a closed port.
    """

    def __init__(self, endpoint: str, access_key: str, secret_key: str, bucket: str, retry_seconds: float = 0.0,
                 ca_bundle: str | None = None):
        parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        self.host = parts.netloc
        self.bucket = bucket
        self.retry_seconds = retry_seconds
        self.client = s3_client(endpoint, access_key, secret_key, ca_bundle=ca_bundle)
        self.quick_client = s3_client(endpoint, access_key, secret_key, ca_bundle=ca_bundle, quick=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> "S3Storage":
        return cls(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key, settings.s3_bucket,
                   retry_seconds=settings.storage_retry_seconds, ca_bundle=settings.s3_ca_bundle or None)

    def _retrying(self, action):
        def log_retry(exc: BaseException, delay: float) -> None:
            log.warning("storage unavailable, retrying in %.1fs: %s", delay, exc)

        return retry_for(self.retry_seconds, action, transient=_is_transient, on_retry=log_retry)

    def ensure_bucket(self) -> None:
        with _wrap_s3_errors("create bucket", self.bucket):
            if not self.client.bucket_exists(self.bucket):
                self.client.make_bucket(self.bucket)

    def expire(self, prefix: str, days: int) -> None:
        """Keep a bucket lifecycle rule that deletes objects under ``prefix`` ``days`` after they were written (none
        when ``days`` is 0); rules under other ids, an operator's own, are kept as they are."""
        from minio.commonconfig import ENABLED, Filter
        from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

        rule_id = f"smartcrop-expire-{prefix.strip('/').replace('/', '-')}"
        with _wrap_s3_errors("set the lifecycle of", self.bucket):
            current = self.client.get_bucket_lifecycle(self.bucket)
            rules = [rule for rule in (current.rules if current else []) if rule.rule_id != rule_id]
            if days > 0:
                rules.append(Rule(ENABLED, rule_filter=Filter(prefix=prefix), rule_id=rule_id,
                                  expiration=Expiration(days=days)))
            if rules:
                self.client.set_bucket_lifecycle(self.bucket, LifecycleConfig(rules))
            elif current is not None:
                self.client.delete_bucket_lifecycle(self.bucket)

    def ping(self) -> bool:
        try:
            with _wrap_s3_errors("check bucket", self.bucket):
                return self.quick_client.bucket_exists(self.bucket)
        except StorageError:
            return False

    def uri(self, key: str) -> str:
        return f"s3://{self.host}/{self.bucket}/{key}"

    def _location(self, uri: str) -> S3Location:
        location = S3Location.parse(uri)
        if location.endpoint != self.host:
            raise ValueError(f"{uri} is not in this store ({self.host})")
        return location

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        import io

        def write() -> None:
            with _wrap_s3_errors("write", self.uri(key)):
                self.client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)

        self._retrying(write)
        return self.uri(key)

    def create_once(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> bool:
        """Write ``key`` only if it does not exist yet: one atomic conditional PUT (``If-None-Match: *``), so of
        two writers exactly one wins. False when the object already existed (a retry whose first try did land
        also reads False: callers compare the stored content with their own)."""
        from minio.error import S3Error

        def write() -> bool:
            with _wrap_s3_errors("create", self.uri(key)):
                try:  # put_object would send the header as user metadata; the plain PUT carries it as is
                    self.client._put_object(self.bucket, key, data,
                                            headers={"If-None-Match": "*", "Content-Type": content_type})
                except S3Error as exc:
                    if exc.code == "PreconditionFailed":
                        return False
                    raise
                return True

        return self._retrying(write)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> str:
        def upload() -> None:
            with _wrap_s3_errors("upload", self.uri(key)):
                self.client.fput_object(self.bucket, key, str(path),
                                        content_type=content_type or "application/octet-stream")

        self._retrying(upload)
        return self.uri(key)

    def reference_file(self, key: str, path: Path) -> str:
        """A local file reaches the other services' machines only as an object of this store."""
        return self.put_file(key, path)

    def size_in_store(self, uri: str) -> int | None:
        """The size of ``uri`` when it names an object in this very bucket, which later stages can read in place;
        None for any other location."""
        location = S3Location.parse(uri)
        if location.endpoint != self.host or location.bucket != self.bucket:
            return None

        def stat() -> int:
            with _wrap_s3_errors("read", uri):
                return self.client.stat_object(location.bucket, location.key).size or 0

        return self._retrying(stat)

    def get_bytes(self, uri: str) -> bytes:
        location = self._location(uri)

        def read() -> bytes:
            with _wrap_s3_errors("read", uri):
                response = self.client.get_object(location.bucket, location.key)
                try:
                    return response.read()
                finally:
                    response.close()
                    response.release_conn()

        return self._retrying(read)

    def exists(self, key: str) -> bool:
        """One quick look, no retries: callers poll it and must not stall while the store is down."""
        try:
            with _wrap_s3_errors("check", self.uri(key)):
                self.quick_client.stat_object(self.bucket, key)
            return True
        except ObjectNotFound:
            return False

    @contextlib.contextmanager
    def local_copy(self, uri: str) -> Iterator[Path]:
        location = self._location(uri)
        suffix = Path(location.key).suffix
        with tempfile.TemporaryDirectory(prefix="smartcrop-") as tmp:
            path = Path(tmp) / f"object{suffix}"
            def download() -> None:
                with _wrap_s3_errors("download", uri):
                    self.client.fget_object(location.bucket, location.key, str(path))

            self._retrying(download)
            yield path
