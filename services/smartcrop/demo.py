"""A demo clip made from the photos ultralytics ships, so ``make demo`` needs nothing outside the repository.

A wide canvas holds ``zidane.jpg`` (two men, right of centre) and ``bus.jpg`` (people by a bus); a 16:9 camera pans
slowly across it with a gentle zoom, over a quiet tone so the audio path is exercised too.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 25, 8
SAMPLE_RATE = 48000


def _canvas() -> np.ndarray:
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    zidane = Image.open(assets / "zidane.jpg").convert("RGB")  # 1280x720
    bus = Image.open(assets / "bus.jpg").convert("RGB")  # 810x1080
    height = 1080
    zidane = zidane.resize((int(zidane.width * height / zidane.height), height))
    canvas = Image.new("RGB", (zidane.width + bus.width + 120, height), (40, 44, 52))
    canvas.paste(zidane, (0, 0))
    canvas.paste(bus, (zidane.width + 120, 0))
    return np.asarray(canvas)


def make_demo_clip(out: Path) -> Path:
    canvas = _canvas()
    canvas_h, canvas_w = canvas.shape[:2]
    frames = FPS * SECONDS
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23"}
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        for i in range(frames):
            progress = 0.5 - 0.5 * np.cos(np.pi * i / (frames - 1))  # ease in and out
            view_h = canvas_h * (1.0 - 0.15 * np.sin(np.pi * i / (frames - 1)))  # a gentle zoom in and back
            view_w = view_h * WIDTH / HEIGHT
            x = progress * (canvas_w - view_w)
            y = (canvas_h - view_h) / 2
            view = canvas[int(y):int(y + view_h), int(x):int(x + view_w)]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(view), format="rgb24")
            frame = frame.reformat(width=WIDTH, height=HEIGHT, format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        samples_per_chunk = 1024
        total = SAMPLE_RATE * SECONDS
        for start in range(0, total, samples_per_chunk):
            n = min(samples_per_chunk, total - start)
            t = (start + np.arange(n)) / SAMPLE_RATE
            tone = (0.1 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="fltp", layout="mono")
            chunk.sample_rate = SAMPLE_RATE
            chunk.pts = start
            chunk.time_base = Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))
    return out
