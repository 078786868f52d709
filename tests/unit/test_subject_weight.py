"""Who is the subject of a shot: focus, a face, the frame's edges and its centre, besides size.

Planner scenes are synthetic (1280x720 frame, 9:16 window 404x720); the focus measure runs on a real frame.
"""

import copy
import io

import cv2
import fastavro
import numpy as np
import pytest

from smartcrop.core import avro
from smartcrop.core.framedata import FrameData
from smartcrop.core.job import Method
from smartcrop.detector.analysis import analyse, box_sharpness
from smartcrop.detector.models import FrameDetections
from smartcrop.media.decode import decode_video, display_size, to_display_array
from smartcrop.media.probe import probe
from smartcrop.planner.methods import Geometry, focus_for, subject_factor

from ..conftest import shared_media
from .scenes import Scene, Subject, person

PORTRAIT = Geometry(1280, 720, 404, 720)
RESTAURANT = "A_man_talking_restaurant_720p_visualvoice.mp4"


def xs(focus):
    return focus.point[:, 0]


def factors(*subjects: Subject) -> np.ndarray:
    return subject_factor(Scene(list(subjects), frames=1).tracks().boxes, PORTRAIT)


# ---------------------------------------------------------------------------------------------------------------------
# the factor itself


def test_a_sharp_faceless_box_at_the_centre_keeps_its_weight_and_each_sign_scales_it():
    centred = person(640, width=200, top=110, height=500)  # centre (640, 360)
    values = factors(Subject(1, centred), Subject(2, centred, sharpness=0.25),
                     Subject(3, centred, face=(610, 120, 670, 120 + 86.4)),  # a face 12 % of the frame height
                     Subject(4, centred, face=(620, 120, 660, 120 + 43.2)),  # ... and one half as tall
                     Subject(5, (0, 0, 1280, 720)))  # a close-up touching both sides is not cut
    assert values == pytest.approx([1.0, 0.75, 1.5, 1.375, 1.0], rel=1e-6)


def test_a_box_cut_by_a_side_edge_loses_weight_and_a_sliver_there_loses_most():
    sliver = (0, 110, 100, 610)  # 5:1, touching the left edge, centre x 50
    cut = (0, 110, 300, 610)  # 5:3, touching the left edge, centre x 150
    inside = (20, 110, 120, 610)  # the same sliver shape, 20 px clear of the edge (the margin is 1 %: 12.8 px)
    prior = lambda x: 1 - 0.2 * ((x - 640) / 640) ** 2  # noqa: E731 - the centre prior at height 360
    values = factors(Subject(1, sliver), Subject(2, cut), Subject(3, inside))
    assert values == pytest.approx([0.35 * prior(50), 0.8 * prior(150), prior(70)], rel=1e-6)


# ---------------------------------------------------------------------------------------------------------------------
# the methods choose by it


def test_single_object_takes_the_sharp_person_over_a_blurred_one_of_the_same_size():
    def scene(left_sharpness, right_sharpness):
        return Scene([Subject(1, person(440), sharpness=left_sharpness),
                      Subject(2, person(840), sharpness=right_sharpness)], frames=20)

    assert np.allclose(xs(focus_for(scene(0.2, 1.0).tracks(), Method.SINGLE_OBJECT, PORTRAIT)), 840)
    assert np.allclose(xs(focus_for(scene(1.0, 0.2).tracks(), Method.SINGLE_OBJECT, PORTRAIT)), 440)


def test_single_object_takes_the_person_showing_a_face():
    face = (810, 130, 870, 200)
    scene = Scene([Subject(1, person(440)), Subject(2, person(840), face=face)], frames=20)
    focus = focus_for(scene.tracks(), Method.SINGLE_OBJECT, PORTRAIT)
    assert np.allclose(xs(focus), 840)  # looked at in the face
    assert np.allclose(focus.point[:, 1], 165)


def test_an_edge_cut_blurred_shoulder_loses_to_a_smaller_centred_person():
    shoulder = (0, 100, 150, 720)  # 93 000 px², out of focus, cut by the left edge
    centred = person(640, width=160, top=270, height=450)  # 72 000 px²
    scene = Scene([Subject(1, shoulder, sharpness=0.3), Subject(2, centred)], frames=20)
    assert np.allclose(xs(focus_for(scene.tracks(), Method.SINGLE_OBJECT, PORTRAIT)), 640)
    # the same box, sharp and clear of the edge, is the larger person and is followed
    clear = Scene([Subject(1, (200, 100, 350, 720)), Subject(2, centred)], frames=20)
    assert np.allclose(xs(focus_for(clear.tracks(), Method.SINGLE_OBJECT, PORTRAIT)), 275)


def test_adaptive_frames_two_sharp_faces_not_the_blurred_shoulder_of_an_audience_cutaway():
    # the shoulder is 2.7 times the area of either face's person: by size alone it is "one dominant person"
    shoulder = Subject(1, (0, 60, 260, 720), sharpness=0.15)
    left = Subject(2, person(560, width=160, top=250, height=400), face=(530, 260, 590, 330))
    right = Subject(3, person(760, width=160, top=250, height=400), face=(730, 260, 790, 330))
    focus = focus_for(Scene([shoulder, left, right], frames=20).tracks(), Method.ADAPTIVE, PORTRAIT)
    assert np.allclose(xs(focus), 660)  # between the two faces
    assert np.allclose(focus.keep_lo[:, 0], 840 - 202) and np.allclose(focus.keep_hi[:, 0], 480 + 202)
    # the same boxes with the shoulder in focus and the others blurred and faceless: the shoulder dominates
    swapped = [Subject(1, shoulder.box), Subject(2, left.box, sharpness=0.15), Subject(3, right.box, sharpness=0.15)]
    assert np.allclose(xs(focus_for(Scene(swapped, frames=20).tracks(), Method.ADAPTIVE, PORTRAIT)), 130)


