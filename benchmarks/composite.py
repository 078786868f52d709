"""A talking-person test clip with a known speaker, made from real footage.

Two talking-head clips sit side by side on one wide canvas, each cropped around its person and scaled into its half.
Only one side talks at a time: the other shows its last frame, frozen (no mouth motion), for alternating stretches of
2-3 s. A side's own playhead advances only while it talks, and sources loop (forwards, then backwards) when they
run out. The audio is both
sources' tracks mixed (voice throughout), so only the picture says who is talking. Written with PyAV (H.264 + AAC)
to ``benchmarks/.cache/talking/``, with a JSON truth file beside it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.common import CACHE, clip_path

LEFT_CLIP = "A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4"
RIGHT_CLIP = "A_man_talking_restaurant_720p_visualvoice.mp4"
CANVAS = (1920, 1080)
FPS = 25
SEGMENTS = (2.6, 2.2, 2.9, 2.4, 2.0, 2.8, 2.3, 2.8)  # seconds each; the left side talks first, then they alternate
AUDIO_RATE = 48000
VERSION = 2


@dataclass
class Composite:
    path: str
    width: int
    height: int
    fps: int
    duration: float
    sources: tuple[str, str]  # left, right
    subject_x: tuple[float, float]  # where each side's person is, in canvas x pixels
    segments: list[tuple[float, float, int]]  # (start, end, talking side: 0 left, 1 right)

    def talker(self, t: np.ndarray) -> np.ndarray:
        """(F,) side that talks at each time."""
        t = np.asarray(t, float)
        starts = np.array([s for s, _, _ in self.segments])
        sides = np.array([side for _, _, side in self.segments])
        return sides[np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(sides) - 1)]

    @property
    def switches(self) -> list[float]:
        return [start for start, _, _ in self.segments[1:]]

    def save(self, file: Path) -> None:
        file.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, file: Path) -> "Composite":
        data = json.loads(file.read_text())
        data["sources"], data["subject_x"] = tuple(data["sources"]), tuple(data["subject_x"])
        data["segments"] = [tuple(s) for s in data["segments"]]
        return cls(**data)


def schedule() -> list[tuple[float, float, int]]:
    out, start = [], 0.0
    for k, length in enumerate(SEGMENTS):
        out.append((round(start, 6), round(start + length, 6), k % 2))
        start += length
    return out


def _key() -> str:
    parts = [str(VERSION), str(CANVAS), str(FPS), str(SEGMENTS)]
    for name in (LEFT_CLIP, RIGHT_CLIP):
        path = clip_path(name)
        parts.append(f"{name}:{path.stat().st_size}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:10]


def composite(*, refresh: bool = False) -> Composite:
    """The cached composite, built first if needed."""
    folder = CACHE / "talking"
    video, truth = folder / f"two_talkers_{_key()}.mp4", folder / f"two_talkers_{_key()}.json"
    if video.exists() and truth.exists() and not refresh:
        return Composite.load(truth)
    folder.mkdir(parents=True, exist_ok=True)
    result = build(video)
    result.save(truth)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# building


def subject_x(path: Path, media, samples: int = 6) -> float:
    """Median centre x (display pixels) of the largest face on a few frames (YuNet, the face model the pipeline
    uses), else of the largest person (the configured YOLO model), else the middle of the frame."""
    from smartcrop.media.decode import decode_video, display_size, to_display_array
    from smartcrop.runtime.config import Settings

    settings = Settings.from_env()
    size = display_size(media, 640)
    every = max(1, (media.frame_count or 100) // samples)
    images = [to_display_array(item.frame, media, size, "bgr24") for item in decode_video(path)
              if item.index % every == 0][:samples]
    boxes = []
    try:
        from smartcrop.detector.faces import load_face_analyzer

        faces = load_face_analyzer(settings.face_model, settings.landmark_model)
        boxes = [found[np.argmax((found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1]))]
                 for found, _ in map(faces.detect, images) if len(found)]
    except Exception:  # noqa: BLE001 - no face model: fall back to the person box
        boxes = []
    if not boxes:
        from smartcrop.detector.models import load_detector

        detector = load_detector(settings.detector_model, settings.device)
        for found in detector(images):
            people = found.xyxy[found.cls == 0]
            if len(people):
                boxes.append(people[np.argmax((people[:, 2] - people[:, 0]) * (people[:, 3] - people[:, 1]))])
    if not boxes:
        return media.display_width / 2
    return float(np.median([(b[0] + b[2]) / 2 for b in boxes])) * media.display_width / size[0]


class Side:
    """One half of the canvas: a source cropped around its speaker's face, whose playhead moves only when asked.

    The source plays forwards, then backwards, and so on (a palindrome loop), so looping never jumps, which the shot
    detector could take for a cut. Frames are kept as JPEG in memory (a few MB) rather than raw (hundreds).
    """

    def __init__(self, name: str, half_width: int, height: int, offset: int):
        import cv2

        from smartcrop.media.decode import decode_video, to_display_array
        from smartcrop.media.probe import probe

        self.path = clip_path(name)
        self.media = media = probe(self.path)
        crop_h = media.display_height
        crop_w = min(media.display_width, crop_h * half_width / height)
        centre = subject_x(self.path, media)
        x0 = int(round(min(max(0.0, centre - crop_w / 2), media.display_width - crop_w)))
        self.subject_x = offset + (centre - x0) * (half_width / crop_w)
        interpolation = cv2.INTER_AREA if height < crop_h else cv2.INTER_LINEAR
        times, frames = [], []
        for item in decode_video(self.path):
            full = to_display_array(item.frame, media, (media.display_width, media.display_height), "bgr24")
            half = cv2.resize(full[:, x0:x0 + int(round(crop_w))], (half_width, height), interpolation=interpolation)
            times.append(item.t)
            frames.append(cv2.imencode(".jpg", half, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
        self.times = np.asarray(times, float)
        self.frames = frames
        self.shown = -1
        self.image = self._decode(0)

    def _decode(self, index: int) -> np.ndarray:
        import cv2

        if index != self.shown:
            self.image = cv2.imdecode(self.frames[index], cv2.IMREAD_COLOR)[:, :, ::-1]  # BGR -> RGB
            self.shown = index
        return self.image

    def advance(self, playhead: float) -> np.ndarray:
        """The frame shown at ``playhead`` seconds of this side's own (palindrome-looping) time."""
        length = self.times[-1]
        phase = playhead % (2 * length) if length > 0 else 0.0
        t = phase if phase <= length else 2 * length - phase
        return self._decode(int(np.clip(np.searchsorted(self.times, t + 1e-6) - 1, 0, len(self.times) - 1)))


