"""Encoder stage: render one format along its planned path and deliver it; the last format completes the job."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from smartcrop.core.events import CropPlanned, JobState, JobStatus
from smartcrop.core.framedata import CropPath
from smartcrop.core.job import OutputKind
from smartcrop.core.ports import ObjectNotFound, StageContext
from smartcrop.media.render import render


def encode(event: CropPlanned, ctx: StageContext) -> list[JobStatus]:
    job = event.job
    fmt = job.formats[event.format_index]
    windows = CropPath.from_avro(ctx.storage.get_bytes(event.plan_uri)).windows
    is_directory = fmt.output is not OutputKind.MP4
    progress = lambda f: (ctx.check_cancelled(), ctx.progress(0.95 * f))  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="smartcrop-render-") as tmp:
        ready = ctx.ahead.rendered(event.format_index, windows, progress) if ctx.ahead is not None else None
        if ready is not None:  # rendered shot by shot during the analysis, along this very plan
            rendered, entry_points = ready
        else:
            rendered = Path(tmp) / ("output" if is_directory else "output.mp4")
            with ctx.storage.local_copy(event.source_uri) as source:
                entry_points = render(source, event.media, windows, fmt, rendered, progress=progress,
                                      device=ctx.settings.device)
        ctx.count_frames(len(windows))
        secret = ctx.secrets.unseal(fmt.destination.secret) if fmt.destination and fmt.destination.secret else None
        outputs = ctx.edge.deliver(rendered, entry_points, job, event.format_index, secret)
    ctx.storage.put_bytes(f"jobs/{job.job_id}/results/{event.format_index}.json",
                          json.dumps({"outputs": outputs}).encode(), "application/json")
    return [_job_status(event, ctx)]


def _job_status(event: CropPlanned, ctx: StageContext) -> JobStatus:
    """``completed`` with every output once all formats are delivered, else progress."""
    done: list[list[str]] = []
    for index in range(len(event.job.formats)):
        try:
            result = ctx.storage.get_bytes(ctx.storage.uri(f"jobs/{event.job_id}/results/{index}.json"))
        except ObjectNotFound:
            continue
        done.append(json.loads(result)["outputs"])
    total = len(event.job.formats)
    if len(done) < total:
        return JobStatus(job_id=event.job_id, status=JobState.RUNNING, stage="encoder",
                         percent=60.0 + 40.0 * len(done) / total, message=f"{len(done)} of {total} formats encoded")
    return JobStatus(job_id=event.job_id, status=JobState.COMPLETED, stage="encoder", percent=100.0,
                     outputs=tuple(uri for outputs in done for uri in outputs))
