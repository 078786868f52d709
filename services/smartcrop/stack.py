"""``smartcrop stack``: a real local Kafka (KRaft) and MinIO without Docker, plus the four services.

Apache Kafka comes as the official jars from Maven Central and runs on the JVM; MinIO is built by its documented
community install (``go install``). Binaries, data, logs and pid files live in the cache directory
(``SMARTCROP_HOME``, default ``~/.cache/smartcrop``), outside any checkout, so CI and later runs reuse them.
Everything binds to 127.0.0.1. ``up`` starts only what is not running, so it also revives a process that died.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from smartcrop.core.home import cache_home
from smartcrop.core.stage import STAGE_NAMES

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.25.3"
SLF4J_VERSION = "2.0.17"
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"  # the module proxy's latest (2026-02-12); pinned for repeatability
SERVICES = STAGE_NAMES
COMPONENTS = ("kafka", "minio") + SERVICES + ("gateway",)
LOCAL_KEY_NAME = "local"


class StackError(RuntimeError):
    pass


@dataclass(frozen=True)
class StackConfig:
    home: Path
    kafka_port: int
    controller_port: int
    minio_port: int
    console_port: int
    metrics_base_port: int
    gateway_port: int = 19180

    @classmethod
    def from_env(cls) -> "StackConfig":
        def port(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        return cls(home=cache_home(), kafka_port=port("SMARTCROP_STACK_KAFKA_PORT", 19092),
                   controller_port=port("SMARTCROP_STACK_CONTROLLER_PORT", 19093),
                   minio_port=port("SMARTCROP_STACK_MINIO_PORT", 19000),
                   console_port=port("SMARTCROP_STACK_CONSOLE_PORT", 19001),
                   metrics_base_port=port("SMARTCROP_STACK_METRICS_PORT", 19100),
                   gateway_port=port("SMARTCROP_STACK_GATEWAY_PORT", 19180))

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def run(self) -> Path:
        return self.home / "run"

    @property
    def kafka_libs(self) -> Path:
        return self.home / "kafka" / f"libs-{KAFKA_VERSION}"

    @property
    def kafka_data(self) -> Path:
        return self.home / "kafka" / "data"

    @property
    def minio_binary(self) -> Path:
        return self.home / "minio" / MINIO_VERSION / "minio"

    @property
    def minio_data(self) -> Path:
        return self.home / "minio" / "data"

    @property
    def credentials_file(self) -> Path:
        return self.home / "credentials.json"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        return self.run / f"{component}.pid"


# ---------------------------------------------------------------------------------------------------------------------
# credentials


def stack_credentials(config: StackConfig | None = None, *, create: bool = False) -> dict[str, str] | None:
    """MinIO root credentials and the event-secret key of the local stack, made once and kept (mode 600)."""
    config = config or StackConfig.from_env()
    path = config.credentials_file
    if path.exists():
        return json.loads(path.read_text())
    if not create:
        return None
    from cryptography.fernet import Fernet

    values = {"s3_access_key": "smartcrop-" + secrets.token_hex(4), "s3_secret_key": secrets.token_urlsafe(24),
              "secret_key": Fernet.generate_key().decode()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(values, out)
    return values


def local_api_key(secret_key: str) -> str:
    """The local stack's gateway API key: derived from its event-secret key, so it is stable and never stored."""
    import hashlib
    import hmac

    return hmac.new(secret_key.encode(), b"smartcrop-local-gateway-api-key", hashlib.sha256).hexdigest()[:48]


