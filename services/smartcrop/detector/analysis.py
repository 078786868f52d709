"""One decode pass for analysis: shot cues on every frame, objects at the analysis rate.

Inference runs on a worker thread in batches while the decoder keeps going, so on a multi-core machine the model
and the decoder overlap instead of taking turns.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from smartcrop.detector.models import FrameDetections, ObjectDetector
from smartcrop.detector.shots import THUMB_LONG_SIDE, ShotDetector
from smartcrop.framedata import FrameData
from smartcrop.media.decode import DecodedFrame, decode_video, display_size, to_display_array
from smartcrop.media.probe import MediaInfo

DETECTOR_LONG_SIDE = 640


def analyse(path: str | Path, media: MediaInfo, detector: ObjectDetector, *, analysis_fps: float, batch_size: int = 8,
            progress: Callable[[float], None] = lambda f: None,
            check_cancelled: Callable[[], None] = lambda: None) -> FrameData:
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
                    pending.append((batch_indices, pool.submit(detector, batch_images)))
                    batch_indices, batch_images = [], []
            if item.index % 25 == 0:
                check_cancelled()
                progress(min(0.99, item.index / expected))
        if batch_images:
            pending.append((batch_indices, pool.submit(detector, batch_images)))

        frames, boxes, scores, classes = [], [], [], []
        for indices, future in pending:
            results: list[FrameDetections] = future.result()
            for index, found in zip(indices, results):
                frames.append(np.full(len(found.score), index, int))
                boxes.append(found.xyxy * to_display)
                scores.append(found.score)
                classes.append(found.cls)

    data = FrameData.empty_boxes(np.asarray(times), shots.shot_starts(), np.asarray(analysed))
    if frames:
        data.frame = np.concatenate(frames)
        data.xyxy = np.concatenate(boxes).astype(np.float32)
        data.score = np.concatenate(scores).astype(np.float32)
        data.cls = np.concatenate(classes).astype(int)
        data.track_id = np.full(len(data.frame), -1, int)
    progress(1.0)
    return data
