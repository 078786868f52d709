"""``smartcrop run`` on real clips: what a new user does first."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from smartcrop.cli import main
from smartcrop.media.probe import probe

from ..conftest import shared_media

pytestmark = pytest.mark.e2e


def test_cli_crops_a_talking_head_to_9_16_with_audio_and_a_plan(tmp_path, detector_model):
    clip = shared_media("A_man_talking_restaurant_720p_visualvoice.mp4")
    out, plan = tmp_path / "out.mp4", tmp_path / "plan.json"
    result = subprocess.run([sys.executable, "-m", "smartcrop", "run", str(clip), "-o", str(out), "--plan-json",
                             str(plan), "--mode", "balanced"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == out.resolve().as_uri()
    source, cropped = probe(clip), probe(out)
    assert (cropped.display_width, cropped.display_height) == (404, 720)
    assert abs(cropped.duration - source.duration) <= 2 / source.fps
    assert cropped.has_audio and cropped.frame_count == source.frame_count
    document = json.loads(plan.read_text())
    assert (document["width"], document["height"], document["fps"]) == (1280, 720, 25.0)
    frames = document["frames"]
    assert len(frames) == source.frame_count
    assert set(frames[0]) == {"t", "x", "y", "w", "h"}
    assert all(0 <= f["x"] <= 1280 - f["w"] and f["y"] == 0 and (f["w"], f["h"]) == (404, 720) for f in frames)
    assert [f["t"] for f in frames] == sorted(f["t"] for f in frames)


def test_rotation_metadata_is_honoured(tmp_path, detector_model):
    clip = shared_media("EDGE_rotate-90_goldeneye_audio_pyscenedetect.mp4")  # stored 1280x544, shown 544x1280
    out = tmp_path / "out.mp4"
    assert main(["run", str(clip), "-o", str(out), "--aspect-ratio", "9:16", "--quiet"]) == 0
    cropped = probe(out)
    assert (cropped.display_width, cropped.display_height, cropped.rotation) == (544, 966, 0)
    assert cropped.has_audio


def test_non_square_pixels_and_corrupted_frames(tmp_path, detector_model):
    clip = shared_media("B_arm_wrestling_two_people_mmaction2.mp4")  # 340x256 stored, SAR 64:51, broken tail
    out = tmp_path / "out.mp4"
    assert main(["run", str(clip), "-o", str(out), "--aspect-ratio", "1:1", "--quiet"]) == 0
    source, cropped = probe(clip), probe(out)
    assert (cropped.display_width, cropped.display_height, cropped.sample_aspect) == (256, 256, 1.0)
    assert abs(cropped.duration - source.duration) <= 3 / source.fps


@pytest.mark.parametrize("kind, entry", [("hls", "master.m3u8"), ("dash", "manifest.mpd")])
def test_streaming_formats_write_a_playlist_and_segments(tmp_path, detector_model, kind, entry, capsys):
    clip = shared_media("C_pedestrians_toward_camera_1080p_facenet-pytorch.mp4")
    out = tmp_path / kind
    assert main(["run", str(clip), "-o", str(out), "--format", kind, "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == (out / entry).resolve().as_uri()
    files = {p.name for p in out.iterdir()}
    assert entry in files
    segments = [n for n in files if n.endswith((".ts", ".m4s"))]
    assert len(segments) >= 3
    text = (out / entry).read_text()
    assert ("RESOLUTION=606x1080" in text) if kind == "hls" else ('width="606" height="1080"' in text)


def test_a_bad_job_is_one_clear_line_naming_the_field(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"query": {"source": "/x.mp4", "format": [{"output": "mp4", "aspect_ratio": "tall"}]}}))
    result = subprocess.run([sys.executable, "-m", "smartcrop", "run", "--job", str(job), "-o",
                             str(tmp_path / "o.mp4")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: format[0].aspect_ratio: expected \"W:H\" with positive integers (e.g. \"9:16\"), got 'tall'"]


def test_an_unreadable_source_fails_with_a_code(tmp_path, detector_model):
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    result = subprocess.run([sys.executable, "-m", "smartcrop", "run", str(not_video), "-o",
                             str(tmp_path / "o.mp4")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.startswith("error: [source_unreadable]"), result.stderr
    assert "Traceback" not in result.stderr


def test_http_sources_are_downloaded(tmp_path, detector_model, monkeypatch):
    monkeypatch.setenv("SMARTCROP_ALLOWED_NETWORKS", "127.0.0.1/32")  # loopback is blocked by default
    import functools
    import http.server
    import threading

    clip = shared_media("B_C_basketball_two_players_240p_mmaction2.mp4")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{clip.name}"
        out = tmp_path / "out.mp4"
        assert main(["run", url, "-o", str(out), "--aspect-ratio", "4:5", "--quiet"]) == 0
        assert (probe(out).display_width, probe(out).display_height) == (192, 240)
        missing = f"http://127.0.0.1:{server.server_address[1]}/missing.mp4"
        result = subprocess.run([sys.executable, "-m", "smartcrop", "run", missing, "-o", str(tmp_path / "x.mp4")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 1
        assert result.stderr.startswith("error: [source_unreadable] source download failed: HTTP 404")
    finally:
        server.shutdown()


def test_a_missing_model_is_a_loud_failure(tmp_path):
    clip = shared_media("B_C_basketball_two_players_240p_mmaction2.mp4")
    env = {**__import__("os").environ, "SMARTCROP_DETECTOR_MODEL": str(tmp_path / "no-such-model.onnx")}
    result = subprocess.run([sys.executable, "-m", "smartcrop", "run", str(clip), "-o", str(tmp_path / "o.mp4")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: [model_unavailable] detector model not found:"), result.stderr


def test_a_centre_crop_needs_no_model(tmp_path):
    """``--no-smart-crop`` looks at nobody, so it runs where no model file is configured or reachable."""
    clip = shared_media("B_C_basketball_two_players_240p_mmaction2.mp4")
    env = {**__import__("os").environ, "SMARTCROP_DETECTOR_MODEL": str(tmp_path / "no-such-model.onnx"),
           "SMARTCROP_FACE_MODEL": str(tmp_path / "no-face-model.onnx")}
    plan = tmp_path / "plan.json"
    result = subprocess.run([sys.executable, "-m", "smartcrop", "run", str(clip), "-o", str(tmp_path / "o.mp4"),
                             "--no-smart-crop", "--plan-json", str(plan), "--quiet"],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    frames = json.loads(plan.read_text())["frames"]
    media = probe(clip)
    assert {round(f["x"] + f["w"] / 2) for f in frames} == {round(media.display_width / 2)}


def test_the_encoder_runs_x264_frame_threads(tmp_path):
    """Slice threads (PyAV's default) leave a core idle on 2 cores; frame threads render 20-30 % faster at the same
    quality. x264 writes the options it ran with into the stream itself, so the output says which it used."""
    import numpy as np

    from smartcrop.core.job import job_from_options
    from smartcrop.media.render import render

    clip = shared_media("B_C_basketball_two_players_240p_mmaction2.mp4")
    media = probe(clip)
    fmt = job_from_options(str(clip), aspect_ratio="1:1", smart_crop=False).formats[0]
    window = np.array([[0.0, 0.0, media.display_height, media.display_height]])
    (out,) = render(clip, media, window, fmt, tmp_path / "o.mp4")
    options = re.search(rb"x264 - core .*? options: ([^\x00]*)", out.read_bytes())
    assert options, "no x264 options in the output"
    assert b" sliced_threads=0 " in options.group(1), options.group(1)


def make_vfr_clip(source: Path, out: Path) -> list[float]:
    """Re-encode a real clip keeping its timestamps but dropping frames unevenly: variable frame rate."""
    import av

    times = []
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        stream_in = src.streams.video[0]
        stream = dst.add_stream("libx264", rate=stream_in.average_rate)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.time_base = stream_in.time_base
        stream.codec_context.time_base = stream_in.time_base
        for i, frame in enumerate(src.decode(video=0)):
            if i % 5 in (1, 3) or (40 <= i < 60 and i % 2):  # 3 of 5 frames, fewer in one stretch
                continue
            image = frame.reformat(width=640, height=360, format="yuv420p")
            image.pts, image.time_base = frame.pts, frame.time_base
            times.append(float(frame.pts * frame.time_base))
            for packet in stream.encode(image):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return [t - times[0] for t in times]


def test_variable_frame_rate_keeps_its_timestamps(tmp_path, detector_model):
    vfr = tmp_path / "vfr.mp4"
    times = make_vfr_clip(shared_media("A_man_talking_restaurant_720p_visualvoice.mp4"), vfr)
    out, plan = tmp_path / "out.mp4", tmp_path / "plan.json"
    assert main(["run", str(vfr), "-o", str(out), "--plan-json", str(plan), "--quiet"]) == 0
    planned = [frame["t"] for frame in json.loads(plan.read_text())["frames"]]
    assert len(planned) == len(times) and max(abs(a - b) for a, b in zip(planned, times)) < 1e-3
    import av

    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        output_times = sorted(float(f.pts * f.time_base) for f in container.decode(stream))
    assert len(output_times) == len(times)
    assert max(abs(a - b) for a, b in zip(output_times, times)) < 0.002  # the gaps survive the encode
