"""Per-track features: speed in box heights per second, faces matched to people, speaking scores."""

import numpy as np

from smartcrop.framedata import FaceTable
from smartcrop.tracker.features import match_faces, speaking_score, track_speed

from .scenes import Scene, Subject, person


def test_speed_is_size_normalised():
    # 10 px per frame at 5 fps = 50 px/s, box 500 px tall -> 0.1 heights/s; a still person -> 0
    scene = Scene([Subject(1, lambda f: person(300 + 10 * f, height=500)), Subject(2, person(900))], frames=20)
    tracks = scene.tracks()
    speed = track_speed(tracks)
    assert np.allclose(speed[tracks.track_id == 1], 0.1, atol=1e-4)
    assert np.allclose(speed[tracks.track_id == 2], 0.0)


def test_speed_does_not_run_across_a_cut():
    scene = Scene([Subject(1, lambda f: person(200) if f < 10 else person(1000))], frames=20, cuts=[10])
    assert np.allclose(track_speed(scene.tracks()), 0.0)


def test_faces_go_to_the_person_whose_head_they_are():
    tracks = Scene([Subject(1, person(300)), Subject(2, person(900))], frames=1).tracks()
    tracks.faces = FaceTable(frame=np.array([0, 0, 0]),
                             xyxy=np.array([[870, 110, 930, 180], [270, 120, 330, 190], [280, 500, 320, 540]],
                                           np.float32),
                             score=np.array([0.9, 0.8, 0.9], np.float32), mouth_open=np.array([0.3, 0.1, 0.5],
                                                                                                np.float32))
    face, mouth = match_faces(tracks)
    first, second = np.flatnonzero(tracks.track_id == 1)[0], np.flatnonzero(tracks.track_id == 2)[0]
    assert np.allclose(face[first], [270, 120, 330, 190]) and np.isclose(mouth[first], 0.1)
    assert np.allclose(face[second], [870, 110, 930, 180]) and np.isclose(mouth[second], 0.3)  # not the knee "face"


def test_speaking_scores_moving_mouths_gated_by_voice():
    scene = Scene([Subject(1, person(300)), Subject(2, person(900))], frames=20, fps=10)
    tracks = scene.tracks()
    talker = tracks.track_id == 1
    mouth = np.where(talker, 0.3 * (tracks.frame % 2), 0.2).astype(np.float32)
    score = speaking_score(tracks, mouth)
    assert np.allclose(score[talker][3:-3], 1.0) and np.allclose(score[~talker], 0.0)
    tracks.voice = np.where(np.arange(20) < 10, 0.9, 0.1).astype(np.float32)  # speech, then silence
    gated = speaking_score(tracks, mouth)[talker]
    assert np.allclose(gated[3:10], 1.0) and np.allclose(gated[10:-3], 0.2)


def test_unmeasured_mouths_score_zero():
    tracks = Scene([Subject(1, person(300))], frames=10).tracks()
    assert np.allclose(speaking_score(tracks, np.full(10, np.nan, np.float32)), 0.0)
