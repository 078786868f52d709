"""Qencode's API as its official clients speak it: error codes, form fields, and our statuses in Qencode's terms.

The clients (``qencode3`` and the others) POST form-encoded fields and read a JSON object whose ``error`` is a number
(0: fine); a request that fails at the HTTP level reaches them only as ``error: true`` with the HTTP reason, so
every refusal Qencode would answer with a code is answered with HTTP 200 and that code. Only what Qencode would not
answer at all (a body over the size limit, our own outage) gets an HTTP error status.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping
from urllib.parse import parse_qs

from smartcrop.core.events import JobState, JobStatus
from smartcrop.runtime.storage import S3Location

ERROR_OK = 0
ERROR_SERVER_INTERNAL = 1
ERROR_BAD_API_KEY = 2
ERROR_API_KEY_NOT_FOUND = 3
ERROR_BAD_TOKEN = 4
ERROR_TOKEN_NOT_FOUND = 5
ERROR_SYSTEM_BUSY = 8
ERROR_BAD_PAYLOAD = 9
ERROR_BAD_TOKENS = 13
ERROR_FIELD_REQUIRED = 14

# Qencode's task states, as its clients test them (``completed`` ends a poll; ``error`` is a failed task)
QUEUED, ENCODING, COMPLETED, ERROR = "queued", "encoding", "completed", "error"


class ApiError(Exception):
    """A refusal in Qencode's terms: ``{"error": code, "message": ...}``."""

    def __init__(self, code: int, message: str, http_status: int = 200, retry_after: float | None = None):
        super().__init__(message)
        self.code, self.message, self.http_status, self.retry_after = code, message, http_status, retry_after

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


def parse_form(body: bytes) -> dict[str, list[str]]:
    """An ``application/x-www-form-urlencoded`` body (what the clients send); a JSON object is taken too."""
    text = body.decode("utf-8", errors="strict") if body else ""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            raise ApiError(ERROR_BAD_PAYLOAD, "the request body is not valid JSON") from None
        if not isinstance(document, dict):
            raise ApiError(ERROR_BAD_PAYLOAD, "the request body must be an object")
        return {key: [value if isinstance(value, str) else json.dumps(value)] for key, value in document.items()}
    return parse_qs(text, keep_blank_values=True)


def required(form: Mapping[str, list[str]], name: str) -> str:
    values = form.get(name) or []
    if not values or not values[0].strip():
        raise ApiError(ERROR_FIELD_REQUIRED, f"{name} is required")
    return values[0].strip()


def optional(form: Mapping[str, list[str]], name: str) -> str | None:
    values = form.get(name) or []
    return values[0] if values and values[0] != "" else None


def task_tokens(form: Mapping[str, list[str]]) -> list[str]:
    """``task_tokens`` as one token, a comma-separated list, repeated ``task_tokens[]`` fields or a JSON list."""
    raw = (form.get("task_tokens") or []) + (form.get("task_tokens[]") or [])
    tokens: list[str] = []
    for value in raw:
        value = value.strip()
        if value.startswith("["):
            try:
                items = json.loads(value)
            except ValueError:
                raise ApiError(ERROR_BAD_TOKENS, "task_tokens is not a valid list") from None
            if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
                raise ApiError(ERROR_BAD_TOKENS, "task_tokens must be a list of strings")
            tokens.extend(items)
        else:
            tokens.extend(part.strip() for part in value.split(",") if part.strip())
    if not tokens:
        raise ApiError(ERROR_FIELD_REQUIRED, "task_tokens is required")
    return list(dict.fromkeys(tokens))


def parse_query(text: str) -> dict[str, Any]:
    """The ``query`` field of ``start_encode2``: ``{"query": {...}}`` (or the bare query) as a JSON string."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ApiError(ERROR_BAD_PAYLOAD, f"query is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ApiError(ERROR_BAD_PAYLOAD, "query must be a JSON object")
    query = document.get("query", document)
    if not isinstance(query, dict):
        raise ApiError(ERROR_BAD_PAYLOAD, "query must be a JSON object")
    return query


def qencode_state(status: JobStatus | None) -> str:
    """Our five states in Qencode's four: a cancelled job is an ``error`` to a Qencode client."""
    if status is None or status.status is JobState.QUEUED:
        return QUEUED
    if status.status is JobState.RUNNING:
        return ENCODING
    if status.status is JobState.COMPLETED:
        return COMPLETED
    return ERROR


def _video(uri: str, index: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"url": uri, "tag": f"video-{index}-0", "user_tag": None}
    if uri.startswith("s3://"):
        location = S3Location.parse(uri)
        entry["storage"] = {"type": "s3", "host": location.endpoint, "bucket": location.bucket, "key": location.key,
                            "format": "hls" if uri.endswith(".m3u8") else "dash" if uri.endswith(".mpd") else "mp4"}
    return entry


@dataclass(frozen=True)
class TaskStatus:
    """One task's entry in ``statuses``, Qencode's fields first and ours (``job_id``, ``stage``) after them."""

    task_token: str
    job_id: str
    status: JobStatus | None
    status_url: str

    @property
    def state(self) -> str:
        return qencode_state(self.status)

    def to_json(self) -> dict[str, Any]:
        status, state = self.status, self.state
        failed = state == ERROR
        description = None
        if failed and status is not None:
            description = f"[{status.error.code}] {status.error.message}" if status.error else (status.message or
                                                                                                status.status.value)
        updated = status.updated_at if status is not None else datetime.now(timezone.utc)
        return {"status": state, "percent": 100.0 if state == COMPLETED else round(float(status.percent), 1)
                if status is not None else 0.0,
                "error": 1 if failed else 0, "error_description": description,
                "videos": [_video(uri, i) for i, uri in enumerate(status.outputs)] if state == COMPLETED else [],
                "images": [], "audios": [], "texts": [], "status_url": self.status_url,
                "job_id": self.job_id, "stage": status.stage if status is not None else "submit",
                "smartcrop_status": status.status.value if status is not None else "queued",
                "error_code": status.error.code if failed and status is not None and status.error else None,
                "updated_at": updated.isoformat()}