def mixed_audio(names: tuple[str, str], seconds: float) -> np.ndarray:
    """(2, N) float32 stereo at 48 kHz: each source's audio, looped to ``seconds``, mixed at half gain each."""
    import av

    total = int(round(seconds * AUDIO_RATE))
    mix = np.zeros((2, total), np.float32)
    for name in names:
        with av.open(str(clip_path(name))) as container:
            if not container.streams.audio:
                continue
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            chunks = []
            for frame in container.decode(audio=0):
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))
        if not chunks:
            continue
        samples = np.concatenate(chunks, axis=1)
        reps = -(-total // samples.shape[1])
        mix += 0.5 * np.tile(samples, (1, reps))[:, :total]
    return np.clip(mix, -1.0, 1.0)


def build(out: Path) -> Composite:
    import av

    width, height = CANVAS
    half = width // 2
    sides = [Side(LEFT_CLIP, half, height, 0), Side(RIGHT_CLIP, half, height, half)]
    segments = schedule()
    duration = segments[-1][1]
    frames = int(round(duration * FPS))
    truth = Composite(path=str(out), width=width, height=height, fps=FPS, duration=duration,
                      sources=(LEFT_CLIP, RIGHT_CLIP), subject_x=(sides[0].subject_x, sides[1].subject_x),
                      segments=segments)
    audio = mixed_audio((LEFT_CLIP, RIGHT_CLIP), duration)
    playheads = [0.0, 0.0]
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(tmp), "w", format="mp4") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast", "crf": "18"}
        sound = container.add_stream("aac", rate=AUDIO_RATE)
        sound.layout = "stereo"
        written = 0
        for i in range(frames):
            t = i / FPS
            talking = int(truth.talker(np.array([t]))[0])
            canvas = np.empty((height, width, 3), np.uint8)
            for k, side in enumerate(sides):
                image = side.advance(playheads[k]) if k == talking else side.image
                canvas[:, k * half:(k + 1) * half] = image
            playheads[talking] += 1.0 / FPS
            frame = av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            container.mux(video.encode(frame))
            until = min(audio.shape[1], int(round((i + 1) / FPS * AUDIO_RATE)))
            while written + 1024 <= until or (i == frames - 1 and written < until):
                chunk = np.ascontiguousarray(audio[:, written:written + 1024])
                piece = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                piece.sample_rate, piece.pts, piece.time_base = AUDIO_RATE, written, Fraction(1, AUDIO_RATE)
                container.mux(sound.encode(piece))
                written += chunk.shape[1]
        container.mux(video.encode(None))
        container.mux(sound.encode(None))
    tmp.replace(out)
    return truth
