"""Admission: what a job can be judged by before any work, decided in one place with the field named."""

from __future__ import annotations

from dataclasses import replace

import pytest

from smartcrop.core.job import JobError, Limits, parse_job
from smartcrop.core.mediainfo import MediaInfo
from smartcrop.runtime.admission import admit, admit_media
from smartcrop.runtime.config import Settings

SERVICE = Settings(s3_endpoint="http://127.0.0.1:19000")  # a service's defaults: nothing allow-listed
EMBEDDED = replace(SERVICE, embedded=True)
OWN = "s3://127.0.0.1:19000/smartcrop/in.mp4"


def job(source: str = OWN, count: int = 1, **fmt):
    return parse_job({"query": {"source": source, "format": [{"output": "mp4", **fmt}] * count}})


def refusal(spec, settings) -> tuple[str, str]:
    with pytest.raises(JobError) as caught:
        admit(spec, settings)
    return caught.value.field, caught.value.message


@pytest.mark.parametrize("url", ["/srv/out/crop.mp4", "file:///srv/out/crop.mp4", "relative/crop.mp4"])
def test_the_services_deliver_only_to_s3(url):
    spec = job(destination={"url": url})
    assert refusal(spec, SERVICE) == ("format[0].destination.url", "the services deliver to s3:// destinations "
                                                                   "only; local paths are for smartcrop run")
    admit(spec, EMBEDDED)  # a run on the user's own machine writes the user's own files


def test_the_second_format_is_named():
    spec = parse_job({"query": {"source": OWN, "format": [
        {"output": "mp4", "destination": {"url": "s3://127.0.0.1:19000/out/a.mp4"}},
        {"output": "advanced_hls", "destination": {"url": "file:///tmp/hls"}}]}})
    assert refusal(spec, SERVICE)[0] == "format[1].destination.url"


@pytest.mark.parametrize("source, field, message", [
    ("http://127.0.0.1:9/clip.mp4", "source", "127.0.0.1 is a loopback address, which jobs may not reach; allow it "
                                              "with SMARTCROP_ALLOWED_NETWORKS"),
    ("https://[::1]/clip.mp4", "source", "::1 is a loopback address, which jobs may not reach; allow it with "
                                         "SMARTCROP_ALLOWED_NETWORKS"),
    ("s3://10.0.0.8:9000/media/in.mp4", "source", "10.0.0.8 is a private address, which jobs may not reach; allow "
                                                  "it with SMARTCROP_ALLOWED_NETWORKS"),
    ("/etc/passwd", "source", "local files are not read by the services; use http(s):// or s3://, or set "
                              "SMARTCROP_FILE_SOURCE_ROOTS to the folders they may read"),
])
def test_sources_the_policy_refuses(source, field, message):
    assert refusal(job(source), SERVICE) == (field, message)


def test_an_allow_listed_network_and_the_own_store_are_admitted():
    admit(job("http://127.0.0.1:9/clip.mp4"), replace(SERVICE, allowed_networks=("127.0.0.0/8",)))
    admit(job(OWN, destination={"url": "s3://127.0.0.1:19000/deliveries/out.mp4"}), SERVICE)
    field, message = refusal(job(OWN, destination={"url": "s3://169.254.169.254/bucket/out.mp4"}), SERVICE)
    assert (field, message.split(",")[0]) == ("format[0].destination.url",
                                              "169.254.169.254 is a cloud metadata address")


def test_the_file_roots_decide_local_sources(tmp_path):
    rooted = replace(SERVICE, file_source_roots=(str(tmp_path),))
    admit(job(str(tmp_path / "in.mp4")), rooted)
    assert refusal(job(str(tmp_path.parent / "elsewhere.mp4")), rooted)[1].endswith(
        "is outside the folders the services may read (SMARTCROP_FILE_SOURCE_ROOTS)")


def test_the_limits_are_the_deployments():
    spec = job(count=3)
    admit(spec, SERVICE)
    assert refusal(spec, replace(SERVICE, limits=Limits(max_formats=2))) == (
        "format", "3 output formats; a job may have at most 2 (SMARTCROP_MAX_FORMATS)")


def test_the_media_rules_follow_the_probe():
    media = MediaInfo(width=1280, height=720, display_width=1280, display_height=720, rotation=0, sample_aspect=1.0,
                      fps=25.0, duration=30.0, frame_count=750, video_codec="h264", has_audio=False)
    admit_media(job(aspect_ratio="9:16"), media, SERVICE)
    with pytest.raises(JobError, match=r"^source: the video lasts 30 s; the limit is 10 s"):
        admit_media(job(), media, replace(SERVICE, limits=Limits(max_duration=10)))
    with pytest.raises(JobError, match=r"^format\[0\].aspect_ratio: 1:40 leaves a 18x720 crop"):
        admit_media(job(aspect_ratio="1:40"), media, SERVICE)
