"""Detector stage: fetch the source once, probe it, check the job against it, analyse every frame."""

from __future__ import annotations

from smartcrop.admission import admit, admit_media
from smartcrop.detector.analysis import FacePolicy, analyse, face_policy_for
from smartcrop.detector.models import load_detector
from smartcrop.events import DetectionsReady, JobRequested
from smartcrop.media.probe import probe
from smartcrop.runtime.transfer import ingest_source
from smartcrop.stage import StageContext


class Lazy:
    """A model callable that loads on its first call (loaders are cached per process, so this is cheap later)."""

    def __init__(self, load):
        self.load = load
        self.loaded = None
        self.baseline = 0.0

    def __call__(self, *args):
        if self.loaded is None:
            self.loaded = self.load()
            self.baseline = getattr(self.loaded, "inference_seconds", 0.0)
        return self.loaded(*args)


def detect(event: JobRequested, ctx: StageContext) -> list[DetectionsReady]:
    job = event.job
    settings = ctx.settings
    admit(job, settings)  # the first stage is the edge for jobs produced straight onto Kafka
    source_uri = ingest_source(job.source, ctx.storage, job.job_id, settings)
    with ctx.storage.local_copy(source_uri) as path:
        media = probe(path)  # a bad source or an impossible ratio fails here, before any model loads
        admit_media(job, media, settings)
        # the models load on the inference thread, on first use, while decoding has already begun
        detector = Lazy(lambda: load_detector(settings.detector_model, settings.device))
        policy = face_policy_for(fmt.method for fmt in job.formats if fmt.smart_crop)
        faces = voice = None
        if policy is not FacePolicy.NONE:
            from smartcrop.detector.faces import load_face_analyzer
            from smartcrop.media.voice import voice_activity

            faces = Lazy(lambda: load_face_analyzer(settings.face_model, settings.landmark_model))
            voice = voice_activity
        data = analyse(path, media, detector, analysis_fps=settings.analysis_fps, batch_size=settings.detector_batch,
                       faces=faces, face_policy=policy, voice=voice, progress=ctx.progress,
                       check_cancelled=ctx.check_cancelled, count_frames=ctx.count_frames)
    if detector.loaded is not None:
        ctx.count_inference(detector.loaded.inference_seconds - detector.baseline)
    uri = ctx.storage.put_bytes(f"jobs/{job.job_id}/detections.avro", data.to_avro())
    return [DetectionsReady(job=job, media=media, source_uri=source_uri, detections_uri=uri,
                            analysis_fps=settings.analysis_fps)]
