"""One decode loop for every stage, so frame indices agree between the analysis and the render.

Frames are numbered in presentation order as they come out of the decoder; packets the decoder rejects (corrupted
frames) are skipped the same way on every pass. Times come from timestamps, not indices, so variable frame rate
sources keep their timing.
"""

from __future__ import annotations

import functools
import heapq
import logging
import math
import re
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from smartcrop.core.mediainfo import MediaInfo
from smartcrop.media.probe import MediaError, open_container

log = logging.getLogger(__name__)

REORDER_DEPTH = 4  # frames whose timestamps may arrive out of order (B-frame depth)


@dataclass
class DecodedFrame:
    index: int
    t: float  # seconds since the first frame
    frame: av.VideoFrame


@dataclass
class DecodedAudio:
    t: float
    frame: av.AudioFrame


def hardware_decoder(device: str):
    """NVDEC (``av.codec.hwaccel.HWAccel``) for ``SMARTCROP_DEVICE=cuda[:N]`` where this FFmpeg build has CUDA; None,
    the CPU, for any other device. Streams NVDEC cannot take fall back to FFmpeg's software decoder."""
    match = re.fullmatch(r"cuda(?::(\d+))?", device.strip().lower())  # as the detector reads the setting
    if not match:
        return None
    from av.codec.hwaccel import HWAccel, hwdevices_available

    if "cuda" not in hwdevices_available():
        _warn_once(f"SMARTCROP_DEVICE={device}: this FFmpeg build cannot decode on CUDA; decoding on the CPU")
        return None
    return HWAccel("cuda", device=match.group(1), allow_software_fallback=True)


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def _open_for_decoding(path: str | Path, device: str):
    """The container, decoding on ``device``'s hardware where it can be opened there, else on the CPU: a machine
    without the GPU its settings name still runs the job (both passes fall back alike, so frames still agree)."""
    accel = hardware_decoder(device)
    if accel is not None:
        try:
            return open_container(path, hwaccel=accel)
        except (MediaError, OSError, av.error.FFmpegError) as exc:
            _warn_once(f"SMARTCROP_DEVICE={device}: the source could not be opened for GPU decoding ({exc}); "
                       f"decoding on the CPU")
    return open_container(path)


def decode_video(path: str | Path, *, with_audio: bool = False,
                 device: str = "") -> Iterator[DecodedFrame | DecodedAudio]:
    """Yield video frames (and, if asked, audio frames) of the first video stream in presentation order; ``device``
    (``SMARTCROP_DEVICE``) ``cuda[:N]`` decodes on that GPU (NVDEC), frames handed back in system memory.

    Decoders return frames in presentation order, but some containers (AVI with packed B-frames) attach their
    timestamps in decode order. A small reorder buffer hands out the timestamps sorted, which is what FFmpeg's
    best-effort timestamp does, so times always increase.
    """
    with _open_for_decoding(path, device) as container:
        if not container.streams.video:
            raise MediaError("no video stream in the source")
        video = container.streams.video[0]
        video.thread_type = "AUTO"
        streams = [video]
        audio = container.streams.audio[0] if with_audio and container.streams.audio else None
        if audio is not None:
            streams.append(audio)
        step = 1.0 / float(video.average_rate or 25)
        waiting: deque[av.VideoFrame] = deque()
        stamps: list[float] = []  # a heap of the waiting frames' times
        newest = -step
        start: float | None = None
        last_t = -1.0
        index = 0
        skipped = 0
        early_audio: list[av.AudioFrame] = []  # decoded before the first picture's time is known

        def release() -> DecodedFrame:
            nonlocal start, last_t, index
            seconds = heapq.heappop(stamps)
            if start is None:
                start = seconds
            t = max(seconds - start, last_t + 1e-3 if index else 0.0)  # never repeat a time
            last_t = t
            index += 1
            return DecodedFrame(index=index - 1, t=t, frame=waiting.popleft())

        for packet in _packets(container, streams):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as exc:
                skipped += 1
                log.debug("skipping undecodable packet: %s", exc)
                continue
            for frame in frames:
                if packet.stream is audio:
                    if frame.pts is None:
                        continue
                    if start is None:
                        early_audio.append(frame)
                    else:
                        yield DecodedAudio(t=float(frame.pts * frame.time_base) - start, frame=frame)
                    continue
                seconds = float(frame.pts * frame.time_base) if frame.pts is not None else newest + step
                newest = max(newest, seconds)
                heapq.heappush(stamps, seconds)
                waiting.append(frame)
                if len(waiting) > REORDER_DEPTH:
                    first = release()
                    yield from _audio_from(early_audio, start)
                    yield first
        while waiting:
            first = release()
            yield from _audio_from(early_audio, start)
            yield first
        if index == 0:
            raise MediaError("video stream has no decodable frame")
        if skipped:
            log.info("skipped %d undecodable packets", skipped)


