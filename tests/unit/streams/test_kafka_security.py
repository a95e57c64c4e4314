"""Kafka security settings reach every client through one place (streams/kafka.py).

These check what the factory hands aiokafka (no broker with TLS or SASL runs here);
the clients themselves are aiokafka's, built with exactly these arguments.
"""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from runstream.services.errors import ConfigurationError
from runstream.services.settings import Settings
from runstream.streams import kafka


def _settings(**env: str) -> Settings:
    return Settings.from_env({f"RUNSTREAM_{k.upper()}": v for k, v in env.items()})


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=runstream-test", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_plaintext_has_no_tls_and_no_sasl() -> None:
    conf = kafka.common(_settings())
    assert conf["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in conf and "sasl_mechanism" not in conf


async def test_sasl_ssl_reaches_producer_consumer_and_admin() -> None:
    s = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                  kafka_sasl_username="svc", kafka_sasl_password="pw",
                  bootstrap_servers="kafka.example:9093")
    conf = kafka.common(s)
    assert isinstance(conf["ssl_context"], ssl.SSLContext)
    assert conf["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert (conf["sasl_mechanism"], conf["sasl_plain_username"],
            conf["sasl_plain_password"]) == ("SCRAM-SHA-512", "svc", "pw")
    # Every role's client is built with them (not started: nothing listens there).
    producer = kafka.producer(s, client_id="p")
    consumer = kafka.consumer(s, "t", client_id="c")
    admin = kafka.admin(s)
    for client in (producer.client, consumer._client, admin._client):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "svc"
        assert isinstance(client._ssl_context, ssl.SSLContext)


def test_client_certificate_for_mtls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    s = _settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(cert),
                  kafka_ssl_certfile=str(cert), kafka_ssl_keyfile=str(key))
    assert isinstance(kafka.common(s)["ssl_context"], ssl.SSLContext)
    # A key that is not the certificate's is refused at start-up, with the settings named.
    (tmp_path / "other").mkdir()
    _, other_key = _self_signed(tmp_path / "other")
    bad = _settings(kafka_security_protocol="SSL", kafka_ssl_certfile=str(cert),
                    kafka_ssl_keyfile=str(other_key))
    with pytest.raises(ConfigurationError, match="RUNSTREAM_KAFKA_SSL_KEYFILE"):
        kafka.common(bad)


def test_a_key_without_its_certificate_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="KAFKA_SSL_CERTFILE"):
        _settings(kafka_ssl_keyfile="/k.pem")