def stack_env(config: StackConfig | None = None) -> dict[str, str]:
    from smartcrop.gateway.keys import OPERATOR, derived_webhook_secret, hash_key

    config = config or StackConfig.from_env()
    creds = stack_credentials(config, create=True)
    api_key = local_api_key(creds["secret_key"])
    webhook_secret = derived_webhook_secret(creds["secret_key"], LOCAL_KEY_NAME)
    return {"SMARTCROP_KAFKA_BOOTSTRAP": f"127.0.0.1:{config.kafka_port}",
            "SMARTCROP_S3_ENDPOINT": f"http://127.0.0.1:{config.minio_port}",
            "SMARTCROP_S3_ACCESS_KEY": creds["s3_access_key"],
            "SMARTCROP_S3_SECRET_KEY": creds["s3_secret_key"],
            "SMARTCROP_SECRET_KEY": creds["secret_key"],
            "SMARTCROP_GATEWAY_URL": f"http://127.0.0.1:{config.gateway_port}",
            "SMARTCROP_API_KEY": api_key,
            "SMARTCROP_WEBHOOK_SECRET": webhook_secret,
            # the local key is the stack's operator: `smartcrop status` reads every job through the gateway
            "SMARTCROP_GATEWAY_API_KEYS": f"{LOCAL_KEY_NAME}:{hash_key(api_key)}:{webhook_secret}:{OPERATOR}"}


# ---------------------------------------------------------------------------------------------------------------------
# processes


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _pid_alive(pid: int, marker: str) -> bool:
    """The pid runs and is still our process (its command line has our marker), not a recycled pid."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    except FileNotFoundError:
        return False
    return marker in cmdline


def _marker(component: str) -> str:
    return {"kafka": "kafka.Kafka", "minio": "minio server"}.get(component.split("-")[0], f"serve {component}")


def component_pid(config: StackConfig, component: str) -> int | None:
    pid = _read_pid(config.pid_file(component))
    if pid is not None and _pid_alive(pid, _marker(component)):
        return pid
    return None


def _spawn(config: StackConfig, component: str, argv: list[str], env: dict[str, str] | None = None,
           cwd: Path | None = None) -> subprocess.Popen:
    config.logs.mkdir(parents=True, exist_ok=True)
    config.run.mkdir(parents=True, exist_ok=True)
    log = open(config.log_file(component), "ab")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env={**os.environ, **(env or {})}, cwd=cwd, start_new_session=True)
    log.close()
    config.pid_file(component).write_text(str(process.pid))
    return process


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait(what: str, check, timeout: float, config: StackConfig, component: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if process.poll() is not None:
            raise StackError(f"{what} exited during start-up; see {config.log_file(component)}:\n"
                             + _tail(config.log_file(component)))
        time.sleep(0.3)
    raise StackError(f"{what} did not become ready in {timeout:.0f}s; see {config.log_file(component)}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return ""


# ---------------------------------------------------------------------------------------------------------------------
# Kafka


_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.smartcrop.local</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>{log4j}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>{slf4j}</version></dependency>
  </dependencies>
</project>
"""

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/><Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="kafka.request.logger" level="WARN"/><Logger name="state.change.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="out"/></Root>
  </Loggers>
