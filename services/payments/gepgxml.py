"""GePG version 1 XML: the messages, their SHA1withRSA signatures, hardened parsing.

Shared by the payments service's adapter (``adapters.GepgV1Gateway``, the service
provider's side) and the dev stack's simulator (``deploy.gepgsim``, GePG's side). See
docs/payments.md and GEPG.md for the sources.

Every message is ``<Gepg>`` + one inner element + ``<gepgSignature>``: the signature is
SHA1withRSA (PKCS#1 v1.5, standard Base64) over the UTF-8 bytes of the inner element
exactly as sent (no XML declaration, no namespaces, no canonicalisation). A receiver cuts
the raw text from ``<innerTag`` to the last ``</innerTag>`` and verifies those bytes; so
this module writes compact XML (no whitespace between tags) and verifies what it cut,
never a re-serialisation.

Parsing goes through ``defusedxml``: a DTD, an entity declaration (the "billion laughs"
expansion bomb) or an external entity is refused before anything is read.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element
from xml.sax.saxutils import escape

import defusedxml.ElementTree as SafeET
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from defusedxml import DefusedXmlException

from shared.timeutil import EAT

# Status codes (GEPG.md §3).
SUCCESS = "7101"
FAILURE = "7201"
BILL_NOT_FOUND = "7204"
DUPLICATE_PAYMENT = "7207"
BILL_EXPIRED = "7213"
DUPLICATE_BILL = "7226"
INVALID_REQUEST = "7242"
CANCELLED = "7283"
INVALID_SIGNATURE = "7303"
NO_PAYMENT = "7324"

PAY_OPTIONS = {"full": "1", "partial": "2", "exact": "3"}
PAY_OPTION_NAMES = {v: k for k, v in PAY_OPTIONS.items()}
MAX_MESSAGE_BYTES = 1024 * 1024
KEY_ALIAS = b"gepgclient"


class MessageRefused(ValueError):
    """Not a GePG message this side accepts (malformed, a DTD or entities, wrong shape)."""


class BadSignature(ValueError):
    """The signature does not verify against the sender's certificate."""


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeyPair:
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def load_pkcs12(path: str | Path, password: str | None) -> KeyPair:
    """The private key and certificate of a PKCS#12 (.pfx/.p12) file."""
    data = Path(path).read_bytes()
    key, cert, _extra = pkcs12.load_key_and_certificates(
        data, password.encode() if password else None
    )
    if not isinstance(key, rsa.RSAPrivateKey) or cert is None:
        raise ValueError(f"{path}: no RSA private key with its certificate")
    return KeyPair(key, cert)


def load_certificate(path: str | Path, password: str | None = None) -> x509.Certificate:
    """The peer's certificate: from a PKCS#12 file (its certificate, or the first of the
    extra certificates, as GePG's public .pfx has), or a PEM/DER .cer/.crt file."""
    data = Path(path).read_bytes()
    if str(path).endswith((".p12", ".pfx")):
        _key, cert, extra = pkcs12.load_key_and_certificates(
            data, password.encode() if password else None
        )
        cert = cert or (extra[0] if extra else None)
        if cert is None:
            raise ValueError(f"{path}: no certificate")
        return cert
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data)
    return x509.load_der_x509_certificate(data)


def generate_dev_keys(
    directory: str | Path, name: str, *, password: str | None = None
) -> tuple[Path, Path]:
    """A dev keypair on first use: ``<name>.p12`` (key + self-signed certificate, alias
    gepgclient) and ``<name>.crt`` (the certificate alone, PEM). Kept if present."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    p12, crt = directory / f"{name}.p12", directory / f"{name}.crt"
    if p12.exists() and crt.exists():
        return p12, crt
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Mkutano dev {name}")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    enc = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    tmp = directory / f".{name}.p12.tmp"
    tmp.write_bytes(pkcs12.serialize_key_and_certificates(KEY_ALIAS, key, cert, None, enc))
    tmp.chmod(0o600)
    tmp.replace(p12)
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return p12, crt


# --------------------------------------------------------------------------- signatures


def sign(data: bytes, key: rsa.RSAPrivateKey) -> str:
    """SHA1withRSA (PKCS#1 v1.5) of ``data``, standard Base64."""
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), hashes.SHA1())).decode()


def verify(data: bytes, signature_b64: str, cert: x509.Certificate) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, TypeError):
        return False
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        return False
    try:
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA1())
    except InvalidSignature:
        return False
    return True


