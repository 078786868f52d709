"""Rendering while analysing: the pieces that make an early render safe (the path feed, settled cuts)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from smartcrop.detector.shots import ShotDetector
from smartcrop.media.render import Superseded, WindowFeed


def windows(count: int, x0: float = 0.0) -> np.ndarray:
    rows = np.zeros((count, 4))
    rows[:, 0] = x0 + np.arange(count)
    rows[:, 2:] = (90.0, 160.0)
    return rows


def test_a_feed_hands_out_windows_as_they_arrive_and_waits_for_the_rest():
    feed = WindowFeed((90, 160), expected_frames=10)
    feed.extend(windows(4))
    assert feed.row(3).tolist() == [3.0, 0.0, 90.0, 160.0]
    got = []
    reader = threading.Thread(target=lambda: got.append(feed.row(6)))
    reader.start()
    reader.join(0.2)
    assert reader.is_alive() and not got  # frame 6 is not planned yet
    feed.extend(windows(4, x0=4))
    reader.join(5)
    assert got[0].tolist() == [6.0, 0.0, 90.0, 160.0]
    assert feed.finish(windows(10)) and feed.expected_frames == 10
    assert feed.row(25).tolist() == [9.0, 0.0, 90.0, 160.0]  # past the end: the last window


def test_a_whole_path_that_disagrees_with_what_was_rendered_stops_the_reader():
    feed = WindowFeed((90, 160), expected_frames=10)
    feed.extend(windows(4))
    changed = windows(10)
    changed[2, 0] += 0.5
    assert not feed.finish(changed)
    with pytest.raises(Superseded):
        feed.row(0)


def test_a_shorter_whole_path_disagrees_too():
    feed = WindowFeed((90, 160), expected_frames=10)
    feed.extend(windows(6))
    assert not feed.finish(windows(5))


def test_an_abandoned_feed_wakes_a_waiting_reader():
    feed = WindowFeed((90, 160), expected_frames=10)
    errors = []

    def read():
        try:
            feed.row(0)
        except Superseded as exc:
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    feed.abandon()
    reader.join(5)
    assert len(errors) == 1


def test_a_whole_array_is_a_finished_feed():
    feed = WindowFeed.of(windows(3))
    assert feed.crop_size == (90.0, 160.0) and feed.given == 3 and feed.row(7)[0] == 2.0


def scene_thumbs(cuts: list[int], count: int, seed: int = 3) -> list[np.ndarray]:
    """Small frames of flat-coloured scenes with a little noise, the scene changing at ``cuts``."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(30, 226, (len(cuts) + 1, 3))
    thumbs = []
    for index in range(count):
        colour = colours[int(np.searchsorted(cuts, index, side="right"))]
        noise = rng.integers(-4, 5, (36, 64, 3))
        thumbs.append(np.clip(colour + noise, 0, 255).astype(np.uint8))
    return thumbs


def test_settled_cuts_are_the_whole_clips_cuts_and_never_one_too_close_to_the_newest_frame():
    cuts, count = [40, 95, 160, 230], 300
    thumbs = scene_thumbs(cuts, count)
    whole = ShotDetector(25.0)
    for thumb in thumbs:
        whole.add(thumb)
    assert np.flatnonzero(whole.shot_starts()).tolist() == cuts
    growing = ShotDetector(25.0)
    for added, thumb in enumerate(thumbs, start=1):
        growing.add(thumb)
        settled = growing.settled_cuts(0).tolist()
        assert settled == [c for c in cuts if c < added - growing.look_ahead]
        if settled:  # asking from a later frame on gives the cuts after it
            assert growing.settled_cuts(settled[0]).tolist() == settled[1:]
