"""Bounded exponential backoff with jitter: one policy for every transient fault (broker, storage, network)."""

from __future__ import annotations

import random
import time
from typing import Callable, TypeVar

T = TypeVar("T")

BASE_SECONDS = 1.0
CAP_SECONDS = 30.0


def backoff(attempt: int, base: float = BASE_SECONDS, cap: float = CAP_SECONDS) -> float:
    """Equal jitter: half the capped exponential step plus a random half, so retries spread out but never bunch
    at zero (a fault that lasts 20 s outlives a handful of zero-ish delays)."""
    step = min(cap, base * 2 ** attempt)
    return step / 2 + random.uniform(0, step / 2)


def retry_for(seconds: float, action: Callable[[], T], *, transient: Callable[[BaseException], bool],
              on_retry: Callable[[BaseException, float], None] = lambda exc, delay: None,
              sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``action``; while its failures are transient and ``seconds`` have not passed, wait and try again."""
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        try:
            return action()
        except Exception as exc:
            remaining = deadline - time.monotonic()
            if not transient(exc) or remaining <= 0:
                raise
            delay = min(backoff(attempt, base=0.5, cap=8.0), remaining)
            on_retry(exc, delay)
            sleep(delay)
            attempt += 1
