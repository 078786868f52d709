"""What a video is, in display terms, as the events carry it; :mod:`smartcrop.media.probe` measures it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MediaInfo:
    width: int  # stored (coded) geometry
    height: int
    display_width: int  # what a player shows: rotated, square pixels
    display_height: int
    rotation: int  # clockwise degrees that turn stored frames upright
    sample_aspect: float
    fps: float
    duration: float
    frame_count: int
    video_codec: str
    has_audio: bool
    audio_codec: str | None = None

    @property
    def scale_x(self) -> float:
        """Display pixels per stored pixel along the upright frame's x axis."""
        return self.sample_aspect if self.rotation in (0, 180) else 1.0

    @property
    def scale_y(self) -> float:
        return 1.0 if self.rotation in (0, 180) else self.sample_aspect
