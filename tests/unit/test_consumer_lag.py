"""Consumer lag from librdkafka's statistics, for partitions whose offsets are committed in transactions."""

from smartcrop.runtime.health import partition_lag

UNKNOWN = -1001  # librdkafka's RD_KAFKA_OFFSET_INVALID
NOT_COMMITTED_HERE = -1


def test_lag_counts_from_the_last_message_consumed_when_the_commit_is_unknown():
    info = {"ls_offset": 12, "lo_offset": 0, "app_offset": 9, "committed_offset": UNKNOWN, "consumer_lag": -1}
    assert partition_lag(info, NOT_COMMITTED_HERE) == 3


def test_lag_counts_from_the_committed_offset_when_it_is_further():
    info = {"ls_offset": 12, "lo_offset": 0, "app_offset": UNKNOWN, "committed_offset": 11}
    assert partition_lag(info, NOT_COMMITTED_HERE) == 1


def test_what_this_instance_committed_in_its_transactions_counts():
    info = {"ls_offset": 12, "lo_offset": 0, "app_offset": 9, "committed_offset": 4}
    assert partition_lag(info, 12) == 0


def test_a_group_that_never_committed_starts_at_the_earliest_offset():
    info = {"ls_offset": 12, "lo_offset": 5, "app_offset": UNKNOWN, "committed_offset": UNKNOWN}
    assert partition_lag(info, NOT_COMMITTED_HERE) == 7


def test_an_unknown_end_of_partition_is_not_reported():
    info = {"ls_offset": UNKNOWN, "lo_offset": UNKNOWN, "app_offset": UNKNOWN, "committed_offset": UNKNOWN}
    assert partition_lag(info, NOT_COMMITTED_HERE) is None
