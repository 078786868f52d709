"""The small policies the services lean on under faults: backoff, retry budgets, watchdogs, cancel checks, log noise."""

from __future__ import annotations

import logging
import threading

import pytest

from smartcrop.core.ports import StorageError
from smartcrop.runtime.cancellation import CancelWatch, marker_key, request_cancel
from smartcrop.runtime.committer import TransactionStuck, run_with_watchdog
from smartcrop.runtime.logs import RepeatLimiter
from smartcrop.runtime.retry import backoff, retry_for
from smartcrop.runtime.storage import LocalStorage


@pytest.mark.parametrize("attempt, low, high", [(0, 0.5, 1.0), (1, 1.0, 2.0), (3, 4.0, 8.0), (5, 15.0, 30.0),
                                                (12, 15.0, 30.0)])
def test_backoff_doubles_from_one_second_up_to_thirty_and_keeps_at_least_half(attempt, low, high):
    delays = [backoff(attempt) for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high


def test_retry_for_retries_transient_faults_until_it_succeeds():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise StorageError("down")
        return "ok"

    result = retry_for(60, flaky, transient=lambda e: isinstance(e, StorageError), sleep=sleeps.append)
    assert result == "ok" and len(calls) == 3 and len(sleeps) == 2


def test_retry_for_raises_a_permanent_fault_at_once():
    sleeps = []
    with pytest.raises(ValueError):
        retry_for(60, lambda: (_ for _ in ()).throw(ValueError("bad")), transient=lambda e: False,
                  sleep=sleeps.append)
    assert sleeps == []


def test_retry_for_gives_up_when_its_budget_is_spent():
    with pytest.raises(StorageError):
        retry_for(0, lambda: (_ for _ in ()).throw(StorageError("down")), transient=lambda e: True)


def test_the_watchdog_returns_what_finishes_and_passes_its_error_on():
    run_with_watchdog(lambda: None, 5)
    with pytest.raises(KeyError):
        run_with_watchdog(lambda: {}["missing"], 5)


def test_the_watchdog_gives_up_on_a_call_that_never_returns():
    never = threading.Event()
    with pytest.raises(TransactionStuck):
        run_with_watchdog(never.wait, 0.2)
    never.set()


def test_a_cancel_request_is_seen_by_the_watch_and_stays_seen(tmp_path):
    storage = LocalStorage(tmp_path)
    watch = CancelWatch(storage, "job-1", interval=0.0)
    assert watch() is False
    request_cancel(storage, "job-1", reason="operator")
    assert watch() is True
    (tmp_path / marker_key("job-1")).unlink()
    assert watch() is True


def test_the_watch_asks_the_store_at_most_once_per_interval(tmp_path):
    storage = LocalStorage(tmp_path)
    watch = CancelWatch(storage, "job-2", interval=3600)
    assert watch() is False
    request_cancel(storage, "job-2")
    assert watch() is False  # not asked again yet


def test_a_store_that_is_down_does_not_stop_the_work(tmp_path):
    class DownStore:
        def exists(self, key):
            raise StorageError("connection refused")

    assert CancelWatch(DownStore(), "job-3", interval=0.0)() is False


def test_repeated_client_log_lines_pass_once_per_interval():
    limiter = RepeatLimiter(interval=3600)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("kafka", logging.ERROR, __file__, 1, message, None, None)

    first = record("FAIL 127.0.0.1:19092/bootstrap: Connect failed: Connection refused (after 0ms in state CONNECT)")
    again = record("FAIL 127.0.0.1:19092/bootstrap: Connect failed: Connection refused (after 1ms in state CONNECT)")
    other = record("SESSTMOUT Consumer group session timed out")
    assert [limiter.filter(r) for r in (first, again, other)] == [True, False, True]
