"""Short clips the tests (and the service benchmark) build: real content cut down, or synthetic frames."""

from __future__ import annotations

import fractions
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def cut_clip(source: Path, target: Path, frames: int = 50, width: int = 640, height: int = 360) -> Path:
    """The first ``frames`` frames of ``source``, scaled, as a silent 25 fps H.264 MP4: a short job of real content."""
    with av.open(str(source)) as video_in, av.open(str(target), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        stream.codec_context.time_base = Fraction(1, 25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, frame in enumerate(video_in.decode(video_in.streams.video[0])):
            if index == frames:
                break
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts = index
            out.mux(stream.encode(scaled))
        out.mux(stream.encode(None))
    return target


def make_clip(path: Path, width: int = 320, height: int = 240, frames: int = 30, fps: int = 15,
              codec: str = "libx264", times: list[float] | None = None, faststart: bool = True) -> Path:
    """A short clip with a moving block on noise (noise keeps packets large enough to damage in the middle)."""
    with av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if times is not None:
            stream.codec_context.time_base = stream.time_base = fractions.Fraction(1, 1000)
        for i in range(frames):
            image = np.random.default_rng(i).integers(0, 60, (height, width, 3), dtype=np.uint8)
            x = (i * 7) % max(1, width - 40)
            image[height // 3: height // 3 + 40, x:x + 40] = (200, 80, 40)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            if times is not None:
                frame.pts, frame.time_base = int(times[i] * 1000), fractions.Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
