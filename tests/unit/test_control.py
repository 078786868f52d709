"""Cancel requests on the control topic reach the same check the marker object does."""

from smartcrop.core.events import ControlAction, JobControl, decode_event, encode_event
from smartcrop.runtime.cancellation import CancelWatch
from smartcrop.runtime.config import Settings
from smartcrop.runtime.control import ControlListener


class Store:
    def __init__(self, marked=()):
        self.marked, self.asked = set(marked), 0

    def exists(self, key):
        self.asked += 1
        return key in self.marked


def test_a_control_request_cancels_the_job_it_names_and_no_other():
    listener = ControlListener(Settings(topic_prefix="p."))
    assert listener.topic == "p.smartcrop.control.v1"
    listener.apply(decode_event(encode_event(JobControl("job-a", ControlAction.CANCEL, "user asked"))))
    store = Store()
    assert CancelWatch(store, "job-a", control=listener)() is True
    assert listener.reason("job-a") == "user asked"
    assert CancelWatch(store, "job-b", control=listener)() is False
    assert store.asked == 1  # job-a was answered from memory; job-b still asks the store


def test_the_marker_object_still_cancels_with_a_listener_present():
    listener = ControlListener(Settings())
    assert CancelWatch(Store({"jobs/job-c/cancel.json"}), "job-c", control=listener)() is True


def test_a_request_seen_later_cancels_a_watch_made_earlier():
    listener = ControlListener(Settings())
    watch = CancelWatch(Store(), "job-d", interval=3600, control=listener)
    assert watch() is False
    listener.apply(JobControl("job-d"))
    assert watch() is True
