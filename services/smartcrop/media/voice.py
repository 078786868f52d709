"""Is someone speaking? Voice activity from the source's own audio track, on the video's clock.

The audio is decoded with PyAV, resampled to 16 kHz mono and scored by Silero VAD (the ``silero-vad`` package, whose
wheel bundles the ONNX model; nothing is downloaded). The batched "sequence" export of the model runs a whole clip in
a few ONNX Runtime calls, about 0.1 s of CPU per minute of audio, without importing torch.

Times are seconds since the first *video* frame, exactly as ``media.decode.decode_video`` numbers frames, so audio
that starts before or after the picture (priming, edit lists, AVI offsets) lines up with the frames.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from smartcrop.core.errors import ModelError
from smartcrop.media.probe import open_container

log = logging.getLogger(__name__)

SPEECH = 0.5  # speech probability from which a moment counts as speech
SAMPLE_RATE = 16000
FRAME_SAMPLES = 512  # one VAD decision per 32 ms
CONTEXT_SAMPLES = 64  # the model sees the tail of the previous frame too
BLOCK_FRAMES = 512  # frames per ONNX call (~16 s of audio)
_STATE_SHAPE = (1, 1, 128)
_MODEL_FILE = "silero_vad_16k_sequence.onnx"
_DECODE_ERRORS = (av.error.FFmpegError,)  # corrupt packets are skipped, as decode_video does


@lru_cache(maxsize=1)
def _vad_session():
    """The Silero VAD sequence model shipped inside the ``silero-vad`` wheel, loaded once per process.

    The package is located without importing it: its ``__init__`` imports torch and calls ``torch.set_num_threads(1)``
    for the whole process, which would slow the object detector down.
    """
    import onnxruntime as ort

    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("voice activity needs the silero-vad package (pip install 'silero-vad>=6.2,<7')")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / _MODEL_FILE
    if not path.is_file():
        raise ModelError(f"the installed silero-vad has no {_MODEL_FILE} (expected {path}); install silero-vad>=6.2,<7")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a small recurrent model: one thread is fastest and leaves cores to the rest
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"cannot load the voice activity model {path}: {type(exc).__name__}: {exc}") from exc
    inputs = {i.name for i in session.get_inputs()}
    if inputs != {"input", "h", "c"}:
        raise ModelError(f"unexpected inputs {sorted(inputs)} in {path}; install silero-vad>=6.2,<7")
    return session


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    """Silero speech probability of each 32 ms frame of 16 kHz mono float samples in [-1, 1]."""
    samples = np.ascontiguousarray(samples, np.float32).reshape(-1)
    count = -(-samples.size // FRAME_SAMPLES)
    if count == 0:
        return np.zeros(0, np.float32)
    frames = np.zeros((count, FRAME_SAMPLES), np.float32)
    frames.reshape(-1)[:samples.size] = samples
    context = np.zeros((count, CONTEXT_SAMPLES), np.float32)
    context[1:] = frames[:-1, -CONTEXT_SAMPLES:]
    model_input = np.concatenate([context, frames], axis=1)
    session = _vad_session()
    hidden = np.zeros(_STATE_SHAPE, np.float32)
    cell = np.zeros(_STATE_SHAPE, np.float32)
    out = []
    for first in range(0, count, BLOCK_FRAMES):
        probs, hidden, cell = session.run(["speech_probs", "hn", "cn"],
                                          {"input": model_input[first:first + BLOCK_FRAMES], "h": hidden, "c": cell})
        out.append(np.asarray(probs, np.float32).reshape(-1))
    return np.clip(np.concatenate(out), 0.0, 1.0)


def _first_video_time(path: str | Path) -> float:
    """Seconds of the first decodable video frame's pts: time zero of ``decode_video``."""
    with open_container(path) as container:
        if not container.streams.video:
            return 0.0
        for packet in container.demux(container.streams.video[0]):
            try:
                frames = packet.decode()
            except _DECODE_ERRORS:
                continue
            for frame in frames:
                return float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
    return 0.0


def decode_audio(path: str | Path) -> tuple[np.ndarray, float] | None:
    """The first audio stream as 16 kHz mono float32 samples and the time (s) of its first sample; None without one."""
    with open_container(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        start: float | None = None
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except _DECODE_ERRORS as exc:
                log.debug("skipping undecodable audio packet: %s", exc)
                continue
            for frame in frames:
                if start is None:
                    start = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
                try:
                    resampled = resampler.resample(frame)
                except ValueError:  # the stream changed layout or rate mid-way: flush and start a new resampler
                    chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
                    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
                    resampled = resampler.resample(frame)
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampled)
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return samples, start or 0.0


def voice_activity(path: str | Path, times: np.ndarray, *, window: float = 0.5) -> np.ndarray | None:
    """(F,) speech probability in [0, 1] around each video time in `times` (seconds from the first video frame),
    or None when the file has no audio stream.

    Each value is the mean Silero probability of the 32 ms audio frames whose centres lie within ``window`` seconds
    centred on the time (at least the nearest frame), i.e. roughly the share of that window that is speech. Times
    outside the audio get 0.
    """
    times = np.asarray(times, np.float64).reshape(-1)
    decoded = decode_audio(path)
    if decoded is None:
        return None
    samples, audio_start = decoded
    if times.size == 0:
        return np.zeros(0, np.float32)
    probs = speech_probabilities(samples)
    if probs.size == 0:
        return np.zeros(times.size, np.float32)
    frame_seconds = FRAME_SAMPLES / SAMPLE_RATE
    # position of each time on the VAD frame axis (frame k is centred on k + 0.5 frames after the audio starts)
    centre = (times + _first_video_time(path) - audio_start) / frame_seconds - 0.5
    half = max(window, 0.0) / 2 / frame_seconds
    first = np.ceil(centre - half - 1e-9).astype(np.int64)
    last = np.floor(centre + half + 1e-9).astype(np.int64)
    nearest = np.rint(centre).astype(np.int64)
    first, last = np.minimum(first, nearest), np.maximum(last, nearest)
    inside = (last >= 0) & (first < probs.size)
    first, last = np.clip(first, 0, probs.size - 1), np.clip(last, 0, probs.size - 1)
    cumulative = np.concatenate([[0.0], np.cumsum(probs, dtype=np.float64)])
    mean = (cumulative[last + 1] - cumulative[first]) / (last - first + 1)
    return np.where(inside, mean, 0.0).astype(np.float32)