def test_max_weight_prefers_the_window_on_the_pair_in_focus():
    def scene(left_sharpness, right_sharpness):
        return Scene([Subject(1, person(340, width=100), sharpness=left_sharpness),
                      Subject(2, person(460, width=100), sharpness=left_sharpness),
                      Subject(3, person(820, width=100), sharpness=right_sharpness),
                      Subject(4, person(940, width=100), sharpness=right_sharpness)], frames=10)

    assert np.allclose(xs(focus_for(scene(0.1, 1.0).tracks(), Method.MAX_WEIGHT, PORTRAIT)), 880)
    assert np.allclose(xs(focus_for(scene(1.0, 0.1).tracks(), Method.MAX_WEIGHT, PORTRAIT)), 400)


# ---------------------------------------------------------------------------------------------------------------------
# the focus measure, on a real frame


def restaurant_frame() -> np.ndarray:
    """The first frame of the restaurant clip at the detector's size (640x360), BGR."""
    path = shared_media(RESTAURANT)
    media = probe(path)
    item = next(iter(decode_video(path)))
    return to_display_array(item.frame, media, display_size(media, 640), "bgr24")


def test_the_laplacian_variance_tells_a_blurred_copy_from_the_original():
    frame = restaurant_frame()
    patch = frame[40:320, 180:460]  # the man at the table
    canvas = np.zeros_like(frame)
    canvas[40:320, 20:300] = patch
    canvas[40:320, 340:620] = cv2.GaussianBlur(patch, (0, 0), 3.0)
    gray = cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY)
    # 4 px inside each copy, clear of its border with the black canvas
    sharp, blurred = np.array([[24, 44, 296, 316]], float), np.array([[344, 44, 616, 316]], float)
    values = box_sharpness(gray, np.concatenate([sharp, blurred]))
    assert values[0] == 1.0  # the sharpest box of the frame
    assert 0.0 < values[1] < 0.02
    # boxes reaching outside the image are clipped to it
    beyond = box_sharpness(gray, np.array([[-50, -10, 296, 316], [600, 300, 700, 400]], float))
    inside = box_sharpness(gray, np.array([[0, 0, 296, 316], [600, 300, 640, 360]], float))
    assert beyond == pytest.approx(inside, rel=1e-6)
    # the normaliser is the sharpest of the counted boxes; the rest are clipped to 1
    assert box_sharpness(gray, np.concatenate([sharp, blurred]), np.array([False, True])).tolist() == [1.0, 1.0]
    assert box_sharpness(np.full((360, 640), 128, np.uint8), sharp).tolist() == [1.0]  # nothing in focus
    assert box_sharpness(gray, np.zeros((0, 4))).shape == (0,)


def test_analysis_stores_each_box_s_focus_against_the_frame_s_sharpest():
    path = shared_media(RESTAURANT)
    media = probe(path)
    face, seat = [160, 10, 290, 150], [20, 180, 110, 340]  # detector pixels (640x360): his face, the smooth leather

    def detector(images):
        return [FrameDetections(xyxy=np.array([face, seat], np.float32), score=np.array([0.9, 0.9], np.float32),
                                cls=np.zeros(2, int)) for _ in images]

    data = analyse(path, media, detector, analysis_fps=2.0, adapt_rate=False)
    boxes = data.boxes
    assert len(boxes) == 2 * data.timeline.analysed.sum() == 2 * 18
    on_face = boxes.xyxy[:, 0] > 100  # display pixels: the face box starts at x 320, the seat at 40
    assert (boxes.sharpness[on_face] == 1.0).all()  # the face is the sharpest box on every analysed frame
    assert (boxes.sharpness[~on_face] < 0.1).all()


# ---------------------------------------------------------------------------------------------------------------------
# at rest


def test_sharpness_round_trips_and_data_written_before_it_reads_as_unmeasured():
    scene = Scene([Subject(1, person(440), sharpness=0.25), Subject(2, person(840))], frames=3)
    back = FrameData.from_avro(scene.tracks().to_avro()).boxes
    order = np.argsort(back.track_id, kind="stable")
    assert back.sharpness[order].tolist() == [0.25] * 3 + [1.0] * 3

    old = copy.deepcopy(avro.schema("FrameObjects"))
    box = next(f for f in old["fields"] if f["name"] == "boxes")["type"]["items"]
    box["fields"] = [f for f in box["fields"] if f["name"] != "sharpness"]
    buffer = io.BytesIO()
    record = {"index": 0, "t": 0.0, "shot_start": True, "analysed": True, "faces": [], "voice": None,
              "boxes": [{"x1": 1.0, "y1": 2.0, "x2": 3.0, "y2": 4.0, "score": 0.9, "cls": 0, "track_id": 7,
                         "speed": 0.0, "speaking": 0.0, "face": None}]}
    fastavro.writer(buffer, fastavro.parse_schema(old), [record])
    assert FrameData.from_avro(buffer.getvalue()).boxes.sharpness.tolist() == [1.0]
