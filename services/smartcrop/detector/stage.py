"""Detector stage: fetch the source once, probe it, check the job against it, analyse every frame."""

from __future__ import annotations

import threading

import numpy as np

from smartcrop.core.events import DetectionsReady, JobRequested
from smartcrop.core.ports import StageContext
from smartcrop.detector.analysis import FacePolicy, analyse, face_policy_for
from smartcrop.detector.models import FrameDetections, load_detector
from smartcrop.media.probe import probe


class Preloaded:
    """A model loading on a background thread from the moment it is asked for, so the probe and the first decode
    run meanwhile; the first call waits for it and raises its load error, if any (loaders are cached per process)."""

    def __init__(self, load):
        self.loaded = None
        self.baseline = 0.0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(load,), name="model-load", daemon=True)
        self._thread.start()

    def _load(self, load):
        try:
            self.loaded = load()
            self.baseline = getattr(self.loaded, "inference_seconds", 0.0)
        except BaseException as exc:  # handed to the caller on first use
            self._error = exc

    def __call__(self, *args):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.loaded(*args)


def no_objects(images: list) -> list[FrameDetections]:
    """The detector of a job without smart crop: its centre crop needs the timeline, not the people in it."""
    return [FrameDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int)) for _ in images]


def detect(event: JobRequested, ctx: StageContext) -> list[DetectionsReady]:
    job = event.job
    settings = ctx.settings
    ctx.edge.admit(job)  # the first stage is the edge for jobs produced straight onto Kafka
    source_uri = ctx.edge.fetch_source(job)
    with ctx.storage.local_copy(source_uri) as path:
        # the models load in the background while the source is probed and decoding begins
        detector = no_objects
        if any(fmt.smart_crop for fmt in job.formats):
            detector = Preloaded(lambda: load_detector(settings.detector_model, settings.device,
                                                       settings.inference_threads))
        policy = face_policy_for(fmt.method for fmt in job.formats if fmt.smart_crop)
        faces = voice = None
        if policy is not FacePolicy.NONE:
            from smartcrop.detector.faces import load_face_analyzer
            from smartcrop.media.voice import voice_activity

            faces = Preloaded(lambda: load_face_analyzer(settings.face_model, settings.landmark_model))
            voice = voice_activity
        media = probe(path)  # a bad source or an impossible ratio fails here, before any model is used
        ctx.edge.admit_media(job, media)
        if ctx.ahead is not None:
            ctx.ahead.begin(job, media, path)
        data = analyse(path, media, detector, analysis_fps=settings.analysis_fps, batch_size=settings.detector_batch,
                       faces=faces, face_policy=policy, voice=voice, progress=ctx.progress,
                       check_cancelled=ctx.check_cancelled, count_frames=ctx.count_frames,
                       on_closed=ctx.ahead.closed if ctx.ahead is not None else None)
    if isinstance(detector, Preloaded) and detector.loaded is not None:
        ctx.count_inference(detector.loaded.inference_seconds - detector.baseline)
    uri = ctx.storage.put_bytes(f"jobs/{job.job_id}/detections.avro", data.to_avro())
    return [DetectionsReady(job=job, media=media, source_uri=source_uri, detections_uri=uri,
                            analysis_fps=settings.analysis_fps)]
