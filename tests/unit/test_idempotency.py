"""Job ids as idempotency keys: the fingerprint that tells a replay from a conflict, and the claim objects."""

from __future__ import annotations

import pytest

from smartcrop.core.events import JobRequested, decode_event, encode_event
from smartcrop.core.job import parse_job
from smartcrop.core.secrets import SecretBox
from smartcrop.runtime.idempotency import Claim, JobIdConflict, Origin, claim, fingerprint, start_once
from smartcrop.runtime.storage import LocalStorage

KEY = SecretBox.generate_key()


def a_job(job_id: str = "job-1", **fmt):
    return parse_job({"query": {"source": "s3://minio:9000/media/clip.mp4", "format": [
        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1, **fmt}]}}, job_id=job_id)


def test_the_same_job_has_the_same_fingerprint_in_a_file_and_in_an_event_whose_secret_is_sealed():
    box = SecretBox(KEY)
    job = a_job(destination={"url": "s3://minio:9000/out/a.mp4", "key": "AK", "secret": "TOPSECRET-123"})
    sent_twice = [decode_event(encode_event(JobRequested(job=job), box)).job for _ in range(2)]
    assert sent_twice[0].formats[0].destination.secret.value != sent_twice[1].formats[0].destination.secret.value
    prints = {fingerprint(job, None, KEY)} | {fingerprint(sent, box, KEY) for sent in sent_twice}
    assert len(prints) == 1
    assert "TOPSECRET" not in prints.pop()


def test_the_fingerprint_ignores_the_id_and_tells_every_other_difference():
    base = fingerprint(a_job("a"), None, KEY)
    assert fingerprint(a_job("b"), None, KEY) == base
    others = [a_job(aspect_ratio="1:1"), a_job(smart_crop_mode="stable"), a_job(width=720),
              a_job(destination={"url": "s3://minio:9000/out/a.mp4", "key": "AK", "secret": "one"}),
              a_job(destination={"url": "s3://minio:9000/out/a.mp4", "key": "AK", "secret": "two"})]
    prints = [fingerprint(job, None, KEY) for job in others]
    assert base not in prints and len(set(prints)) == len(prints)


def test_a_claim_is_new_once_then_a_replay_and_a_different_job_conflicts(tmp_path):
    store = LocalStorage(tmp_path)
    assert claim(store, "job-1", "f1") is Claim.NEW
    assert claim(store, "job-1", "f1") is Claim.REPLAY
    with pytest.raises(JobIdConflict, match="job-1") as raised:
        claim(store, "job-1", "f2")
    assert raised.value.code == "job_id_conflict"
    assert claim(store, "job-1", "f1") is Claim.REPLAY  # the conflict changed nothing


def test_only_the_message_that_started_a_run_runs_it(tmp_path):
    store = LocalStorage(tmp_path)
    first = Origin("jobs", 2, 10)
    assert start_once(store, "job-1", first)
    assert start_once(store, "job-1", first)  # redelivered after a crash: carries on
    assert not start_once(store, "job-1", Origin("jobs", 2, 11))  # a replay


def test_the_fingerprint_of_a_job_stays_what_earlier_claims_stored():
    job = parse_job({"query": {"source": "s3://minio:9000/media/in.mp4", "format": [
        {"output": "hls", "aspect_ratio": "4:5", "stream": [{"size": "720x900", "bitrate": 900}],
         "destination": {"url": "s3://minio:9000/out/x/", "key": "AK", "secret": "SK"}, "smart_crop": 1,
         "smart_crop_method": "gravity"},
        {"output": "mp4", "quality": 20}]}}, job_id="j1")
    assert fingerprint(job, None, "k") == "dcaba4e02d93106cc9b309c74c5f1f3a7ce4d8c4fc5be2e344c5747d6238fc8c"
