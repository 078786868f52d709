"""Tasks: the gateway's record of which key started which job, where its callbacks go, in the object store.

``gateway/tasks/{task_token}.json`` answers ``status`` (task to job) and ``gateway/jobs/{job_id}.json`` the status
view's listener (job to task, for callbacks); both are written once (create-if-absent) before the job is published,
so every replica finds them and a job id cannot be taken over by a later task.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass

from smartcrop.core.ports import ObjectNotFound


@dataclass(frozen=True)
class Task:
    task_token: str
    job_id: str
    key_name: str
    callback_url: str | None = None
    payload: str | None = None


GATEWAY_PREFIX = "gateway/"  # everything the gateway keeps, under one lifecycle rule


def task_key(task_token: str) -> str:
    return f"{GATEWAY_PREFIX}tasks/{task_token}.json"


def job_key(job_id: str) -> str:
    return f"{GATEWAY_PREFIX}jobs/{job_id}.json"


class TaskStore:
    def __init__(self, storage, cache_size: int = 100_000):
        self.storage = storage
        self.cache_size = cache_size
        self._by_token: dict[str, Task | None] = {}
        self._by_job: dict[str, Task | None] = {}
        self._lock = threading.Lock()

    def _remember(self, table: dict, key: str, task: Task | None) -> None:
        with self._lock:
            if len(table) >= self.cache_size:
                table.clear()
            table[key] = task

    def _read(self, key: str) -> Task | None:
        try:
            document = json.loads(self.storage.get_bytes(self.storage.uri(key)))
        except ObjectNotFound:
            return None
        return Task(**{name: document.get(name) for name in Task.__dataclass_fields__})

    def create(self, task: Task) -> Task:
        """Record ``task``; the record already there when the token was started before (a retried start)."""
        data = json.dumps(asdict(task)).encode()
        if not self.storage.create_once(task_key(task.task_token), data, "application/json"):
            task = self._read(task_key(task.task_token)) or task
        self._remember(self._by_token, task.task_token, task)
        return task

    def bind_job(self, task: Task) -> Task:
        """Make ``task`` the one that reports on its job; the task bound first when another already is."""
        data = json.dumps(asdict(task)).encode()
        if not self.storage.create_once(job_key(task.job_id), data, "application/json"):
            task = self._read(job_key(task.job_id)) or task
        self._remember(self._by_job, task.job_id, task)
        return task

    def by_token(self, task_token: str) -> Task | None:
        with self._lock:
            if task_token in self._by_token and self._by_token[task_token] is not None:
                return self._by_token[task_token]
        task = self._read(task_key(task_token))  # unknown tokens are not cached: the task may start on a replica
        if task is not None:
            self._remember(self._by_token, task_token, task)
        return task

    def by_job(self, job_id: str) -> Task | None:
        """The task of a job, or None for a job submitted some other way (cached either way: the record is written
        before the job's first status)."""
        with self._lock:
            if job_id in self._by_job:
                return self._by_job[job_id]
        task = self._read(job_key(job_id))
        self._remember(self._by_job, job_id, task)
        return task
