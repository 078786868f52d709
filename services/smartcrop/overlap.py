"""Render while analysing, in the embedded run: each finished shot is tracked, planned and encoded while the analysis
goes on with the next ones, so the encoder and the detector share the cores instead of taking turns.

A camera path never spans a cut, and tracking, features and every method work within a shot, so the plan of a
finished shot does not depend on the shots after it. The first format is rendered this way; when the planner stage
has the whole clip's plan, the windows already rendered are compared with it, and if any differs (a cut the whole
clip decides otherwise) the early render is dropped and the encoder stage renders the plan as usual. The output is
always exactly the plan's; rendering ahead only moves work earlier.

The analysis also hands over a short clip's decoded pictures and its sound (a :class:`HeldClip`, for clips whose
pictures fit in ``hold_bytes``): the render takes them from memory from where it stands when the analysis ends, so
a short clip that is one shot, rendered only once its analysis ends, is decoded once instead of twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from smartcrop.core.framedata import FrameData
from smartcrop.core.job import JobSpec, OutputKind, crop_size
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.core.ports import JobCancelled
from smartcrop.media.decode import DecodedAudio, DecodedFrame, HeldClip
from smartcrop.media.render import Superseded, WindowFeed, render
from smartcrop.planner.stage import plan_path
from smartcrop.tracker.stage import tracks_of

log = logging.getLogger(__name__)


@dataclass
class AheadStats:
    shots: int = 0  # runs of shots planned during the analysis
    frames: int = 0  # frames whose windows were known before the analysis ended
    reused: bool = False  # the early render was the plan's and was delivered
    superseded: bool = False  # the plan differed from the windows rendered early; the encoder rendered again
    held: int = 0  # pictures the render took from the analysis instead of decoding them


class ShotRenderer:
    """Implements ``smartcrop.core.ports.RenderAhead`` for one job, with one render thread."""

    def __init__(self, analysis_fps: float, work_dir: Path, device: str = "", hold_bytes: int = 0):
        self.analysis_fps = analysis_fps
        self.work_dir = work_dir
        self.device = device  # where the render decodes (SMARTCROP_DEVICE)
        self.stats = AheadStats()
        self.hold_bytes = hold_bytes
        self.held = HeldClip(0)
        self.hold: Callable[[DecodedFrame | DecodedAudio], None] | None = None
        self._job: JobSpec | None = None
        self._media: MediaInfo | None = None
        self._feed: WindowFeed | None = None
        self._thread: threading.Thread | None = None
        self._output: tuple[Path, list[Path]] | None = None
        self._error: BaseException | None = None
        self._progress: Callable[[float], None] = lambda fraction: None

    def begin(self, job: JobSpec, media: MediaInfo, source: Path) -> None:
        self._job, self._media = job, media
        self.held = HeldClip.for_clip(self.hold_bytes, media)
        self.hold = self.held.add if self.held.wanted else None
        fmt = job.formats[0]
        self._feed = WindowFeed(crop_size(media.display_width, media.display_height, fmt.aspect_ratio),
                                media.frame_count)
        out = self.work_dir / ("output" if fmt.output is not OutputKind.MP4 else "output.mp4")
        self._thread = threading.Thread(target=self._render, args=(source, out), name="render-ahead", daemon=True)
        self._thread.start()

    def _render(self, source: Path, out: Path) -> None:
        try:
            entry_points = render(source, self._media, self._feed, self._job.formats[0], out,
                                  progress=lambda fraction: self._progress(fraction), device=self.device,
                                  held=self.held)
            self._output = (out, entry_points)
        except Superseded:
            pass
        except BaseException as exc:  # handed to the encoder stage, which renders again or fails the job
            self._error = exc

    def closed(self, start: int, detections: FrameData) -> None:
        feed = self._feed
        if feed is None or feed.given != start:
            return  # a run that does not continue the windows given so far: leave the rest to the encoder
        try:
            # through Avro, as the tracker and planner stages read them, so the numbers are the same to the bit
            detections = FrameData.from_avro(detections.to_avro())
            tracks = FrameData.from_avro(tracks_of(detections, self.analysis_fps).to_avro())
            windows = plan_path(tracks, self._media, self._job.formats[0]).windows
        except Exception:  # never the job's failure: the stages proper will plan and render the clip
            log.warning("planning finished shots early failed; the clip renders after the analysis", exc_info=True)
            self.abandon()
            return
        feed.extend(windows)
        self.stats.shots += 1
        self.stats.frames = feed.given

    def rendered(self, format_index: int, windows: np.ndarray,
                 progress: Callable[[float], None]) -> tuple[Path, list[Path]] | None:
        if format_index != 0 or self._thread is None:
            return None
        self.held.freeze()  # the analysis is over: what it holds is the whole clip
        self._progress = progress
        if not self._feed.finish(windows):
            self.stats.superseded = True
            log.info("the plan differs from the %d frames rendered early; rendering again", self.stats.frames)
        self._thread.join()
        self.stats.held = self.held.handed_over
        self.held.release()
        self._progress = lambda fraction: None
        if isinstance(self._error, JobCancelled):
            raise self._error
        if self._error is not None:
            log.warning("the early render failed; rendering again", exc_info=self._error)
        self.stats.reused = self._output is not None
        return self._output

    def abandon(self) -> None:
        """Stop the render thread, its output unused (a failed job, or a failure here)."""
        self.held.release()
        if self._feed is not None:
            self._feed.abandon()

    def close(self) -> None:
        self.abandon()
        if self._thread is not None:
            self._thread.join()
