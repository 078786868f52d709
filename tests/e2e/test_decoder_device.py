"""``SMARTCROP_DEVICE=cuda:N`` decodes on the GPU (NVDEC) where it can, and on the CPU, frame for frame alike,
where it cannot: a job never fails for its decoder."""

from __future__ import annotations

import logging

import av
import pytest
from av.codec.hwaccel import hwdevices_available

from smartcrop.core.job import crop_size, job_from_options
from smartcrop.detector.analysis import analyse
from smartcrop.detector.stage import no_objects
from smartcrop.media import decode
from smartcrop.media.decode import DecodedFrame, decode_video, hardware_decoder
from smartcrop.media.probe import probe
from smartcrop.media.render import render

from ..conftest import shared_media

pytestmark = pytest.mark.e2e

CLIP = "C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4"


@pytest.mark.parametrize("device", ["", "cpu", "CPU", "gpu", "cuda-like"])
def test_only_cuda_devices_ask_for_nvdec(device):
    assert hardware_decoder(device) is None


def test_a_cuda_device_asks_for_nvdec_on_that_gpu_with_a_software_fallback():
    assert "cuda" in hwdevices_available(), "PyAV's FFmpeg build lost CUDA: NVDEC decoding would silently stop"
    accel = hardware_decoder("cuda:1")
    assert isinstance(accel, av.codec.hwaccel.HWAccel)
    assert (accel.device_id, accel.allow_software_fallback, accel.is_hw_owned) == (1, True, False)
    assert hardware_decoder("CUDA").device_id == 0  # the default GPU


def test_decoding_for_a_gpu_gives_the_frames_and_times_of_the_cpu_decode(caplog):
    """On a machine without the GPU (as here) the device cannot be opened: the decode warns once and runs on the
    CPU. On one with it, NVDEC's pictures may differ by rounding, never in number or time."""
    clip = shared_media(CLIP)
    cpu = [(item.index, item.t) for item in decode_video(clip) if isinstance(item, DecodedFrame)]
    decode._warn_once.cache_clear()  # the warning comes once per process
    with caplog.at_level(logging.WARNING, logger="smartcrop.media.decode"):
        gpu = [(item.index, item.t, item.frame.width) for item in decode_video(clip, device="cuda:0")
               if isinstance(item, DecodedFrame)]
    assert [(index, t) for index, t, _ in gpu] == cpu and len(cpu) == 105
    assert {width for *_, width in gpu} == {1920}
    opened = _cuda_opens()
    assert opened or any("decoding on the CPU" in record.getMessage() for record in caplog.records)


def _cuda_opens() -> bool:
    try:
        with av.open(str(shared_media(CLIP)), hwaccel=hardware_decoder("cuda:0")):
            return True
    except (OSError, av.error.FFmpegError):
        return False


def test_the_analysis_and_the_render_both_decode_on_the_job_s_device(tmp_path, caplog):
    """Each pass asks for the device it is given: without the GPU each falls back and says so; with it, none does."""
    on_gpu = _cuda_opens()
    clip = shared_media(CLIP)
    media = probe(clip)
    fmt = job_from_options(str(clip), smart_crop=False).formats[0]
    width, height = crop_size(media.display_width, media.display_height, fmt.aspect_ratio)
    passes = {
        "analysis": lambda: analyse(clip, media, no_objects, analysis_fps=5.0, device="cuda:0"),
        "render": lambda: render(clip, media, [[0, 0, width, height]], fmt, tmp_path / "out.mp4", device="cuda:0"),
    }
    for name, run in passes.items():
        decode._warn_once.cache_clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="smartcrop.media.decode"):
            run()
        fell_back = any("decoding on the CPU" in record.getMessage() for record in caplog.records)
        assert fell_back != on_gpu, name
