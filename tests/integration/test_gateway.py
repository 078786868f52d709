"""The Qencode-compatible gateway, driven by the official Qencode client (``qencode3`` from PyPI, unchanged), over
the real local Kafka and MinIO with the four services: a job in, its output read back from MinIO, the errors a
Qencode client expects, signed callbacks exactly once per state, and concurrent jobs with nothing lost or doubled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
import qencode3
import requests

from smartcrop.gateway.callbacks import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from smartcrop.gateway.keys import hash_key, parse_api_keys
from smartcrop.media.probe import probe
from smartcrop.runtime.storage import S3Location, s3_client

from ..conftest import shared_media
from .conftest import API_KEY, OPERATOR_KEY, WEBHOOK_SECRET, committed_events, service_env

pytestmark = pytest.mark.integration

# qencode3.client is a function that imports the submodule qencode3.client, which then shadows the function on the
# package: only the first call works. Keeping the function itself is how a program calls it more than once.
new_client = qencode3.client
CLIP = "A_man_talking_restaurant_720p_visualvoice.mp4"
SMALL_CLIP = "B_C_basketball_two_players_240p_mmaction2.mp4"
# the issue asks for 50; on the 2-core test machine 50 jobs take far longer than a test may (see the README), so the
# default is what fits in about two minutes here
CONCURRENT_JOBS = int(os.environ.get("SMARTCROP_TEST_GATEWAY_JOBS", "50"))




class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps every request it gets."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append((dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/smartcrop"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, job_id: str) -> list[tuple[dict, bytes, dict]]:
        with self.lock:
            found = []
            for headers, body in self.requests:
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
                if json.loads(form["status"])["job_id"] == job_id:
                    found.append((headers, body, form))
            return found


@pytest.fixture(scope="module")
def receiver():
    running = Receiver()
    yield running
    running.server.shutdown()


def query(source: str, **extra) -> str:
    return json.dumps({"query": {"source": source, "format": [
        {"output": "mp4", "aspect_ratio": "9:16", "smart_crop": 1, "smart_crop_mode": "balanced"}], **extra}})


def poll_until_done(task, timeout: float = 300) -> list[dict]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = task.status()
        seen.append(status)
        if status["error"] or status["status"] == "completed":
            return seen
        time.sleep(0.5)
    raise AssertionError(f"task {task.task_token} not done in {timeout}s: {seen[-1:]}")


def download(settings, uri: str, target):
    location = S3Location.parse(uri)
    s3_client(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key).fget_object(
        location.bucket, location.key, str(target))
    return target


def test_the_official_client_runs_a_job_and_gets_signed_callbacks_once_per_state(gateway, settings, receiver,
                                                                                 uploaded_clip, tmp_path):
    client = new_client(API_KEY, api_url=gateway.url)
    assert client.error is None and client.access_token
    task = client.create_task()
    assert task.error is None and len(task.task_token) == 32
    task.custom_start(query(uploaded_clip, callback_url=receiver.url), payload="order-17")
    assert task.error is None, task.message
    assert task.status_url == f"{gateway.url}/v1/status/{task.task_token[:16]}"

    seen = poll_until_done(task)
    final = seen[-1]
    assert final["status"] == "completed" and final["error"] == 0 and final["percent"] == 100.0, final
    assert {s["status"] for s in seen} <= {"queued", "encoding", "completed"}
    (video,) = final["videos"]
    result = probe(download(settings, video["url"], tmp_path / "out.mp4"))
    source = probe(shared_media(CLIP))
    assert abs(result.display_width / result.display_height - 9 / 16) < 0.01
    assert result.display_height == source.display_height and result.has_audio

    deadline = time.monotonic() + 30
    while len(receiver.events(task.task_token)) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # a duplicate would come right behind
    delivered = receiver.events(task.task_token)
    assert [form["event"] for _, _, form in delivered] == ["queued", "encoding", "completed"]
    for headers, body, form in delivered:
        assert verify(WEBHOOK_SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert not verify("another-secret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER])
        assert headers[DELIVERY_HEADER] == f"{task.task_token}:{form['event']}"
        assert form["task_token"] == task.task_token and form["payload"] == "order-17"
    assert json.loads(delivered[-1][2]["status"])["videos"][0]["url"] == video["url"]


def test_a_wrong_key_gets_qencode_errors_and_no_task(gateway):
    client = new_client("not-a-key-" + uuid.uuid4().hex, api_url=gateway.url)
    assert client.error == 3 and client.access_token is None  # ERROR_API_KEY_NOT_FOUND
    task = client.create_task()
    assert task.error == 4 and task.task_token is None  # ERROR_BAD_TOKEN: the client sends token=None


def test_a_malformed_query_is_refused_with_the_field_named(gateway, uploaded_clip):
    task = new_client(API_KEY, api_url=gateway.url).create_task()
    task.custom_start(json.dumps({"query": {"format": [{"output": "mp4"}]}}))
    assert task.error == 9 and "source" in task.message  # ERROR_BAD_PAYLOAD
    task = new_client(API_KEY, api_url=gateway.url).create_task()
    task.custom_start(query(uploaded_clip).replace('"9:16"', '"wide"'))
    assert task.error == 9 and "aspect_ratio" in task.message
    task = new_client(API_KEY, api_url=gateway.url).create_task()
    task.custom_start(query(uploaded_clip, callback_url="http://10.1.2.3/hook"))
    assert task.error == 9 and "callback_url" in task.message and "private" in task.message
    raw = requests.post(f"{gateway.url}/v1/start_encode2", data={"task_token": task.task_token, "query": "{no"})
    assert raw.status_code == 200 and raw.json()["error"] == 9
    assert requests.post(f"{gateway.url}/v1/start_encode2", data={"task_token": task.task_token}).json()["error"] == 14


def test_an_unknown_task_is_a_bad_token_to_the_client(gateway):
    task = new_client(API_KEY, api_url=gateway.url).create_task()
    task.status_url = task.main_status_url  # where the client asks after a failed start
    with pytest.raises(ValueError, match="Bad token"):  # created, never started: no such task
        task.status()
    task.task_token = "0123456789abcdef0123456789abcdef"
    with pytest.raises(ValueError, match="Bad token"):
        task.status()
    assert requests.post(f"{gateway.url}/v1/status", data={}).json()["error"] == 14


def test_limits_health_metrics_and_logs_without_secrets(gateway):
    too_large = requests.post(f"{gateway.url}/v1/access_token", data={"api_key": "x" * 70000})
    assert too_large.status_code == 413 and too_large.json()["error"] == 9
    assert requests.get(f"{gateway.url}/healthz").json() == {"live": True}
    assert requests.get(f"{gateway.url}/readyz").json() == {"ready": True}
    client = new_client(API_KEY, api_url=gateway.url)
    text = requests.get(f"{gateway.url}/metrics").text
    assert 'smartcrop_gateway_requests_total{code="200",endpoint="access_token",error="0"}' in text
    assert 'smartcrop_gateway_requests_total{code="413",endpoint="access_token",error="9"}' in text
    assert "smartcrop_gateway_request_duration_seconds_bucket" in text
    log = gateway.log.read_text()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(line.get("message") == "POST access_token 200" for line in lines)
    assert API_KEY not in log and client.access_token not in log and WEBHOOK_SECRET not in log


def test_concurrent_jobs_through_the_gateway_all_complete_once(gateway, settings, storage, receiver):
    source = storage.put_file(f"inputs/{SMALL_CLIP}", shared_media(SMALL_CLIP))

    def start(_):
        task = new_client(API_KEY, api_url=gateway.url).create_task()
        task.custom_start(json.dumps({"query": {"source": source, "callback_url": receiver.url, "format": [
            {"output": "mp4", "aspect_ratio": "1:1", "smart_crop": 1}]}}))
        assert task.error is None, task.message
        return task

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENT_JOBS) as pool:
        tasks = list(pool.map(start, range(CONCURRENT_JOBS)))
        finals = list(pool.map(lambda task: poll_until_done(task, timeout=900)[-1], tasks))
    elapsed = time.monotonic() - started
    print(f"{CONCURRENT_JOBS} concurrent jobs through the gateway: {elapsed:.1f} s")
    assert [final["status"] for final in finals] == ["completed"] * CONCURRENT_JOBS, finals
    outputs = [final["videos"][0]["url"] for final in finals]
    assert len(set(outputs)) == CONCURRENT_JOBS
    ids = {task.task_token for task in tasks}
    requested = [event.job_id for event in committed_events(settings, "jobs") if event.job_id in ids]
    assert sorted(requested) == sorted(ids)  # each job published exactly once
    completed = [e.job_id for e in committed_events(settings, "status")
                 if e.job_id in ids and e.status.value == "completed"]
    assert sorted(completed) == sorted(ids)  # and completed exactly once
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(len(receiver.events(t)) for t in ids) < 3 * CONCURRENT_JOBS:
        time.sleep(0.2)
    for token in ids:
        assert [form["event"] for _, _, form in receiver.events(token)] == ["queued", "encoding", "completed"]


def test_the_local_stack_lists_the_gateway_and_prints_its_url_and_a_working_key(stack_env):
    status = subprocess.run([sys.executable, "-m", "smartcrop", "stack", "status", "--json"], capture_output=True,
                            text=True, timeout=60)
    assert status.returncode == 0 and set(json.loads(status.stdout)["gateway"]) == {"up", "pid"}
    printed = subprocess.run([sys.executable, "-m", "smartcrop", "stack", "env"], capture_output=True, text=True,
                             timeout=60).stdout
    lines = dict(line.removeprefix("export ").split("=", 1) for line in printed.splitlines())
    assert lines["SMARTCROP_GATEWAY_URL"] == "http://127.0.0.1:19180"
    (key,) = parse_api_keys(lines["SMARTCROP_GATEWAY_API_KEYS"])
    assert key.key_hash == hash_key(lines["SMARTCROP_API_KEY"]) and key.webhook_secret == lines[
        "SMARTCROP_WEBHOOK_SECRET"]
    assert lines["SMARTCROP_API_KEY"] not in lines["SMARTCROP_GATEWAY_API_KEYS"]


def test_smartcrop_submit_takes_the_same_path_and_a_retry_publishes_nothing_twice(gateway, settings, stack_env,
                                                                                   uploaded_clip, tmp_path):
    job_id = f"cli-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"query": {"job_id": job_id, "source": uploaded_clip, "format": [
        {"output": "mp4", "aspect_ratio": "1:1", "smart_crop": 1}]}}))
    # the second is a replay of the finished job: admitted, claimed as a replay, and nothing is published again
    for extra in (["--wait", "--timeout", "300"], []):
        result = subprocess.run([sys.executable, "-m", "smartcrop", "submit", str(path), *extra],
                                env=service_env(settings, stack_env), capture_output=True, text=True, timeout=400)
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.splitlines()[0]) == {"job_id": job_id}
    assert [event.job_id for event in committed_events(settings, "jobs", job_id)] == [job_id]
    states = [event.status.value for event in committed_events(settings, "status", job_id)]
    assert states[0] == "queued" and states[-1] == "completed" and states.count("queued") == 1


def job_status_requests(gateway, code: str) -> float:
    for line in requests.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(f'smartcrop_gateway_requests_total{{code="{code}",endpoint="job_status",error="0"}}'):
            return float(line.split()[-1])
    return 0.0


def test_smartcrop_status_reads_a_submitted_job_through_the_gateway_as_an_operator_as_from_the_topic(
        gateway, settings, stack_env, storage, tmp_path):
    job_id = f"cli-status-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"query": {"job_id": job_id, "source": storage.put_file(
        f"inputs/{SMALL_CLIP}", shared_media(SMALL_CLIP)), "format": [{"output": "mp4", "aspect_ratio": "1:1"}]}}))
    topic_env = {k: v for k, v in service_env(settings, stack_env).items()
                 if k not in ("SMARTCROP_GATEWAY_URL", "SMARTCROP_API_KEY")}
    submitted = subprocess.run([sys.executable, "-m", "smartcrop", "submit", str(path), "--wait", "--timeout", "300"],
                               env=topic_env, capture_output=True, text=True, timeout=400)
    assert submitted.returncode == 0, submitted.stderr
    (final,) = [s for s in committed_events(settings, "status", job_id) if s.status.is_final]

    deadline = time.monotonic() + 30  # the view follows the topic: the final status is there in a moment
    while (read := requests.get(f"{gateway.url}/v1/jobs/{job_id}", headers={
            "Authorization": f"Bearer {OPERATOR_KEY}"})).json().get("status") != "completed":
        assert time.monotonic() < deadline, read.text
        time.sleep(0.2)
    assert read.status_code == 200 and read.json() == final.to_json()
    hidden = requests.get(f"{gateway.url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {API_KEY}"})
    unknown = requests.get(f"{gateway.url}/v1/jobs/{job_id}-none", headers={"Authorization": f"Bearer {API_KEY}"})
    assert hidden.status_code == unknown.status_code == 404 and hidden.json()["error"] == unknown.json()["error"] == \
        "not_found"

    def status_cli(env):
        return subprocess.run([sys.executable, "-m", "smartcrop", "status", job_id], env=env, capture_output=True,
                              text=True, timeout=120)

    answered = job_status_requests(gateway, "200")
    fast = status_cli({**topic_env, "SMARTCROP_GATEWAY_URL": gateway.url, "SMARTCROP_API_KEY": OPERATOR_KEY})
    assert job_status_requests(gateway, "200") == answered + 1 and "warning" not in fast.stderr
    fallback = status_cli(topic_env)
    assert (fast.returncode, fast.stdout) == (fallback.returncode, fallback.stdout) == (
        0, json.dumps(final.to_json()) + "\n")
    refused = status_cli({**topic_env, "SMARTCROP_GATEWAY_URL": gateway.url, "SMARTCROP_API_KEY": API_KEY})
    assert refused.returncode == 3 and json.loads(refused.stdout) == {"job_id": job_id, "status": "unknown"}
    assert f"no job {job_id!r}" in refused.stderr and job_status_requests(gateway, "404") >= 3


def test_the_official_client_gets_hls_and_dash_outputs_with_their_playlists_and_segments(gateway, settings,
                                                                                         storage):
    import re

    source = storage.put_file(f"inputs/{SMALL_CLIP}", shared_media(SMALL_CLIP))
    task = new_client(API_KEY, api_url=gateway.url).create_task()
    task.custom_start(json.dumps({"query": {"source": source, "format": [
        {"output": "advanced_hls", "aspect_ratio": "9:16", "smart_crop": 1},
        {"output": "advanced_dash", "aspect_ratio": "1:1", "smart_crop": 1}]}}))
    assert task.error is None, task.message
    final = poll_until_done(task)[-1]
    assert final["status"] == "completed" and final["error"] == 0, final
    hls, dash = final["videos"]
    assert (hls["storage"]["format"], dash["storage"]["format"]) == ("hls", "dash")
    assert hls["url"].endswith("/master.m3u8") and dash["url"].endswith("/manifest.mpd")

    client = s3_client(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key)
    texts = {}
    for video, segment in ((hls, ".ts"), (dash, ".m4s")):
        location = S3Location.parse(video["url"])
        folder = location.key.rsplit("/", 1)[0] + "/"
        names = [o.object_name for o in client.list_objects(location.bucket, prefix=folder, recursive=True)]
        assert sum(name.endswith(segment) for name in names) >= 2, names
        texts[segment] = client.get_object(location.bucket, location.key).read().decode()
    source_height = probe(shared_media(SMALL_CLIP)).display_height
    width, height = map(int, re.search(r"RESOLUTION=(\d+)x(\d+)", texts[".ts"]).groups())
    assert height == source_height and abs(width - height * 9 / 16) <= 2
    assert f'width="{source_height}" height="{source_height}"' in texts[".m4s"]


def lifecycle_rules(client, bucket: str) -> dict[str, tuple[str, int]]:
    config = client.get_bucket_lifecycle(bucket)
    return {rule.rule_id: (rule.rule_filter.prefix, rule.expiration.days) for rule in (config.rules if config else [])}


def test_the_gateway_records_expire_by_a_bucket_lifecycle_rule_that_keeps_the_operators_own(gateway, settings):
    from minio.commonconfig import ENABLED, Filter
    from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule

    from smartcrop.runtime.storage import S3Storage

    client = s3_client(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key)
    assert lifecycle_rules(client, settings.s3_bucket)["smartcrop-expire-gateway"] == ("gateway/", 30)

    bucket = f"lifecycle-{uuid.uuid4().hex[:8]}"
    store = S3Storage(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key, bucket)
    store.ensure_bucket()
    client.set_bucket_lifecycle(bucket, LifecycleConfig([Rule(ENABLED, rule_filter=Filter(prefix="scratch/"),
                                                              rule_id="operators-own",
                                                              expiration=Expiration(days=2))]))
    store.expire("gateway/", 7)
    store.expire("gateway/", 9)  # a changed retention replaces the rule, never adds a second
    assert lifecycle_rules(client, bucket) == {"operators-own": ("scratch/", 2),
                                               "smartcrop-expire-gateway": ("gateway/", 9)}
    store.expire("gateway/", 0)
    assert lifecycle_rules(client, bucket) == {"operators-own": ("scratch/", 2)}
    client.delete_bucket_lifecycle(bucket)
    store.expire("gateway/", 0)  # nothing to remove: no error, still nothing
    assert lifecycle_rules(client, bucket) == {}
    client.remove_bucket(bucket)
