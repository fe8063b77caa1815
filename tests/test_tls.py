"""Dedicated KMS gateway trust: only the intermediate CA is configured (as users and we ship it).

The chain is shaped like the real one (root → intermediate → server, the server sending leaf +
intermediate). A tiny loopback HTTPS server answers GetSecretValue; the real KMS SDK calls it.
"""

from __future__ import annotations

import datetime
import http.server
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.provider.static_ak import StaticAKCredentialsProvider
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hostile_upstream import serving
from installed import SERVICES

from ack_secrets_provider.auth import _sts
from ack_secrets_provider.backends.kms.backend import KmsBackend, bundled_ca
from ack_secrets_provider.core.cloud.endpoints import Endpoint, EndpointOverrides
from ack_secrets_provider.core.cloud.tls import partial_chain_context
from ack_secrets_provider.core.errors import FailedPrecondition, ProviderError
from ack_secrets_provider.core.mount.spec import ObjectSpec
from ack_secrets_provider.core.observability.metrics import ProviderMetrics
from ack_secrets_provider.core.plugins.backend import FetchContext
from ack_secrets_provider.core.plugins.credentials import Identity, IdentityKey
from ack_secrets_provider.core.resilience.deadline import Deadline
from ack_secrets_provider.core.settings import ProviderSettings

GATEWAY = "kst-test0001.cryptoservice.kms.aliyuncs.com"


