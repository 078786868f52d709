"""A real clip through the four services over real Kafka and MinIO, checked in MinIO afterwards."""

from __future__ import annotations

import json
import uuid

import pytest

from smartcrop.media.probe import probe
from smartcrop.runtime.storage import S3Location, s3_client

from ..conftest import shared_media
from .conftest import submit

pytestmark = pytest.mark.integration

CLIP = "A_man_talking_restaurant_720p_visualvoice.mp4"


def download(settings, uri: str, target):
    location = S3Location.parse(uri)
    client = s3_client(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key)
    client.fget_object(location.bucket, location.key, str(target))
    return target


def test_a_clip_goes_through_all_four_services(services, settings, stack_env, uploaded_clip, tmp_path):
    job = {"query": {"source": uploaded_clip, "format": [
        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1, "smart_crop_mode": "balanced"}]}}
    submitted, final = submit(settings, stack_env, job, tmp_path)
    assert final["status"] == "completed", final
    assert final["exit_code"] == 0 and final["job_id"] == submitted["job_id"] and final["percent"] == 100.0
    (output,) = final["outputs"]
    assert output.startswith(f"s3://127.0.0.1:{settings.s3_endpoint.rsplit(':', 1)[1]}/smartcrop/jobs/")
    result = probe(download(settings, output, tmp_path / "out.mp4"))
    source = probe(shared_media(CLIP))
    assert abs(result.display_width / result.display_height - 9 / 16) < 0.01
    assert result.display_height == source.display_height
    assert abs(result.duration - source.duration) <= 2 / source.fps
    assert result.has_audio and result.audio_codec == "aac"
    for stage in ("detector", "tracker", "planner", "encoder"):
        assert f'smartcrop_messages_total{{outcome="completed",stage="{stage}"}}' in services.metrics(stage)


def test_hls_to_a_destination_bucket_with_credentials(services, settings, stack_env, storage, uploaded_clip,
                                                      tmp_path):
    client = s3_client(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key)
    if not client.bucket_exists("deliveries"):
        client.make_bucket("deliveries")
    host = S3Location.parse(uploaded_clip).endpoint
    prefix = f"hls-{uuid.uuid4().hex[:6]}"
    job = {"query": {"source": uploaded_clip, "format": [
        {"output": "advanced_hls", "aspect_ratio": "1:1", "smart_crop": 1,
         "destination": {"url": f"s3://{host}/deliveries/{prefix}", "key": settings.s3_access_key,
                         "secret": settings.s3_secret_key}}]}}
    _, final = submit(settings, stack_env, job, tmp_path)
    assert final["status"] == "completed", final
    assert final["outputs"] == [f"s3://{host}/deliveries/{prefix}/master.m3u8"]
    names = {o.object_name for o in client.list_objects("deliveries", prefix=prefix + "/", recursive=True)}
    assert f"{prefix}/master.m3u8" in names and any(n.endswith(".ts") for n in names)
    assert settings.s3_secret_key not in json.dumps(final)
    assert settings.s3_secret_key not in services.log("detector") + services.log("encoder")


def test_a_job_that_cannot_succeed_fails_with_a_code_and_the_next_one_completes(services, settings, stack_env,
                                                                                  uploaded_clip, tmp_path):
    missing = uploaded_clip.rsplit("/", 1)[0] + "/no-such-clip.mp4"
    _, failed = submit(settings, stack_env, {"query": {"source": missing, "format": [{"output": "mp4"}]}}, tmp_path)
    assert failed["status"] == "failed" and failed["exit_code"] == 1
    assert failed["error"]["code"] == "source_unreadable", failed
    assert failed["stage"] == "detector"
    _, good = submit(settings, stack_env, {"query": {"source": uploaded_clip, "format": [
        {"output": "mp4", "aspect_ratio": "4:5", "smart_crop": 1}]}}, tmp_path)
    assert good["status"] == "completed", good


@pytest.mark.parametrize("clip, ratio, method, expected", [
    ("EDGE_rotate-90_goldeneye_audio_pyscenedetect.mp4", "9:16", "talking_person", (544, 966)),  # rotation, cuts
    ("B_arm_wrestling_two_people_mmaction2.mp4", "1:1", "max_weight", (256, 256)),  # SAR 64:51, corrupted tail
])
def test_hard_sources_through_the_services(services, settings, stack_env, storage, tmp_path, clip, ratio, method,
                                           expected):
    source = storage.put_file(f"inputs/{clip}", shared_media(clip))
    job = {"query": {"source": source, "format": [
        {"output": "mp4", "aspect_ratio": ratio, "smart_crop": 1, "smart_crop_method": method,
         "smart_crop_mode": "stable"}]}}
    _, final = submit(settings, stack_env, job, tmp_path)
    assert final["status"] == "completed", final
    result = probe(download(settings, final["outputs"][0], tmp_path / "out.mp4"))
    original = probe(shared_media(clip))
    assert (result.display_width, result.display_height, result.rotation) == (*expected, 0)
    assert abs(result.duration - original.duration) <= 3 / original.fps
    assert result.has_audio == original.has_audio
