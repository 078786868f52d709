"""The media and model stack imports together (mediapipe and ultralytics both bring a cv2)."""

import av
import cv2
import torch
import torchvision


def test_cv2_has_the_face_detector_and_mediapipe_tasks_import():
    assert hasattr(cv2, "FaceDetectorYN")
    from mediapipe.tasks.python import vision

    assert hasattr(vision, "FaceLandmarker")


def test_torchvision_nms_runs_on_this_torch():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


def test_pyav_has_the_encoders_and_muxers_we_need():
    assert {"libx264", "aac"} <= set(av.codecs_available)
    assert {"mp4", "hls", "dash"} <= set(av.formats_available)
