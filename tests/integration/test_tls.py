"""TLS to the object store: a second MinIO serves https with a self-signed certificate (a private CA, as in a cluster).

The client trusts it through ``SMARTCROP_S3_CA_BUNDLE`` and refuses it without. Kafka TLS and SASL are librdkafka
settings passed through ``SMARTCROP_KAFKA_CONF_*``; their mapping is checked here too.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import subprocess
import time
import urllib.request
from dataclasses import replace

import pytest

from smartcrop import stack
from smartcrop.core.ports import StorageError
from smartcrop.runtime.config import Settings
from smartcrop.runtime.kafka import client_config
from smartcrop.runtime.storage import S3Storage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

USER, PASSWORD = "tls-test-user", "tls-test-password-123"


def self_signed(directory) -> None:
    """``public.crt`` and ``private.key`` for 127.0.0.1, as MinIO's ``--certs-dir`` expects them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smartcrop test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (directory / "public.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "private.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))


@pytest.fixture(scope="module")
def tls_minio(stack_env, tmp_path_factory):
    binary = stack.StackConfig.from_env().minio_binary
    assert binary.is_file(), f"MinIO binary missing: {binary} (smartcrop stack up installs it)"
    root = tmp_path_factory.mktemp("tls-minio")
    (root / "certs").mkdir()
    self_signed(root / "certs")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(root / "minio.log", "wb")
    process = subprocess.Popen([str(binary), "server", str(root / "data"), "--address", f"127.0.0.1:{port}",
                                "--certs-dir", str(root / "certs")], stdout=log, stderr=subprocess.STDOUT,
                               env={"MINIO_ROOT_USER": USER, "MINIO_ROOT_PASSWORD": PASSWORD, "MINIO_BROWSER": "off",
                                    "MINIO_UPDATE": "off", "HOME": str(root)})
    import ssl

    context = ssl.create_default_context(cafile=str(root / "certs" / "public.crt"))
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/minio/health/live", context=context, timeout=2):
                break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, (root / "minio.log").read_text()[-2000:]
            time.sleep(0.3)
    yield f"https://127.0.0.1:{port}", str(root / "certs" / "public.crt")
    process.terminate()
    process.wait(30)


def test_an_https_store_is_trusted_through_the_ca_bundle_and_refused_without(tls_minio):
    endpoint, ca_bundle = tls_minio
    settings = replace(Settings(), s3_endpoint=endpoint, s3_access_key=USER, s3_secret_key=PASSWORD,
                       s3_bucket="tls-check", s3_ca_bundle=ca_bundle)
    store = S3Storage.from_settings(settings)
    store.ensure_bucket()
    uri = store.put_bytes("probe.txt", b"over TLS")
    assert store.get_bytes(uri) == b"over TLS"

    untrusting = S3Storage.from_settings(replace(settings, s3_ca_bundle=""))
    with pytest.raises(StorageError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.get_bytes(uri)


def test_a_missing_ca_bundle_is_a_clear_error():
    with pytest.raises(StorageError, match="^SMARTCROP_S3_CA_BUNDLE: no such file: /no/such/ca.pem$"):
        S3Storage("https://127.0.0.1:1", "a", "b", "bucket", ca_bundle="/no/such/ca.pem")


def test_kafka_tls_and_sasl_settings_pass_through_to_librdkafka(monkeypatch):
    for key, value in {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-512", "SASL_USERNAME": "svc",
                       "SASL_PASSWORD": "kafka-pw", "SSL_CA_LOCATION": "/etc/ssl/kafka-ca.pem"}.items():
        monkeypatch.setenv(f"SMARTCROP_KAFKA_CONF_{key}", value)
    settings = Settings.from_env()
    config = client_config(settings, {"reconnect.backoff.ms": 250, "sasl.mechanism": "PLAIN"}, **{"group.id": "g"})
    config.pop("logger")  # the client's own log lines go into ours
    assert callable(config.pop("error_cb"))  # and so do its errors, fatal ones kept for the next call
    assert config == {
        "bootstrap.servers": settings.kafka_bootstrap, "reconnect.backoff.ms": 250, "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "svc", "sasl.password": "kafka-pw",
        "ssl.ca.location": "/etc/ssl/kafka-ca.pem", "group.id": "g"}, "the environment overrides our defaults"
    assert "kafka-pw" not in repr(settings)
