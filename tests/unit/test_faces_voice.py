"""Who is speaking: faces with a mouth-opening measure (YuNet + MediaPipe) and voice activity from the audio track.

Everything here runs on the real clips in ``shared/media`` and the real models in ``shared/models``; synthetic clips
are made with PyAV where a property needs a controlled input (silence, a tone, speech moved later in time).
"""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from smartcrop.core.errors import ModelError
from smartcrop.detector.faces import FaceAnalyzer, FaceDetections, load_face_analyzer
from smartcrop.media.decode import decode_video, display_size, to_display_array
from smartcrop.media.probe import probe
from smartcrop.media.voice import decode_audio, voice_activity

from ..conftest import SHARED, shared_media

FACE_MODEL = os.environ.get("SMARTCROP_FACE_MODEL", str(SHARED / "models" / "face_detection_yunet_2026may.onnx"))
LANDMARK_MODEL = os.environ.get("SMARTCROP_LANDMARK_MODEL", str(SHARED / "models" / "face_landmarker.task"))

TALKING_HEAD = "A_talkinghead_woman_1080p_wav2lip-gfpgan.mp4"
RESTAURANT = "A_man_talking_restaurant_720p_visualvoice.mp4"
CHAPLIN = "B_chaplin_two_men_bw_moviepy.mp4"
MEGAMIND = "D_megamind_animated_dialogue_cuts_opencvdoc.avi"
NO_AUDIO = "B_two_kids_jumping_bedroom_540p_sam2.mp4"


@pytest.fixture(scope="module")
def faces() -> FaceAnalyzer:
    for model, env in ((FACE_MODEL, "SMARTCROP_FACE_MODEL"), (LANDMARK_MODEL, "SMARTCROP_LANDMARK_MODEL")):
        if not Path(model).is_file():
            pytest.fail(f"face model missing: {model} (set {env} or SMARTCROP_SHARED)")
    return load_face_analyzer(FACE_MODEL, LANDMARK_MODEL)


def frames(name: str, start: float, end: float, long_side: int = 640) -> list[tuple[float, np.ndarray]]:
    """(t, BGR image) of every frame with start <= t <= end, the long side scaled to ``long_side``."""
    path = shared_media(name)
    media = probe(path)
    size = display_size(media, long_side)
    out = []
    for item in decode_video(path):
        if item.t > end:
            break
        if item.t >= start:
            out.append((item.t, to_display_array(item.frame, media, size, "bgr24")))
    assert out, f"no frames of {name} between {start} and {end} s"
    return out


def one_second_std(times: list[float], values: list[float]) -> float:
    """Mean over consecutive 1-s windows of the std of ``values``: the speaking cue the tracker uses."""
    times, values = np.asarray(times), np.asarray(values, float)
    stds = []
    for start in np.arange(times[0], times[-1] - 1.0 + 1e-6, 1.0):
        window = values[(times >= start) & (times < start + 1.0)]
        window = window[~np.isnan(window)]
        assert len(window) >= 5, "too few measured mouths in a 1-s window"
        stds.append(np.std(window))
    return float(np.mean(stds))


# --- faces -------------------------------------------------------------------------------------------------------

def test_yunet_finds_exactly_one_face_on_the_talking_head(faces):
    for t, image in frames(TALKING_HEAD, 0.0, 3.0)[::6]:
        found = faces(image, lips=True)
        assert isinstance(found, FaceDetections)
        assert len(found) == 1, f"t={t:.2f}: {len(found)} faces"
        x0, y0, x1, y1 = found.xyxy[0]
        assert found.xyxy.dtype == np.float32 and found.score.dtype == np.float32
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
        assert 200 < (x0 + x1) / 2 < 440, "the face is near the middle of the 640-px frame"
        assert found.score[0] >= 0.7
        assert 0.0 <= found.mouth_open[0] <= 1.0
        eyes, mouth = found.points[0, :2], found.points[0, 3:]
        assert found.points.shape == (1, 5, 2) and (mouth[:, 1] > eyes[:, 1].max()).all(), "mouth corners below eyes"
        assert (x0 <= found.points[0, :, 0]).all() and (found.points[0, :, 0] <= x1).all()


