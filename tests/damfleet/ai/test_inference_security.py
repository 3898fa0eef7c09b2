"""The inference service secured (issue 12): TLS, client certificates and a bearer token, on a real server.

Certificates are generated per test session with ``cryptography`` (a CA, a server certificate for
127.0.0.1/localhost, a client certificate). Models are not loaded: the checks happen before any.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from damfleet.ai.backend import MediaSource
from damfleet.ai.remote import RemoteInference
from damfleet.ai.server import SERVICE_NAME, start_server
from damfleet.errors import ConfigurationError, TransientError
from damfleet.settings import Settings
from tests.conftest import make_settings

TOKEN = "s3cret-token-for-tests"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(folder: Path, stem: str, subject: str, *, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
           server: bool = False, client: bool = False,
           dns_names: tuple[str, ...] = ("localhost",)) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [*(x509.DNSName(n) for n in dns_names), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    if client:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{stem}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.crt, server.crt/key (signed by ca), client.crt/key (signed by ca), other-ca.crt (unrelated)."""
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue(folder, "ca", "damfleet test CA", issuer=None)
    _issue(folder, "server", "inference", issuer=ca, server=True)
    _issue(folder, "client", "ai-worker", issuer=ca, client=True)
    _issue(folder, "other-ca", "someone else's CA", issuer=None)
    return folder


@pytest_asyncio.fixture
async def serve(tmp_path: Path):
    """Start a service with extra settings; yields a function returning its port."""
    servers = []

    async def start(**env: str) -> int:
        settings = make_settings(tmp_path, DAMFLEET_AI_INFERENCE_SHARED_DIR=str(tmp_path / "shared"), **env)
        server, port, _ = await start_server(settings, listen="127.0.0.1:0", preload=False)
        servers.append(server)
        return port

    yield start
    for server in servers:
        await server.stop(None)


def _client(tmp_path: Path, port: int, *, refused: bool = False, **env: str) -> RemoteInference:
    """A client; one expected to be ``refused`` at the handshake gives up sooner (it never connects)."""
    connect = "2" if refused else "15"
    settings: Settings = make_settings(tmp_path / "client", DAMFLEET_AI_INFERENCE_CONNECT_SECONDS=connect, **env)
    return RemoteInference(f"127.0.0.1:{port}", settings.ai)


def _server_env(pki: Path, *, client_certs: bool = False) -> dict[str, str]:
    env = {"DAMFLEET_AI_INFERENCE_TLS_CERT_PATH": str(pki / "server.crt"),
           "DAMFLEET_AI_INFERENCE_TLS_KEY_PATH": str(pki / "server.key"),
           "DAMFLEET_AI_INFERENCE_TOKEN": TOKEN}
    if client_certs:
        env["DAMFLEET_AI_INFERENCE_TLS_CLIENT_CA_PATH"] = str(pki / "ca.crt")
    return env


async def _health(client: RemoteInference):
    try:
        return await client.health()
    finally:
        await client.aclose()


async def test_tls_and_the_right_token_are_served(serve, pki: Path, tmp_path: Path) -> None:
    port = await serve(**_server_env(pki))
    health = await _health(_client(tmp_path, port, DAMFLEET_AI_INFERENCE_TLS_CA_PATH=str(pki / "ca.crt"),
                                   DAMFLEET_AI_INFERENCE_TOKEN=TOKEN))
    assert {m.name for m in health.models} >= {"whisper", "yolo"}


@pytest.mark.parametrize(("token", "reason"), [("", "no bearer token"), ("guess", "wrong bearer token")])
async def test_missing_or_wrong_token_is_refused_permanently(serve, pki: Path, tmp_path: Path, token: str,
                                                            reason: str) -> None:
    port = await serve(**_server_env(pki))
    client = _client(tmp_path, port, DAMFLEET_AI_INFERENCE_TLS_CA_PATH=str(pki / "ca.crt"),
                     DAMFLEET_AI_INFERENCE_TOKEN=token)
    with pytest.raises(ConfigurationError, match=f"{reason}.*DAMFLEET_AI_INFERENCE_TOKEN") as info:
        await _health(client)
    assert not info.value.retryable
    # The streaming method is guarded too, before any model is touched.
    with pytest.raises(ConfigurationError, match=reason):
        try:
            await client.transcribe(MediaSource(uri="file:///nowhere.wav", kind="audio"))
        finally:
            await client.aclose()


async def test_a_client_without_the_ca_cannot_connect(serve, pki: Path, tmp_path: Path) -> None:
    port = await serve(**_server_env(pki))
    for env in ({"DAMFLEET_AI_INFERENCE_TLS": "true"},                                   # system roots only
                {"DAMFLEET_AI_INFERENCE_TLS_CA_PATH": str(pki / "other-ca.crt")}):       # the wrong CA
        with pytest.raises(TransientError, match="unreachable over TLS"):
            await _health(_client(tmp_path, port, refused=True, DAMFLEET_AI_INFERENCE_TOKEN=TOKEN, **env))
    with pytest.raises(TransientError, match="unreachable"):  # plaintext to a TLS port
        await _health(_client(tmp_path, port, refused=True, DAMFLEET_AI_INFERENCE_TOKEN=TOKEN))


async def test_client_certificates_when_the_service_requires_them(serve, pki: Path, tmp_path: Path) -> None:
    port = await serve(**_server_env(pki, client_certs=True))
    trusted = {"DAMFLEET_AI_INFERENCE_TLS_CA_PATH": str(pki / "ca.crt"), "DAMFLEET_AI_INFERENCE_TOKEN": TOKEN}
    with pytest.raises(TransientError, match="unreachable"):
        await _health(_client(tmp_path, port, refused=True, **trusted))
    health = await _health(_client(tmp_path, port, **trusted,
                                   DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH=str(pki / "client.crt"),
                                   DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH=str(pki / "client.key")))
    assert health.models


async def test_standard_health_checks_need_no_token(serve, pki: Path) -> None:
    """Kubernetes' gRPC probes carry no token: grpc.health.v1 stays open, over TLS."""
    port = await serve(**_server_env(pki))
    credentials = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes())
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_unreadable_tls_material_is_a_clear_configuration_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DAMFLEET_AI_INFERENCE_TLS_CERT_PATH=str(tmp_path / "absent.crt"),
                             DAMFLEET_AI_INFERENCE_TLS_KEY_PATH=str(tmp_path / "absent.key"))
    with pytest.raises(ConfigurationError, match="DAMFLEET_AI_INFERENCE_TLS_CERT_PATH"):
        await start_server(settings, listen="127.0.0.1:0", preload=False)
