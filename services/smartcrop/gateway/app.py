"""The gateway's HTTP server: Qencode's endpoints, the job status view (``GET /v1/jobs/{job_id}``), ``/metrics``,
``/healthz`` and ``/readyz`` on one port.

Uvicorn serves; the work of a request (object store, broker) runs on the thread pool. Every request is counted by
endpoint, HTTP status and Qencode error code, timed, and logged as one JSON line with those; a started task's line
names its key and job. No line holds a key, a token or the query.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from smartcrop.core.events import JobStatus
from smartcrop.core.job import JobError, parse_job
from smartcrop.core.ports import StorageError
from smartcrop.gateway import metrics
from smartcrop.gateway.callbacks import CallbackDispatcher, check_callback_url
from smartcrop.gateway.keys import (
    ApiKey,
    Authority,
    RateLimiter,
    check_task_token_format,
    may_read_job,
    parse_api_keys,
)
from smartcrop.gateway.qencode import (
    ERROR_BAD_PAYLOAD,
    ERROR_BAD_TOKEN,
    ERROR_BAD_TOKENS,
    ERROR_SERVER_INTERNAL,
    ApiError,
    TaskStatus,
    optional,
    parse_form,
    parse_query,
    required,
    task_tokens,
)
from smartcrop.gateway.tasks import GATEWAY_PREFIX, Task, TaskStore
from smartcrop.gateway.view import StatusView
from smartcrop.runtime.config import Settings, _env, _env_float, _env_int
from smartcrop.runtime.idempotency import JobIdConflict
from smartcrop.runtime.kafka import DeliveryError, EventPublisher
from smartcrop.runtime.retry import backoff
from smartcrop.runtime.storage import S3Storage
from smartcrop.runtime.transfer import network_policy
from smartcrop.submission import admit_and_claim, publish_job

log = logging.getLogger("smartcrop.gateway")

ROUTES = {"/v1/access_token": "access_token", "/v1/create_task": "create_task", "/v1/start_encode2": "start_encode2",
          "/v1/status": "status", "/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics"}
MAX_TOKENS = 100  # task tokens per status request
MAX_PAYLOAD = 4096  # Qencode's payload: the caller's own data, handed back in callbacks
TASK_STATUS = re.compile(r"^/v1/status/[0-9a-f]{1,64}$")
JOB_STATUS = re.compile(r"^/v1/jobs/([A-Za-z0-9][A-Za-z0-9._-]{0,127})$")  # the job ids ``parse_job`` accepts


class JobNotFound(Exception):
    """No such job, or not one this key may read: the same answer, so a key learns nothing of others' jobs."""


class Unauthorized(Exception):
    """No API key, or an unknown one, on a job status request."""


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    public_url: str = ""  # the base URL callers reach us at (status_url); default: the request's own
    api_keys: str = ""
    token_secret: str = ""
    token_ttl: float = 24 * 3600
    rate_limit: float = 20.0  # requests a second per key (and per address, for status), on average
    rate_burst: float = 40.0
    max_body_bytes: int = 1 << 20
    callback_attempts: int = 8
    callback_max_age: float = 24 * 3600  # on a restart, callbacks still go out for states this recent
    retention_days: int = 30  # task records and callback claims under gateway/ expire this long after (0: kept)

    @classmethod
    def from_env(cls) -> "GatewayConfig":
        return cls(host=_env("SMARTCROP_GATEWAY_HOST", cls.host), port=_env_int("SMARTCROP_GATEWAY_PORT", cls.port),
                   public_url=(_env("SMARTCROP_GATEWAY_PUBLIC_URL", "") or "").rstrip("/"),
                   api_keys=_env("SMARTCROP_GATEWAY_API_KEYS", ""),
                   token_secret=_env("SMARTCROP_GATEWAY_TOKEN_SECRET", ""),
                   token_ttl=_env_float("SMARTCROP_GATEWAY_TOKEN_TTL", cls.token_ttl),
                   rate_limit=_env_float("SMARTCROP_GATEWAY_RATE_LIMIT", cls.rate_limit),
                   rate_burst=_env_float("SMARTCROP_GATEWAY_RATE_BURST", cls.rate_burst),
                   max_body_bytes=_env_int("SMARTCROP_GATEWAY_MAX_BODY_BYTES", cls.max_body_bytes),
                   callback_attempts=max(1, _env_int("SMARTCROP_GATEWAY_CALLBACK_ATTEMPTS", cls.callback_attempts)),
                   callback_max_age=_env_float("SMARTCROP_GATEWAY_CALLBACK_MAX_AGE", cls.callback_max_age),
                   retention_days=max(0, _env_int("SMARTCROP_GATEWAY_RETENTION_DAYS", cls.retention_days)))


