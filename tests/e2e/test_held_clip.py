"""The render takes a short clip's pictures and sound from the analysis' decode instead of decoding them again: what
it gets must be exactly what its own decode would give, frame for frame and sample for sample."""

from __future__ import annotations

from dataclasses import replace

import av
import pytest

from smartcrop.core.events import JobState
from smartcrop.core.job import Destination, job_from_options, with_destination
from smartcrop.media.decode import DecodedAudio, DecodedFrame, HeldClip, decode_or_take, decode_video
from smartcrop.media.probe import probe
from smartcrop.pipeline import run_job
from smartcrop.runtime.config import Settings

from ..conftest import shared_media

pytestmark = pytest.mark.e2e

CLIP = "A_man_talking_restaurant_720p_visualvoice.mp4"  # 224 pictures of 1280x720 (1.4 MB each), AAC sound
FITS = 320 << 20


def contents(items) -> tuple[list, list]:
    """(pictures, sound frames), each in order; how the two interleave is the muxer's business."""
    items = list(items)
    return ([(i.index, i.t, i.frame.to_ndarray().tobytes()) for i in items if isinstance(i, DecodedFrame)],
            [(i.t, i.frame.to_ndarray().tobytes()) for i in items if isinstance(i, DecodedAudio)])


def held_clip(path, budget: int, expected_frames: int = 224) -> HeldClip:
    held = HeldClip(budget, expected_frames)
    for item in decode_video(path, with_audio=True):
        held.add(item)
    held.freeze()
    return held


def test_a_clip_that_cannot_fit_is_not_handed_anything():
    """Decided from the probe before the analysis starts, so it decodes no sound for a holder that would stay empty."""
    media = probe(shared_media("A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4"))  # 223 pictures of 1920x1080
    assert not HeldClip.for_clip(FITS, media).wanted
    assert HeldClip.for_clip(700 << 20, media).wanted


@pytest.mark.parametrize("budget, expected_frames", [(100 << 20, 224), (100 << 20, 1)],
                         ids=["known-from-the-first-picture", "found-when-it-overflows"])
def test_a_clip_whose_pictures_do_not_all_fit_holds_none(budget, expected_frames):
    path = shared_media(CLIP)
    held = held_clip(path, budget, expected_frames)
    assert held.held_bytes == 0 and not held.wanted
    assert contents(decode_or_take(path, held, with_audio=True)) == contents(decode_video(path, with_audio=True))
    assert held.handed_over == 0


def test_nothing_is_handed_out_while_the_analysis_may_still_be_decoding():
    path = shared_media(CLIP)
    held = HeldClip(FITS, 224)
    for item in decode_video(path, with_audio=True):
        held.add(item)
    assert held.handover(0, None) is None
    held.freeze()
    assert held.handover(0, None) is not None


@pytest.mark.parametrize("switch_at", [0, 150], ids=["from-the-start", "mid-clip"])
def test_the_render_sees_the_same_frames_and_sound_as_its_own_decode(switch_at):
    """``switch_at``: the picture the render stands at when the analysis ends (mid-clip: shots rendered ahead)."""
    path = shared_media(CLIP)
    own = contents(decode_video(path, with_audio=True))
    held = HeldClip(FITS, 224)

    def render_side():
        for item in decode_or_take(path, held, with_audio=True):
            if isinstance(item, DecodedFrame) and item.index == switch_at:
                for analysed in decode_video(path, with_audio=True):  # the analysis ends while the render waits
                    held.add(analysed)
                held.freeze()
            yield item

    assert contents(render_side()) == own, "every picture and sound frame once, in order, none lost at the switch"
    assert held.handed_over == 224 - switch_at - 1


def test_a_silent_render_gets_no_sound_from_the_held_clip():
    path = shared_media(CLIP)
    held = held_clip(path, FITS)
    pictures, sound = contents(decode_or_take(path, held))
    assert held.handed_over == 224 and len(pictures) == 224 and sound == []


def test_the_embedded_run_renders_a_short_clip_from_the_analysis(tmp_path, detector_model):
    """One shot: its plan exists only when the analysis ends, and the render then takes the held pictures (all of
    this 9 s clip fits the default budget) instead of decoding them again; every picture and all the sound arrive."""
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
