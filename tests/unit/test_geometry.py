"""Display geometry: rotation, non-square pixels and output sizes, on synthetic frames with known pixels."""

import av
import numpy as np
import pytest

from smartcrop.core.job import parse_job
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.media.decode import DisplayScaler
from smartcrop.media.render import PlaneCropper, output_size, renditions


def media(width, height, rotation=0, sar=1.0):
    upright = (width, height) if rotation in (0, 180) else (height, width)
    sx, sy = (sar, 1.0) if rotation in (0, 180) else (1.0, sar)
    return MediaInfo(width=width, height=height, display_width=round(upright[0] * sx),
                     display_height=round(upright[1] * sy), rotation=rotation, sample_aspect=sar, fps=25.0,
                     duration=1.0, frame_count=25, video_codec="h264", has_audio=False)


def frame_with_luma(luma: np.ndarray) -> av.VideoFrame:
    height, width = luma.shape
    chroma = np.full(height * width // 2, 128, np.uint8)
    return av.VideoFrame.from_ndarray(np.concatenate([luma.reshape(-1), chroma]).reshape(height * 3 // 2, width),
                                      format="yuv420p")


def luma_of(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray()[: frame.height]


def coordinates(width, height):
    """Luma that encodes position: value = 2*row + column//8 (distinct along both axes, fits a byte)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return (2 * rows + cols // 8).astype(np.uint8)


def test_crop_cuts_exactly_the_window():
    luma = coordinates(128, 64)
    out = PlaneCropper(media(128, 64))(frame_with_luma(luma), 32, 16, 40, 32)
    assert (out.width, out.height) == (40, 32)
    assert np.array_equal(luma_of(out), luma[16:48, 32:72])


def test_window_is_clamped_inside_the_frame():
    luma = coordinates(128, 64)
    out = PlaneCropper(media(128, 64))(frame_with_luma(luma), 120, -10, 40, 32)
    assert np.array_equal(luma_of(out), luma[0:32, 88:128])


def test_rotated_source_is_cropped_in_display_coordinates():
    stored = coordinates(128, 64)  # stored landscape, shown as portrait 64x128 (turned 90 degrees clockwise)
    upright = np.rot90(stored, k=-1)
    out = PlaneCropper(media(128, 64, rotation=90))(frame_with_luma(stored), 8, 20, 32, 48)
    assert (out.width, out.height) == (32, 48)
    assert np.array_equal(luma_of(out), upright[20:68, 8:40])


def test_non_square_pixels_map_display_x_to_stored_columns():
    stored = coordinates(128, 64)  # SAR 2:1: each stored pixel is two display pixels wide
    info = media(128, 64, sar=2.0)
    assert (info.display_width, info.display_height) == (256, 64)
    out = PlaneCropper(info)(frame_with_luma(stored), 64, 0, 64, 64)
    assert (out.width, out.height) == (32, 64)  # still stored pixels; the encoder's resize squares them
    assert np.array_equal(luma_of(out), stored[:, 32:64])


@pytest.mark.parametrize("rotation", [0, 90])
def test_a_scaler_kept_for_a_clip_gives_each_frame_its_own_picture(rotation):
    """One swscale context serves every frame: each output is what a fresh reformat of that frame gives, upright."""
    info = media(128, 64, rotation=rotation)
    scaler = DisplayScaler(info, (info.display_width // 4, info.display_height // 4), "gray")
    for shift in (0, 40, 80):
        stored = np.roll(coordinates(128, 64), shift, axis=1)
        fresh = frame_with_luma(stored).reformat(width=32, height=16, format="gray").to_ndarray()
        expected = np.rot90(fresh, k=-rotation // 90)
        assert np.array_equal(scaler(frame_with_luma(stored)), expected)
        assert scaler(frame_with_luma(stored)).shape == (info.display_height // 4, info.display_width // 4)


def fmt(**fields):
    return parse_job({"query": {"source": "/v.mp4", "format": [{"output": "mp4", **fields}]}}).formats[0]


@pytest.mark.parametrize("fields, crop, expected", [
    ({}, (606, 1080), (606, 1080)),
    ({"width": 720}, (606, 1080), (720, 1284)),
    ({"height": 1920}, (606, 1080), (1078, 1920)),
    ({"size": "1080x1920"}, (606, 1080), (1080, 1920)),
    ({}, (405.3, 720.0), (406, 720)),
])
def test_output_size_is_even_and_keeps_the_ratio(fields, crop, expected):
    assert output_size(fmt(**fields), *crop) == expected


def test_streaming_formats_get_a_ladder():
    ladder = renditions(fmt(output="advanced_hls"), 608, 1080)
    assert [(r.width, r.height) for r in ladder] == [(608, 1080), (406, 720), (202, 360)]
    custom = renditions(fmt(output="advanced_dash", stream=[{"height": 1280, "bitrate": 3000}, {"width": 360}]),
                        608, 1080)
    assert [(r.width, r.height, r.bitrate_kbps) for r in custom] == [(720, 1280, 3000), (360, 640, None)]
    assert len(renditions(fmt(), 608, 1080)) == 1
