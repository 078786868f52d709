"""What ``/healthz``, ``/readyz`` and the consumer-lag gauge say about one stage service."""

from __future__ import annotations

import json
import logging
import time

from confluent_kafka import KafkaException

from smartcrop.runtime import metrics

log = logging.getLogger(__name__)

LIVE_SECONDS = 60  # the loop polls at least every second, and every half second while a job runs
READY_CACHE_SECONDS = 5  # probes come often; the admin and storage calls need not


class Health:
    """Live while the consumer loop beats; ready while Kafka has our input topic and the object store answers."""

    def __init__(self, input_topic: str):
        self.input_topic = input_topic
        self.admin = None  # a separate client: the consumer belongs to the main thread
        self.storage = None
        self._alive_at = time.monotonic()
        self._ready_cache = (0.0, False)

    def beat(self) -> None:
        self._alive_at = time.monotonic()

    def live(self) -> bool:
        return time.monotonic() - self._alive_at < LIVE_SECONDS

    def ready(self) -> bool:
        checked_at, ok = self._ready_cache
        if time.monotonic() - checked_at < READY_CACHE_SECONDS:
            return ok
        ok = self.admin is not None and self.storage is not None and self.storage.ping()
        if ok:
            try:
                ok = self.admin.list_topics(self.input_topic, timeout=2).topics[self.input_topic].error is None
            except KafkaException:
                ok = False
        self._ready_cache = (time.monotonic(), ok)
        return ok


class Lag:
    """Lag per owned partition, from the consumer's statistics and the offsets this instance committed."""

    def __init__(self, stage: str):
        self.stage = stage
        self.committed: dict[tuple[str, int], int] = {}  # owned partitions -> next offset committed here (or -1)

    def owned(self, partitions) -> None:
        for tp in partitions:
            self.committed.setdefault((tp.topic, tp.partition), -1)

    def disowned(self, partitions) -> None:
        for tp in partitions:  # another instance reports these now
            self.committed.pop((tp.topic, tp.partition), None)
            try:
                metrics.CONSUMER_LAG.remove(self.stage, tp.topic, str(tp.partition))
            except KeyError:
                pass

    def committed_at(self, topic: str, partition: int, next_offset: int) -> None:
        self.committed[(topic, partition)] = next_offset

    def on_stats(self, stats_json: str) -> None:
        """librdkafka's own ``consumer_lag`` stays -1 here, because offsets are committed through the producer's
        transactions."""
        try:
            stats = json.loads(stats_json)
            for topic, data in stats.get("topics", {}).items():
                for partition, info in data.get("partitions", {}).items():
                    key = (topic, int(partition))
                    if key in self.committed:
                        lag = partition_lag(info, self.committed[key])
                        if lag is not None:
                            metrics.CONSUMER_LAG.labels(self.stage, topic, partition).set(lag)
        except (ValueError, AttributeError, TypeError):
            log.debug("unreadable client statistics", exc_info=True)


def partition_lag(info: dict, committed_here: int) -> int | None:
    """Messages not yet done in one partition, from librdkafka's statistics and our own last commit.

    Where the group stands is the furthest of: the offset committed when the partition was assigned
    (``committed_offset``), the next message handed to the application (``app_offset``) and what this instance
    committed since. With none known the group starts at the earliest offset (``auto.offset.reset``). A commit
    marker of an upstream transaction takes an offset too, so an idle partition may show a lag of 1.
    """
    end = info.get("ls_offset", -1)  # read_committed: the last stable offset
    if end is None or end < 0:
        return None
    position = max(info.get("committed_offset", -1), info.get("app_offset", -1), committed_here)
    if position < 0:
        position = max(0, info.get("lo_offset", 0))
    return max(0, end - position)