</Configuration>
"""


def _kafka_properties(config: StackConfig) -> str:
    return "\n".join([
        "process.roles=broker,controller", "node.id=1",
        f"controller.quorum.voters=1@127.0.0.1:{config.controller_port}",
        f"listeners=PLAINTEXT://127.0.0.1:{config.kafka_port},CONTROLLER://127.0.0.1:{config.controller_port}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{config.kafka_port}",
        "controller.listener.names=CONTROLLER", "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        f"log.dirs={config.kafka_data}", "num.partitions=6", "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1", "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1", "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=168", "log.cleaner.backoff.ms=5000", ""])


def install_kafka(config: StackConfig, echo=print) -> Path:
    libs = config.kafka_libs
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed to fetch Apache Kafka from Maven Central")
    work = config.home / "kafka" / "maven"
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(_KAFKA_POM.format(kafka=KAFKA_VERSION, log4j=LOG4J_VERSION, slf4j=SLF4J_VERSION))
    echo(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central ...")
    shutil.rmtree(libs, ignore_errors=True)
    result = subprocess.run([mvn, "-B", "-q", "-f", str(work / "pom.xml"), "dependency:copy-dependencies",
                             f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"Maven could not fetch Kafka:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
    (libs / ".complete").write_text(KAFKA_VERSION)
    return libs


def _kafka_java(config: StackConfig, main: str, *args: str) -> list[str]:
    java = shutil.which("java") or "java"
    return [java, "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={config.home / 'kafka' / 'log4j2.xml'}",
            "-cp", f"{config.kafka_libs}/*", main, *args]


def start_kafka(config: StackConfig, echo=print) -> int:
    pid = component_pid(config, "kafka")
    if pid is not None:
        return pid
    install_kafka(config, echo)
    properties = config.home / "kafka" / "server.properties"
    properties.write_text(_kafka_properties(config))
    (config.home / "kafka" / "log4j2.xml").write_text(_LOG4J2)
    if not (config.kafka_data / "meta.properties").exists():
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(_kafka_java(config, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                                            "-c", str(properties)), capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{result.stdout}\n{result.stderr}")
    if _port_open(config.kafka_port):
        raise StackError(f"port {config.kafka_port} is taken by another process; set SMARTCROP_STACK_KAFKA_PORT")
    echo(f"starting Kafka on 127.0.0.1:{config.kafka_port} (log: {config.log_file('kafka')})")
    process = _spawn(config, "kafka", _kafka_java(config, "kafka.Kafka", str(properties)))
    _wait("Kafka", lambda: _port_open(config.kafka_port), 90, config, "kafka", process)
    return process.pid


# ---------------------------------------------------------------------------------------------------------------------
# MinIO


def install_minio(config: StackConfig, echo=print) -> Path:
    binary = config.minio_binary
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        raise StackError("Go is needed to build MinIO (go install github.com/minio/minio)")
    echo(f"building MinIO {MINIO_VERSION} with go install (a few minutes, once) ...")
    binary.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([go, "install", f"{MINIO_MODULE}@{MINIO_VERSION}"], capture_output=True, text=True,
                            env={**os.environ, "GOBIN": str(binary.parent), "CGO_ENABLED": "0"})
    if result.returncode != 0 or not binary.exists():
        raise StackError(f"go install {MINIO_MODULE} failed:\n{result.stderr[-3000:]}")
    return binary


def start_minio(config: StackConfig, echo=print) -> int:
    pid = component_pid(config, "minio")
    if pid is not None:
        return pid
    binary = install_minio(config, echo)
    creds = stack_credentials(config, create=True)
    config.minio_data.mkdir(parents=True, exist_ok=True)
    if _port_open(config.minio_port):
        raise StackError(f"port {config.minio_port} is taken by another process; set SMARTCROP_STACK_MINIO_PORT")
    echo(f"starting MinIO on 127.0.0.1:{config.minio_port} (log: {config.log_file('minio')})")
    process = _spawn(config, "minio", [str(binary), "server", str(config.minio_data),
                                   "--address", f"127.0.0.1:{config.minio_port}",
                                   "--console-address", f"127.0.0.1:{config.console_port}", "--quiet"],
                 env={"MINIO_ROOT_USER": creds["s3_access_key"], "MINIO_ROOT_PASSWORD": creds["s3_secret_key"],
                      "MINIO_BROWSER": "off", "MINIO_UPDATE": "off"})

    def healthy() -> bool:
        try:
            url = f"http://127.0.0.1:{config.minio_port}/minio/health/live"
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    _wait("MinIO", healthy, 60, config, "minio", process)
    return process.pid


# ---------------------------------------------------------------------------------------------------------------------
# services


def parse_replicas(text: str | None) -> dict[str, int]:
    replicas = {name: 1 for name in SERVICES}
    for item in filter(None, (text or "").split(",")):
        name, _, count = item.partition("=")
        if name.strip() not in SERVICES or not count.strip().isdigit() or int(count) < 1:
            raise StackError(f"--replicas expects stage=N,... with stages {', '.join(SERVICES)}; got {item!r}")
        replicas[name.strip()] = int(count)
    return replicas


def _instances(name: str, count: int) -> list[str]:
    return [name] + [f"{name}-{i}" for i in range(1, count)]


def start_service(config: StackConfig, name: str, instance: str, port: int, echo=print) -> int:
    pid = component_pid(config, instance)
    if pid is not None:
        return pid
    env = {**stack_env(config), "SMARTCROP_METRICS_PORT": str(port), "SMARTCROP_INSTANCE_ID": instance,
           "PYTHONUNBUFFERED": "1"}
    if name == "gateway":
        echo(f"starting gateway on http://127.0.0.1:{port} (metrics: /metrics, log: {config.log_file(instance)})")
        env.update(SMARTCROP_GATEWAY_HOST="127.0.0.1", SMARTCROP_GATEWAY_PORT=str(port),
                   SMARTCROP_GATEWAY_PUBLIC_URL=f"http://127.0.0.1:{port}")
    else:
        echo(f"starting {instance} (metrics: http://127.0.0.1:{port}/metrics, log: {config.log_file(instance)})")
    process = _spawn(config, instance, [sys.executable, "-m", "smartcrop", "serve", name], env=env)
    deadline = time.monotonic() + 5  # until it has exec'd, so status reports it
    while time.monotonic() < deadline and process.poll() is None and component_pid(config, instance) is None:
        time.sleep(0.05)
    return process.pid


def service_ports(config: StackConfig, replicas: dict[str, int]) -> dict[str, int]:
    ports = {}
    for offset, name in enumerate(SERVICES):
        for index, instance in enumerate(_instances(name, replicas.get(name, 1))):
            ports[instance] = config.metrics_base_port + 1 + offset + 10 * index
    return ports


# ---------------------------------------------------------------------------------------------------------------------
# the commands


def up(*, with_services: bool = False, replicas: dict[str, int] | None = None, echo=print,
       config: StackConfig | None = None) -> dict[str, int]:
    config = config or StackConfig.from_env()
    config.home.mkdir(parents=True, exist_ok=True)
    pids = {"kafka": start_kafka(config, echo), "minio": start_minio(config, echo)}
    from smartcrop.runtime.config import Settings
    from smartcrop.runtime.kafka import ensure_topics, wait_for_broker
    from smartcrop.runtime.storage import S3Storage

    env = stack_env(config)
    settings = Settings(kafka_bootstrap=env["SMARTCROP_KAFKA_BOOTSTRAP"], s3_endpoint=env["SMARTCROP_S3_ENDPOINT"],
                        s3_access_key=env["SMARTCROP_S3_ACCESS_KEY"], s3_secret_key=env["SMARTCROP_S3_SECRET_KEY"],
                        topic_prefix=os.environ.get("SMARTCROP_TOPIC_PREFIX", ""))
    wait_for_broker(settings, timeout=60)
    created = ensure_topics(settings)
    if created:
        echo(f"created topics: {', '.join(created)}")
    S3Storage.from_settings(settings).ensure_bucket()
    if with_services:
        replicas = replicas or {name: 1 for name in SERVICES}
        for instance, port in service_ports(config, replicas).items():
            pids[instance] = start_service(config, instance.split("-")[0], instance, port, echo)
        pids["gateway"] = start_service(config, "gateway", "gateway", config.gateway_port, echo)
    return pids


def stop_component(config: StackConfig, component: str, *, echo=print, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; the pid file goes either way."""
    pid = component_pid(config, component)
    if pid is not None:
        echo(f"stopping {component} (pid {pid})")
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and component_pid(config, component) is not None:
            time.sleep(0.2)
        if component_pid(config, component) is not None:
            os.killpg(pid, signal.SIGKILL)
    config.pid_file(component).unlink(missing_ok=True)


def down(*, echo=print, config: StackConfig | None = None, timeout: float = 20.0) -> None:
    config = config or StackConfig.from_env()
    if not config.run.exists():
        return
    components = sorted((p.stem for p in config.run.glob("*.pid")),
                        key=lambda c: (c.split("-")[0] in ("kafka", "minio"), c))  # services first
    for component in components:
        stop_component(config, component, echo=echo, timeout=timeout)


def status(config: StackConfig | None = None) -> dict[str, dict]:
    config = config or StackConfig.from_env()
    result = {}
    extra = sorted(p.stem for p in config.run.glob("*.pid")) if config.run.exists() else []
    for component in list(COMPONENTS) + [c for c in extra if c not in COMPONENTS]:
        pid = component_pid(config, component)
        entry = {"up": pid is not None, "pid": pid, "log": str(config.log_file(component))}
        result[component] = entry
    return result
