"""API keys, access tokens, task tokens and per-key rate limits.

``SMARTCROP_GATEWAY_API_KEYS`` (a Kubernetes Secret in a deployment) lists the keys, comma- or newline-separated, as
``name:sha256-of-the-key[:webhook-secret[:operator]]``: only the hash is kept, and a presented key is hashed and
compared in constant time. The webhook secret signs the callbacks sent for that key's tasks (when left empty, one is
derived from ``SMARTCROP_SECRET_KEY`` and the name; ``smartcrop gateway-key`` prints it). The ``operator`` scope lets
a key read the status of every job (``GET /v1/jobs/{job_id}``), not only of the tasks it started.

Access and task tokens are signed rather than stored, so any replica accepts what another issued:
``name.expiry.signature`` and 32 hex digits (16 random, 16 of a signature binding them to the key's name).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from smartcrop.gateway.qencode import (
    ERROR_API_KEY_NOT_FOUND,
    ERROR_BAD_API_KEY,
    ERROR_BAD_TOKEN,
    ERROR_BAD_TOKENS,
    ERROR_SYSTEM_BUSY,
    ERROR_TOKEN_NOT_FOUND,
    ApiError,
)

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TASK_TOKEN = re.compile(r"^[0-9a-f]{32}$")
OPERATOR = "operator"


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def derived_webhook_secret(secret_key: str, name: str) -> str:
    return hmac.new(secret_key.encode(), f"smartcrop-webhook:{name}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    name: str
    key_hash: str
    webhook_secret: str = ""
    operator: bool = False  # reads the status of any job, also of jobs produced straight onto Kafka


def may_read_job(key: ApiKey, owner: str | None) -> bool:
    """Whether ``key`` may read a job's status; ``owner`` names the key whose task started the job (None: the job
    did not come through the gateway). Whoever may not read a job is told it does not exist."""
    return key.operator or (owner is not None and hmac.compare_digest(owner, key.name))


def parse_api_keys(text: str, secret_key: str = "") -> tuple[ApiKey, ...]:
    """Entries ``name:sha256hex[:webhook-secret[:operator]]``; raises ValueError naming a malformed entry (never its
    secret)."""
    keys = []
    for number, entry in enumerate(filter(None, (e.strip() for e in re.split(r"[,\n]", text or ""))), 1):
        fields = entry.split(":")
        name, key_hash, webhook, scope = (fields + ["", "", ""])[:4]
        key_hash = key_hash.lower()
        if len(fields) > 4 or not _NAME.match(name) or not _HEX64.match(key_hash) or scope not in ("", OPERATOR):
            raise ValueError(f"SMARTCROP_GATEWAY_API_KEYS entry {number}: expected name:sha256hex[:webhook-secret"
                             f"[:{OPERATOR}]] (name of letters, digits, '_' or '-'; the key's SHA-256 as 64 hex "
                             f"digits; a webhook secret without ':')")
        keys.append(ApiKey(name, key_hash, webhook or derived_webhook_secret(secret_key, name), scope == OPERATOR))
    names = [k.name for k in keys]
    if len(set(names)) != len(names):
        raise ValueError("SMARTCROP_GATEWAY_API_KEYS: a key name appears twice")
    return tuple(keys)


class Authority:
    """Checks keys, issues and checks tokens; ``signing_key`` must be the same on every replica."""

    def __init__(self, keys: tuple[ApiKey, ...], signing_key: bytes, token_ttl: float = 24 * 3600):
        self.keys = {key.name: key for key in keys}
        self.signing_key = signing_key
        self.token_ttl = token_ttl

    def _sign(self, text: str) -> str:
        return hmac.new(self.signing_key, text.encode(), hashlib.sha256).hexdigest()

    def key_for(self, api_key: str) -> ApiKey:
        """The key presented to ``access_token``; every configured hash is compared, in constant time."""
        if not api_key or len(api_key) > 512:
            raise ApiError(ERROR_BAD_API_KEY, "api_key does not pass validation")
        presented = hash_key(api_key)
        found = None
        for key in self.keys.values():
            if hmac.compare_digest(presented, key.key_hash):
                found = key
        if found is None:
            raise ApiError(ERROR_API_KEY_NOT_FOUND, "no such api_key")
        return found

    def access_token(self, key: ApiKey, now: float | None = None) -> tuple[str, int]:
        expire = int((now or time.time()) + self.token_ttl)
        text = f"{key.name}.{expire}"
        return f"{text}.{self._sign('access.' + text)}", expire

    def key_for_token(self, token: str, now: float | None = None) -> ApiKey:
        parts = token.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            raise ApiError(ERROR_BAD_TOKEN, "token does not pass validation")
        name, expire, signature = parts
        if not hmac.compare_digest(signature, self._sign(f"access.{name}.{expire}")):
            raise ApiError(ERROR_BAD_TOKEN, "token does not pass validation")
        if int(expire) < (now or time.time()) or name not in self.keys:
            raise ApiError(ERROR_TOKEN_NOT_FOUND, "token expired or revoked; get a new one from access_token")
        return self.keys[name]

    def task_token(self, key: ApiKey) -> str:
        nonce = secrets.token_hex(8)
        return nonce + self._sign(f"task.{key.name}.{nonce}")[:16]

    def owns_task(self, key: ApiKey, task_token: str) -> bool:
        if not _TASK_TOKEN.match(task_token):
            return False
        nonce, signature = task_token[:16], task_token[16:]
        return hmac.compare_digest(signature, self._sign(f"task.{key.name}.{nonce}")[:16])


def check_task_token_format(task_token: str) -> None:
    if not _TASK_TOKEN.match(task_token):
        raise ApiError(ERROR_BAD_TOKENS, f"task token {task_token[:40]!r} does not pass validation")


class RateLimiter:
    """A token bucket per caller: ``rate`` requests a second on average, bursts of up to ``burst``."""

    def __init__(self, rate: float, burst: float, clock=time.monotonic):
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> None:
        if self.rate <= 0:
            return
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens < 1:
                self._buckets[caller] = (tokens, now)
                raise ApiError(ERROR_SYSTEM_BUSY, "rate limit reached; retry later",
                               retry_after=round((1 - tokens) / self.rate, 2))
            self._buckets[caller] = (tokens - 1, now)
            if len(self._buckets) > 10000:  # callers by address come and go: forget the full buckets
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self.burst}
