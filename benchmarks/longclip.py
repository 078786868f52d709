"""A long test clip made of real footage: segments of the 16:9 clips in ../shared/media, one after another, cycled
until the wanted length, re-encoded with PyAV to one size, frame rate and audio format.

The shared media holds nothing longer than 80 s, so the 10-minute point of the speed-vs-length curve is built here.
Every segment is a whole clip (the last one cut short), scaled to 1280x720 (the 16:9 sources only, so nothing is
stretched), converted to 25 fps by repeating or dropping frames by timestamp, with its audio resampled to 48 kHz
stereo AAC (silence for a silent clip). The result is cached outside the repository, under
``$SMARTCROP_HOME/bench`` (default ``~/.cache/smartcrop/bench``), keyed by length and recipe; nothing is committed.

    .venv/bin/python -m benchmarks.longclip 600      # build (or find) the 600 s clip and print its path
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.common import clip_path

SOURCES = ("A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4",
           "C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4",
           "A_man_talking_restaurant_720p_visualvoice.mp4",
           "C_soccer_juggling_man_720p_sam2.mp4")


@dataclass(frozen=True)
class Recipe:
    seconds: float
    width: int = 1280
    height: int = 720
    fps: int = 25
    preset: str = "veryfast"  # x264, like the output, so decoding it costs what a typical upload costs
    crf: int = 20
    sample_rate: int = 48000
    sources: tuple[str, ...] = SOURCES

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]

    def describe(self) -> str:
        return (f"{', '.join(Path(s).stem for s in self.sources)} in turn, cycled and re-encoded "
                f"with PyAV to {self.width}x{self.height} at {self.fps} fps (x264 {self.preset}, CRF {self.crf}), "
                f"{self.sample_rate // 1000} kHz stereo AAC (silence where a clip has none)")


def cache_dir() -> Path:
    from smartcrop.core.home import cache_home

    return cache_home() / "bench"


def long_clip(seconds: float, *, folder: Path | None = None, echo=print) -> Path:
    """The cached clip of ``seconds`` (built on first use; about 0.3 s of work per second of video on 2 cores)."""
    recipe = Recipe(float(seconds))
    folder = folder or cache_dir()
    out = folder / f"long_{int(round(recipe.seconds))}s_{recipe.width}x{recipe.height}_{recipe.key()}.mp4"
    if out.exists():
        return out
    missing = [s for s in recipe.sources if not clip_path(s).exists()]
    if missing:
        raise FileNotFoundError(f"the long clip needs {', '.join(missing)} in {clip_path('').parent}")
    folder.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".partial.mp4")
    echo(f"  building {out.name} ({recipe.seconds:g} s): {recipe.describe()}")
    build(recipe, partial)
    partial.rename(out)
    return out


def build(recipe: Recipe, out: Path) -> None:
    import av

    total_frames = int(round(recipe.seconds * recipe.fps))
    with av.open(str(out), "w") as container:
        video = container.add_stream("libx264", rate=recipe.fps)
        video.width, video.height, video.pix_fmt = recipe.width, recipe.height, "yuv420p"
        video.options = {"preset": recipe.preset, "crf": str(recipe.crf)}
        video.codec_context.time_base = Fraction(1, recipe.fps)
        audio = container.add_stream("aac", rate=recipe.sample_rate, layout="stereo")
        audio.bit_rate = 128_000
        written = 0
        samples_written = 0
        index = 0
        while written < total_frames:
            source = clip_path(recipe.sources[index % len(recipe.sources)])
            index += 1
            frames = _segment_frames(source, recipe, limit=total_frames - written)
            for frame in frames:
                frame.pts, frame.time_base = written, Fraction(1, recipe.fps)
                written += 1
                container.mux(video.encode(frame))
            target_samples = written * recipe.sample_rate // recipe.fps
            pcm = _segment_audio(source, recipe.sample_rate, target_samples - samples_written)
            samples_written = _encode_audio(container, audio, pcm, samples_written)
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


def _segment_frames(source: Path, recipe: Recipe, *, limit: int):
    """The source's frames at the recipe's size and rate: output frame n shows the last source frame at or before
    ``n / fps``, for the source's whole duration (at most ``limit`` frames)."""
    import av

    step = Fraction(1, recipe.fps)
    emitted = 0
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        previous = None
        start = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            start = frame.time if start is None else start
            t = frame.time - start
            while previous is not None and emitted * step < t and emitted < limit:
                yield previous.reformat(recipe.width, recipe.height, "yuv420p")
                emitted += 1
            if emitted >= limit:
                return
            previous = frame
        duration = float(stream.duration * stream.time_base) if stream.duration else None
        end = duration if duration else (t + 1 / float(stream.average_rate or recipe.fps))
        while previous is not None and emitted * step < end and emitted < limit:
            yield previous.reformat(recipe.width, recipe.height, "yuv420p")
            emitted += 1


def _segment_audio(source: Path, rate: int, samples: int) -> np.ndarray:
    """``samples`` of the source's first audio stream as planar float stereo at ``rate``: cut or padded with
    silence to line up with the video just written."""
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(source)) as container:
        if container.streams.audio:
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
            for frame in container.decode(container.streams.audio[0]):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    pcm = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    if pcm.shape[1] < samples:
        pcm = np.concatenate([pcm, np.zeros((2, samples - pcm.shape[1]), np.float32)], axis=1)
    return np.ascontiguousarray(pcm[:, :max(samples, 0)], dtype=np.float32)


def _encode_audio(container, stream, pcm: np.ndarray, offset: int) -> int:
    import av

    size = 1024
    for start in range(0, pcm.shape[1], size):
        chunk = np.ascontiguousarray(pcm[:, start:start + size])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = stream.rate
        frame.pts, frame.time_base = offset + start, Fraction(1, stream.rate)
        container.mux(stream.encode(frame))
    return offset + pcm.shape[1]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for value in args or ["600"]:
        print(long_clip(float(value)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
