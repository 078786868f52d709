"""What a video is, in display terms: rotation and non-square pixels resolved, duration from timestamps."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from fractions import Fraction
from pathlib import Path

import av

from smartcrop.core.errors import ErrorCode, SmartcropError
from smartcrop.core.mediainfo import MediaInfo

CONTAINERS = {"mov": "mp4/mov", "matroska": "matroska/webm", "avi": "avi", "mpegts": "mpeg-ts", "mpeg": "mpeg-ps",
              "flv": "flv", "mxf": "mxf", "ogg": "ogg", "asf": "asf/wmv"}
"""FFmpeg demuxers that are video containers. Every other demuxer stays closed: ``tty`` renders text files as video,
``image2`` expands file-name patterns, ``concat``, ``hls`` and ``dash`` open the files and URLs a list names. Sources
are always local files by the time they are opened (http(s) and s3 sources are downloaded first), so a manifest could
only point at this machine's own files: streaming manifests are not sources."""

OPEN_OPTIONS = {"format_whitelist": ",".join(CONTAINERS), "protocol_whitelist": "file"}
"""FFmpeg enforces both lists itself on every open, including any file a demuxer opens on its own."""


class MediaError(SmartcropError, ValueError):
    """The source cannot be used as video (not media, no video stream, no decodable frame)."""

    code = ErrorCode.SOURCE_UNREADABLE


def open_container(path: str | Path, hwaccel=None) -> av.container.InputContainer:
    """The source opened with a video container demuxer and the file protocol only; anything else is a MediaError.
    ``hwaccel`` (an ``av.codec.hwaccel.HWAccel``) decodes its video on that device."""
    device = {"hwaccel": hwaccel} if hwaccel is not None else {}
    try:
        return av.open(str(path), metadata_errors="ignore", options=dict(OPEN_OPTIONS), **device)
    except av.error.ArgumentError:  # what FFmpeg answers when the probed demuxer is not on the whitelist
        detected = detect_format(path)
        if detected is not None and not _is_container(detected):
            raise MediaError(f"FFmpeg reads the source as {detected!r}, which is not a video container; expected "
                             f"one of {', '.join(CONTAINERS.values())}") from None
        raise MediaError("not a readable media file: FFmpeg refused to open it") from None
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"not a readable media file: {getattr(exc, 'strerror', None) or exc}") from None


def _is_container(name: str) -> bool:
    return any(part in CONTAINERS for part in name.split(","))


class _ProbeData(ctypes.Structure):
    _fields_ = [("filename", ctypes.c_char_p), ("buf", ctypes.c_char_p), ("buf_size", ctypes.c_int),
                ("mime_type", ctypes.c_char_p)]


@functools.cache
def _probe_function():
    """libavformat's ``av_probe_input_format2`` from the library PyAV itself loaded (PyAV does not expose it)."""
    candidates = sorted((Path(av.__file__).parent.parent / "av.libs").glob("libavformat*.so*"))
    name = str(candidates[0]) if candidates else ctypes.util.find_library("avformat")
    if name is None:
        return None
    function = ctypes.CDLL(name).av_probe_input_format2
    function.argtypes = [ctypes.POINTER(_ProbeData), ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    function.restype = ctypes.POINTER(ctypes.c_char_p)  # AVInputFormat*, whose first member is its name
    return function


PROBE_BYTES = 1 << 20
PROBE_PADDING = 64  # AVPROBE_PADDING_SIZE zero bytes after the data


def detect_format(path: str | Path) -> str | None:
    """The demuxer FFmpeg picks for ``path``, found as ``avformat_open_input`` does (the name first, then the bytes),
    without opening it: only to name a refused format in the error message."""
    try:
        function = _probe_function()
    except (OSError, AttributeError):
        return None
    if function is None:
        return None
    filename = str(path).encode()
    try:
        with open(path, "rb") as file:
            head = file.read(PROBE_BYTES)
    except OSError:
        head = None
    for data, is_opened in ((b"", 0), (head, 1)):
        if data is None:
            continue
        buffer = ctypes.create_string_buffer(data + bytes(PROBE_PADDING), len(data) + PROBE_PADDING)
        probe_data = _ProbeData(filename, ctypes.cast(buffer, ctypes.c_char_p), len(data), None)
        score = ctypes.c_int(0)
        found = function(ctypes.byref(probe_data), is_opened, ctypes.byref(score))
        if found:
            return found[0].decode()
    return None


def clockwise_rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees a player turns this frame (FFmpeg's autorotate), from its display matrix.

    ``frame.rotation`` is the matrix's counter-clockwise angle, so a "-90" file is shown turned 90 degrees clockwise.
    """
    try:
        theta = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(-theta / 90.0)) % 4 * 90


def first_frame(container: av.container.InputContainer) -> av.VideoFrame:
    try:
        for frame in container.decode(video=0):
            return frame
    except av.error.FFmpegError as exc:
        raise MediaError(f"video cannot be decoded: {exc}") from None
    raise MediaError("video stream has no decodable frame")


def probe(path: str | Path) -> MediaInfo:
    with open_container(path) as container:
        if not container.streams.video:
            raise MediaError("no video stream in the source")
        video = container.streams.video[0]
        ctx = video.codec_context
        if ctx is None:
            raise MediaError("the video stream's codec is unknown")
        width, height = ctx.width, ctx.height
        if not width or not height:
            raise MediaError("video stream has no frame size")
        sar = video.sample_aspect_ratio or ctx.sample_aspect_ratio or Fraction(1)
        sample_aspect = float(sar) if sar and float(sar) > 0 else 1.0
        rotation = clockwise_rotation(first_frame(container))
        upright_w, upright_h = (width, height) if rotation in (0, 180) else (height, width)
        sx = sample_aspect if rotation in (0, 180) else 1.0
        sy = 1.0 if rotation in (0, 180) else sample_aspect
        display_w = int(round(upright_w * sx / 2)) * 2
        display_h = int(round(upright_h * sy / 2)) * 2

        rate = video.average_rate or video.guessed_rate or video.base_rate
        fps = float(rate) if rate else 0.0
        duration = 0.0
        if video.duration is not None and video.time_base is not None:
            duration = float(video.duration * video.time_base)
        if duration <= 0 and container.duration:
            duration = container.duration / av.time_base
        frames = video.frames or (int(round(duration * fps)) if fps and duration else 0)
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(width=width, height=height, display_width=display_w, display_height=display_h,
                         rotation=rotation, sample_aspect=sample_aspect, fps=fps or 25.0, duration=duration,
                         frame_count=int(frames), video_codec=ctx.name, has_audio=audio is not None,
                         audio_codec=audio.codec_context.name if audio is not None else None)
