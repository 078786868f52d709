"""One decode pass for analysis: shot cues on every frame, objects (and faces where needed) at the analysis rate.

Inference runs on a worker thread in batches while the decoder keeps going, so on a multi-core machine the model
and the decoder overlap instead of taking turns. Faces and mouths are costly, so they are looked for only where a
method will use them: on every analysed frame for talking_person, on frames with two or more people for adaptive.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from enum import Enum
from pathlib import Path
from typing import Callable

import numpy as np

from smartcrop.detector.shots import THUMB_LONG_SIDE, ShotDetector
from smartcrop.framedata import PERSON, FaceTable, FrameData
from smartcrop.media.decode import DecodedFrame, decode_video, display_size, to_display_array
from smartcrop.media.probe import MediaInfo

DETECTOR_LONG_SIDE = 640
PERSON_SCORE = 0.3


class FacePolicy(str, Enum):
    NONE = "none"
    CROWDED = "crowded"  # frames with two or more people
    ALL = "all"


def analyse(path: str | Path, media: MediaInfo, detector: Callable[[list], list], *, analysis_fps: float,
            batch_size: int = 8,
            faces: Callable | None = None, face_policy: FacePolicy = FacePolicy.NONE,
            voice: Callable[[Path, np.ndarray], np.ndarray | None] | None = None,
            progress: Callable[[float], None] = lambda f: None,
            check_cancelled: Callable[[], None] = lambda: None,
            count_frames: Callable[[int], None] = lambda n: None) -> FrameData:
    """``detector(images_bgr) -> [FrameDetections]`` (e.g. an :class:`ObjectDetector`); ``faces(image_bgr) -> Faces``
    and ``voice(path, times) -> (F,)`` are optional signal sources."""
    thumb_size = display_size(media, THUMB_LONG_SIDE)
    detect_size = display_size(media, DETECTOR_LONG_SIDE)
    to_display = np.array([media.display_width / detect_size[0], media.display_height / detect_size[1]] * 2,
                          np.float32)
    shots = ShotDetector(media.fps)
    step = 1.0 / analysis_fps if analysis_fps > 0 else 0.0
    times: list[float] = []
    analysed: list[bool] = []
    batch_indices: list[int] = []
    batch_images: list[np.ndarray] = []
    pending: list[tuple[list[int], Future]] = []
    next_t = 0.0
    expected = max(1, media.frame_count)
    policy = face_policy if faces is not None else FacePolicy.NONE

    def infer(images: list[np.ndarray]):
        found = detector(images)
        face_sets = []
        for image, detections in zip(images, found):
            people = int(np.count_nonzero((detections.cls == PERSON) & (detections.score >= PERSON_SCORE)))
            wanted = policy is FacePolicy.ALL or (policy is FacePolicy.CROWDED and people >= 2)
            face_sets.append(faces(image) if wanted else None)
        return found, face_sets

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference") as pool:
        for item in decode_video(path):
            assert isinstance(item, DecodedFrame)
            shots.add(to_display_array(item.frame, media, thumb_size))
            take = item.t + 1e-6 >= next_t
            times.append(item.t)
            analysed.append(take)
            if take:
                next_t = item.t + step if step else item.t
                batch_indices.append(item.index)
                batch_images.append(to_display_array(item.frame, media, detect_size, "bgr24"))
                if len(batch_images) >= batch_size:
                    pending.append((batch_indices, pool.submit(infer, batch_images)))
                    batch_indices, batch_images = [], []
            if item.index % 25 == 0:
                check_cancelled()
                count_frames(25)
                progress(min(0.95, item.index / expected))
        if batch_images:
            pending.append((batch_indices, pool.submit(infer, batch_images)))

        boxes: list[tuple] = []
        face_rows: list[tuple] = []
        for indices, future in pending:
            found, face_sets = future.result()
            for index, detections, face_set in zip(indices, found, face_sets):
                boxes.append((np.full(len(detections.score), index), detections.xyxy * to_display, detections.score,
                              detections.cls))
                if face_set is not None and len(face_set):
                    face_rows.append((np.full(len(face_set), index), face_set.xyxy * to_display, face_set.score,
                                      face_set.mouth_open))

    frame, xyxy, score, cls = _stack(boxes, 4)
    data = FrameData(t=np.asarray(times, float), shot_start=shots.shot_starts(), analysed=np.asarray(analysed, bool),
                     frame=frame.astype(int), xyxy=xyxy.astype(np.float32), score=score.astype(np.float32),
                     cls=cls.astype(int), track_id=np.full(len(frame), -1, int))
    if face_rows:
        face_frame, face_xyxy, face_score, mouth = _stack(face_rows, 4)
        data.faces = FaceTable(frame=face_frame.astype(int), xyxy=face_xyxy.astype(np.float32),
                               score=face_score.astype(np.float32), mouth_open=mouth.astype(np.float32))
    if voice is not None and len(data.faces) and media.has_audio:  # speech matters only where faces were read
        activity = voice(Path(path), data.t)
        if activity is not None:
            data.voice = np.asarray(activity, np.float32)
    progress(1.0)
    return data


def _stack(parts: list[tuple], width: int) -> tuple[np.ndarray, ...]:
    """Concatenate per-frame column tuples; empty columns keep their shape."""
    if not parts:
        return np.zeros(0), np.zeros((0, width)), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(column) for column in zip(*parts))


def face_policy_for(methods) -> FacePolicy:
    from smartcrop.job import Method

    methods = set(methods)
    if Method.TALKING_PERSON in methods:
        return FacePolicy.ALL
    if Method.ADAPTIVE in methods:
        return FacePolicy.CROWDED
    return FacePolicy.NONE

