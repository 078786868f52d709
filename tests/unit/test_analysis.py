"""Shot cuts, per-frame data and the first planner, on synthetic inputs with exact expectations."""

import numpy as np
import pytest

from smartcrop.core.framedata import Boxes, CropPath, Faces, FrameData, Timeline
from smartcrop.detector.shots import detect_cuts


def test_a_spike_is_a_cut_but_steady_motion_is_not():
    scores = np.full(100, 0.05)
    scores[40] = 0.6  # a cut
    scores[70:80] = 0.3  # a fast pan: high, but so are its neighbours
    cuts = detect_cuts(scores, window=12, min_score=0.12, ratio=3.0, min_gap=10)
    assert np.flatnonzero(cuts).tolist() == [40]


def test_cuts_keep_a_minimum_shot_length_and_never_fire_at_the_start():
    scores = np.full(60, 0.01)
    scores[[2, 30, 33]] = [0.9, 0.8, 0.5]
    assert np.flatnonzero(detect_cuts(scores, window=5, min_score=0.12, ratio=3.0, min_gap=10)).tolist() == [30]


def frames(boxes_per_frame, count=10, cut_at=None):
    """FrameData from {frame: [(x1, y1, x2, y2, score, cls, track)]}."""
    rows = [(f, *b) for f, boxes in boxes_per_frame.items() for b in boxes]
    shot = np.zeros(count, bool)
    if cut_at is not None:
        shot[cut_at] = True
    array = np.array(rows, float).reshape(-1, 8)
    boxes = Boxes.detected(frame=array[:, 0].astype(int), xyxy=array[:, 1:5].astype(np.float32),
                           score=array[:, 5].astype(np.float32), class_id=array[:, 6].astype(int))
    return FrameData(timeline=Timeline.of(t=np.arange(count) / 10.0, shot_start=shot, analysed=np.ones(count, bool)),
                     boxes=boxes.replace(track_id=array[:, 7].astype(int)))


def test_frame_data_round_trips_through_avro():
    data = frames({0: [(1, 2, 3, 4, 0.9, 0, 7)], 3: [(5, 6, 7, 8, 0.5, 2, -1), (0, 0, 10, 10, 0.7, 0, 8)]}, cut_at=5)
    back = FrameData.from_avro(data.to_avro())
    assert np.array_equal(back.timeline.t, data.timeline.t)
    assert np.array_equal(back.timeline.shot_start, data.timeline.shot_start)
    for name in ("frame", "xyxy", "score", "cls", "track_id", "speed", "speaking", "sharpness"):
        assert np.array_equal(getattr(back.boxes, name), getattr(data.boxes, name)), name
    assert np.isnan(back.boxes.face_xyxy).all() and np.isnan(back.boxes.mouth_open).all()
    assert back.timeline.shot_ids().tolist() == [0] * 5 + [1] * 5


def test_plan_windows_round_trip():
    t = np.arange(3) / 25
    windows = np.array([[10, 0, 405, 720], [11.5, 0, 405, 720], [12, 0, 405, 720]], float)
    back = CropPath.from_avro(CropPath(t, windows, np.array([True, False, True])).to_avro())
    assert np.allclose(back.t, t) and np.allclose(back.windows, windows) and back.cut.tolist() == [True, False, True]


