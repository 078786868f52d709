"""The gateway without a broker: keys and tokens, rate limits, Qencode's fields and codes, the status view's rules,
signed callbacks claimed once per state, and the HTTP endpoints in process (object store on disk, a recording
publisher)."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from starlette.testclient import TestClient

from smartcrop.core.events import ErrorInfo, JobRequested, JobState, JobStatus
from smartcrop.gateway.app import Gateway, GatewayConfig, create_app
from smartcrop.gateway.callbacks import CallbackDispatcher, callback_body, sign, verify
from smartcrop.gateway.keys import ApiKey, Authority, RateLimiter, hash_key, may_read_job, parse_api_keys
from smartcrop.gateway.qencode import ApiError, TaskStatus, parse_form, qencode_state, task_tokens
from smartcrop.gateway.tasks import Task, TaskStore
from smartcrop.gateway.view import StatusView, supersedes
from smartcrop.runtime.config import Settings
from smartcrop.runtime.netpolicy import NetworkPolicy
from smartcrop.runtime.storage import LocalStorage

KEY = "k-" + "1" * 30
ENTRY = f"team-a:{hash_key(KEY)}:whsec-a"
OTHER_KEY = "k-" + "2" * 30
OPS_KEY = "k-" + "3" * 30
KEYS = f"{ENTRY},team-b:{hash_key(OTHER_KEY)},ops:{hash_key(OPS_KEY)}::operator"


def status(job_id="job-1", state=JobState.RUNNING, stage="detector", percent=10.0, **extra) -> JobStatus:
    return JobStatus(job_id, state, stage, percent, **extra)


# ---- keys, tokens, limits ------------------------------------------------------------------------------------------


def test_keys_are_kept_as_hashes_and_a_malformed_entry_is_named_without_its_secret():
    (key,) = parse_api_keys(ENTRY)
    assert (key.name, key.key_hash, key.webhook_secret) == ("team-a", hash_key(KEY), "whsec-a")
    assert KEY not in repr(key)
    with pytest.raises(ValueError, match="entry 2") as refused:
        parse_api_keys(f"{ENTRY},team-b:plain-key-not-a-hash")
    assert "plain-key" not in str(refused.value)
    with pytest.raises(ValueError, match="twice"):
        parse_api_keys(f"{ENTRY}\n{ENTRY}")
    (derived,) = parse_api_keys(f"team-c:{hash_key(KEY)}", secret_key="deployment")
    assert derived.webhook_secret and derived.webhook_secret != parse_api_keys(f"team-c:{hash_key(KEY)}", "x")[0]\
        .webhook_secret


def test_an_operator_key_is_marked_by_a_fourth_field_and_nothing_else_is_taken_there():
    team, ops, ops_signed = parse_api_keys(f"{ENTRY},ops:{hash_key(OPS_KEY)}::operator,"
                                           f"ops-2:{hash_key(OTHER_KEY)}:whsec-o:operator", secret_key="d")
    assert (team.operator, ops.operator, ops_signed.operator) == (False, True, True)
    assert ops.key_hash == hash_key(OPS_KEY) and ops.webhook_secret and ops_signed.webhook_secret == "whsec-o"
    for bad in (f"x:{hash_key(KEY)}:s:admin", f"x:{hash_key(KEY)}:s:operator:more"):
        with pytest.raises(ValueError, match="entry 1"):
            parse_api_keys(bad)


def test_a_key_reads_the_jobs_it_started_and_an_operator_reads_every_job():
    team, ops = ApiKey("team-a", "0" * 64), ApiKey("ops", "1" * 64, operator=True)
    assert may_read_job(team, "team-a")
    assert not may_read_job(team, "team-b") and not may_read_job(team, None)  # another's task; straight onto Kafka
    assert may_read_job(ops, "team-b") and may_read_job(ops, None)


def test_access_tokens_are_signed_expire_and_die_with_their_key():
    authority = Authority(parse_api_keys(ENTRY), b"s" * 32, token_ttl=60)
    key = authority.key_for(KEY)
    token, expire = authority.access_token(key, now=1000.0)
    assert expire == 1060 and authority.key_for_token(token, now=1059.0) is key
    with pytest.raises(ApiError) as expired:
        authority.key_for_token(token, now=1061.0)
    assert expired.value.code == 5  # ERROR_TOKEN_NOT_FOUND
    name, _, signature = token.split(".")
    for forged in (f"{name}.99999999999.{signature}", token[:-1] + ("0" if token[-1] != "0" else "1"), "None"):
        with pytest.raises(ApiError) as bad:
            authority.key_for_token(forged, now=1000.0)
        assert bad.value.code == 4  # ERROR_BAD_TOKEN
    revoked = Authority((), b"s" * 32)
    with pytest.raises(ApiError) as gone:
        revoked.key_for_token(token, now=1000.0)
    assert gone.value.code == 5
    for wrong, code in (("", 2), ("x" * 600, 2), ("another-key", 3)):
        with pytest.raises(ApiError) as refused:
            authority.key_for(wrong)
        assert refused.value.code == code


def test_a_task_token_is_bound_to_the_key_that_created_it():
    keys = parse_api_keys(f"{ENTRY},team-b:{hash_key('other')}")
    authority = Authority(keys, b"s" * 32)
    token = authority.task_token(keys[0])
    assert len(token) == 32 and int(token, 16) >= 0
    assert authority.owns_task(keys[0], token) and not authority.owns_task(keys[1], token)
    assert not authority.owns_task(keys[0], token[:16] + "0" * 16)
    assert not Authority(keys, b"t" * 32).owns_task(keys[0], token)  # another deployment's signing key


def test_the_rate_limit_allows_a_burst_then_the_rate_and_says_when_to_retry():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3.0, clock=lambda: now[0])
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(ApiError) as busy:
        limiter.take("a")
    assert busy.value.code == 8 and busy.value.retry_after == 0.5
    limiter.take("b")  # each caller has its own bucket
    now[0] = 0.5
    limiter.take("a")
    with pytest.raises(ApiError):
        limiter.take("a")


# ---- Qencode's fields ----------------------------------------------------------------------------------------------


def test_task_tokens_come_as_one_a_list_or_repeated_fields():
    assert task_tokens(parse_form(b"task_tokens=a")) == ["a"]
    assert task_tokens(parse_form(b"task_tokens=a,b&task_tokens%5B%5D=c&task_tokens%5B%5D=a")) == ["a", "b", "c"]
    assert task_tokens(parse_form(b'task_tokens=%5B%22a%22%2C%22b%22%5D')) == ["a", "b"]
    assert task_tokens(parse_form(b'{"task_tokens": ["a"]}')) == ["a"]
    for body, code in ((b"", 14), (b"task_tokens=", 14), (b"task_tokens=%5B1%5D", 13), (b"{nope", 9)):
        with pytest.raises(ApiError) as refused:
            task_tokens(parse_form(body))
        assert refused.value.code == code


def test_our_states_in_qencode_terms():
    assert [qencode_state(s) for s in (None, status(state=JobState.QUEUED, stage="submit"), status(),
                                       status(state=JobState.COMPLETED), status(state=JobState.FAILED),
                                       status(state=JobState.CANCELLED))] == \
        ["queued", "queued", "encoding", "completed", "error", "error"]
    done = TaskStatus("t" * 32, "job-1", status(state=JobState.COMPLETED, stage="encoder", percent=100.0,
                                                outputs=("s3://minio:9000/smartcrop/jobs/job-1/0.mp4",)),
                      "http://gw/v1/status/tttt").to_json()
    assert done["status"] == "completed" and done["percent"] == 100.0 and done["error"] == 0
    assert done["videos"] == [{"url": "s3://minio:9000/smartcrop/jobs/job-1/0.mp4", "tag": "video-0-0",
                               "user_tag": None, "storage": {"type": "s3", "host": "minio:9000",
                                                             "bucket": "smartcrop", "key": "jobs/job-1/0.mp4",
                                                             "format": "mp4"}}]
    failed = TaskStatus("t" * 32, "job-1", status(state=JobState.FAILED, error=ErrorInfo(
        "source_unreadable", "no such object")), "u").to_json()
    assert (failed["status"], failed["error"], failed["error_description"], failed["videos"]) == \
        ("error", 1, "[source_unreadable] no such object", [])
    running = TaskStatus("t" * 32, "job-1", status(percent=33.333), "u").to_json()
    assert (running["status"], running["percent"], running["error"]) == ("encoding", 33.3, 0)


# ---- the status view -----------------------------------------------------------------------------------------------


def test_a_final_status_stays_final_and_a_replayed_queued_covers_no_stage():
    final = status(state=JobState.COMPLETED, stage="encoder", percent=100.0)
    assert not supersedes(final, status(stage="encoder", percent=99.0))
    assert not supersedes(status(), status(state=JobState.QUEUED, stage="submit", percent=0.0))
    assert supersedes(status(state=JobState.QUEUED, stage="submit"), status())
    assert supersedes(status(), final)


def test_the_view_keeps_the_latest_status_per_job_and_tells_its_listeners():
    view, heard = StatusView(Settings()), []
    view.add_listener(lambda old, new: heard.append((old and old.status.value, new.status.value)))
    for event in (status(state=JobState.QUEUED, stage="submit", percent=0.0), status(), status(percent=50.0),
                  status(state=JobState.COMPLETED, stage="encoder", percent=100.0), status(percent=60.0),
                  status("job-2")):
        view.apply(event)
    assert view.get("job-1").status is JobState.COMPLETED and view.get("job-2").percent == 10.0
    assert view.get("nope") is None and len(view) == 2
    assert heard == [(None, "queued"), ("queued", "running"), ("running", "running"), ("running", "completed"),
                     (None, "running")]


# ---- callbacks -----------------------------------------------------------------------------------------------------


def test_a_signature_is_over_the_timestamp_and_the_exact_body():
    body = b"task_token=t&event=completed"
    signature = sign("secret", "1700000000", body)
    assert verify("secret", "1700000000", body, signature, now=1700000100)
    assert not verify("secret", "1700000000", body + b"x", signature, now=1700000100)
    assert not verify("secret", "1700000001", body, signature, now=1700000100)
    assert not verify("other", "1700000000", body, signature, now=1700000100)
    assert not verify("secret", "1700000000", body, signature, now=1700001000)  # too old: a replay


class Hooks:
    def __init__(self, answers: list[int]):
        self.answers, self.got = answers, []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.got.append((dict(self.headers), body))
                self.send_response(hooks.answers.pop(0) if hooks.answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hooks():
    made = []

    def make(*answers: int) -> Hooks:
        made.append(Hooks(list(answers)))
        return made[-1]

    yield make
    for server in made:
        server.server.shutdown()


def dispatcher(tmp_path, url: str, allowed=("127.0.0.1/32",), attempts: int = 4):
    storage = LocalStorage(tmp_path)
    tasks = TaskStore(storage)
    tasks.bind_job(Task("a" * 32, "job-1", "team-a", url, "p-1"))
    sleeps: list[float] = []
    sent = CallbackDispatcher(tasks, storage, NetworkPolicy.parse(allowed), {"team-a": "whsec-a"}.get,
                              lambda task: "http://gw/v1/status/x", attempts=attempts, sleep=sleeps.append)
    return sent, sleeps


def test_each_state_of_a_job_is_posted_once_signed_with_the_keys_secret(tmp_path, hooks):
    hook = hooks()
    sent, _ = dispatcher(tmp_path, hook.url)
    assert sent.deliver("job-1", status(state=JobState.QUEUED, stage="submit")) == "delivered"
    assert sent.deliver("job-1", status()) == "delivered"
    assert sent.deliver("job-1", status(percent=70.0)) == "duplicate"  # still "encoding"
    assert sent.deliver("job-1", status(state=JobState.COMPLETED, stage="encoder")) == "delivered"
    assert sent.deliver("job-1", status(state=JobState.COMPLETED, stage="encoder")) == "duplicate"
    assert sent.deliver("job-other", status("job-other")) == "none"  # not a gateway task
    events = []
    for headers, body in hook.got:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        events.append(form["event"])
        assert verify("whsec-a", headers["X-Smartcrop-Timestamp"], body, headers["X-Smartcrop-Signature"])
        assert headers["X-Smartcrop-Delivery"] == f"job-1:{form['event']}"
        assert (form["task_token"], form["payload"]) == ("a" * 32, "p-1")
        assert json.loads(form["status"])["status"] == form["event"]
    assert events == ["queued", "encoding", "completed"]


def test_a_failing_receiver_is_retried_with_backoff_and_a_refusing_one_is_not(tmp_path, hooks):
    flaky = hooks(503, 500, 200)
    sent, sleeps = dispatcher(tmp_path / "a", flaky.url)
    assert sent.deliver("job-1", status()) == "delivered"
    assert len(flaky.got) == 3 and len(sleeps) == 2 and 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0
    refusing = hooks(404)
    sent, sleeps = dispatcher(tmp_path / "b", refusing.url)
    assert sent.deliver("job-1", status()) == "refused" and len(refusing.got) == 1 and sleeps == []
    down = hooks(500, 500, 500, 500)
    sent, sleeps = dispatcher(tmp_path / "c", down.url, attempts=4)
    assert sent.deliver("job-1", status()) == "failed" and len(down.got) == 4 and len(sleeps) == 3


def test_callbacks_into_a_private_network_are_blocked_unless_allowed(tmp_path, hooks):
    hook = hooks()
    sent, _ = dispatcher(tmp_path, hook.url, allowed=())
    assert sent.deliver("job-1", status()) == "blocked" and hook.got == []


def test_a_callback_body_is_qencodes_form(tmp_path):
    task = Task("b" * 32, "job-9", "team-a", "http://x/h", None)
    form = parse_qs(callback_body(task, status("job-9", state=JobState.COMPLETED, stage="encoder",
                                               outputs=("s3://h:1/b/k.mp4",)), "http://gw/s").decode(),
                    keep_blank_values=True)
    assert form["task_token"] == ["b" * 32] and form["payload"] == [""] and set(form) == {
        "task_token", "event", "payload", "status"}
    entry = json.loads(form["status"][0])
    assert form["event"] == ["completed"] and entry["videos"][0]["url"] == "s3://h:1/b/k.mp4"


# ---- the endpoints, in process -------------------------------------------------------------------------------------


class RecordingPublisher:
    def __init__(self):
        self.events = []

    def deliver(self, event, timeout=None):
        self.events.append(event)

    def flush(self, timeout=None):
        pass


@pytest.fixture
def api(tmp_path):
    settings = replace(Settings(), secret_key="unit-secret", allowed_networks=("127.0.0.1/32",))
    config = GatewayConfig(api_keys=KEYS, rate_limit=0, max_body_bytes=8192, public_url="http://gw.example")
    publisher, view = RecordingPublisher(), StatusView(settings)
    view._ready.set()  # rebuilt (there is no topic here)
    gateway = Gateway(settings, config, storage=LocalStorage(tmp_path), publisher=publisher, view=view)
    client = TestClient(create_app(gateway))
    client.gateway, client.publisher, client.view = gateway, publisher, view
    return client


def started_task(api, query: dict, **fields) -> tuple[str, dict]:
    token = api.post("/v1/access_token", data={"api_key": KEY}).json()["token"]
    task_token = api.post("/v1/create_task", data={"token": token}).json()["task_token"]
    answer = api.post("/v1/start_encode2", data={"task_token": task_token, "query": json.dumps(query), **fields})
    return task_token, answer.json()


def test_start_encode2_admits_publishes_confirmed_and_answers_a_status_url(api):
    source = "s3://minio:9000/smartcrop/in.mp4"
    task_token, answer = started_task(api, {"query": {"source": source, "format": [{"output": "mp4"}]}})
    assert answer == {"error": 0, "status_url": f"http://gw.example/v1/status/{task_token[:16]}"}
    queued, requested = api.publisher.events
    assert (queued.job_id, queued.status, queued.stage) == (task_token, JobState.QUEUED, "submit")
    assert isinstance(requested, JobRequested) and requested.job.source == source
    statuses = api.post(answer["status_url"], data={"task_tokens": task_token}).json()
    assert statuses["error"] == 0 and statuses["statuses"][task_token]["status"] == "queued"
    api.view.apply(status(task_token, state=JobState.COMPLETED, stage="encoder", percent=100.0,
                          outputs=("s3://minio:9000/smartcrop/jobs/x/0.mp4",),
                          updated_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    entry = api.post("http://testserver//v1/status", data={"task_tokens": task_token}).json()["statuses"][task_token]
    assert (entry["status"], entry["percent"], entry["videos"][0]["url"]) == \
        ("completed", 100.0, "s3://minio:9000/smartcrop/jobs/x/0.mp4")
    again = api.post("/v1/start_encode2", data={"task_token": task_token, "query": json.dumps(
        {"query": {"source": source, "format": [{"output": "mp4"}]}})}).json()
    assert again["error"] == 0 and len(api.publisher.events) == 2  # a retried start publishes nothing new


def test_the_endpoints_refuse_with_qencodes_codes(api):
    assert api.post("/v1/access_token", data={}).json()["error"] == 14
    assert api.post("/v1/access_token", data={"api_key": "wrong"}).json()["error"] == 3
    assert api.post("/v1/create_task", data={"token": "a.1.b"}).json()["error"] == 4
    assert api.post("/v1/start_encode2", data={"task_token": "f" * 32, "query": "{}"}).json()["error"] == 4
    _, no_source = started_task(api, {"query": {"format": [{"output": "mp4"}]}})
    assert no_source["error"] == 9 and "source" in no_source["message"]
    _, local = started_task(api, {"query": {"source": "/etc/passwd"}})
    assert local["error"] == 9
    _, private = started_task(api, {"query": {"source": "s3://minio:9000/smartcrop/in.mp4",
                                              "callback_url": "http://192.168.1.1/h"}})
    assert private["error"] == 9 and "callback_url" in private["message"]
    _, long_payload = started_task(api, {"query": {"source": "s3://minio:9000/smartcrop/in.mp4"}}, payload="p" * 5000)
    assert long_payload["error"] == 9 and "payload" in long_payload["message"]
    assert api.post("/v1/status", data={"task_tokens": "zz"}).json()["error"] == 13
    assert api.post("/v1/status", data={"task_tokens": "0" * 32}).json()["error"] == 13
    many = ",".join(f"{i:032x}" for i in range(101))
    too_many = api.post("/v1/status", data={"task_tokens": many}).json()
    assert too_many["error"] == 13 and "at most 100" in too_many["message"]
    large = api.post("/v1/access_token", content=b"api_key=" + b"x" * 9000,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert large.status_code == 413 and large.json()["error"] == 9
    assert api.get("/v1/status").status_code == 405 and api.post("/v2/nothing").status_code == 404
    assert api.publisher.events == []  # nothing refused was published


def test_one_job_id_belongs_to_one_task(api):
    query = {"query": {"job_id": "shared-id", "source": "s3://minio:9000/smartcrop/in.mp4"}}
    first_token, first = started_task(api, query)
    _, second = started_task(api, query)
    assert first["error"] == 0 and second["error"] == 9 and "another task" in second["message"]
    assert [e.job_id for e in api.publisher.events] == ["shared-id", "shared-id"]
    assert api.gateway.tasks.by_token(first_token).job_id == "shared-id"


def test_status_waits_for_the_view_and_health_tells_it(api):
    api.view._ready.clear()
    answer = api.post("/v1/status", data={"task_tokens": "0" * 32})
    assert answer.status_code == 503 and answer.json()["error"] == 1
    assert api.get("/readyz").status_code == 503
    assert "smartcrop_gateway_requests_total" in api.get("/metrics").text


def bearer(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def test_a_job_status_is_read_by_the_key_that_started_it_or_an_operator_and_is_not_found_for_others(api):
    task_token, answer = started_task(api, {"query": {"source": "s3://minio:9000/smartcrop/in.mp4"}})
    assert answer["error"] == 0
    done = status(task_token, state=JobState.COMPLETED, stage="encoder", percent=100.0,
                  outputs=("s3://minio:9000/smartcrop/jobs/x/0.mp4",),
                  updated_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    api.view.apply(done)
    for key in (KEY, OPS_KEY):
        read = api.get(f"/v1/jobs/{task_token}", headers=bearer(key))
        assert read.status_code == 200 and read.json() == done.to_json()
    hidden = api.get(f"/v1/jobs/{task_token}", headers=bearer(OTHER_KEY))
    unknown = api.get("/v1/jobs/no-such-job", headers=bearer(KEY))
    assert (hidden.status_code, unknown.status_code) == (404, 404)
    assert hidden.json() == {"error": "not_found", "message": f"no job {task_token!r}"}
    assert unknown.json() == {"error": "not_found", "message": "no job 'no-such-job'"}


def test_a_job_produced_straight_onto_kafka_is_read_only_by_an_operator_and_unseen_jobs_look_the_same(api):
    before = api.get("/v1/jobs/from-kafka", headers=bearer(KEY))
    api.view.apply(status("from-kafka"))
    after = api.get("/v1/jobs/from-kafka", headers=bearer(KEY))
    assert before.status_code == after.status_code == 404 and before.json() == after.json()
    assert before.headers["content-length"] == after.headers["content-length"]
    operator = api.get("/v1/jobs/from-kafka", headers=bearer(OPS_KEY))
    assert operator.status_code == 200 and operator.json() == status("from-kafka").to_json() | {
        "updated_at": operator.json()["updated_at"]}
    assert operator.json()["status"] == "running" and operator.json()["stage"] == "detector"


def test_a_job_status_needs_a_known_bearer_key_a_get_and_a_rebuilt_view(api):
    api.view.apply(status("job-1"))
    for headers in ({}, {"Authorization": f"Basic {OPS_KEY}"}, bearer("not-a-key"), bearer("")):
        refused = api.get("/v1/jobs/job-1", headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"] == "unauthorized"
    assert api.post("/v1/jobs/job-1", headers=bearer(OPS_KEY)).status_code == 405
    assert api.get("/v1/jobs/a%2F..%2Fb", headers=bearer(OPS_KEY)).status_code == 404  # not a job id at all
    api.view._ready.clear()
    assert api.get("/v1/jobs/job-1", headers=bearer(OPS_KEY)).status_code == 503
    text = api.get("/metrics").text
    assert 'smartcrop_gateway_requests_total{code="401",endpoint="job_status",error="0"}' in text
    assert 'smartcrop_gateway_requests_total{code="503",endpoint="job_status",error="1"}' in text


def test_the_job_status_endpoint_has_its_own_rate_limit(tmp_path):
    settings = replace(Settings(), secret_key="unit-secret")
    view = StatusView(settings)
    view._ready.set()
    view.apply(status("job-1"))
    gateway = Gateway(settings, GatewayConfig(api_keys=KEYS, rate_limit=1, rate_burst=2),
                      storage=LocalStorage(tmp_path), publisher=RecordingPublisher(), view=view)
    api = TestClient(create_app(gateway))
    codes = [api.get("/v1/jobs/job-1", headers=bearer(OPS_KEY)).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_smartcrop_status_reads_the_gateway_when_configured_and_the_topic_otherwise(monkeypatch, capsys):
    from smartcrop import cli
    from smartcrop.gateway import client
    from smartcrop.runtime import kafka

    done = status("job-1", state=JobState.COMPLETED, stage="encoder", percent=100.0)
    failed = status("job-2", state=JobState.FAILED, error=ErrorInfo("decode_error", "bad input"))
    known = {"job-1": done, "job-2": failed}
    asked = []
    monkeypatch.setattr(kafka, "latest_status", lambda settings, job_id: asked.append(("topic", job_id)) or
                        known.get(job_id))
    monkeypatch.setattr(client.GatewayClient, "job_status", lambda self, job_id: asked.append(
        ("gateway", self.url, self.api_key, job_id)) or (known[job_id].to_json() if job_id in known else None))

    def run(job_id):
        code = cli.main(["status", job_id])
        out, err = capsys.readouterr()
        return code, out, err

    monkeypatch.delenv("SMARTCROP_GATEWAY_URL", raising=False)
    monkeypatch.setenv("SMARTCROP_API_KEY", OPS_KEY)
    topic = [run("job-1"), run("job-2"), run("job-3")]
    assert asked == [("topic", "job-1"), ("topic", "job-2"), ("topic", "job-3")]
    monkeypatch.setenv("SMARTCROP_GATEWAY_URL", "http://gw.example")
    asked.clear()
    fast = [run("job-1"), run("job-2"), run("job-3")]
    assert asked == [("gateway", "http://gw.example", OPS_KEY, job) for job in ("job-1", "job-2", "job-3")]
    assert [(code, out) for code, out, _ in fast] == [(code, out) for code, out, _ in topic]
    assert [code for code, _, _ in fast] == [0, 1, 3]
    assert json.loads(fast[0][1]) == done.to_json()
    assert json.loads(fast[2][1]) == {"job_id": "job-3", "status": "unknown"}
    assert "no job 'job-3'" in fast[2][2] and "no job 'job-3'" in topic[2][2]


def test_smartcrop_status_reads_the_topic_while_the_gateway_cannot_answer_and_stops_on_a_refused_key(
        monkeypatch, capsys):
    from smartcrop import cli
    from smartcrop.gateway import client
    from smartcrop.runtime import kafka

    monkeypatch.setenv("SMARTCROP_GATEWAY_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SMARTCROP_API_KEY", KEY)
    monkeypatch.setattr(kafka, "latest_status", lambda settings, job_id: status(job_id))
    assert cli.main(["status", "job-1"]) == 0  # nothing listens on port 9
    out, err = capsys.readouterr()
    assert json.loads(out) == status("job-1").to_json() | {"updated_at": json.loads(out)["updated_at"]}
    assert "did not answer" in err

    def refuse(self, job_id):
        raise client.GatewayRefused("the gateway does not accept SMARTCROP_API_KEY")

    monkeypatch.setattr(client.GatewayClient, "job_status", refuse)
    assert cli.main(["status", "job-1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "does not accept SMARTCROP_API_KEY" in err


def test_on_start_only_recent_states_of_the_rebuilt_view_are_queued_for_callbacks(tmp_path):
    sent, _ = dispatcher(tmp_path, "http://127.0.0.1:9/h")
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    sent.on_change(None, status("job-old", state=JobState.COMPLETED, updated_at=old))
    sent.on_change(None, status("job-new", state=JobState.COMPLETED))
    sent.on_change(status("job-run"), status("job-run", percent=80.0))  # the same Qencode state: no callback
    queued = [q.get_nowait().job_id for q in sent.queues if not q.empty()]
    assert queued == ["job-new"]


def test_the_local_stack_has_a_gateway_key_whose_hash_it_configures(tmp_path):
    from smartcrop import stack

    config = replace(stack.StackConfig.from_env(), home=tmp_path, gateway_port=19999)
    env = stack.stack_env(config)
    assert env["SMARTCROP_GATEWAY_URL"] == "http://127.0.0.1:19999"
    (key,) = parse_api_keys(env["SMARTCROP_GATEWAY_API_KEYS"])
    assert key.name == "local" and key.key_hash == hash_key(env["SMARTCROP_API_KEY"])
    assert key.operator  # `smartcrop status` with the stack's env reads every job through the gateway
    assert key.webhook_secret == env["SMARTCROP_WEBHOOK_SECRET"] and env["SMARTCROP_API_KEY"] not in \
        env["SMARTCROP_GATEWAY_API_KEYS"]
    assert stack.stack_env(config)["SMARTCROP_API_KEY"] == env["SMARTCROP_API_KEY"]  # stable between calls
    assert "gateway" in stack.COMPONENTS
