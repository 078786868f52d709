"""Tracker stage: detections in, tracks out."""

from __future__ import annotations

from smartcrop.core.events import DetectionsReady, TracksReady
from smartcrop.core.framedata import FrameData
from smartcrop.core.ports import StageContext
from smartcrop.tracker.features import add_features
from smartcrop.tracker.tracking import track_objects


def tracks_of(detections: FrameData, analysis_fps: float) -> FrameData:
    """Tracks with their features, from the detections of a whole clip or of a run of whole shots."""
    return add_features(track_objects(detections, analysis_fps))


def track(event: DetectionsReady, ctx: StageContext) -> list[TracksReady]:
    data = FrameData.from_avro(ctx.storage.get_bytes(event.detections_uri))
    ctx.progress(0.2)
    tracks = tracks_of(data, event.analysis_fps)
    uri = ctx.storage.put_bytes(f"jobs/{event.job_id}/tracks.avro", tracks.to_avro())
    ctx.progress(1.0)
    return [TracksReady(job=event.job, media=event.media, source_uri=event.source_uri, tracks_uri=uri)]
