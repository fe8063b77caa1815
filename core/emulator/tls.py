"""A throw-away test CA chain shaped like a dedicated KMS instance's: root → intermediate → server.

The server presents `server-chain.pem` (leaf + intermediate), as the real gateway does, so a
client that trusts only `root.pem` verifies it, and a client configured with only the
intermediate (what the official provider ships per region) needs partial-chain trust. Keys are
EC P-256 (fast to generate) and are written 0600; nothing here is a real secret.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the generated chain."""

    directory: Path
    root: Path               # root CA certificate (trust anchor)
    intermediate: Path       # intermediate CA certificate
    server_cert: Path        # leaf only
    server_chain: Path       # leaf + intermediate (what the server presents)
    server_key: Path         # leaf private key


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ack-secrets-provider emulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool, path_length: int | None,
          san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        builder = builder.add_extension(x509.SubjectAlternativeName(san or []), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def generate_chain(directory: str | os.PathLike[str],
                   extra_dns_names: tuple[str, ...] = ()) -> TlsFiles:
    """Write root.pem, intermediate.pem, server.pem, server-chain.pem, server-key.pem."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name("Emulator Test Root CA")
    root = _cert("Emulator Test Root CA", root_key, root_name, root_key, ca=True, path_length=1)
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _cert("Emulator Test Intermediate CA", inter_key, root.subject, root_key, ca=True,
                  path_length=0)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                   x509.DNSName("localhost")]
    san += [x509.DNSName(name) for name in extra_dns_names]
    leaf = _cert("localhost", leaf_key, inter.subject, inter_key, ca=False, path_length=None,
                 san=san)
    files = TlsFiles(out, out / "root.pem", out / "intermediate.pem", out / "server.pem",
                     out / "server-chain.pem", out / "server-key.pem")
    files.root.write_bytes(_pem(root))
    files.intermediate.write_bytes(_pem(inter))
    files.server_cert.write_bytes(_pem(leaf))
    files.server_chain.write_bytes(_pem(leaf) + _pem(inter))
    key_bytes = leaf_key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())
    fd = os.open(files.server_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_bytes)
    return files