def test_two_faces_when_both_men_face_the_camera_in_chaplin(faces):
    # 6.6-7.1 s: the two men stand apart, both faces towards the camera (checked by eye)
    shot = frames(CHAPLIN, 6.6, 7.1)
    counts = [len(faces(image)) for _, image in shot]
    assert sum(c == 2 for c in counts) >= 0.9 * len(counts), counts
    found = faces(shot[len(shot) // 2][1])
    centres = (found.xyxy[:, 0] + found.xyxy[:, 2]) / 2
    assert np.ptp(centres) > 150, "two different people, far apart"


def test_two_faces_through_the_animated_two_shot(faces):
    counts = [len(faces.detect(image)[1]) for _, image in frames(MEGAMIND, 0.2, 3.9)[::3]]
    assert sum(c == 2 for c in counts) >= 0.9 * len(counts), counts


@pytest.mark.parametrize("name", [TALKING_HEAD, RESTAURANT])
def test_mouth_opening_varies_while_talking_and_not_on_a_frozen_frame(faces, name):
    shot = frames(name, 0.5, 2.5)
    times = [t for t, _ in shot]
    talking = one_second_std(times, [faces(image, lips=True).mouth_open[0] for _, image in shot])
    frozen_image = shot[0][1]  # the same decoded frame, shown for a second
    frozen = one_second_std(times, [faces(frozen_image, lips=True).mouth_open[0] for _ in times])
    assert talking > 0.04, talking  # measured about 0.10 on both clips
    assert frozen < 1e-6, frozen


def test_mouth_opening_is_steady_on_a_still_face_under_camera_shake_and_noise(faces):
    import cv2

    talking_t, image = frames(TALKING_HEAD, 1.0, 1.0)[0]
    height, width = image.shape[:2]
    rng = np.random.default_rng(0)
    values = []
    for _ in range(15):
        scale, (dx, dy) = 1 + rng.uniform(-0.02, 0.02), rng.uniform(-2, 2, 2)
        matrix = np.array([[scale, 0, dx + (1 - scale) * width / 2], [0, scale, dy + (1 - scale) * height / 2]])
        shaken = cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        shaken = np.clip(shaken + rng.normal(0, 2, shaken.shape), 0, 255).astype(np.uint8)
        values.append(faces(shaken, lips=True).mouth_open[0])
    assert np.std(values) < 0.03, values  # talking moves it by about 0.10 (1-s std)


def test_mouth_is_not_measured_on_tiny_faces(faces):
    _, image = frames(TALKING_HEAD, 1.0, 1.0)[0]
    assert np.isnan(faces.mouth_open(image, np.array([300, 100, 318, 120], np.float32)))


def test_an_image_without_faces_gives_empty_arrays(faces):
    found = faces(np.zeros((360, 640, 3), np.uint8))
    assert found.xyxy.shape == (0, 4) and found.score.shape == (0,) and found.mouth_open.shape == (0,)


def test_the_analyzer_is_loaded_once_per_process(faces):
    assert load_face_analyzer(FACE_MODEL, LANDMARK_MODEL) is faces


def load_and_measure(face_model: str, landmark_model: str) -> None:
    """Load the pair and measure a lip gap, the first use of the landmark model."""
    _, image = frames(TALKING_HEAD, 1.0, 1.0)[0]
    FaceAnalyzer(face_model, landmark_model)(image, lips=True)


def test_faces_and_their_points_need_no_landmark_model(tmp_path):
    _, image = frames(TALKING_HEAD, 1.0, 1.0)[0]
    found = FaceAnalyzer(FACE_MODEL, str(tmp_path / "nowhere.task"))(image)
    assert len(found) == 1 and np.isnan(found.mouth_open).all() and found.points.shape == (1, 5, 2)


@pytest.mark.parametrize("which, env", [("face", "SMARTCROP_FACE_MODEL"), ("landmark", "SMARTCROP_LANDMARK_MODEL")])
def test_a_missing_model_is_model_unavailable_and_names_the_setting(tmp_path, which, env):
    missing = str(tmp_path / "nowhere.bin")
    args = (missing, LANDMARK_MODEL) if which == "face" else (FACE_MODEL, missing)
    with pytest.raises(ModelError) as error:
        load_and_measure(*args)
    assert error.value.code == "model_unavailable"
    assert env in str(error.value) and missing in str(error.value)


@pytest.mark.parametrize("which, env", [("face", "SMARTCROP_FACE_MODEL"), ("landmark", "SMARTCROP_LANDMARK_MODEL")])
def test_an_unreadable_model_is_model_unavailable_and_names_the_setting(tmp_path, which, env):
    broken = tmp_path / ("broken.onnx" if which == "face" else "broken.task")
    broken.write_bytes(b"not a model" * 100)
    args = (str(broken), LANDMARK_MODEL) if which == "face" else (FACE_MODEL, str(broken))
    with pytest.raises(ModelError) as error:
        load_and_measure(*args)
    assert error.value.code == "model_unavailable"
    assert env in str(error.value) and str(broken) in str(error.value)


# --- voice activity ----------------------------------------------------------------------------------------------

def write_clip(path: Path, audio: np.ndarray | None, rate: int = 16000, *, seconds: float, layout: str = "mono",
               codec: str = "aac", audio_offset: float = 0.0) -> Path:
    """A small clip: grey 64x64 video at 10 fps for ``seconds``, and ``audio`` (float samples in [-1, 1] at
    ``rate``) whose first sample is at ``audio_offset`` seconds."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=10)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        stream = out.add_stream(codec, rate=rate) if audio is not None else None
        if stream is not None:
            stream.layout = layout
        for i in range(int(round(seconds * 10))):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 100, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if stream is None:
            return path
        channels, fmt = (2 if layout == "stereo" else 1), stream.format.name
        dtype = {"flt": np.float32, "s16": np.int16, "s32": np.int32}[fmt.rstrip("p")]
        step, first = stream.frame_size or 1024, int(round(audio_offset * rate))
        for i in range(0, len(audio), step):
            chunk = np.clip(np.pad(audio[i:i + step], (0, max(0, i + step - len(audio)))), -1, 1).astype(np.float64)
            data = np.tile(chunk, (channels, 1)) if fmt.endswith("p") else np.repeat(chunk, channels)[None]
            if dtype is not np.float32:
                data = data * (np.iinfo(dtype).max - 1)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.astype(dtype)), format=fmt, layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, first + i, Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """3.2 s of continuous real speech at 16 kHz (the restaurant clip, 5.2-8.4 s)."""
    samples, start = decode_audio(shared_media(RESTAURANT))
    assert start == 0.0
    return samples[int(5.2 * 16000):int(8.4 * 16000)]


def resample(samples: np.ndarray, rate: int) -> np.ndarray:
    positions = np.arange(0, len(samples) - 1, 16000 / rate)
    return np.interp(positions, np.arange(len(samples)), samples).astype(np.float32)


@pytest.mark.parametrize("name", [RESTAURANT, TALKING_HEAD, MEGAMIND])
def test_voice_activity_is_high_while_people_talk(name):
    path = shared_media(name)
    times = np.arange(0.5, probe(path).duration - 0.5, 0.2)
    activity = voice_activity(path, times)
    assert activity.shape == times.shape and activity.dtype == np.float32
    assert np.all((activity >= 0) & (activity <= 1))
    assert np.median(activity) > 0.8 and np.mean(activity > 0.5) > 0.7, np.round(activity, 2)


def test_voice_activity_is_low_on_music_and_street_noise():
    for name in (CHAPLIN, "C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4"):  # mp3 music; aac street sound
        path = shared_media(name)
        activity = voice_activity(path, np.arange(0.0, probe(path).duration, 0.2))
        assert activity is not None and np.mean(activity) < 0.1, (name, np.round(activity, 2))


def test_no_audio_stream_means_no_voice_activity():
    assert voice_activity(shared_media(NO_AUDIO), np.arange(0.0, 5.0, 0.2)) is None


@pytest.mark.parametrize("signal", ["silence", "tone"])
def test_voice_activity_is_low_on_silence_and_a_pure_tone(tmp_path, signal):
    rate, seconds = 44100, 4.0
    x = np.arange(int(rate * seconds)) / rate
    audio = np.zeros_like(x) if signal == "silence" else 0.5 * np.sin(2 * np.pi * 440 * x)
    path = write_clip(tmp_path / f"{signal}.mp4", audio.astype(np.float32), rate, seconds=seconds, layout="stereo")
    activity = voice_activity(path, np.arange(0.0, seconds, 0.1))
    assert activity.max() < 0.1, activity


@pytest.mark.parametrize("codec, container, rate, layout, how", [
    ("aac", "mp4", 16000, "mono", "starts late"),  # the audio stream's first pts is 3 s after the first frame
    ("aac", "mp4", 48000, "stereo", "silence first"),
    ("libmp3lame", "mkv", 22050, "mono", "silence first"),
    ("ac3", "mkv", 48000, "stereo", "starts late"),
])
def test_voice_activity_follows_the_video_clock(tmp_path, speech, codec, container, rate, layout, how):
    samples = resample(speech, rate)
    offset = 3.0 if how == "starts late" else 0.0
    if how == "silence first":
        samples = np.concatenate([np.zeros(3 * rate, np.float32), samples])
    path = write_clip(tmp_path / f"clip.{container}", samples, rate, seconds=7.0, layout=layout, codec=codec,
                      audio_offset=offset)
    times = np.arange(0.0, 7.0, 0.1)
    activity = voice_activity(path, times)
    assert activity[times < 2.5].max() < 0.1, np.round(activity, 2)
    assert activity[(times > 4.0) & (times < 6.0)].mean() > 0.7, np.round(activity, 2)


def test_voice_activity_outside_the_audio_is_zero_and_no_times_give_an_empty_result():
    path = shared_media(RESTAURANT)
    assert voice_activity(path, np.array([])).shape == (0,)
    assert voice_activity(path, np.array([-5.0, 30.0])).tolist() == [0.0, 0.0]


def test_voice_activity_of_a_long_clip_takes_well_under_a_second_per_minute(tmp_path, speech):
    long_speech = np.tile(resample(speech, 48000), 25)[:79 * 48000]
    path = write_clip(tmp_path / "long.mp4", long_speech, 48000, seconds=79.0, layout="stereo")
    voice_activity(path, np.array([0.0]))  # loads the model
    started = time.perf_counter()
    activity = voice_activity(path, np.arange(0.0, 79.0, 1 / 25))
    elapsed = time.perf_counter() - started
    assert np.mean(activity > 0.5) > 0.7
    assert elapsed < 2.0, f"{elapsed:.2f} s for 79 s of audio"  # about 0.45 s on 2 cores
