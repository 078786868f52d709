"""Reading a job's status from the gateway's view (``GET /v1/jobs/{job_id}``): the fast path of ``smartcrop
status``, a lookup instead of a read of the status topic."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

import requests


class GatewayUnavailable(Exception):
    """The gateway could not answer (unreachable, rebuilding its view, over the rate limit): read the topic instead."""


class GatewayRefused(Exception):
    """The gateway does not know the API key."""


@dataclass(frozen=True)
class GatewayClient:
    url: str
    api_key: str
    timeout: tuple[float, float] = (5.0, 10.0)

    def job_status(self, job_id: str) -> dict | None:
        """The job's status as ``JobStatus.to_json`` gives it; None when there is no such job for this key."""
        try:
            answer = requests.get(f"{self.url.rstrip('/')}/v1/jobs/{quote(job_id, safe='')}", timeout=self.timeout,
                                  headers={"Authorization": f"Bearer {self.api_key}"}, allow_redirects=False)
        except requests.RequestException as exc:
            raise GatewayUnavailable(f"{type(exc).__name__}: {exc}") from None
        if answer.status_code == 404:
            if _error_of(answer) == "not_found":
                return None
            raise GatewayUnavailable("the gateway has no job status endpoint")  # an older gateway
        if answer.status_code == 401:
            raise GatewayRefused("the gateway does not accept SMARTCROP_API_KEY")
        if answer.status_code != 200:
            raise GatewayUnavailable(f"HTTP {answer.status_code}")
        try:
            document = answer.json()
        except ValueError:
            raise GatewayUnavailable("the answer is not JSON") from None
        if not isinstance(document, dict) or document.get("job_id") != job_id:
            raise GatewayUnavailable("the answer is not a job status")
        return document


def _error_of(answer: requests.Response) -> object:
    try:
        document = answer.json()
    except ValueError:
        return None
    return document.get("error") if isinstance(document, dict) else None
