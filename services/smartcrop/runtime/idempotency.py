"""A job id is an idempotency key: one id, one job, one run.

The same id with the same spec is a replay (nothing runs again); the same id with a different spec is refused with
``job_id_conflict`` and touches nothing of the first job. Two objects in the job's folder decide it, each written
with an atomic create-if-absent, so concurrent submitters and detector replicas agree without a lock:

- ``jobs/{id}/job.json`` (the claim): the spec's fingerprint, written by whoever admits the job first (``submit``
  or the detector, for jobs produced straight onto Kafka);
- ``jobs/{id}/started.json``: which message of the jobs topic started the run. Another message for the job is a
  replay and is skipped; the same message again (redelivered after a crash) carries on with the run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import Enum

from smartcrop.core.errors import ErrorCode, SmartcropError
from smartcrop.core.job import JobSpec
from smartcrop.core.secrets import SecretBox


class JobIdConflict(SmartcropError):
    """The job id is taken by a different job."""

    code = ErrorCode.JOB_ID_CONFLICT

    def __init__(self, job_id: str):
        super().__init__(f"job_id {job_id!r} is already used by a different job; give this job another job_id")
        self.job_id = job_id


class Claim(str, Enum):
    NEW = "new"  # the id was free: this is the job's first admission
    REPLAY = "replay"  # the same job was admitted before


def fingerprint(job: JobSpec, box: SecretBox | None, secret_key: str) -> str:
    """SHA-256 of the canonical spec without its id. A destination secret enters as an HMAC of its plaintext keyed
    by the deployment's secret key: its sealed form differs on every encryption, while two different credentials
    must give different jobs. Nothing in the fingerprint reveals the secret."""
    formats = job.to_document(redact_secrets=True)["query"]["format"]
    for fmt, document in zip(job.formats, formats):
        secret = fmt.destination.secret if fmt.destination is not None else None
        if secret is not None:
            plaintext = box.unseal(secret) if secret.sealed else secret.value
            document["destination"]["secret"] = hmac.new(secret_key.encode(), plaintext.encode(),
                                                         hashlib.sha256).hexdigest()
    canonical = json.dumps({"source": job.source, "format": formats}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_key(job_id: str) -> str:
    return f"jobs/{job_id}/job.json"


def started_key(job_id: str) -> str:
    return f"jobs/{job_id}/started.json"


def claim(storage, job_id: str, job_fingerprint: str) -> Claim:
    """Claim ``job_id`` for the job with ``job_fingerprint``; raises JobIdConflict if another job holds it."""
    document = json.dumps({"job_id": job_id, "fingerprint": job_fingerprint}).encode()
    if storage.create_once(claim_key(job_id), document, "application/json"):
        return Claim.NEW
    held = json.loads(storage.get_bytes(storage.uri(claim_key(job_id))))
    if held.get("fingerprint") != job_fingerprint:
        raise JobIdConflict(job_id)
    return Claim.REPLAY


@dataclass(frozen=True)
class Origin:
    """The message of the jobs topic that started a run."""

    topic: str
    partition: int
    offset: int


def start_once(storage, job_id: str, origin: Origin) -> bool:
    """True if ``origin`` is the message that runs the job (first, or the same one redelivered); False for a
    replay of a job some other message already started."""
    document = json.dumps({"topic": origin.topic, "partition": origin.partition, "offset": origin.offset}).encode()
    if storage.create_once(started_key(job_id), document, "application/json"):
        return True
    held = json.loads(storage.get_bytes(storage.uri(started_key(job_id))))
    return Origin(held.get("topic"), held.get("partition"), held.get("offset")) == origin
