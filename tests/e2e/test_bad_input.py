"""``smartcrop run`` against wrong jobs and broken files, as a new user or an attacker would try it.

A wrong job is one line on stderr that names the field, exit code 2, and no traceback unless ``--debug``. A broken
file is either cropped correctly or fails with ``source_unreadable``/``invalid_job`` and one clear line; never a
traceback and never a hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from smartcrop.cli import main
from smartcrop.media.decode import DecodedFrame, decode_video
from smartcrop.media.probe import probe
from tests.clips import make_clip

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smartcrop", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def fmt(**fields):
    return {"query": {"source": "/videos/in.mp4", "format": [{"output": "mp4", **fields}]}}


BAD_JOBS = [
    ({"query": {}}, "source: required: a URL (http(s)://, s3://, file://) or a path to the input video"),
    ({"query": {"source": ""}}, "source: required: a URL (http(s)://, s3://, file://) or a path to the input video"),
    ({"query": {"source": "gopher://h/x.mp4"}},
     "source: unsupported scheme 'gopher'; expected http(s)://, s3://, file:// or a path"),
    ({"query": {"source": "http://h:123456/x.mp4"}},
     "source: malformed URL (Port out of range 0-65535): 'http://h:123456/x.mp4'"),
    (fmt(aspect_ratio="9/16"), "format[0].aspect_ratio: expected \"W:H\" with positive integers (e.g. \"9:16\"), "
                               "got '9/16'"),
    (fmt(aspect_ratio="0:1"), "format[0].aspect_ratio: expected \"W:H\" with positive integers (e.g. \"9:16\"), "
                              "got '0:1'"),
    (fmt(smart_crop_mode="fast"),
     "format[0].smart_crop_mode: unknown value 'fast'; expected one of stable, balanced, responsive"),
    (fmt(smart_crop_method="faces"), "format[0].smart_crop_method: unknown value 'faces'; expected one of adaptive, "
                                     "single_object, talking_person, max_weight, max_movement, gravity"),
    (fmt(output="webm"), "format[0].output: unknown output 'webm'; expected one of mp4, advanced_hls, advanced_dash"),
    (fmt(width=0), "format[0].width: expected an integer number of pixels between 16 and 8192, got 0"),
    (fmt(height="tall"), "format[0].height: expected an integer number of pixels between 16 and 8192, got 'tall'"),
    (fmt(size="1080*1920"), "format[0].size: expected \"WIDTHxHEIGHT\" (e.g. \"1080x1920\"), got '1080*1920'"),
    (fmt(destination={"url": "ftp://h/out.mp4"}),
     "format[0].destination.url: unsupported scheme 'ftp'; expected s3:// or a local path"),
    (fmt(destination={"url": "s3://h/my-/out.mp4"}),
     "format[0].destination.url: bucket 'my-' is not a valid S3 bucket name (3-63 letters, digits, '.', '-' or '_', "
     "starting and ending with a letter or digit)"),
    (fmt(destination={"url": "s3://h/bucket/out.mp4", "secret": "x"}), "format[0].destination: give both key and "
                                                                       "secret, or neither"),
    ({"query": {"source": "/v.mp4", "format": [{"output": "mp4"}] * 11}},
     "format: 11 output formats; a job may have at most 10 (SMARTCROP_MAX_FORMATS)"),
    ({"query": {"source": "/v.mp4", "job_id": "../../etc/cron.d/x"}},
     "job_id: expected 1-128 letters, digits, '.', '_' or '-' (no '..'), got '../../etc/cron.d/x'"),
    ("[1, 2", "job: not valid JSON (Expecting ',' delimiter at line 1 column 6)"),
]


@pytest.mark.parametrize("document, line", BAD_JOBS, ids=[line.split(":")[0] for _, line in BAD_JOBS])
def test_a_bad_job_is_one_line_naming_the_field(tmp_path, document, line):
    job = tmp_path / "job.json"
    job.write_text(document if isinstance(document, str) else json.dumps(document))
    result = run_cli("run", "--job", str(job), "-o", str(tmp_path / "out.mp4"))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [f"error: {line}"]


def test_debug_shows_the_traceback(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps(fmt(aspect_ratio="tall")))
    result = run_cli("--debug", "run", "--job", str(job), "-o", str(tmp_path / "out.mp4"))
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert "smartcrop.core.job.JobError: format[0].aspect_ratio:" in result.stderr


def test_limits_come_from_the_environment(tmp_path):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"query": {"source": "/v.mp4", "format": [{"output": "mp4"}] * 3}}))
    result = run_cli("run", "--job", str(job), "-o", str(tmp_path / "o"), env={"SMARTCROP_MAX_FORMATS": "2"})
    assert result.stderr.splitlines() == ["error: format: 3 output formats; a job may have at most 2 "
                                          "(SMARTCROP_MAX_FORMATS)"]
    result = run_cli("run", "--job", str(job), "-o", str(tmp_path / "o"), env={"SMARTCROP_MAX_RESOLUTION": "big"})
    assert result.stderr.splitlines() == ["error: SMARTCROP_MAX_RESOLUTION: expected WIDTHxHEIGHT, e.g. 7680x4320, "
                                          "got 'big'"]


def test_an_http_source_on_loopback_is_refused_by_default(tmp_path):
    result = run_cli("run", "http://127.0.0.1:9/clip.mp4", "-o", str(tmp_path / "out.mp4"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: source: 127.0.0.1 is a loopback address, which jobs may not reach; allow it with "
        "SMARTCROP_ALLOWED_NETWORKS"]


# ---------------------------------------------------------------------------------------------------------------------
# broken and odd media


def make_audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(20):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def damaged(path: Path, out: Path, *, keep: float = 1.0, noise_at: float | None = None) -> Path:
    data = bytearray(path.read_bytes())
    if noise_at is not None:
        start = int(len(data) * noise_at)
        data[start:start + 3000] = np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data[: int(len(data) * keep)]))
    return out


VFR_TIMES = [0.0, 0.05, 0.3, 0.35, 0.4, 1.0, 1.02, 1.04, 1.5, 1.6] + [1.7 + 0.1 * i for i in range(10)]


def broken(kind: str, tmp: Path) -> Path:
    clip = tmp / "clip.mp4"
    if kind == "empty":
        clip.write_bytes(b"")
    elif kind == "text":
        clip.write_text("ffmpeg -i in.mp4 out.mp4\n" * 20)
    elif kind == "audio-only":
        return make_audio_only(tmp / "clip.m4a")
    elif kind == "truncated, index at the end":
        return damaged(make_clip(tmp / "whole.mp4", faststart=False), clip, keep=0.5)
    elif kind == "truncated, index first":
        return damaged(make_clip(tmp / "whole.mp4"), clip, keep=0.5)
    elif kind == "corrupted mid-stream":
        return damaged(make_clip(tmp / "whole.mp4"), clip, noise_at=0.5)
    elif kind == "one frame":
        make_clip(clip, frames=1)
    elif kind == "odd size 321x241":
        return make_clip(tmp / "clip.mkv", width=321, height=241, codec="ffv1")
    elif kind == "huge 8200x64":
        make_clip(clip, width=8200, height=64, frames=2)
    elif kind == "variable frame rate":
        make_clip(clip, frames=len(VFR_TIMES), times=VFR_TIMES)
    return clip


# kind -> (exit code, the one stderr line or None, output (width, height, frames) or None)
MEDIA = {
    "empty": (1, "error: [source_unreadable] not a readable media file: Invalid data found when processing input",
              None),
    "text": (1, "error: [source_unreadable] not a readable media file: Invalid data found when processing input",
             None),
    "audio-only": (1, "error: [source_unreadable] no video stream in the source", None),
    "truncated, index at the end": (
        1, "error: [source_unreadable] not a readable media file: Invalid data found when processing input", None),
    "truncated, index first": (0, None, (240, 240, "decodable")),  # the frames before the cut
    "corrupted mid-stream": (0, None, (240, 240, "decodable")),  # the damaged frames are dropped, the rest kept
    "one frame": (0, None, (240, 240, 1)),
    "odd size 321x241": (0, None, (240, 240, 30)),
    "huge 8200x64": (1, "error: [invalid_job] source: the video is 8200x64; the limit is 7680x4320 in either "
                        "orientation (SMARTCROP_MAX_RESOLUTION)", None),
    "variable frame rate": (0, None, (240, 240, len(VFR_TIMES))),
}


@pytest.mark.parametrize("kind", list(MEDIA))
def test_broken_and_odd_media(kind, tmp_path, detector_model, monkeypatch, capsys):
    monkeypatch.setenv("SMARTCROP_ANALYSIS_FPS", "2")
    source, out = broken(kind, tmp_path), tmp_path / "out.mp4"
    code, line, geometry = MEDIA[kind]
    assert main(["run", str(source), "-o", str(out), "--aspect-ratio", "1:1", "--quiet"]) == code
    stderr = capsys.readouterr().err
    if line is not None:
        assert stderr.splitlines() == [line]
        assert not out.exists()
        return
    assert stderr == ""
    result = probe(out)
    with av.open(str(out)) as container:
        times = [float(frame.time) for frame in container.decode(video=0)]
    if geometry[2] == "decodable":
        decodable = sum(isinstance(item, DecodedFrame) for item in decode_video(source))
        assert 0 < decodable < 30
        geometry = (*geometry[:2], decodable)
    assert (result.display_width, result.display_height, len(times)) == geometry
    if kind == "variable frame rate":
        assert max(abs(a - b) for a, b in zip(times, VFR_TIMES)) < 0.002


def test_the_duration_limit_fails_the_job_before_any_analysis(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SMARTCROP_MAX_DURATION", "1")
    monkeypatch.setenv("SMARTCROP_DETECTOR_MODEL", str(tmp_path / "not-loaded.onnx"))  # never reached
    source = make_clip(tmp_path / "clip.mp4", frames=30)  # 2 s
    assert main(["run", str(source), "-o", str(tmp_path / "out.mp4"), "--quiet"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: [invalid_job] source: the video lasts 2 s; the limit is 1 s (SMARTCROP_MAX_DURATION)"]


def test_the_plan_json_carries_no_destination_secret(tmp_path, detector_model, monkeypatch):
    monkeypatch.setenv("SMARTCROP_ANALYSIS_FPS", "2")
    source = make_clip(tmp_path / "clip.mp4", frames=15)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"query": {"source": str(source), "format": [
        {"output": "mp4",
         "destination": {"url": str(tmp_path / "out.mp4"), "key": "AK", "secret": "PLAN-SECRET-9"}}]}}))
    assert main(["run", "--job", str(job), "--plan-json", str(tmp_path / "plan.json"), "--quiet"]) == 0
    plan = (tmp_path / "plan.json").read_text()
    assert len(json.loads(plan)["frames"]) == 15 and "PLAN-SECRET-9" not in plan
