"""Files that FFmpeg can read but that are not videos: text, image sequences, playlists that point elsewhere.

FFmpeg has a demuxer for almost anything: ``tty`` turns a text file into a video of its characters, ``image2``
expands ``%03d`` in a file name into a sequence of pictures, ``hls`` follows whatever URLs a playlist lists. Each of
these must fail ``source_unreadable`` with the format FFmpeg detected, both through ``smartcrop run`` and through the
detector stage a service runs, and before any model loads. Every real clip still opens.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

from smartcrop.cli import main
from smartcrop.core.errors import classify
from smartcrop.core.events import JobRequested
from smartcrop.core.job import job_from_options
from smartcrop.core.ports import StageContext
from smartcrop.detector.stage import detect
from smartcrop.media.probe import probe
from smartcrop.runtime.config import Settings
from smartcrop.runtime.edge import DeploymentEdge
from smartcrop.runtime.storage import LocalStorage
from tests.conftest import SHARED

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

ANSI_ART = "\x1b[2J\x1b[1;31m" + "\n".join("\x1b[4%dm  SMARTCROP  \x1b[0m  %03d" % (i % 8, i) for i in range(200))


def text_file(tmp: Path) -> Path:
    path = tmp / "notes.txt"
    path.write_text("Meeting notes\n" + "".join(f"{i:03d}. the crop follows the speaker\n" for i in range(300)))
    return path


def ansi_file(tmp: Path) -> Path:
    path = tmp / "banner.ans"
    path.write_text(ANSI_ART)
    return path


def image_pattern(tmp: Path) -> Path:
    """Real PNG frames and a source named by the pattern that covers them (a PNG itself, so the name exists)."""
    for i in range(12):
        image = np.zeros((120, 160, 3), np.uint8)
        image[40:80, i * 10:i * 10 + 40] = (220, 90, 30)
        av.VideoFrame.from_ndarray(image, format="rgb24").to_image().save(tmp / f"frame{i:03d}.png")
    pattern = tmp / "frame%03d.png"
    shutil.copy(tmp / "frame000.png", pattern)
    return pattern


def hls_playlist(tmp: Path) -> Path:
    path = tmp / "stream.m3u8"
    path.write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
                    "#EXTINF:10.0,\nfile:///etc/passwd\n#EXTINF:10.0,\n/etc/hostname\n#EXT-X-ENDLIST\n")
    return path


HOSTILE = {"text file": (text_file, "tty"), "ANSI art": (ansi_file, "tty"),
           "image-sequence pattern": (image_pattern, "image2"), "HLS playlist of local files": (hls_playlist, "hls")}


def expected_message(detected: str) -> str:
    return (f"FFmpeg reads the source as {detected!r}, which is not a video container; expected one of mp4/mov, "
            f"matroska/webm, avi, mpeg-ts, mpeg-ps, flv, mxf, ogg, asf/wmv")


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_smartcrop_run_refuses_what_is_not_a_video(kind, tmp_path, monkeypatch, capsys):
    make, detected = HOSTILE[kind]
    monkeypatch.setenv("SMARTCROP_DETECTOR_MODEL", str(tmp_path / "never-loaded.onnx"))
    out = tmp_path / "out" / "crop.mp4"
    assert main(["run", str(make(tmp_path)), "-o", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err.splitlines() == [f"error: [source_unreadable] {expected_message(detected)}"]
    assert not out.parent.exists()


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_the_detector_stage_refuses_what_is_not_a_video(kind, tmp_path, monkeypatch):
    make, detected = HOSTILE[kind]
    source = make(tmp_path)
    settings = replace(Settings.from_env(), embedded=False, file_source_roots=(str(tmp_path),),
                       detector_model=str(tmp_path / "never-loaded.onnx"))
    job = job_from_options(str(source), job_id="hostile-media")  # as a service gets it: no destination
    storage = LocalStorage(tmp_path / "store")
    ctx = StageContext(settings=settings, storage=storage, edge=DeploymentEdge(settings, storage))
    with pytest.raises(Exception) as raised:
        detect(JobRequested(job=job), ctx)
    failure = classify(raised.value)
    assert (failure.code, failure.message) == ("source_unreadable", expected_message(detected))
    assert not list((tmp_path / "store").rglob("detections.avro"))


def test_every_real_clip_still_opens():
    clips = sorted(p for folder in ("media", "speakers") for p in (SHARED / folder).glob("*")
                   if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv", ".webm"))
    assert len(clips) >= 13, f"expected the shared clips under {SHARED}"
    codecs = {p.name: probe(p).video_codec for p in clips}
    assert codecs["C_pedestrians_vtest_opencvdoc.avi"] == "msmpeg4"  # avi with msmpeg4v3 opens


@pytest.mark.parametrize("suffix, codec", [(".mkv", "libx264"), (".webm", "libvpx-vp9"), (".ts", "libx264"),
                                           (".mov", "libx264"), (".flv", "flv"), (".ogv", "libvpx"),
                                           (".wmv", "wmv2"),
                                           (".mpg", "mpeg2video")])
def test_other_real_containers_open(tmp_path, suffix, codec):
    path = tmp_path / f"clip{suffix}"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 20, np.uint8), format="rgb24")
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    assert (probe(path).width, probe(path).height) == (160, 120)