class HeldClip:
    """A short clip's decoded pictures and sound, kept as the analysis decodes them, so that the render in the same
    process takes them from memory instead of decoding the source a second time: on 2 cores both passes are
    CPU-bound, and decoding is a third of the render's work at 1080p.

    Whole clips only, up to ``budget`` bytes of pictures. Measured warm on 2 cores, a clip held whole renders 12-15 %
    faster, while holding part of one (its last 103 pictures of 223 at 1080p) saved nothing: every held picture is
    fresh memory whose first touch costs about what its second decode would. So a clip that turns out not to fit
    holds nothing. Both passes number frames with the same :func:`decode_video`, and nothing is handed out before
    :meth:`freeze` (the analysis has decoded the whole clip)."""

    def __init__(self, budget: int, expected_frames: int = 1):
        self.budget = budget
        self.expected_frames = max(1, expected_frames)
        self.handed_over = 0  # pictures a render took
        self._items: list[DecodedFrame | DecodedAudio] = []  # in decode order
        self._bytes = 0
        self._frozen = False
        self._lock = threading.Lock()

    @classmethod
    def for_clip(cls, budget: int, media: MediaInfo) -> "HeldClip":
        """A holder for ``media``, empty at once where even 8-bit 4:2:0 pictures (the smallest a decoder gives) would
        not fit, so that the analysis need not hand it anything, nor decode the sound for it."""
        if media.frame_count * media.width * media.height * 3 // 2 > budget:
            budget = 0
        return cls(budget, media.frame_count)

    @property
    def wanted(self) -> bool:
        """Whether handing pictures and sound to :meth:`add` can still pay."""
        return self.budget > 0 and not self._frozen

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def add(self, item: DecodedFrame | DecodedAudio) -> None:
        with self._lock:
            if not self.wanted:
                return
            if isinstance(item, DecodedFrame):
                size = picture_bytes(item.frame)
                # the first picture's real size, or a clip longer than probed, can show that it will not fit
                if max(self._bytes + size, size * self.expected_frames) > self.budget:
                    self.budget, self._bytes = 0, 0
                    self._items.clear()
                    return
                self._bytes += size
            self._items.append(item)

    def freeze(self) -> None:
        """The clip is decoded to its end: what is held is all of it."""
        with self._lock:
            self._frozen = True

    def release(self) -> None:
        """Hold nothing more, and let go of what is held."""
        with self._lock:
            self._frozen = True
            self._items.clear()
            self._bytes = 0

    def handover(self, index: int, sound_until: float | None) -> list[DecodedFrame | DecodedAudio] | None:
        """Once frozen, the held pictures from ``index`` on and the sound after ``sound_until`` (the time of the last
        sound frame the caller decoded itself; None: none yet), in time order; None before, or with nothing held."""
        with self._lock:
            if not self._frozen:
                return None
            pictures = [i for i in self._items if isinstance(i, DecodedFrame) and i.index >= index]
            if not pictures or pictures[0].index != index:  # nothing held, or two passes that disagree on frames
                return None
            after = -math.inf if sound_until is None else sound_until
            sound = [i for i in self._items if isinstance(i, DecodedAudio) and i.t > after]
            self.handed_over = len(pictures)
        return sorted(pictures + sound, key=lambda item: item.t)


def picture_bytes(frame: av.VideoFrame) -> int:
    return sum(plane.buffer_size for plane in frame.planes)


def decode_or_take(path: str | Path, held: HeldClip | None, *, with_audio: bool = False,
                   device: str = "") -> Iterator[DecodedFrame | DecodedAudio]:
    """:func:`decode_video`, taking ``held``'s pictures and sound from the first picture after the analysis ended on."""
    decoded = decode_video(path, with_audio=with_audio, device=device)
    sound_until: float | None = None
    for item in decoded:
        if held is not None and isinstance(item, DecodedFrame):
            taken = held.handover(item.index, sound_until)
            if taken is not None:
                decoded.close()
                yield from (i for i in taken if with_audio or isinstance(i, DecodedFrame))
                return
        if isinstance(item, DecodedAudio):
            sound_until = item.t
        yield item


def _audio_from(frames: list[av.AudioFrame], start: float) -> Iterator[DecodedAudio]:
    """The audio decoded while the first pictures waited for their timestamps, oldest first; it may start before the
    first picture (negative times: an audio lead), which the render keeps."""
    for frame in frames:
        yield DecodedAudio(t=float(frame.pts * frame.time_base) - start, frame=frame)
    frames.clear()


def _packets(container, streams) -> Iterator[av.Packet]:
    """Demuxed packets until the end, or until the container breaks (a truncated or damaged file): the frames
    before the damage are still a video, and every pass stops at the same place."""
    packets = container.demux(*streams)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            log.info("the container ends early: %s", exc)
            return
        yield packet


def display_size(media: MediaInfo, max_side: int | None = None) -> tuple[int, int]:
    """Upright, square-pixel size, optionally scaled down so the long side is at most ``max_side``."""
    width, height = media.display_width, media.display_height
    if max_side and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)
    return width, height


class DisplayScaler:
    """Frames as a player shows them (rotated, square pixels) at one ``size`` = (width, height) and pixel format.

    It keeps one swscale context for the whole clip: ``VideoFrame.reformat`` builds a new one for every frame, and
    that set-up (about 0.7-1 ms) costs more than scaling a 1080p frame to a thumbnail does."""

    def __init__(self, media: MediaInfo, size: tuple[int, int], fmt: str = "rgb24"):
        self.media, self.fmt = media, fmt
        width, height = size
        self._scaled = (height, width) if media.rotation in (90, 270) else (width, height)
        self._reformatter = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> np.ndarray:
        width, height = self._scaled
        array = self._reformatter.reformat(frame, width=width, height=height, format=self.fmt).to_ndarray()
        if self.media.rotation:
            array = np.ascontiguousarray(np.rot90(array, k=-self.media.rotation // 90))
        return array


def to_display_array(frame: av.VideoFrame, media: MediaInfo, size: tuple[int, int], fmt: str = "rgb24") -> np.ndarray:
    """One frame as a player shows it, resized to ``size``; a loop over a clip keeps a :class:`DisplayScaler`."""
    return DisplayScaler(media, size, fmt)(frame)
