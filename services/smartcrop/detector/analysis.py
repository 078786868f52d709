"""One decode pass for analysis: shot cues on every frame, objects at the analysis rate, faces where needed.

Inference runs on a worker thread in batches while the decoder keeps going, so on a multi-core machine the model
and the decoder overlap instead of taking turns; at most ``MAX_CHUNKS_IN_FLIGHT`` batches of images wait for it, so
memory stays flat however long the clip. Faces and mouths are read only where a method will use them (every mouth
sample for talking_person, samples with two or more people for adaptive), at ``MOUTH_FPS``: speech needs a higher
rate than the person detector does. Where the face reads keep finding no face large enough to read a mouth from (a
wide crowd shot), they thin out to one a ``FACE_PROBE``, then rarer the longer none is found (up to one every
``FACE_PROBE_MAX``), until one is found or the shot changes.
Each box's focus (sharpness) is measured on the same thread, from the detector-size image already in hand.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Callable

import numpy as np

from smartcrop.core.framedata import PERSON, Boxes, Faces, FrameData, Timeline
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.detector.mouths import MIN_FACE_PX, MOUTH_FPS, MouthReader
from smartcrop.detector.shots import THUMB_LONG_SIDE, ShotDetector
from smartcrop.media.decode import DecodedAudio, DecodedFrame, DisplayScaler, decode_video, display_size
from smartcrop.media.voice import SPEECH

DETECTOR_LONG_SIDE = 640
PERSON_SCORE = 0.3


class FacePolicy(str, Enum):
    NONE = "none"
    CROWDED = "crowded"  # frames with two or more people
    ALL = "all"


# The detector's rate follows the picture: a shot that barely changes is sampled as slowly as its people move, down to
# a third of the analysis rate, and the first frame after a likely cut is always sampled. Change is the shot
# detector's per-frame score summed since the last sample; static talking heads and interviews collect 0.1-0.2 a
# second, moving shots 0.3-1.4. Small people walking through a still wide shot change little of the picture, so the
# people's own speed (from the latest detections, a batch behind) sets the gap between samples: long enough for them
# to move ``PEOPLE_MOVE`` of their height, which a tracker's motion model bridges (people walking in a crowd move
# 0.3-0.8 heights a second); a shot where nobody was found keeps looking at the full rate. Walkers at 0.5 heights a
# second are sampled every 0.6 s: every 0.4 s would raise a crowd's coverage by 0.5-1 point, for a fifth more
# detector time and a less steady path (|Δ²| 0.27 against 0.17 % of the width, balanced, on the shared crowd clip).
CHANGE_PER_SAMPLE = 0.06  # change since the last sample that calls for the next one at the full rate
SLOWEST = 1 / 3  # the lowest rate, as a share of the analysis rate
PEOPLE_MOVE = 0.3  # box heights the people found may move between two samples of a shot that barely changes
CUT_SCORE = 0.25  # a frame change this large is likely a cut (real cuts score 0.3-0.85, motion rarely 0.2)
VOICE_STEP = 0.04  # seconds between the points the voice activity is read at, before the frames are known
FACE_PATIENCE = 2.0  # seconds of face reads without a readable face (or a cut) before the reads thin out
FACE_PROBE = 1.0  # seconds between face reads once they thin out; after each read the gap is half the time it came
FACE_PROBE_MAX = 4.0  # after the last readable face (or the cut), up to this: a long wide shot costs a read every 4 s
SPEECH_NEAR = 0.5  # between analysed frames, mouths are read only this close (seconds) to speech in the audio
MAX_CHUNKS_IN_FLIGHT = 1  # batches queued behind the one the model runs: memory stays flat
# The rate decision reads the people of the newest batch the decode loop has collected (at most two batches old),
# never the inference thread's live state, so the frames sampled do not depend on how fast the model ran.


@dataclass
class _Seen:
    """What the inference thread saw last (its own state; the decode loop sees it only through each batch's
    result)."""

    people: int = 0
    people_speed: float = float("inf")  # median box heights per second, infinite when unknown
    person_boxes: np.ndarray | None = None
    person_t: float = 0.0
    last_mouth: int = -2  # number of the last mouth sample whose faces were read
    readable_t: float = 0.0  # time of the last face read that found a readable face, or of the last cut
    face_t: float = float("-inf")  # time of the last face read


@dataclass
class _Sample:
    """A decoded frame handed to the inference thread."""

    frame: int
    t: float
    image: np.ndarray | None  # BGR at the detector's size; dropped once inference has used it
    analysed: bool  # the object detector looks at it
    mouth: int  # number of this mouth sample, -1 when it is none (faces are wanted only on mouth samples)
    after_cut: bool = False  # a likely cut lies between the previous sample and this one


def analyse(path: str | Path, media: MediaInfo, detector: Callable[[list], list], *, analysis_fps: float,
            batch_size: int = 8, adapt_rate: bool = True,
            faces: Callable | None = None, face_policy: FacePolicy = FacePolicy.NONE,
            voice: Callable[[Path, np.ndarray], np.ndarray | None] | None = None,
            progress: Callable[[float], None] = lambda f: None,
            check_cancelled: Callable[[], None] = lambda: None,
            count_frames: Callable[[int], None] = lambda n: None,
            on_closed: Callable[[int, FrameData], None] | None = None, device: str = "",
            hold: Callable[[DecodedFrame | DecodedAudio], None] | None = None) -> FrameData:
    """``detector(images_bgr) -> [FrameDetections]`` (e.g. an :class:`ObjectDetector`); ``faces(image_bgr) ->
    FaceDetections`` and ``voice(path, times) -> (F,)`` are optional signal sources.

    Where faces are wanted, mouths are sampled at ``MOUTH_FPS`` and on every analysed frame too, so that people and
    faces meet on the detector's frames; which frames the detector sees does not depend on the method. With
    ``adapt_rate`` the detector's rate follows the picture (see ``CHANGE_PER_SAMPLE``); without, it is the analysis
    rate throughout.

    ``on_closed(start, data)``, if given, receives each run of shots as soon as it is over, while the decode goes
    on: frames ``start`` up to the next settled cut whose samples are all analysed, numbered from ``start``. It
    only watches: which frames are sampled never depends on it or on when it is called. ``device`` is where the
    source decodes (``cuda[:N]``: NVDEC). ``hold``, if given, receives every decoded picture and, where the source
    has sound, every sound frame (a :class:`smartcrop.media.decode.HeldClip` keeps a short clip's for the
    render)."""
    import cv2  # here, not at import: start-up stays light

    thumbnail = DisplayScaler(media, display_size(media, THUMB_LONG_SIDE))
    detect_size = display_size(media, DETECTOR_LONG_SIDE)
    detector_image = DisplayScaler(media, detect_size, "bgr24")
    to_display = np.array([media.display_width / detect_size[0], media.display_height / detect_size[1]] * 2,
                          np.float32)
    shots = ShotDetector(media.fps)
    policy = face_policy if faces is not None else FacePolicy.NONE
    step = 1.0 / analysis_fps if analysis_fps > 0 else 0.0
    mouth_step = 1.0 / MOUTH_FPS if policy is not FacePolicy.NONE else 0.0
    times: list[float] = []
    analysed: list[bool] = []
    chunk: list[_Sample] = []
    pending: deque[tuple[Future, int]] = deque()  # batches with the model, and the first frame of each
    results: list[tuple[list[_Sample], list, list, list, float]] = []
    next_t = next_mouth_t = taken_t = 0.0
    changed, cut_ahead = 0.0, True  # the first frame is sampled
    cut_since_sample = False
    expected = max(1, media.frame_count)
    mouths = MouthReader()
    seen = _Seen()
    people_gap = step  # seconds the people allow between samples, as of the newest collected batch

    def infer(samples: list[_Sample]):
        """Runs on the inference thread, one chunk after another in time order."""
        found = iter(detector([s.image for s in samples if s.analysed]))
        detections, face_sets, sharp = [], [], []
        for sample in samples:
            objects = next(found) if sample.analysed else None
            if objects is not None:
                people = objects.xyxy[(objects.cls == PERSON) & (objects.score >= PERSON_SCORE)]
                seen.people = len(people)
                seen.people_speed = _people_speed(seen.person_boxes, people, sample.t - seen.person_t)
                seen.person_boxes, seen.person_t = people, sample.t
            if sample.after_cut:
                seen.readable_t = sample.t
            thinned = (sample.t - seen.readable_t > FACE_PATIENCE
                       and sample.t - seen.face_t < probe_gap(seen.face_t - seen.readable_t))
            wanted = sample.image is not None and sample.mouth >= 0 and not thinned and (
                policy is FacePolicy.ALL or (policy is FacePolicy.CROWDED and seen.people >= 2)) and (
                sample.analysed or speech.near(sample.t))
            face_set = None
            gray = cv2.cvtColor(sample.image, cv2.COLOR_BGR2GRAY) if objects is not None or wanted else None
            sharp.append(box_sharpness(gray, objects.xyxy, objects.score >= PERSON_SCORE)
                         if objects is not None else None)
            if wanted:
                face_set = faces(sample.image)
                seen.face_t = sample.t
                if np.any(face_set.xyxy[:, 2] - face_set.xyxy[:, 0] >= MIN_FACE_PX):
                    seen.readable_t = sample.t
                track, motion = mouths.read(sample.t, gray, face_set.xyxy, face_set.points,
                                            consecutive=seen.last_mouth == sample.mouth - 1)
                face_set = (face_set, track, motion)
            seen.last_mouth = sample.mouth if wanted else -2
            detections.append(objects)
            face_sets.append(face_set)
            sample.image = None  # results are kept to the end of the clip; images are not
        return samples, detections, face_sets, sharp, seen.people_speed

    def submit(samples: list[_Sample]) -> None:
        nonlocal people_gap
        pending.append((pool.submit(infer, samples), samples[0].frame))
        while len(pending) > MAX_CHUNKS_IN_FLIGHT:
            results.append(pending.popleft()[0].result())
            people_gap = sample_gap(results[-1][-1], step)

    mouth_index = 0
    closed = 0  # frames handed to on_closed
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference") as pool, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="voice") as audio:
        # talking_person reads mouths between analysed frames even in a silent clip (the mouths alone decide there);
        # adaptive, looking at crowds, reads them there only around speech
        speech = _Speech(audio.submit(_voice_grid, voice, Path(path), media)
                         if voice is not None and policy is not FacePolicy.NONE and media.has_audio else None,
                         without_audio=policy is FacePolicy.ALL)
        for item in decode_video(path, with_audio=hold is not None and media.has_audio, device=device):
            if hold is not None:
                hold(item)
            if isinstance(item, DecodedAudio):
                continue
            shots.add(thumbnail(item.frame))
            change = shots.scores_so_far[-1]
            changed += change
            cut_ahead = cut_ahead or change >= CUT_SCORE
            cut_since_sample = cut_since_sample or change >= CUT_SCORE
            mouth = bool(mouth_step) and item.t + 1e-6 >= next_mouth_t
            if mouth:
                next_mouth_t = max(next_mouth_t + mouth_step, item.t + mouth_step / 2)
            due = item.t + 1e-6 >= next_t and (
                not adapt_rate or changed >= CHANGE_PER_SAMPLE or people_gap <= step
                or item.t + 1e-6 >= taken_t + people_gap)
            take = due or (adapt_rate and cut_ahead) or not step
            mouth = mouth or (take and bool(mouth_step))
            times.append(item.t)
            analysed.append(take)
            if take:
                next_t = max(next_t + step, item.t + step / 2) if step else item.t
                taken_t = item.t
                changed, cut_ahead = 0.0, False
                if sum(s.analysed for s in chunk) >= batch_size:
                    submit(chunk)
                    chunk = []
            if take or mouth:
                # a sample only for its mouths needs a picture where faces may be read there: near speech
                needed = take or speech.may_be_near(item.t)
                chunk.append(_Sample(item.index, item.t, detector_image(item.frame) if needed else None,
                                     take, mouth_index if mouth else -1, cut_since_sample))
                cut_since_sample = False
                if mouth:
                    mouth_index += 1
            if item.index % 25 == 0:
                check_cancelled()
                count_frames(25)
                progress(min(0.95, item.index / expected))
                if on_closed is not None:
                    closed = _close_shots(
                        closed, shots, speech, results, pending, chunk, item.index + 1,
                        lambda lo, hi, starts, done: _frame_data(times, analysed, starts, done, to_display,
                                                                 speech.known(), lo, hi),
                        on_closed)
        if chunk:
            submit(chunk)
        while pending:
            results.append(pending.popleft()[0].result())

    data = _frame_data(times, analysed, shots.shot_starts(), results, to_display, speech.known(), 0, len(times))
    progress(1.0)
    return data


def _frame_data(times: list[float], analysed: list[bool], shot_start: np.ndarray, results: list, to_display: np.ndarray,
                voice_grid: tuple[np.ndarray, np.ndarray] | None, start: int, stop: int) -> FrameData:
    """The analysis of frames [start, stop) from the inference results, numbered from ``start``; ``shot_start``
    covers just those frames."""
    boxes: list[tuple] = []
    face_rows: list[tuple] = []
    for samples, detections, face_sets, sharp, _ in results:
        if samples[-1].frame < start or samples[0].frame >= stop:
            continue
        for sample, objects, face_set, focus in zip(samples, detections, face_sets, sharp):
            if not start <= sample.frame < stop:
                continue
            index = sample.frame - start
            if objects is not None:
                boxes.append((np.full(len(objects.score), index), objects.xyxy * to_display, objects.score,
                              objects.cls, focus))
            if face_set is not None and len(face_set[0]):
                found, track, motion = face_set
                face_rows.append((np.full(len(found), index), found.xyxy * to_display, found.score,
                                  found.mouth_open, track, motion))

    frame, xyxy, score, cls, sharpness = _stack(boxes, 4)
    timeline = Timeline.of(t=np.asarray(times[start:stop], float), shot_start=np.asarray(shot_start, bool),
                           analysed=np.asarray(analysed[start:stop], bool))
    faces = Faces.empty()
    if face_rows:
        face_frame, face_xyxy, face_score, mouth_open, face_track, motion = (
            np.concatenate(column) for column in zip(*face_rows))
        faces = Faces(frame=face_frame.astype(int), xyxy=face_xyxy.astype(np.float32),
                      score=face_score.astype(np.float32), mouth_open=mouth_open.astype(np.float32),
                      track=face_track.astype(int), mouth_motion=motion.astype(np.float32))
    if voice_grid is not None and len(faces):  # speech matters only where faces were read
        timeline = timeline.replace(voice=np.interp(timeline.t, voice_grid[0], voice_grid[1]).astype(np.float32))
    return FrameData(timeline=timeline, faces=faces,
                     boxes=Boxes.detected(frame=frame.astype(int), xyxy=xyxy.astype(np.float32),
                                          score=score.astype(np.float32), class_id=cls.astype(int),
                                          sharpness=sharpness.astype(np.float32)))


def _close_shots(closed: int, shots: ShotDetector, speech: "_Speech", results: list, pending: deque, chunk: list,
                 decoded: int, build: Callable, on_closed: Callable[[int, FrameData], None]) -> int:
    """Hand the shots finished since frame ``closed`` to ``on_closed``; returns the new count of frames handed over.

    Batches still with the model are only looked at (never collected here), so the decode loop's own schedule, and
    with it the frames it samples, stays as it would be without this."""
    if not speech.settled():
        return closed
    done = list(results)
    analysed_before = chunk[0].frame if chunk else decoded  # every sample before this frame has its result
    for future, first_frame in pending:
        if not future.done():
            analysed_before = first_frame
            break
        done.append(future.result())
    cuts = shots.settled_cuts(closed)
    cuts = cuts[cuts <= analysed_before]
    if not len(cuts):
        return closed
    end = int(cuts[-1])
    shot_start = np.zeros(end - closed, bool)
    shot_start[0] = True
    shot_start[cuts[:-1] - closed] = True
    on_closed(closed, build(closed, end, shot_start, done))
    return end


@dataclass(frozen=True)
class _VoiceGrid:
    """Voice activity every ``VOICE_STEP`` seconds, and where speech lies within ``SPEECH_NEAR`` seconds."""

    times: np.ndarray
    activity: np.ndarray
    near: np.ndarray  # bool


def _voice_grid(voice: Callable, path: Path, media: MediaInfo) -> _VoiceGrid | None:
    """The clip's voice activity: read on its own thread while the video decodes, before its frame times are
    known."""
    times = np.arange(0.0, max(media.duration, 0.0) + VOICE_STEP, VOICE_STEP)
    activity = voice(path, times)
    if activity is None:
        return None
    activity = np.asarray(activity, float)
    reach = int(round(SPEECH_NEAR / VOICE_STEP))
    near = np.convolve(activity >= SPEECH, np.ones(2 * reach + 1), mode="full")[reach:reach + len(activity)] > 0
    return _VoiceGrid(times, activity, near)


@dataclass(frozen=True)
class _Speech:
    """Where the audio holds speech, once its voice activity is read (``pending``; None without audio). Every answer
    comes from the future's result, so the decode and the inference thread can both ask."""

    pending: Future | None
    without_audio: bool  # what ``near`` answers when there is no audio to tell

    def known(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(times, activity), waiting for it if need be; None without audio."""
        grid = self._grid()
        return None if grid is None else (grid.times, grid.activity)

    def settled(self) -> bool:
        """Is the voice activity known (or known to be absent)?"""
        return self.pending is None or self.pending.done()

    def near(self, t: float) -> bool:
        """Is there speech within ``SPEECH_NEAR`` seconds of ``t``? Waits for the voice activity."""
        grid = self._grid()
        if grid is None:
            return self.without_audio
        return bool(grid.near[min(len(grid.near) - 1, max(0, int(round(t / VOICE_STEP))))])

    def may_be_near(self, t: float) -> bool:
        """``near(t)`` once the voice activity is known, else True: never waits."""
        return not self.settled() or self.near(t)

    def _grid(self) -> _VoiceGrid | None:
        return None if self.pending is None else self.pending.result()


def probe_gap(unreadable: float) -> float:
    """Seconds until the next face read after one that came ``unreadable`` seconds after the last readable face."""
    return float(np.clip(unreadable / 2, FACE_PROBE, FACE_PROBE_MAX))


def sample_gap(people_speed: float, step: float) -> float:
    """Seconds between detector samples of a shot that barely changes: as long as lets its people move
    ``PEOPLE_MOVE`` of their height, between ``step`` (the analysis rate) and ``step / SLOWEST``."""
    if not np.isfinite(people_speed):
        return step
    return float(np.clip(PEOPLE_MOVE / max(people_speed, 1e-9), step, step / SLOWEST))


def _people_speed(before: np.ndarray | None, now: np.ndarray, seconds: float) -> float:
    """Median speed of the people in ``now``, in box heights per second, each against the nearest box ``seconds``
    earlier; infinite when there is nobody to compare (nobody found, or nothing before)."""
    if before is None or not len(before) or not len(now) or seconds <= 0:
        return float("inf")
    centre = lambda boxes: (boxes[:, :2] + boxes[:, 2:]) / 2  # noqa: E731
    distance = np.linalg.norm(centre(now)[:, None] - centre(before)[None], axis=2).min(axis=1)
    height = np.maximum(now[:, 3] - now[:, 1], 1.0)
    return float(np.median(distance / height)) / seconds


def _stack(parts: list[tuple], width: int) -> tuple[np.ndarray, ...]:
    """Concatenate per-frame column tuples; empty columns keep their shape."""
    if not parts:
        return np.zeros(0), np.zeros((0, width)), np.zeros(0), np.zeros(0), np.zeros(0)
    return tuple(np.concatenate(column) for column in zip(*parts))


def box_sharpness(gray: np.ndarray, xyxy: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """(N,) focus of each box: the variance of the Laplacian inside it, over the largest such variance among the
    ``counted`` boxes of this frame (all by default), clipped to 0-1.

    The camera's plane of focus is where the subject is; an out-of-focus shoulder in the foreground can be the
    largest box of an audience cutaway, yet it is the sharp faces behind it that the shot is about. Dividing by the
    frame's sharpest box makes the value comparable across clips, lenses and encoders. Variances come from integral
    images, so the cost does not grow with the number or size of boxes."""
    import cv2

    count = len(xyxy)
    if count == 0:
        return np.zeros(0, np.float32)
    height, width = gray.shape[:2]
    laplacian = cv2.Laplacian(gray, cv2.CV_32F)
    total, squares = cv2.integral2(laplacian, sdepth=cv2.CV_64F, sqdepth=cv2.CV_64F)
    x1 = np.clip(np.floor(xyxy[:, 0]), 0, width - 1).astype(int)
    y1 = np.clip(np.floor(xyxy[:, 1]), 0, height - 1).astype(int)
    x2 = np.clip(np.ceil(xyxy[:, 2]), x1 + 1, width).astype(int)
    y2 = np.clip(np.ceil(xyxy[:, 3]), y1 + 1, height).astype(int)

    def box_sum(table):
        return table[y2, x2] - table[y1, x2] - table[y2, x1] + table[y1, x1]

    pixels = (x2 - x1) * (y2 - y1)
    mean = box_sum(total) / pixels
    variance = np.maximum(box_sum(squares) / pixels - mean ** 2, 0.0)
    counted = np.ones(count, bool) if counted is None or not np.any(counted) else np.asarray(counted, bool)
    sharpest = variance[counted].max()
    if sharpest <= 0:  # a flat frame: nothing is more in focus than anything else
        return np.ones(count, np.float32)
    return np.clip(variance / sharpest, 0.0, 1.0).astype(np.float32)


def face_policy_for(methods) -> FacePolicy:
    from smartcrop.core.job import Method

    methods = set(methods)
    if Method.TALKING_PERSON in methods:
        return FacePolicy.ALL
    if Method.ADAPTIVE in methods:
        return FacePolicy.CROWDED
    return FacePolicy.NONE

