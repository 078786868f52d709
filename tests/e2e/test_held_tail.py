"""The render takes the clip's last pictures and its sound from the analysis' decode instead of decoding them again:
what it gets must be exactly what its own decode would give, frame for frame and sample for sample."""

from __future__ import annotations

from dataclasses import replace

import av
import pytest

from smartcrop.core.events import JobState
from smartcrop.core.job import Destination, job_from_options, with_destination
from smartcrop.media import decode
from smartcrop.media.decode import DecodedFrame, HeldTail, decode_video, decode_with_tail, picture_bytes
from smartcrop.media.probe import probe
from smartcrop.pipeline import run_job
from smartcrop.runtime.config import Settings

from ..conftest import shared_media

pytestmark = pytest.mark.e2e

CLIP = "A_man_talking_restaurant_720p_visualvoice.mp4"  # 224 pictures of 1280x720, AAC sound throughout


def contents(items) -> list[tuple]:
    return [("picture", item.index, item.t, item.frame.to_ndarray().tobytes()) if isinstance(item, DecodedFrame)
            else ("sound", item.t, item.frame.to_ndarray().tobytes()) for item in items]


def held_tail(path, budget: int) -> HeldTail:
    tail = HeldTail(budget)
    for item in decode_video(path, with_audio=True):
        tail.add(item)
    tail.freeze()
    return tail


def test_the_tail_is_the_last_pictures_within_the_budget_and_nothing_before_it_is_frozen():
    path = shared_media(CLIP)
    tail = HeldTail(100 << 20)
    items = list(decode_video(path, with_audio=True))
    for item in items:
        tail.add(item)
    assert tail.first_index() is None, "nothing is handed out while the analysis may still be decoding"
    tail.freeze()
    one = picture_bytes(items[-1].frame)
    pictures = [item for item in items if isinstance(item, DecodedFrame)]
    assert tail.first_index() == len(pictures) - (100 << 20) // one
    assert 100 << 20 >= tail.held_bytes > (100 << 20) - one


def test_a_clip_that_cannot_fit_is_not_handed_anything():
    """Decided from the probe before the analysis starts, so it decodes no sound for a tail that would stay empty."""
    media = probe(shared_media("A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4"))  # 223 pictures of 1920x1080
    assert not HeldTail.for_clip(320 << 20, media).wanted
    assert HeldTail.for_clip(700 << 20, media).wanted


def test_a_clip_whose_pictures_will_not_all_fit_holds_none():
    path = shared_media(CLIP)
    tail = HeldTail(100 << 20, expected_frames=224)  # 224 pictures of 1.4 MB
    for item in decode_video(path, with_audio=True):
        tail.add(item)
    tail.freeze()
    assert tail.first_index() is None and tail.held_bytes == 0
    assert [item.index for item in decode_with_tail(path, tail) if isinstance(item, DecodedFrame)] == list(range(224))


def test_the_render_decodes_up_to_the_tail_then_takes_it_and_sees_the_same_frames_and_sound():
    path = shared_media(CLIP)
    own = contents(decode_video(path, with_audio=True))
    tail = held_tail(path, 100 << 20)
    switched = contents(decode_with_tail(path, tail, with_audio=True))
    pictures = lambda seen: [entry for entry in seen if entry[0] == "picture"]  # noqa: E731
    sound = lambda seen: [entry for entry in seen if entry[0] == "sound"]  # noqa: E731
    assert pictures(switched) == pictures(own)
    assert sound(switched) == sound(own), "every sound frame once, none lost at the switch"
    assert tail.handed_over == 224 - tail.first_index() > 60


def test_sound_that_does_not_reach_back_to_the_switch_keeps_the_render_decoding(monkeypatch):
    """The tail keeps sound from ``SOUND_MARGIN`` before its first picture; where the render's own sound is further
    behind than that (a badly interleaved file), taking the tail would lose sound, so the render decodes on."""
    monkeypatch.setattr(decode, "SOUND_MARGIN", -1.0)  # the tail's sound starts a second after its first picture
    path = shared_media(CLIP)
    tail = held_tail(path, 100 << 20)
    assert tail.handover(tail.first_index(), sound_until=None) is None
    own = contents(decode_video(path, with_audio=True))
    assert contents(decode_with_tail(path, tail, with_audio=True)) == own
    assert tail.handed_over == 0


def test_a_silent_render_gets_no_sound_from_the_tail():
    path = shared_media(CLIP)
    tail = held_tail(path, 100 << 20)
    assert all(isinstance(item, DecodedFrame) for item in decode_with_tail(path, tail))


def test_the_embedded_run_renders_its_tail_from_the_analysis(tmp_path, detector_model):
    """One shot: its plan exists only when the analysis ends, and the render then takes the held tail (all of this
    9 s clip fits the default budget) instead of decoding it again; every picture and all the sound arrive."""
    path = shared_media(CLIP)
    out = tmp_path / "out.mp4"
    job = with_destination(job_from_options(str(path), method="single_object"), 0, Destination(url=str(out)))
    result = run_job(job, settings=replace(Settings.from_env(), render_ahead=True))
    assert result.status.status is JobState.COMPLETED, result.status.error
    assert result.ahead.reused and result.ahead.held > 200, "the render decoded the clip again"
    with av.open(str(out)) as container:
        pictures = sum(1 for _ in container.decode(video=0))
    with av.open(str(out)) as container:
        seconds = sum(frame.samples / frame.sample_rate for frame in container.decode(audio=0))
    assert pictures == 224
    assert abs(seconds - 9.0) < 0.05