def _cert(subject: str, issuer_key: ec.EllipticCurvePrivateKey, key: ec.EllipticCurvePrivateKey,
          issuer: str, *, ca: bool, san_ip: str | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                          content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, encipher_only=False,
                          decipher_only=False), critical=True)
    if san_ip:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("chain")
    root_key, inter_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _cert("Test KMS Root CA", root_key, root_key, "Test KMS Root CA", ca=True)
    inter = _cert("Test KMS cn-test Second CA", root_key, inter_key, "Test KMS Root CA", ca=True)
    leaf = _cert("127.0.0.1", inter_key, leaf_key, "Test KMS cn-test Second CA", ca=False,
                 san_ip="127.0.0.1")
    # issued by the same intermediate, for another address than the one the gateway is dialled at
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_host = _cert("127.0.0.2", inter_key, other_key, "Test KMS cn-test Second CA", ca=False,
                       san_ip="127.0.0.2")
    pem = serialization.Encoding.PEM
    paths = {
        "root": out / "root.pem", "intermediate": out / "intermediate.pem",
        "server_chain": out / "server-chain.pem", "server_key": out / "server-key.pem",
        "other_host_chain": out / "other-host-chain.pem", "other_host_key": out / "other-key.pem",
    }
    paths["root"].write_bytes(root.public_bytes(pem))
    paths["intermediate"].write_bytes(inter.public_bytes(pem))
    paths["server_chain"].write_bytes(leaf.public_bytes(pem) + inter.public_bytes(pem))
    paths["other_host_chain"].write_bytes(other_host.public_bytes(pem) + inter.public_bytes(pem))
    for name, private in (("server_key", leaf_key), ("other_host_key", other_key)):
        paths[name].write_bytes(private.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.server.requests += 1  # type: ignore[attr-defined]
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        body = json.dumps({
            "RequestId": "req-1", "SecretName": "gw-secret", "SecretData": "from-gateway",
            "SecretDataType": "text", "VersionId": "v-gw", "VersionStages": {"VersionStage": []},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _https(server: http.server.HTTPServer, cert_chain: Path,
           key: Path) -> http.server.HTTPServer:
    """`server` answering over TLS with `cert_chain`, its requests counted."""
    server.requests = 0  # type: ignore[attr-defined]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_chain, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


@pytest.fixture()
def gateway(chain: dict[str, Path]) -> Iterator[http.server.HTTPServer]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    with serving(_https(server, chain["server_chain"], chain["server_key"])):
        yield server


def _identity() -> Identity:
    provider = StaticAKCredentialsProvider(access_key_id="LTAItlsTest", access_key_secret="s3cr3t")
    return Identity(key=IdentityKey(mode="static-ak", access_key_id="LTAItlsTest"),
                    credential=CredentialClient(provider=provider))


def _fetch(settings: ProviderSettings, region: str = "cn-test") -> bytes:
    backend = KmsBackend(settings)
    spec = ObjectSpec(index=0, object_name="gw-secret", object_type="kms", file_name="gw",
                      fields={"kmsEndpoint": GATEWAY})
    backend.validate(spec)
    endpoint = backend.endpoint(spec, region)
    ctx = FetchContext(_identity(), Deadline.after(10), endpoint, settings, region=region)
    value = backend.fetch(spec, ctx)
    assert value.version == "v-gw"
    return value.data


class _Connections(http.server.ThreadingHTTPServer):
    """Counts the TCP connections it accepts."""

    connections = 0

    def get_request(self) -> tuple[socket.socket, object]:
        self.connections += 1
        return super().get_request()


class _KeepAliveHandler(_Handler):
    protocol_version = "HTTP/1.1"  # keeps the connection open, as KMS does


def test_a_gateway_connection_and_its_trust_are_set_up_once(chain: dict[str, Path]) -> None:
    """Five fetches, each through a new backend (so a new SDK client), make one TLS connection:
    the trust context is built once per CA set and the session's keep-alive pool reuses the
    connection (a context rebuilt per call would be a new pool, a new connection and handshake)."""
    server = _Connections(("127.0.0.1", 0), _KeepAliveHandler)
    with serving(_https(server, chain["server_chain"], chain["server_key"])):
        settings = _settings(server, kms_ca_file=str(chain["intermediate"]))
        for _ in range(5):
            assert _fetch(settings) == b"from-gateway"
    assert server.requests == 5  # type: ignore[attr-defined]
    assert server.connections == 1


def _settings(server: http.server.HTTPServer, **options: str) -> ProviderSettings:
    """Settings dialling the gateway on loopback, with the KMS backend's flags in `options`."""
    port = server.server_address[1]
    overrides = EndpointOverrides.parse([f"{GATEWAY}=https://127.0.0.1:{port}"], SERVICES)
    return ProviderSettings(endpoint_overrides=overrides, backend_options=options)


def _handshake(context: ssl.SSLContext, server: http.server.HTTPServer) -> None:
    with context.wrap_socket(socket.create_connection(server.server_address, timeout=5),
                             server_hostname="127.0.0.1"):
        pass


def test_plain_openssl_refuses_an_intermediate_as_anchor(
    chain: dict[str, Path], gateway: http.server.HTTPServer
) -> None:
    """Why the partial-chain flag is needed: the default context rejects this configuration."""
    strict = ssl.create_default_context(cafile=str(chain["intermediate"]))
    partial = partial_chain_context([chain["intermediate"]])
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(strict, gateway)
    _handshake(partial, gateway)  # the same anchor, with the flag: the gateway is trusted
    assert partial.verify_mode == ssl.CERT_REQUIRED and partial.check_hostname


def test_a_certificate_of_the_pinned_ca_for_another_host_is_refused(
    chain: dict[str, Path],
) -> None:
    """The pin is the CA *and* the host name: a certificate the configured intermediate issued
    for another address than the one dialled (another gateway's, say) is refused, unread."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    with (serving(_https(server, chain["other_host_chain"], chain["other_host_key"])),
          pytest.raises(FailedPrecondition, match="TLS verification") as info):
        _fetch(_settings(server, kms_ca_file=str(chain["intermediate"])))
    assert "does not match the host name" in info.value.message
    assert not info.value.retryable
    assert server.requests == 0  # type: ignore[attr-defined]


def test_sdk_trusts_gateway_with_only_the_intermediate(
    chain: dict[str, Path], gateway: http.server.HTTPServer
) -> None:
    data = _fetch(_settings(gateway, kms_ca_file=str(chain["intermediate"])))
    assert data == b"from-gateway"
    assert gateway.requests == 1  # type: ignore[attr-defined]


def test_ca_dir_with_region_file(
    chain: dict[str, Path], gateway: http.server.HTTPServer, tmp_path: Path
) -> None:
    (tmp_path / "cn-test.pem").write_bytes(chain["intermediate"].read_bytes())
    assert _fetch(_settings(gateway, kms_ca_dir=str(tmp_path))) == b"from-gateway"


def test_untrusted_gateway_fails_closed_without_retry_hint(
    gateway: http.server.HTTPServer, tmp_path: Path
) -> None:
    """The bundled cn-hangzhou CA does not vouch for the test chain: refused, not trusted."""
    with pytest.raises(FailedPrecondition) as info:
        _fetch(_settings(gateway), region="cn-hangzhou")
    assert "TLS verification" in info.value.message and "--kms-ca-file" in info.value.message
    assert not info.value.retryable
    assert gateway.requests == 0  # type: ignore[attr-defined]


def test_a_ca_file_that_cannot_be_loaded_is_a_precondition_naming_file_and_flag(
    chain: dict[str, Path], gateway: http.server.HTTPServer, tmp_path: Path
) -> None:
    """A configured CA file that is missing or holds no PEM certificate (a kmsCaBundle
    ConfigMap key with the wrong content, an --sts-ca-file replaced later) is the provider's
    configuration, not an outage: FAILED_PRECONDITION naming the object, the file, the flag and
    the Helm value, never retried. It read "could not reach KMS ... retried while the deadline
    allows" (the SDK turns every OSError into a connection failure), which the driver retried
    forever. Nothing is sent; once the file is fixed, the next mount uses it (no restart)."""
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate\n")
    missing = tmp_path / "missing.pem"
    for options, ca_file, reason in (
        ({"kms_ca_file": str(missing)}, missing, "No such file or directory"),
        ({"kms_ca_file": str(not_pem)}, not_pem, "NO_CERTIFICATE_OR_CRL_FOUND"),
        ({"kms_ca_dir": str(tmp_path)}, not_pem, "NO_CERTIFICATE_OR_CRL_FOUND"),
    ):
        with pytest.raises(FailedPrecondition) as info:
            _fetch(_settings(gateway, **options))
        message = info.value.message
        assert message.startswith(f"object #1 (kms 'gw-secret') at endpoint {GATEWAY}")
        assert f"the CA file {ca_file} trusted for this endpoint cannot be loaded ({reason})" \
            in message
        assert "--kms-ca-file / --kms-ca-dir (Helm: kmsCaBundle" in message
        assert not info.value.retryable
    sts = Endpoint(service="sts", host="sts.aliyuncs.com",
                   address=f"127.0.0.1:{gateway.server_address[1]}", overridden=True)
    client = _sts.make_client(ProviderSettings(sts_ca_file=str(not_pem)), sts)
    with pytest.raises(FailedPrecondition) as info:
        _sts.assume_role_with_oidc(
            client, role_arn="acs:ram::1:role/r", oidc_provider_arn="acs:ram::1:oidc/p",
            token="t", session="s", duration=3600, timeout=5, what="provider RRSA", hint="",
            metrics=ProviderMetrics(process_collectors=False))
    assert f"provider RRSA: the CA file {not_pem} trusted for this endpoint cannot be loaded " \
        "(NO_CERTIFICATE_OR_CRL_FOUND); an https STS endpoint override is trusted with the CA " \
        "bundle of --sts-ca-file" in info.value.message
    assert not info.value.retryable
    assert gateway.requests == 0  # type: ignore[attr-defined]
    not_pem.write_bytes(chain["intermediate"].read_bytes())
    assert _fetch(_settings(gateway, kms_ca_file=str(not_pem))) == b"from-gateway"


def test_bundled_ca_used_by_default_for_the_region() -> None:
    backend = KmsBackend(ProviderSettings())
    spec = ObjectSpec(index=0, object_name="s", object_type="kms", file_name="s",
                      fields={"kmsEndpoint": GATEWAY})
    endpoint = backend.endpoint(spec, "cn-shanghai")
    ctx = FetchContext(_identity(), Deadline.after(5), endpoint, ProviderSettings(),
                       region="cn-shanghai")
    assert backend.ca_files(spec, ctx) == (str(bundled_ca("cn-shanghai")),)
    shipped = x509.load_pem_x509_certificate(Path(backend.ca_files(spec, ctx)[0]).read_bytes())
    # the region's own CA, and an intermediate (issued by the KMS root), as documented
    common_name = shipped.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert common_name == "Private KMS cn-shanghai Second CA"
    assert shipped.issuer != shipped.subject
    assert shipped.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(FailedPrecondition, match="no bundled KMS instance CA"):
        other = FetchContext(_identity(), Deadline.after(5), endpoint, ProviderSettings(),
                             region="xx-nowhere-1")
        backend.ca_files(spec, other)


def test_shared_gateway_uses_default_trust() -> None:
    backend = KmsBackend(ProviderSettings(backend_options={"kms_ca_file": "/nonexistent.pem"}))
    spec = ObjectSpec(index=0, object_name="s", object_type="kms", file_name="s")
    endpoint = backend.endpoint(spec, "cn-hangzhou")
    ctx = FetchContext(_identity(), Deadline.after(5), endpoint, ProviderSettings(),
                       region="cn-hangzhou")
    assert endpoint.host == "kms-vpc.cn-hangzhou.aliyuncs.com"
    assert backend.ca_files(spec, ctx) == ()


@pytest.fixture()
def foreign_gateway(tmp_path: Path) -> Iterator[tuple[http.server.HTTPServer, Path]]:
    """A gateway whose certificate comes from another CA ("a public root"), not the instance CA."""
    key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _cert("Some Public Root CA", key, key, "Some Public Root CA", ca=True)
    leaf = _cert("127.0.0.1", key, leaf_key, "Some Public Root CA", ca=False, san_ip="127.0.0.1")
    pem = serialization.Encoding.PEM
    bundle, chain_file, key_file = (tmp_path / n for n in ("public.pem", "chain.pem", "key.pem"))
    bundle.write_bytes(root.public_bytes(pem))
    chain_file.write_bytes(leaf.public_bytes(pem))
    key_file.write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    with serving(_https(server, chain_file, key_file)):
        yield server, bundle


def test_a_gateway_trusts_its_instance_ca_exclusively(
    chain: dict[str, Path], foreign_gateway: tuple[http.server.HTTPServer, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A certificate chained to a CA in the process's default trust is refused at a gateway.

    The foreign CA is put everywhere a process's default trust comes from: SSL_CERT_FILE (the
    system store as OpenSSL reads it), REQUESTS_CA_BUNDLE, and requests' default bundle (certifi,
    or the system bundle in distribution-packaged requests). The control shows that trust is
    real: plain requests and a default SSL context accept the server.
    """
    import requests
    import requests.adapters

    server, public_bundle = foreign_gateway
    monkeypatch.setenv("SSL_CERT_FILE", str(public_bundle))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(public_bundle))
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(public_bundle))
    url = f"https://127.0.0.1:{server.server_address[1]}/"
    assert requests.post(url, data=b"{}", timeout=5).status_code == 200  # the control
    _handshake(ssl.create_default_context(), server)
    before = server.requests  # type: ignore[attr-defined]

    with pytest.raises(FailedPrecondition, match="TLS verification"):
        _fetch(_settings(server, kms_ca_file=str(chain["intermediate"])))
    # STS with --sts-ca-file: the same exclusive trust
    port = server.server_address[1]
    sts = Endpoint(service="sts", host="sts.aliyuncs.com", address=f"127.0.0.1:{port}",
                   overridden=True)
    client = _sts.make_client(ProviderSettings(sts_ca_file=str(chain["intermediate"])), sts)
    with pytest.raises(ProviderError, match="TLS verification"):
        _sts.assume_role_with_oidc(
            client, role_arn="acs:ram::1:role/r", oidc_provider_arn="acs:ram::1:oidc/p",
            token="t", session="s", duration=3600, timeout=5, what="sts", hint="",
            metrics=ProviderMetrics(process_collectors=False))
    assert server.requests == before  # type: ignore[attr-defined]


def test_a_ca_dir_that_cannot_be_listed_is_a_precondition_naming_directory_and_flag(
    gateway: http.server.HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--kms-ca-dir is checked readable at start; a directory whose permissions change later (a
    remounted volume) is the provider's configuration, not an internal error: FAILED_PRECONDITION
    naming the object, the directory, the flag and the Helm value, never retried, nothing sent.
    (The suite runs as root, which no permission stops: listing is made to fail as it would.)"""
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> Iterator[Path]:
        if self == tmp_path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(FailedPrecondition) as info:
        _fetch(_settings(gateway, kms_ca_dir=str(tmp_path)))
    assert info.value.message == (
        f"object #1 (kms 'gw-secret'): the KMS CA directory '{tmp_path}' (--kms-ca-dir) cannot "
        "be listed (Permission denied); make it readable by the provider (Helm: kmsCaBundle), "
        f"or give the CA of the KMS instance behind {GATEWAY} with --kms-ca-file")
    assert not info.value.retryable
    assert gateway.requests == 0  # type: ignore[attr-defined]
