"""The command-line tools the deployment tests run, installed on first use from package registries.

- ``kustomize``: built with ``go install`` from the Go module proxy (the same code as ``kubectl kustomize``);
- ``promtool`` and ``prometheus``: Debian's ``prometheus`` package, fetched with ``apt-get download`` and unpacked
  with ``dpkg -x`` (no service is installed or started);
- the Compose specification's JSON schema: from the ``compose-spec/compose-go`` Go module, which ships it.

Everything lands in ``SMARTCROP_HOME/tools`` (default ``~/.cache/smartcrop/tools``), outside the checkout, so CI and
later runs reuse it. A tool that cannot be installed raises ``ToolError`` with the reason: the tests fail, never skip.
``python -m tests.tools`` installs all of them ahead of time.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from smartcrop.core.home import cache_home

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.8.1"  # the newest release that builds with Go 1.26
COMPOSE_GO_MODULE = "github.com/compose-spec/compose-go/v2"
COMPOSE_GO_VERSION = "v2.16.2"
PROMETHEUS_DEB = "prometheus"


class ToolError(RuntimeError):
    pass


def tools_home() -> Path:
    return cache_home() / "tools"


@contextlib.contextmanager
def _install_lock():
    """One installer at a time, across processes (parallel test runs share the cache)."""
    home = tools_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield home
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(command: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{what}: {' '.join(command)} could not run: {exc}") from exc
    if result.returncode != 0:
        raise ToolError(f"{what}: {' '.join(command)} failed:\n{(result.stdout + result.stderr)[-3000:]}")
    return result


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ToolError("Go is needed to install the deployment test tools (kustomize, the Compose schema)")
    return go


def kustomize() -> Path:
    """The kustomize binary, built once with ``go install``."""
    with _install_lock() as home:
        target = home / f"kustomize-{KUSTOMIZE_VERSION}" / "kustomize"
        if target.is_file():
            return target
        staging = Path(tempfile.mkdtemp(dir=home, prefix=".kustomize-"))
        try:
            _run([_go(), "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"], "installing kustomize",
                 env={**os.environ, "GOBIN": str(staging), "CGO_ENABLED": "0"})
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / "kustomize", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def compose_schema() -> Path:
    """The Compose specification's JSON schema (``schema/compose-spec.json`` of compose-go)."""
    with _install_lock() as home:
        target = home / f"compose-spec-{COMPOSE_GO_VERSION}.json"
        if target.is_file():
            return target
        with tempfile.TemporaryDirectory(dir=home) as scratch:  # outside any go.mod, so no module is touched
            result = _run([_go(), "mod", "download", "-json", f"{COMPOSE_GO_MODULE}@{COMPOSE_GO_VERSION}"],
                          "fetching the Compose schema", cwd=scratch)
        source = Path(json.loads(result.stdout)["Dir"]) / "schema" / "compose-spec.json"
        if not source.is_file():
            raise ToolError(f"{COMPOSE_GO_MODULE}@{COMPOSE_GO_VERSION} has no {source.name}")
        shutil.copyfile(source, target)
        return target


def _prometheus_dir(home: Path) -> Path | None:
    found = sorted(path.parent.parent.parent for path in home.glob("prometheus-*/usr/bin/promtool"))
    return found[-1] if found else None


def prometheus_bin() -> Path:
    """The folder holding Debian's ``prometheus`` and ``promtool``, unpacked into the cache (no root service)."""
    with _install_lock() as home:
        unpacked = _prometheus_dir(home)
        if unpacked is None:
            if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
                raise ToolError("apt-get and dpkg are needed to fetch Debian's prometheus package")
            with tempfile.TemporaryDirectory(dir=home) as scratch:
                os.chmod(scratch, 0o755)  # apt's sandbox user may write here
                try:
                    _run(["apt-get", "download", PROMETHEUS_DEB], "downloading prometheus", cwd=scratch)
                except ToolError:  # stale or missing package lists: refresh once, then try again
                    _run(["apt-get", "update"], "refreshing the package lists")
                    _run(["apt-get", "download", PROMETHEUS_DEB], "downloading prometheus", cwd=scratch)
                (deb,) = Path(scratch).glob("prometheus_*.deb")
                version = deb.name.split("_")[1].replace(":", "-")
                staging = Path(scratch) / "root"
                _run(["dpkg-deb", "-x", str(deb), str(staging)], "unpacking prometheus")
                unpacked = home / f"prometheus-{version}"
                os.replace(staging, unpacked)
        return unpacked / "usr" / "bin"


def promtool() -> Path:
    return prometheus_bin() / "promtool"


def prometheus() -> Path:
    return prometheus_bin() / "prometheus"


def main() -> None:
    for name, install in (("kustomize", kustomize), ("promtool", promtool), ("prometheus", prometheus),
                          ("compose schema", compose_schema)):
        print(f"{name}: {install()}")


if __name__ == "__main__":
    main()
