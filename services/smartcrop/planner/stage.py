"""Planner stage: one crop path per output format, from the same tracks."""

from __future__ import annotations

from smartcrop.core.events import CropPlanned, TracksReady
from smartcrop.core.framedata import CropPath, FrameData
from smartcrop.core.job import OutputFormat, crop_size
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.core.ports import StageContext
from smartcrop.planner.focus import Focus
from smartcrop.planner.methods import Geometry, focus_for
from smartcrop.planner.path import camera_path


def plan_path(tracks: FrameData, media: MediaInfo, fmt: OutputFormat) -> CropPath:
    """The crop path of one format over the tracked frames (a whole clip, or a run of whole shots)."""
    frame_size = (media.display_width, media.display_height)
    size = crop_size(*frame_size, fmt.aspect_ratio)
    if fmt.smart_crop:
        focus = focus_for(tracks, fmt.method, Geometry(*frame_size, *size))
    else:  # a plain centre crop, as a transcoder without smart crop would do
        focus = Focus.empty(tracks.frame_count)
    timeline = tracks.timeline
    windows = camera_path(timeline.t, timeline.shot_ids(), timeline.analysed, focus, frame_size=frame_size,
                          crop_size=size, mode=fmt.mode)
    return CropPath(t=timeline.t, windows=windows, cut=timeline.shot_start | focus.cut)


def plan(event: TracksReady, ctx: StageContext) -> list[CropPlanned]:
    tracks = FrameData.from_avro(ctx.storage.get_bytes(event.tracks_uri))
    media = event.media
    planned = []
    for index, fmt in enumerate(event.job.formats):
        size = crop_size(media.display_width, media.display_height, fmt.aspect_ratio)
        path = plan_path(tracks, media, fmt)
        uri = ctx.storage.put_bytes(f"jobs/{event.job_id}/plan-{index}.avro", path.to_avro())
        planned.append(CropPlanned(job=event.job, media=media, source_uri=event.source_uri, format_index=index,
                                   plan_uri=uri, crop_width=size[0], crop_height=size[1]))
        ctx.progress((index + 1) / len(event.job.formats))
    return planned
