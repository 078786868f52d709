"""Per-track features: speed in box heights per second, faces matched to people, who is speaking."""

import numpy as np
import pytest

from smartcrop.core.framedata import Faces, FrameData, Timeline
from smartcrop.tracker.features import LEAD_FULL, add_features, face_speaking, match_faces, speech_evidence, track_speed

from .scenes import Scene, Subject, person


def test_speed_is_size_normalised():
    # 10 px per frame at 5 fps = 50 px/s, box 500 px tall -> 0.1 heights/s; a still person -> 0
    scene = Scene([Subject(1, lambda f: person(300 + 10 * f, height=500)), Subject(2, person(900))], frames=20)
    tracks = scene.tracks()
    speed = track_speed(tracks)
    assert np.allclose(speed[tracks.boxes.track_id == 1], 0.1, atol=1e-4)
    assert np.allclose(speed[tracks.boxes.track_id == 2], 0.0)


def test_speed_does_not_run_across_a_cut():
    scene = Scene([Subject(1, lambda f: person(200) if f < 10 else person(1000))], frames=20, cuts=[10])
    assert np.allclose(track_speed(scene.tracks()), 0.0)


def test_faces_go_to_the_person_whose_head_they_are():
    tracks = Scene([Subject(1, person(300)), Subject(2, person(900))], frames=1).tracks()
    tracks = tracks.replace(faces=Faces.found(
        frame=np.array([0, 0, 0]),
        xyxy=np.array([[870, 110, 930, 180], [270, 120, 330, 190], [280, 500, 320, 540]], np.float32),
        score=np.array([0.9, 0.8, 0.9], np.float32), mouth_open=np.full(3, np.nan, np.float32)))
    face = match_faces(tracks)
    first, second = np.flatnonzero(tracks.boxes.track_id == 1)[0], np.flatnonzero(tracks.boxes.track_id == 2)[0]
    assert face[first] == 1
    assert face[second] == 0  # not the knee "face"


def conversation(motion_a, motion_b, *, frames: int = 40, fps: float = 10.0, voice=None) -> FrameData:
    """Two faces side by side on every frame, with the given mouth motion per frame (face tracks 0 and 1)."""
    index = np.arange(frames)
    timeline = Timeline.of(t=index / fps, shot_start=index == 0, analysed=np.ones(frames, bool))
    if voice is not None:
        timeline = timeline.replace(voice=np.asarray(voice, np.float32))
    return FrameData(timeline=timeline,
                     faces=Faces(frame=np.repeat(index, 2),
                                 xyxy=np.tile(np.array([[100, 100, 160, 180], [900, 100, 960, 180]], np.float32),
                                              (frames, 1)),
                                 score=np.full(2 * frames, 0.9, np.float32),
                                 mouth_open=np.full(2 * frames, np.nan, np.float32),
                                 track=np.tile([0, 1], frames),
                                 mouth_motion=np.stack([motion_a, motion_b], 1).reshape(-1).astype(np.float32)))


def test_the_face_whose_mouth_moves_more_speaks_and_the_other_listens():
    data = conversation(np.full(40, 1.2), np.full(40, 0.6))  # no audio track: the mouths alone decide
    evidence = speech_evidence(data)
    assert np.allclose(evidence.reshape(-1, 2), [1.2, 0.6])
    score = face_speaking(data, evidence).reshape(-1, 2)
    assert np.allclose(score[:, 0], min(1.0, 0.5 + 0.5 * 0.6 / LEAD_FULL)) and np.allclose(score[:, 1], 0.0)


def test_mouth_motion_that_follows_the_voice_beats_more_motion_that_does_not():
    voice = np.where(np.arange(40) < 20, 1.0, 0.0)  # 2 s of speech, then 2 s of silence
    speaker = np.where(voice > 0, 0.8, 0.2)  # moves while there is speech
    fidgeter = np.full(40, 0.9)  # moves more, but just as much in the silence
    assert face_speaking(conversation(speaker, fidgeter), speech_evidence(conversation(speaker, fidgeter)))[
        2 * 15] < 0.5, "without the audio the fidgeting listener would win"
    data = conversation(speaker, fidgeter, voice=voice)
    evidence = speech_evidence(data).reshape(-1, 2)
    assert evidence[15, 0] > evidence[15, 1] == pytest.approx(0.9)
    score = face_speaking(data, evidence.reshape(-1)).reshape(-1, 2)
    assert score[15, 0] > 0.5 > score[15, 1]
    assert np.allclose(score[25:], 0.0), "where the audio holds no speech, nobody is speaking"


def test_a_face_alone_is_measured_against_a_listener_s_activity():
    data = conversation(np.full(20, 1.2), np.full(20, np.nan), frames=20)
    score = face_speaking(data, speech_evidence(data)).reshape(-1, 2)
    assert np.allclose(score[:, 0], 1.0) and np.allclose(score[:, 1], 0.0)


def test_people_take_the_speaking_score_of_their_face():
    tracks = Scene([Subject(1, person(300)), Subject(2, person(900))], frames=10, fps=10).tracks()
    frames = np.arange(10)
    tracks = tracks.replace(faces=Faces(
        frame=np.repeat(frames, 2),
        xyxy=np.tile(np.array([[270, 120, 330, 190], [870, 110, 930, 180]], np.float32), (10, 1)),
        score=np.full(20, 0.9, np.float32), mouth_open=np.full(20, np.nan, np.float32),
        track=np.tile([0, 1], 10), mouth_motion=np.tile([1.5, 0.5], 10).astype(np.float32)))
    boxes = add_features(tracks).boxes
    first = boxes.track_id == 1
    assert np.allclose(boxes.speaking[first], 1.0) and np.allclose(boxes.speaking[~first], 0.0)
    assert np.allclose(boxes.face_xyxy[first], [270, 120, 330, 190])
