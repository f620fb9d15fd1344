"""Access to a real loopback server: TLS, mutual TLS and bearer tokens.

Certificates are generated here: a CA, a server certificate for 127.0.0.1, a
client certificate from the same CA, and a client certificate from another CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_support import ServerThread, server_config, serving_on

from router_model.errors import ConfigError
from serving import TierwiseClient
from serving.access import TlsFiles, TokenAuthenticator, channel_credentials
from serving.results import TierwiseRpcError

TOKENS = {"billing": "b" * 24, "search": "s-token-0123456789abcdef"}


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, rogue_ca_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _issue("tierwise test CA", ca_key, None, ca=True)
    rogue_ca = _issue("someone else's CA", rogue_ca_key, None, ca=True)
    ca_path, _ = _write(directory, "ca", ca, ca_key)
    keys = {stem: ec.generate_private_key(ec.SECP256R1()) for stem in ("server", "client", "rogue")}
    server = _issue("127.0.0.1", keys["server"], (ca.subject, ca_key), server=True)
    client = _issue("billing", keys["client"], (ca.subject, ca_key))
    rogue = _issue("billing", keys["rogue"], (rogue_ca.subject, rogue_ca_key))
    return Pki(
        ca_path,
        *_write(directory, "server", server, keys["server"]),
        *_write(directory, "client", client, keys["client"]),
        *_write(directory, "rogue", rogue, keys["rogue"]),
    )


def _serve(model: Path, **access: object) -> Iterator[ServerThread]:
    with serving_on(server_config(model, **access)) as thread:
        yield thread


@pytest.fixture(scope="module")
def tls_server(logreg_router_dir: Path, pki: Pki) -> Iterator[ServerThread]:
    yield from _serve(logreg_router_dir, tls=TlsFiles(pki.server_cert, pki.server_key))


@pytest.fixture(scope="module")
def mtls_server(logreg_router_dir: Path, pki: Pki) -> Iterator[ServerThread]:
    tls = TlsFiles(pki.server_cert, pki.server_key, client_ca=pki.ca)
    yield from _serve(logreg_router_dir, tls=tls)


@pytest.fixture(scope="module")
def token_server(logreg_router_dir: Path) -> Iterator[ServerThread]:
    yield from _serve(logreg_router_dir, tokens=TokenAuthenticator(TOKENS))


def _predict(target: str, **client: object) -> str:
    with TierwiseClient(target, retries=0, timeout=10, **client) as c:  # type: ignore[arg-type]
        return c.predict("What is the capital of France?").tier


def test_tls_serves_a_client_that_trusts_the_ca(tls_server: ServerThread, pki: Pki) -> None:
    assert _predict(tls_server.target, credentials=channel_credentials(pki.ca))


def test_tls_refuses_plaintext_and_untrusting_clients(tls_server: ServerThread, pki: Pki) -> None:
    with pytest.raises(TierwiseRpcError) as plaintext:
        _predict(tls_server.target)
    assert plaintext.value.code == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(TierwiseRpcError) as untrusting:  # trusts the system roots only
        _predict(tls_server.target, credentials=channel_credentials())
    assert untrusting.value.code == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate_from_the_ca(
    mtls_server: ServerThread, pki: Pki
) -> None:
    own = channel_credentials(pki.ca, pki.client_cert, pki.client_key)
    assert _predict(mtls_server.target, credentials=own)
    for credentials in (
        channel_credentials(pki.ca),  # no client certificate
        channel_credentials(pki.ca, pki.rogue_cert, pki.rogue_key),  # another CA's
    ):
        with pytest.raises(TierwiseRpcError) as refused:
            _predict(mtls_server.target, credentials=credentials)
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE


def test_tokens_are_required_except_for_health(token_server: ServerThread) -> None:
    for token in TOKENS.values():
        assert _predict(token_server.target, token=token)
    for wrong in (None, "b" * 23, "b" * 25, TOKENS["search"] + "x"):
        with pytest.raises(TierwiseRpcError) as refused:
            _predict(token_server.target, token=wrong)
        assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    labels = {
        "grpc_service": "tierwise.v1.Router",
        "grpc_method": "Predict",
        "grpc_code": "UNAUTHENTICATED",
    }
    # The server counts a call after its status has gone out: wait for the last one.
    deadline = time.monotonic() + 10
    while token_server.metric("tierwise_grpc_server_errors_total", labels) < 4:
        assert time.monotonic() < deadline, "refusals were not counted"
        time.sleep(0.01)
    with grpc.insecure_channel(token_server.target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_streaming_services_need_a_token_too(token_server: ServerThread) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    request = reflection_pb2.ServerReflectionRequest(list_services="")
    with grpc.insecure_channel(token_server.target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        metadata = (("authorization", "Bearer " + TOKENS["billing"]),)
        answers = list(stub.ServerReflectionInfo(iter([request]), timeout=5, metadata=metadata))
        assert answers and answers[0].list_services_response.service


def test_tokens_come_from_a_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("# clients\nbilling: " + TOKENS["billing"] + "\n\n")
    env = {"TIERWISE_TOKENS": "search:" + TOKENS["search"]}
    auth = TokenAuthenticator.from_sources(path, env)
    assert auth is not None
    assert auth.client_of([("authorization", "Bearer " + TOKENS["search"])]) == "search"
    assert auth.client_of([("authorization", "Bearer " + TOKENS["billing"])]) == "billing"
    assert TokenAuthenticator.from_sources(None, {}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("billing " + "x" * 20, "entry 1 is not 'name:token'"),
        ("a:" + "x" * 20 + "\na:" + "y" * 20, "entry 2 repeats client 'a'"),
        ("short:abc", "at least 16"),
    ],
)
def test_bad_token_files_are_refused_with_their_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        TokenAuthenticator.from_sources(path, {})


def test_unreadable_tls_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "server.key"
    with pytest.raises(ConfigError, match=r"server\.key: cannot read the TLS key"):
        TlsFiles(tmp_path / "server.crt", missing).server_credentials()
