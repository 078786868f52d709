"""Mouth motion: the mouth patch's change over the eye patch's change, per face track, between mouth samples."""

import numpy as np

from smartcrop.detector.mouths import MouthReader, iou

BOX = np.array([[100, 100, 160, 180]], np.float32)
# right eye, left eye, nose, right and left mouth corner
POINTS = np.array([[[115, 125], [145, 125], [130, 140], [118, 160], [142, 160]]], np.float32)


def textured(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (240, 320)).astype(np.uint8)


def with_new_mouth(image: np.ndarray, seed: int) -> np.ndarray:
    changed = image.copy()
    changed[150:172, 110:150] = np.random.default_rng(seed).integers(0, 255, (22, 40))
    return changed


def test_a_moving_mouth_on_a_still_head_scores_far_above_a_still_one():
    reader = MouthReader()
    still = textured()
    track, motion = reader.read(0.0, still, BOX, POINTS, consecutive=False)
    assert track.tolist() == [0] and np.isnan(motion).all()  # nothing to compare the first sighting with
    track, motion = reader.read(0.08, still, BOX, POINTS, consecutive=True)
    assert track.tolist() == [0] and motion[0] == 0.0
    _, talking = reader.read(0.16, with_new_mouth(still, 1), BOX, POINTS, consecutive=True)
    assert talking[0] > 5.0


def test_a_head_that_moves_as_a_whole_is_not_a_talking_mouth():
    reader = MouthReader()
    image = textured()
    reader.read(0.0, image, BOX, POINTS, consecutive=False)
    shifted = np.roll(image, 3, axis=1)  # the whole face sways 3 px: mouth and eyes change alike
    _, sway = reader.read(0.08, shifted, BOX, POINTS, consecutive=True)
    reader = MouthReader()
    reader.read(0.0, image, BOX, POINTS, consecutive=False)
    _, talk = reader.read(0.08, with_new_mouth(image, 2), BOX, POINTS, consecutive=True)
    assert 0.5 < sway[0] < 1.5 and talk[0] > 5 * sway[0]


def test_faces_keep_their_track_while_they_overlap_and_not_after_a_gap():
    reader = MouthReader()
    image = textured()
    two = np.concatenate([BOX, BOX + [400, 0, 400, 0]])
    points = np.concatenate([POINTS, POINTS + [400, 0]])
    assert reader.read(0.0, image, two, points, consecutive=False)[0].tolist() == [0, 1]
    swapped = two[::-1].copy()
    track, motion = reader.read(0.08, image, swapped, points[::-1].copy(), consecutive=False)
    assert track.tolist() == [1, 0] and np.isnan(motion).all()  # linked, but a skipped sample gives no motion
    assert reader.read(1.0, image, two, points, consecutive=True)[0].tolist() == [2, 3]  # 0.9 s later: new tracks


def test_iou():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert np.allclose(iou(a, b), [[50 / 150, 0.0]])
