"""Consumer lag from librdkafka's statistics, for partitions whose offsets are committed in transactions."""

from smartcrop.runtime.service import partition_lag

UNKNOWN = -1001  # librdkafka's RD_KAFKA_OFFSET_INVALID


def test_lag_counts_from_the_last_message_consumed_when_the_commit_is_unknown():
    info = {"ls_offset": 12, "app_offset": 9, "committed_offset": UNKNOWN, "consumer_lag": -1}
    assert partition_lag(info) == 3


def test_lag_counts_from_the_committed_offset_when_it_is_further():
    assert partition_lag({"ls_offset": 12, "app_offset": UNKNOWN, "committed_offset": 11}) == 1


def test_a_caught_up_partition_has_no_lag():
    assert partition_lag({"ls_offset": 12, "app_offset": 12, "committed_offset": 12}) == 0


def test_a_partition_this_instance_does_not_read_is_not_reported():
    assert partition_lag({"ls_offset": 12, "app_offset": UNKNOWN, "committed_offset": UNKNOWN}) is None
    assert partition_lag({"ls_offset": -1, "app_offset": UNKNOWN, "committed_offset": UNKNOWN}) is None