def envelope(inner: str, key: rsa.RSAPrivateKey, *, signature: str | None = None) -> bytes:
    """``<Gepg>inner<gepgSignature>…</gepgSignature></Gepg>``, signed over ``inner``'s
    exact bytes (``signature`` replaces it: the simulator's bad-signature control)."""
    raw = inner.encode()
    sig = signature if signature is not None else sign(raw, key)
    return b"<Gepg>" + raw + b"<gepgSignature>" + sig.encode() + b"</gepgSignature></Gepg>"


@dataclass(frozen=True)
class Message:
    """A received message: its inner element's tag, parsed tree and exact bytes."""

    tag: str
    element: Element
    raw: bytes
    signature: str

    def verified_by(self, cert: x509.Certificate) -> bool:
        return verify(self.raw, self.signature, cert)


def read_message(body: bytes) -> Message:
    """Parse a ``<Gepg>`` envelope safely and cut out the signed bytes.

    Raises ``MessageRefused`` for anything else (too large, not well-formed, a DTD,
    entities, no inner element or no signature)."""
    if len(body) > MAX_MESSAGE_BYTES:
        raise MessageRefused("message too large")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise MessageRefused(f"refused: {type(exc).__name__}") from None
    except (SafeET.ParseError, ValueError):
        raise MessageRefused("not well-formed XML") from None
    if root.tag != "Gepg":
        raise MessageRefused("root element is not Gepg")
    children = list(root)
    sig_el = first(root, "gepgSignature")
    inner = [c for c in children if c.tag != "gepgSignature"]
    if len(inner) != 1 or sig_el is None or not (sig_el.text or "").strip():
        raise MessageRefused("expected one inner element and a gepgSignature")
    tag = inner[0].tag
    try:
        text = body.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise MessageRefused("not UTF-8") from None
    start = re.search(rf"<{re.escape(tag)}[\s>/]", text)
    end = text.rfind(f"</{tag}>")
    if start is None or end < 0:
        raise MessageRefused("inner element not found in the text")
    raw = text[start.start() : end + len(tag) + 3].encode()
    return Message(tag, inner[0], raw, (sig_el.text or "").strip())


# --------------------------------------------------------------------------- writing


def el(tag: str, *children: str, text: Any = None) -> str:
    """One element, compact: children are already-written XML strings."""
    if text is not None:
        return f"<{tag}>{escape(str(text))}</{tag}>"
    return f"<{tag}>{''.join(children)}</{tag}>"


def amount(tzs: int) -> str:
    """Integer TZS as GePG writes amounts (``7885.00``)."""
    return f"{int(tzs)}.00"


def local_time(dt: datetime) -> str:
    """GePG's ``yyyy-MM-ddTHH:mm:ss``: Tanzanian local time, no zone."""
    return dt.astimezone(EAT).strftime("%Y-%m-%dT%H:%M:%S")


def ack(tag: str, code: str, *, field: str = "TrxStsCode") -> str:
    return el(tag, el(field, text=code))


# --------------------------------------------------------------------------- reading


def first(element: Element, path: str) -> Element | None:
    """The first sub-element at ``path`` (ElementPath), or None."""
    return next(element.iterfind(path), None)


def text_of(element: Element, path: str, default: str | None = None) -> str | None:
    found = first(element, path)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def required(element: Element, path: str) -> str:
    value = text_of(element, path)
    if not value:
        raise MessageRefused(f"{path} missing")
    return value


def parse_amount(value: str | None) -> int:
    """A GePG amount as integer TZS; refuses fractions of a shilling and non-numbers."""
    try:
        d = Decimal(value or "")
    except InvalidOperation:
        raise MessageRefused(f"not an amount: {value!r}") from None
    if d != d.to_integral_value() or d < 0:
        raise MessageRefused(f"not a whole TZS amount: {value!r}")
    return int(d)


def parse_local_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise MessageRefused(f"not a time: {value!r}") from None
    return dt.replace(tzinfo=EAT) if dt.tzinfo is None else dt


def first_code(value: str | None) -> str:
    """The meaningful code of a ``;``-joined list (7201 dropped when another is there)."""
    codes = [c.strip() for c in (value or "").split(";") if c.strip()]
    rest = [c for c in codes if c != FAILURE]
    return (rest or codes or [FAILURE])[0]


def parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise MessageRefused(f"not a date: {value!r}") from None