def synthetic_clip(path, seconds: float, picture, fps: int = 25):
    """An H.264 clip whose frame ``i`` is ``picture(i)`` (an RGB uint8 array), made with PyAV."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(picture(i), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def person_at(x: float):
    """A detector that finds one person whose box starts at ``x`` on every image (detector-size pixels)."""
    from smartcrop.detector.models import FrameDetections

    def detect(images):
        return [FrameDetections(np.array([[x, 20, x + 60, 160]], np.float32), np.array([0.9], np.float32),
                                np.array([0])) for _ in images]
    return detect


def walking(pixels_per_sample: float):
    """A detector that finds one person who moves ``pixels_per_sample`` between the images it is shown."""
    shown = 0

    def detect(images):
        nonlocal shown
        found = [person_at(10 + pixels_per_sample * (shown + i))([None])[0] for i in range(len(images))]
        shown += len(images)
        return found
    return detect


def analysed_times(path, detector=None) -> np.ndarray:
    from smartcrop.detector.analysis import analyse
    from smartcrop.media.probe import probe

    data = analyse(path, probe(path), detector or person_at(100), analysis_fps=5.0, batch_size=2)
    return data.timeline.t[data.timeline.analysed]


def test_a_still_shot_is_sampled_at_a_third_of_the_rate_and_a_cut_at_once(tmp_path):
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for _ in range(2))
    times = analysed_times(synthetic_clip(tmp_path / "still.mp4", 4.0, lambda i: first if i < 53 else second))
    assert np.isclose(times[0], 0.0)
    assert np.any(np.isclose(times, 53 / 25)), "the first frame after the cut is sampled"
    gaps = np.diff(times[(times > 0.75) & (times < 2.0)])  # after the first two batches told where people are
    assert len(gaps) >= 1 and np.allclose(gaps, 0.6), "a still shot: 1.67 samples a second"


def test_a_still_shot_without_people_or_with_people_walking_keeps_the_full_rate(tmp_path):
    from smartcrop.detector.stage import no_objects

    still = np.random.default_rng(0).integers(0, 255, (180, 320, 3), dtype=np.uint8)
    clip = synthetic_clip(tmp_path / "still.mp4", 3.0, lambda i: still)
    assert np.allclose(np.diff(analysed_times(clip, no_objects)), 0.2), "nobody found yet: keep looking"

    # 42 px (0.3 box height) between samples at 5 a second: 1.5 heights a second
    assert np.allclose(np.diff(analysed_times(clip, walking(42))), 0.2)


def test_the_gap_between_samples_lets_people_move_three_tenths_of_their_height():
    from smartcrop.detector.analysis import sample_gap

    step = 0.2  # 5 samples a second
    assert sample_gap(float("inf"), step) == step, "nobody to compare: the full rate"
    assert sample_gap(2.0, step) == step, "fast: never above the analysis rate"
    assert sample_gap(0.8, step) == pytest.approx(0.375)
    assert sample_gap(0.6, step) == pytest.approx(0.5)
    assert sample_gap(0.0, step) == pytest.approx(0.6), "still: never below a third of the analysis rate"


def test_a_crowd_walking_slowly_through_a_still_shot_is_sampled_at_a_third_of_the_rate(tmp_path):
    still = np.random.default_rng(0).integers(0, 255, (180, 320, 3), dtype=np.uint8)
    clip = synthetic_clip(tmp_path / "still.mp4", 3.0, lambda i: still)

    times = analysed_times(clip, walking(14))  # 0.1 box height a sample: 0.5 heights a second at the full rate
    assert np.allclose(np.diff(times[times > 1.0]), 0.6)


def test_a_moving_shot_is_sampled_at_the_full_rate(tmp_path):
    texture = np.random.default_rng(1).integers(0, 255, (180, 640, 3), dtype=np.uint8)
    times = analysed_times(synthetic_clip(tmp_path / "pan.mp4", 2.0, lambda i: texture[:, 4 * i:4 * i + 320]))
    assert np.allclose(np.diff(times), 0.2)


def test_the_frames_sampled_do_not_depend_on_how_fast_the_model_runs(tmp_path):
    """The rate decision reads each batch's result, not the inference thread's live state: whether the model or the
    decoder is ahead (a loaded machine, a busy GPU), exactly the same frames are sampled."""
    import time

    from smartcrop.detector.analysis import analyse
    from smartcrop.media.probe import probe

    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 255, (180, 320, 3), dtype=np.uint8) for _ in range(2))
    clip = synthetic_clip(tmp_path / "still.mp4", 4.0, lambda i: first if i < 53 else second)
    found = person_at(100)

    def run(seed):
        delays = np.random.default_rng(seed)

        def detect(images):  # the model, sometimes at once and sometimes far behind the decoder
            time.sleep(float(delays.choice([0.0, 0.0, 0.2])))
            return found(images)

        def progress(fraction):  # called from the decode loop every 25 frames
            time.sleep(float(delays.choice([0.0, 0.1])))
        data = analyse(clip, probe(clip), detect, analysis_fps=5.0, batch_size=2, progress=progress)
        return data.timeline.t[data.timeline.analysed].tolist()
    runs = [run(seed) for seed in range(6)]
    assert all(times == runs[0] for times in runs[1:]), runs
    assert len(runs[0]) < 4.0 * 5, "the rate still adapts"


def test_faces_round_trip_through_avro_with_their_tracks_and_mouth_motion():
    faces = Faces(frame=np.array([0, 0, 4]), xyxy=np.array([[1, 2, 3, 4], [5, 6, 7, 8], [1, 2, 3, 4]], np.float32),
                  score=np.array([0.9, 0.8, 0.7], np.float32), mouth_open=np.full(3, np.nan, np.float32),
                  track=np.array([0, 1, 0]), mouth_motion=np.array([np.nan, 0.5, 1.25], np.float32))
    data = frames({0: [(1, 2, 3, 4, 0.9, 0, 7)]}).replace(faces=faces)
    back = FrameData.from_avro(data.to_avro()).faces
    assert back.frame.tolist() == [0, 0, 4] and back.track.tolist() == [0, 1, 0]
    assert np.allclose(back.mouth_motion, [np.nan, 0.5, 1.25], equal_nan=True)
    assert np.allclose(back.xyxy, faces.xyxy) and np.isnan(back.mouth_open).all()


def test_between_analysed_frames_adaptive_reads_mouths_only_near_speech_and_talking_person_always(tmp_path):
    from smartcrop.detector.analysis import FacePolicy, analyse
    from smartcrop.detector.faces import FaceDetections
    from smartcrop.detector.models import FrameDetections
    from smartcrop.media.probe import probe

    texture = np.random.default_rng(2).integers(0, 255, (180, 640, 3), dtype=np.uint8)
    clip = synthetic_clip(tmp_path / "silent.mp4", 2.0, lambda i: texture[:, 4 * i:4 * i + 320])  # no audio

    def two_people(images):
        return [FrameDetections(np.array([[10, 20, 70, 160], [200, 20, 260, 160]], np.float32),
                                np.array([0.9, 0.9], np.float32), np.array([0, 0])) for _ in images]

    def read_faces(policy: FacePolicy) -> tuple[int, int]:
        calls = []

        def faces(image):
            calls.append(1)
            return FaceDetections.empty()
        data = analyse(clip, probe(clip), two_people, analysis_fps=5.0, batch_size=2, faces=faces,
                       face_policy=policy, voice=lambda path, times: None)
        return len(calls), int(data.timeline.analysed.sum())

    calls, analysed = read_faces(FacePolicy.CROWDED)
    assert calls == analysed, "adaptive in a silent clip: faces on the analysed frames only"
    calls, analysed = read_faces(FacePolicy.ALL)
    assert calls > 2 * analysed, "talking_person: mouths at 12.5 samples a second besides the analysed frames"


def test_a_silent_clip_makes_detector_pictures_only_for_the_frames_something_reads(tmp_path, monkeypatch):
    """Scaling a frame to the detector's size costs about as much as decoding it: adaptive, in a clip without
    speech, never reads a mouth between analysed frames, so it makes no picture there (on a crowd clip of 795
    frames, 161 pictures instead of 795); talking_person reads them and makes them."""
    import smartcrop.detector.analysis as analysis
    from smartcrop.detector.analysis import FacePolicy, analyse
    from smartcrop.detector.faces import FaceDetections
    from smartcrop.detector.models import FrameDetections
    from smartcrop.media.probe import probe

    texture = np.random.default_rng(4).integers(0, 255, (180, 640, 3), dtype=np.uint8)
    clip = synthetic_clip(tmp_path / "silent.mp4", 2.0, lambda i: texture[:, 4 * i:4 * i + 320])
    made = []

    class CountingScaler(analysis.DisplayScaler):
        def __call__(self, frame):
            made.append(self.fmt)
            return super().__call__(frame)
    monkeypatch.setattr(analysis, "DisplayScaler", CountingScaler)

    def two_people(images):
        return [FrameDetections(np.array([[10, 20, 70, 160], [200, 20, 260, 160]], np.float32),
                                np.array([0.9, 0.9], np.float32), np.array([0, 0])) for _ in images]

    def pictures(policy: FacePolicy) -> tuple[int, int]:
        made.clear()
        data = analyse(clip, probe(clip), two_people, analysis_fps=5.0, batch_size=2,
                       faces=lambda image: FaceDetections.empty(), face_policy=policy, voice=lambda path, times: None)
        return made.count("bgr24"), int(data.timeline.analysed.sum())

    made_for_adaptive, analysed = pictures(FacePolicy.CROWDED)
    assert made_for_adaptive == analysed
    made_for_talking, analysed = pictures(FacePolicy.ALL)
    assert made_for_talking > 2 * analysed


def test_speech_is_near_within_about_half_a_second_of_a_voiced_moment_and_a_short_clip_keeps_its_length():
    from smartcrop.core.mediainfo import MediaInfo
    from smartcrop.detector.analysis import SPEECH_NEAR, VOICE_STEP, _voice_grid

    def one_word_at(seconds):
        return lambda path, times: (np.abs(times - seconds) < VOICE_STEP / 2).astype(float)

    def lasting(duration):
        return MediaInfo(width=64, height=64, display_width=64, display_height=64, rotation=0, sample_aspect=1.0,
                         fps=25.0, duration=duration, frame_count=int(duration * 25), video_codec="h264",
                         has_audio=True)

    grid = _voice_grid(one_word_at(2.0), None, lasting(4.0))
    near, reach = grid.times[grid.near], round(SPEECH_NEAR / VOICE_STEP) * VOICE_STEP  # 0.48 s: whole steps
    assert np.isclose(near.min(), 2.0 - reach) and np.isclose(near.max(), 2.0 + reach)
    assert grid.near.sum() == 2 * round(SPEECH_NEAR / VOICE_STEP) + 1
    short = _voice_grid(one_word_at(0.0), None, lasting(0.1))
    assert short.near.tolist() == [True] * len(short.times) and len(short.times) == 4
    assert _voice_grid(lambda path, times: None, None, lasting(1.0)) is None


def test_face_reads_grow_rarer_the_longer_no_face_is_readable():
    from smartcrop.detector.analysis import FACE_PATIENCE, FACE_PROBE, FACE_PROBE_MAX, probe_gap

    assert probe_gap(FACE_PATIENCE) == FACE_PROBE
    assert probe_gap(3.0) == 1.5 and probe_gap(6.0) == 3.0
    assert probe_gap(8.0) == probe_gap(600.0) == FACE_PROBE_MAX


def test_face_reads_thin_out_where_no_face_is_large_enough_to_read_and_resume_after_a_cut(tmp_path):
    """A wide crowd shot, whose faces are all too small to read a mouth from, costs one face read a second (and
    fewer later) after ``FACE_PATIENCE``, instead of one per sample; readable faces keep every read, and a cut gives
    a new shot its full rate at once."""
    from smartcrop.detector.analysis import FACE_PATIENCE, FACE_PROBE, MIN_FACE_PX, FacePolicy, analyse
    from smartcrop.detector.faces import FaceDetections
    from smartcrop.detector.models import FrameDetections
    from smartcrop.media.probe import probe

    rng = np.random.default_rng(3)
    first, second = (rng.integers(low, low + 128, (180, 320, 3), dtype=np.uint8) for low in (0, 127))
    clip = synthetic_clip(tmp_path / "crowd.mp4", 6.0, lambda i: first if i < 100 else second)  # a cut at 4 s

    def two_people(images):
        return [FrameDetections(np.array([[10, 20, 70, 160], [200, 20, 260, 160]], np.float32),
                                np.array([0.9, 0.9], np.float32), np.array([0, 0])) for _ in images]

    def read_times(face_width):
        times = []

        def faces(image):
            times.append(len(times))
            box = np.array([[100, 30, 100 + face_width, 30 + face_width]], np.float32)
            return FaceDetections(box, np.array([0.9], np.float32), np.array([np.nan], np.float32))
        data = analyse(clip, probe(clip), two_people, analysis_fps=5.0, batch_size=2, faces=faces,
                       face_policy=FacePolicy.CROWDED, voice=lambda path, times: None)
        read = data.faces.frame
        return data.timeline.t[read], int(data.timeline.analysed.sum())

    readable, analysed = read_times(MIN_FACE_PX)
    assert len(readable) == analysed, "readable faces: a read on every analysed frame"
    small, _ = read_times(MIN_FACE_PX - 1)
    patient = small[small <= FACE_PATIENCE + 1e-6]
    assert len(patient) == np.sum(readable <= FACE_PATIENCE + 1e-6), "full rate while patience lasts"
    thinned = small[(small > FACE_PATIENCE + 0.5) & (small < 4.0)]
    assert len(thinned) >= 1 and np.all(np.diff(thinned) >= FACE_PROBE - 1e-6), thinned
    after_cut = small[(small >= 4.0) & (small < 4.0 + FACE_PATIENCE)]
    again = readable[(readable >= 4.0) & (readable < 4.0 + FACE_PATIENCE)]
    assert np.isclose(after_cut[0], 4.0) and after_cut.tolist() == again.tolist(), "a cut: every read again"