def signing_key(config: GatewayConfig, settings: Settings) -> bytes:
    """The same on every replica: the gateway's own secret, else one derived from the deployment's key."""
    if config.token_secret:
        return config.token_secret.encode()
    if settings.secret_key:
        return hashlib.sha256(b"smartcrop-gateway-tokens:" + settings.secret_key.encode()).digest()
    log.warning("neither SMARTCROP_GATEWAY_TOKEN_SECRET nor SMARTCROP_SECRET_KEY is set: tokens are valid only on "
                "this replica, until it restarts")
    return secrets.token_bytes(32)


class Gateway:
    """Qencode's operations on top of admission, the job id's claim, confirmed publishing and the status view."""

    def __init__(self, settings: Settings, config: GatewayConfig, *, storage=None, publisher=None, view=None):
        self.settings, self.config = settings, config
        self.authority = Authority(parse_api_keys(config.api_keys, settings.secret_key), signing_key(config, settings),
                                   config.token_ttl)
        if not self.authority.keys:
            log.warning("SMARTCROP_GATEWAY_API_KEYS is empty: every request will be refused")
        self.limiter = RateLimiter(config.rate_limit, config.rate_burst)
        self.storage = S3Storage.from_settings(settings) if storage is None else storage
        self.publisher = EventPublisher(settings) if publisher is None else publisher
        self.view = StatusView(settings) if view is None else view  # (an empty view is falsy: it has a length)
        self.tasks = TaskStore(self.storage)
        self.policy = network_policy(settings)
        self.callbacks = CallbackDispatcher(self.tasks, self.storage, self.policy, self._webhook_secret,
                                            lambda task: self.status_url(task.task_token, None),
                                            attempts=config.callback_attempts, max_age=config.callback_max_age,
                                            connect_timeout=settings.http_connect_timeout,
                                            read_timeout=min(settings.http_read_timeout, 30.0))
        self.view.add_listener(self.callbacks.on_change)
        self._ready_cache = (0.0, False)

    def start(self) -> "Gateway":
        metrics.initialise()
        for attempt in range(1000):  # object storage may come up after us (Compose, a cluster starting)
            try:
                self.storage.ensure_bucket()
                if isinstance(self.storage, S3Storage):  # a store handed in (tests) keeps its own lifecycle
                    self.storage.expire(GATEWAY_PREFIX, self.config.retention_days)
                break
            except StorageError as exc:
                log.warning("object storage not reachable (%s); retrying", exc)
                time.sleep(backoff(min(attempt, 5)))
        self.callbacks.start()
        self.view.start()
        return self

    def stop(self) -> None:
        self.view.stop()
        self.callbacks.stop()
        try:
            self.publisher.flush(5)
        except Exception:  # nothing is pending after confirmed deliveries; a broker that is gone is no news
            pass

    def _webhook_secret(self, name: str) -> str | None:
        key = self.authority.keys.get(name)
        return key.webhook_secret if key else None

    def status_url(self, task_token: str, base: str | None) -> str:
        base = self.config.public_url or base or f"http://{self.config.host}:{self.config.port}"
        return f"{base.rstrip('/')}/v1/status/{task_token[:16]}"

    # ---- the operations (each on a worker thread) --------------------------------------------------------------

    def access_token(self, form, caller: str) -> dict:
        self.limiter.take(f"address:{caller}")
        key = self.authority.key_for(required(form, "api_key"))
        token, expire = self.authority.access_token(key)
        return {"error": 0, "token": token,
                "expire": datetime.fromtimestamp(expire, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")}

    def create_task(self, form, caller: str) -> dict:
        key = self.authority.key_for_token(required(form, "token"))
        self.limiter.take(f"key:{key.name}")
        return {"error": 0, "task_token": self.authority.task_token(key)}

    def _owner(self, task_token: str) -> ApiKey:
        for key in self.authority.keys.values():
            if self.authority.owns_task(key, task_token):
                return key
        raise ApiError(ERROR_BAD_TOKEN, "task_token does not pass validation")

    def start_encode2(self, form, base: str) -> dict:
        task_token = required(form, "task_token")
        key = self._owner(task_token)
        self.limiter.take(f"key:{key.name}")
        query = parse_query(required(form, "query"))
        callback_url = query.get("callback_url")
        try:
            job = parse_job({"query": query}, job_id=None if query.get("job_id") else task_token,
                            limits=self.settings.limits)
            if callback_url is not None:
                if not isinstance(callback_url, str):
                    raise JobError("callback_url", "expected an http(s) URL")
                check_callback_url(callback_url, self.policy)
            claimed = admit_and_claim(job, self.settings, self.storage)
        except (JobError, JobIdConflict) as exc:
            raise ApiError(ERROR_BAD_PAYLOAD, str(exc)) from None
        payload = optional(form, "payload")
        if payload is not None and len(payload) > MAX_PAYLOAD:
            raise ApiError(ERROR_BAD_PAYLOAD, f"payload is longer than {MAX_PAYLOAD} characters")
        task = Task(task_token, job.job_id, key.name, callback_url, payload)
        bound = self.tasks.bind_job(task)
        if bound.task_token != task_token:
            raise ApiError(ERROR_BAD_PAYLOAD, f"job_id {job.job_id!r} belongs to another task; give another job_id")
        recorded = self.tasks.create(task)
        if recorded.job_id != job.job_id:
            raise ApiError(ERROR_BAD_PAYLOAD, "this task_token was started with another job; create a new task")
        publish_job(job, claimed, self.publisher, self.view.get)
        metrics.JOBS_STARTED.labels(key.name).inc()
        log.info("task started for key %s", key.name, extra={"job_id": job.job_id})
        return {"error": 0, "status_url": self.status_url(task_token, base)}

    def status(self, form, caller: str, base: str) -> dict:
        self.limiter.take(f"address:{caller}")
        if not self.view.ready:
            raise ApiError(ERROR_SERVER_INTERNAL, "the status view is being rebuilt; retry shortly", http_status=503)
        tokens = task_tokens(form)
        if len(tokens) > MAX_TOKENS:
            raise ApiError(ERROR_BAD_TOKENS, f"at most {MAX_TOKENS} task_tokens in one request")
        statuses = {}
        for token in tokens:
            check_task_token_format(token)
            task = self.tasks.by_token(token)
            if task is None:
                raise ApiError(ERROR_BAD_TOKENS, f"no task {token!r}")
            status: JobStatus | None = self.view.get(task.job_id)
            statuses[token] = TaskStatus(token, task.job_id, status, self.status_url(token, base)).to_json()
        return {"error": 0, "statuses": statuses}

    def job_status(self, job_id: str, authorization: str | None, caller: str) -> JobStatus:
        """``GET /v1/jobs/{job_id}`` with ``Authorization: Bearer API_KEY``: the view's latest status of a job the key
        started through the gateway, or of any job for an operator key."""
        self.limiter.take(f"address:{caller}")
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise Unauthorized("give the API key as 'Authorization: Bearer KEY'")
        try:
            key = self.authority.key_for(presented.strip())
        except ApiError:
            raise Unauthorized("no such API key") from None
        self.limiter.take(f"key:{key.name}")
        if not self.view.ready:
            raise ApiError(ERROR_SERVER_INTERNAL, "the status view is being rebuilt; retry shortly", http_status=503)
        status = self.view.get(job_id)
        if status is None:  # looked up first: a task's record is written before its job's first status
            raise JobNotFound(job_id)
        if not key.operator:
            task = self.tasks.by_job(job_id)
            if not may_read_job(key, task.key_name if task else None):
                raise JobNotFound(job_id)
        return status

    def ready(self) -> bool:
        checked_at, ok = self._ready_cache
        if time.monotonic() - checked_at < 5:
            return ok
        ok = self.view.ready and self.storage.ping()
        self._ready_cache = (time.monotonic(), ok)
        return ok


def create_app(gateway: Gateway):
    """The ASGI application; the caller starts and stops ``gateway`` (``serve`` ties both to uvicorn's life)."""
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    max_body = gateway.config.max_body_bytes

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise ApiError(ERROR_BAD_PAYLOAD, f"request body over {max_body} bytes", http_status=413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise ApiError(ERROR_BAD_PAYLOAD, f"request body over {max_body} bytes", http_status=413)
            chunks.append(chunk)
        return b"".join(chunks)

    async def job_status(request: Request, job_id: str, caller: str) -> Response:
        if request.method not in ("GET", "HEAD"):
            return JSONResponse({"error": "method_not_allowed", "message": "use GET"}, status_code=405,
                                headers={"Allow": "GET"})
        try:
            status = await run_in_threadpool(gateway.job_status, job_id, request.headers.get("authorization"), caller)
        except Unauthorized as exc:
            return JSONResponse({"error": "unauthorized", "message": str(exc)}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        except JobNotFound:
            return JSONResponse({"error": "not_found", "message": f"no job {job_id!r}"}, status_code=404)
        except ApiError as exc:  # over the rate limit, or the view still rebuilding
            if exc.http_status == 200:
                exc.http_status = 429
            raise
        return JSONResponse(status.to_json())

    async def handle(request: Request) -> Response:
        path = re.sub(r"/+", "/", request.url.path).rstrip("/") or "/"
        job = JOB_STATUS.match(path)
        endpoint = ROUTES.get(path) or ("task_status" if TASK_STATUS.match(path) else "job_status" if job else "other")
        started, error = time.monotonic(), 0
        caller = request.client.host if request.client else "unknown"
        base = gateway.config.public_url or str(request.base_url).rstrip("/")
        try:
            if endpoint in ("healthz", "readyz", "metrics"):
                if request.method not in ("GET", "HEAD"):
                    response = Response(status_code=405)
                elif endpoint == "metrics":
                    metrics.VIEW_JOBS.set(len(gateway.view))
                    metrics.VIEW_READY.set(1 if gateway.view.ready else 0)
                    response = Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
                else:
                    ok = gateway.view.live() if endpoint == "healthz" else await run_in_threadpool(_safe, gateway.ready)
                    response = JSONResponse({"live" if endpoint == "healthz" else "ready": ok},
                                            status_code=200 if ok else 503)
            elif endpoint == "other":
                response = JSONResponse({"error": 1, "message": "no such endpoint"}, status_code=404)
            elif endpoint == "job_status":
                response = await job_status(request, job.group(1), caller)
            elif request.method != "POST":
                response = JSONResponse({"error": 1, "message": "use POST"}, status_code=405,
                                        headers={"Allow": "POST"})
            else:
                try:
                    form = parse_form(await read_body(request))
                except UnicodeDecodeError:
                    raise ApiError(ERROR_BAD_PAYLOAD, "the request body is not UTF-8") from None
                if endpoint == "access_token":
                    body = await run_in_threadpool(gateway.access_token, form, caller)
                elif endpoint == "create_task":
                    body = await run_in_threadpool(gateway.create_task, form, caller)
                elif endpoint == "start_encode2":
                    body = await run_in_threadpool(gateway.start_encode2, form, base)
                else:
                    body = await run_in_threadpool(gateway.status, form, caller, base)
                response = JSONResponse(body)
        except ApiError as exc:
            error = exc.code
            headers = {"Retry-After": str(max(1, round(exc.retry_after)))} if exc.retry_after else None
            response = JSONResponse(exc.body(), status_code=exc.http_status, headers=headers)
        except (DeliveryError, StorageError) as exc:  # our own outage: the caller retries the same request
            error = ERROR_SERVER_INTERNAL
            log.warning("%s failed: %s", endpoint, exc)
            response = JSONResponse({"error": ERROR_SERVER_INTERNAL, "message": "temporarily unavailable; retry"},
                                    status_code=503)
        except Exception:
            error = ERROR_SERVER_INTERNAL
            log.exception("%s failed", endpoint)
            response = JSONResponse({"error": ERROR_SERVER_INTERNAL, "message": "internal error"}, status_code=500)
        seconds = time.monotonic() - started
        metrics.REQUESTS.labels(endpoint, str(response.status_code), str(error)).inc()
        metrics.LATENCY.labels(endpoint).observe(seconds)
        if endpoint not in ("healthz", "readyz", "metrics"):
            log.info("%s %s %d", request.method, endpoint, response.status_code,
                     extra={"code": error, "seconds": round(seconds, 4)})
        return response

    async def app(scope, receive, send):
        if scope["type"] == "http":
            response = await handle(Request(scope, receive))
            await response(scope, receive, send)

    return app


def _safe(check) -> bool:
    try:
        return bool(check())
    except Exception:
        return False


def serve(settings: Settings | None = None, config: GatewayConfig | None = None) -> None:
    """``smartcrop serve gateway``: serve until SIGTERM."""
    import uvicorn

    from smartcrop.runtime.logs import setup_service_logging

    setup_service_logging("gateway")
    settings = settings or Settings.from_env()
    config = config or GatewayConfig.from_env()
    if not settings.instance_id:
        settings = replace(settings, instance_id=f"gateway-{os.getpid()}")
    gateway = Gateway(settings, config).start()
    log.info("gateway on %s:%d, %d API keys", config.host, config.port, len(gateway.authority.keys))
    try:
        uvicorn.run(create_app(gateway), host=config.host, port=config.port, log_config=None, access_log=False,
                    server_header=False, lifespan="off", timeout_graceful_shutdown=10)
    finally:
        gateway.stop()
