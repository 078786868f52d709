"""Detector stage: fetch the source once, probe it, check the job against it, analyse every frame."""

from __future__ import annotations

import logging
import threading

import numpy as np

from smartcrop.core.events import DetectionsReady, JobRequested
from smartcrop.core.ports import StageContext
from smartcrop.detector.analysis import DETECTOR_LONG_SIDE, FacePolicy, analyse, face_policy_for
from smartcrop.detector.models import FrameDetections, load_detector
from smartcrop.media.decode import display_size
from smartcrop.media.probe import probe

log = logging.getLogger(__name__)


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
            loaded = load()
            self.baseline = getattr(loaded, "inference_seconds", 0.0)
            self.loaded = loaded
        except BaseException as exc:  # handed to the caller on first use
            self._error = exc

    def __call__(self, *args):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.loaded(*args)

    def prepare(self, *args) -> None:
        """Once loaded, let the model get ready for ``args`` (``ObjectDetector.prepare``: compile for a frame size)
        on a background thread; a failure there is the first call's to raise."""

        def run():
            self._thread.join()
            try:
                getattr(self.loaded, "prepare", lambda *a: None)(*args)
            except Exception:  # noqa: BLE001 - the inference call meets the same error and fails the job with it
                log.debug("preparing the model failed", exc_info=True)

        threading.Thread(target=run, name="model-prepare", daemon=True).start()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def inference_seconds(self) -> float:
        """Seconds the model has spent inferring since it loaded (0 until then); shared by every job in the process,
        so a job counts the difference between its end and its start."""
        loaded = self.loaded
        return loaded.inference_seconds - self.baseline if loaded is not None else 0.0


_loading: dict[tuple, Preloaded] = {}
_loading_lock = threading.Lock()


def preloaded(key: tuple, load) -> Preloaded:
    """The process's one :class:`Preloaded` for ``key``, started by whoever asks first; a failed load is tried
    again by the next caller (a model fetched over the network may be back)."""
    with _loading_lock:
        model = _loading.get(key)
        if model is None or model.failed:
            model = _loading[key] = Preloaded(load)
        return model


def preload(job, settings) -> None:
    """Start loading the models ``job`` will use, before anything else of the run is imported or opened: the
    embedded run calls this first, so the model loads while the other stages import and the source is probed."""
    if not any(fmt.smart_crop for fmt in job.formats):
        return
    _detector(settings)
    if face_policy_for(fmt.method for fmt in job.formats if fmt.smart_crop) is not FacePolicy.NONE:
        _faces(settings)


def _detector(settings) -> Preloaded:
    key = ("detector", settings.detector_model, settings.device, settings.inference_threads)
    return preloaded(key, lambda: load_detector(settings.detector_model, settings.device, settings.inference_threads))


def _faces(settings) -> Preloaded:
    def load():
        from smartcrop.detector.faces import load_face_analyzer

        return load_face_analyzer(settings.face_model, settings.landmark_model)

    return preloaded(("faces", settings.face_model, settings.landmark_model), load)


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
            detector = _detector(settings)
        policy = face_policy_for(fmt.method for fmt in job.formats if fmt.smart_crop)
        faces = voice = None
        if policy is not FacePolicy.NONE:
            from smartcrop.media.voice import voice_activity

            faces = _faces(settings)
            voice = voice_activity
        spent_before = detector.inference_seconds() if isinstance(detector, Preloaded) else 0.0
        media = probe(path)  # a bad source or an impossible ratio fails here, before any model is used
        ctx.edge.admit_media(job, media)
        if isinstance(detector, Preloaded):  # compiled for this frame shape while the decode starts
            width, height = display_size(media, DETECTOR_LONG_SIDE)
            detector.prepare((height, width))
        if ctx.ahead is not None:
            ctx.ahead.begin(job, media, path)
        data = analyse(path, media, detector, analysis_fps=settings.analysis_fps, batch_size=settings.detector_batch,
                       faces=faces, face_policy=policy, voice=voice, progress=ctx.progress,
                       check_cancelled=ctx.check_cancelled, count_frames=ctx.count_frames,
                       on_closed=ctx.ahead.closed if ctx.ahead is not None else None, device=settings.device,
                       hold=ctx.ahead.hold if ctx.ahead is not None else None)
    if isinstance(detector, Preloaded):
        ctx.count_inference(detector.inference_seconds() - spent_before)
    uri = ctx.storage.put_bytes(f"jobs/{job.job_id}/detections.avro", data.to_avro())
    return [DetectionsReady(job=job, media=media, source_uri=source_uri, detections_uri=uri,
                            analysis_fps=settings.analysis_fps)]
