"""The output carries every sample of the source's sound: from the first picture (or before it, when the audio
leads), for its whole length, in sync. Checked on synthesised clips with a known tone pattern, for MP4, HLS and
DASH, through the real render, and on a real clip."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from smartcrop.core.job import job_from_options
from smartcrop.media.probe import probe
from smartcrop.media.render import render

from ..conftest import shared_media

RATE = 48_000
AAC_FRAME = 1024 / RATE
TOLERANCE = AAC_FRAME * 1.01  # one AAC frame: MPEG-TS (HLS) carries the encoder's priming frame, which it cannot trim
BURSTS = [(0.0, 0.15), (0.4, 0.5), (0.9, 1.2), (1.6, 1.65), (2.1, 2.4)]  # seconds of tone, from the first sample
DURATION = 2.6


def tone_pattern(seconds: float = DURATION) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    on = np.zeros_like(t, dtype=bool)
    for start, end in BURSTS:
        on |= (t >= start) & (t < end)
    return (0.5 * np.sin(2 * np.pi * 660 * t) * on).astype(np.float32)


def make_clip(path: Path, *, audio_lead: float = 0.0) -> None:
    """A 25 fps H.264 clip with B-frames and an AAC track of tone bursts; the audio starts ``audio_lead`` seconds
    before the first picture (the MP4 muxer then writes an edit list that delays the video)."""
    samples = tone_pattern()
    with av.open(str(path), "w", format="mp4") as out:
        video = out.add_stream("libx264", rate=25, options={"bf": "3", "preset": "ultrafast"})
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = out.add_stream("aac", rate=RATE, layout="mono")
        offset = round(audio_lead * 25)
        for i in range(int((DURATION - audio_lead) * 25)):
            image = np.full((180, 320, 3), (i * 9) % 255, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i + offset
            frame.time_base = Fraction(1, 25)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        for start in range(0, len(samples), 1024):
            chunk = samples[start:start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)


def timeline(path: Path) -> tuple[float, float, np.ndarray]:
    """(first audio sample time - first picture time, audio seconds, mono samples at 48 kHz) of a presentation."""
    with av.open(str(path)) as container:
        pictures = [float(f.pts * f.time_base) for _, f in zip(range(1), container.decode(video=0))]
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        first, chunks = None, []
        for frame in container.decode(audio=0):
            if first is None:
                first = float(frame.pts * frame.time_base)
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    audio = np.concatenate(chunks)
    return first - pictures[0], len(audio) / RATE, audio


def envelope(samples: np.ndarray) -> np.ndarray:
    """Tone on/off per 5 ms."""
    hop = RATE // 200
    usable = len(samples) // hop * hop
    return np.sqrt((samples[:usable].reshape(-1, hop) ** 2).mean(axis=1))


def lag_seconds(reference: np.ndarray, other: np.ndarray) -> float:
    a, b = envelope(reference), envelope(other)
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    corr = np.correlate(b, a, mode="full")
    return (int(np.argmax(corr)) - (n - 1)) / 200


def render_centre(source: Path, out: Path, output: str) -> Path:
    media = probe(source)
    job = job_from_options(str(source), output=output, aspect_ratio="1:1", smart_crop=False)
    side = min(media.display_width, media.display_height)
    windows = np.tile([(media.display_width - side) / 2, (media.display_height - side) / 2, side, side],
                      (max(1, media.frame_count), 1)).astype(float)
    return render(source, media, windows, job.formats[0], out)[0]


def presentation_tracks(kind: str, entry: Path) -> tuple[Path, Path]:
    """(file with the video, file with the audio) of an output presentation."""
    if kind == "advanced_hls":
        playlists = sorted(entry.parent.glob("stream_*.m3u8"))
        return playlists[0], playlists[-1]  # the video rendition(s) first, then the audio rendition
    if kind == "advanced_dash":  # each representation is an init segment and its chunks: a fragmented MP4
        ids = sorted(int(p.stem.split("-")[1]) for p in entry.parent.glob("init-*.m4s"))
        files = []
        for rep in (ids[0], ids[-1]):  # the first video representation, and the audio one (the last)
            joined = entry.parent / f"joined-{rep}.mp4"
            joined.write_bytes((entry.parent / f"init-{rep}.m4s").read_bytes() + b"".join(
                chunk.read_bytes() for chunk in sorted(entry.parent.glob(f"chunk-{rep}-*.m4s"))))
            files.append(joined)
        return files[0], files[1]
    return entry, entry


def relative_start_and_audio(kind: str, entry: Path) -> tuple[float, float, np.ndarray]:
    video_file, audio_file = presentation_tracks(kind, entry)
    if video_file == audio_file:
        return timeline(video_file)
    with av.open(str(video_file)) as container:
        picture = next(float(f.pts * f.time_base) for f in container.decode(video=0))
    with av.open(str(audio_file)) as container:
        first = next(float(f.pts * f.time_base) for f in container.decode(audio=0))
    _, seconds, samples = timeline_audio_only(audio_file)
    return first - picture, seconds, samples


def timeline_audio_only(path: Path) -> tuple[float, float, np.ndarray]:
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    audio = np.concatenate(chunks)
    return 0.0, len(audio) / RATE, audio


@pytest.mark.parametrize("lead", [0.0, 0.48], ids=["together", "audio-leads"])
@pytest.mark.parametrize("kind", ["mp4", "advanced_hls", "advanced_dash"])
def test_every_sample_of_the_source_sound_is_kept_in_sync(tmp_path, kind, lead):
    source = tmp_path / "tones.mp4"
    make_clip(source, audio_lead=lead)
    source_start, source_seconds, source_audio = timeline(source)
    assert source_start == pytest.approx(-lead, abs=0.005)  # the clip is what the test means it to be

    out = tmp_path / ("out.mp4" if kind == "mp4" else "out")
    entry = render_centre(source, out, kind)
    start, seconds, audio = relative_start_and_audio(kind, entry)

    assert start == pytest.approx(source_start, abs=TOLERANCE), "the first sound is where the source has it"
    assert seconds == pytest.approx(source_seconds, abs=TOLERANCE), "no sound lost at either end"
    assert abs(lag_seconds(source_audio, audio)) < TOLERANCE, "sound and source stay in sync"
    priming = max(0, int(round((source_start - start) * RATE)))  # MPEG-TS keeps the encoder's priming frame
    first_burst = envelope(audio[priming:])[: int(BURSTS[0][1] * 200) - 2]
    assert first_burst.min() > 0.1, "the tone that starts at the first sample is there from its start"


def test_a_real_talking_clip_keeps_its_first_syllable(tmp_path):
    source = shared_media("A_man_talking_restaurant_720p_visualvoice.mp4")
    source_start, source_seconds, source_audio = timeline(source)
    entry = render_centre(source, tmp_path / "out.mp4", "mp4")
    start, seconds, audio = timeline(entry)
    assert start == pytest.approx(source_start, abs=TOLERANCE)
    assert seconds == pytest.approx(source_seconds, abs=TOLERANCE)
    assert abs(lag_seconds(source_audio[: RATE * 8], audio[: RATE * 8])) < TOLERANCE
