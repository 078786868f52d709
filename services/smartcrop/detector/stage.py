"""Detector stage: fetch the source once, probe it, check the job against it, analyse every frame."""

from __future__ import annotations

from smartcrop.detector.analysis import analyse
from smartcrop.detector.models import load_detector
from smartcrop.events import DetectionsReady, JobRequested
from smartcrop.job import check_against_source
from smartcrop.media.probe import probe
from smartcrop.runtime.transfer import ingest_source
from smartcrop.stage import StageContext


def detect(event: JobRequested, ctx: StageContext) -> list[DetectionsReady]:
    job = event.job
    detector = load_detector(ctx.settings.detector_model, ctx.settings.device)
    source_uri = ingest_source(job.source, ctx.storage, job.job_id, ctx.settings)
    with ctx.storage.local_copy(source_uri) as path:
        media = probe(path)
        for index, fmt in enumerate(job.formats):
            check_against_source(fmt, media.display_width, media.display_height, f"format[{index}]")
        data = analyse(path, media, detector, analysis_fps=ctx.settings.analysis_fps,
                       batch_size=ctx.settings.detector_batch, progress=ctx.progress,
                       check_cancelled=ctx.check_cancelled)
    uri = ctx.storage.put_bytes(f"jobs/{job.job_id}/detections.avro", data.to_avro())
    return [DetectionsReady(job=job, media=media, source_uri=source_uri, detections_uri=uri,
                            analysis_fps=ctx.settings.analysis_fps)]
