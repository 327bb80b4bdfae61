"""Rotating entry codes: what a holder of a ``rotating`` event shows, and how anyone holding the
event's gate keys checks it without the server (docs/gate.md).

A code reads ``TB1.<key id>.<ticket ref>.<token>.<signature>.<step>.<otp>``:

- ``token`` names the ticket's current barcode without revealing it (26 base32 characters of
  SHA-256 of the barcode). A new holder gets a new barcode, hence a new token; the old one is in
  the feed's voids.
- ``signature`` is the event key's Ed25519 signature of ``event|ref|token``: only the server,
  which keeps the private key, makes tokens that verify, so a made-up ticket never passes.
- ``step`` is ``unix time // period_seconds`` and ``otp`` the RFC 6238-style one-time code of
  that step (HMAC-SHA256, dynamic truncation, 8 digits) under the ticket's step key,
  ``HMAC-SHA256(step secret, token)``. The holder's page gets its ticket's step key; scanners get
  the event's step secret and derive any ticket's.

A code is live for its step and one step either side (the clock tolerance); any other step of a
genuine code is *stale*: a screenshot is worth nothing one period later.

A ``static`` event's ticket shows a still *signed code*, ``TB1.<key id>.<ticket ref>.<token>.
<signature>``: the same token, signed by the same event key over ``TB1S|event|ref|token`` (another
text than a rotating code's, so a live code stripped of its step is no static code). A scanner
with the event's public keys checks it offline like a live code, with no time step.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

PREFIX = "TB1"
DIGITS = 8
TOLERANCE_STEPS = 1
MAX_CODE = 256
_CODE = re.compile(
    r"TB1\.(?P<key>[a-z0-9]{8})\.(?P<ref>[!-~]{1,64})\.(?P<token>[A-Z2-7]{26})"
    r"\.(?P<signature>[A-Za-z0-9_-]{86})\.(?P<step>\d{1,12})\.(?P<otp>\d{8})")
_STATIC = re.compile(
    r"TB1\.(?P<key>[a-z0-9]{8})\.(?P<ref>[!-~]{1,64})\.(?P<token>[A-Z2-7]{26})"
    r"\.(?P<signature>[A-Za-z0-9_-]{86})")


@dataclasses.dataclass(frozen=True, slots=True)
class KeyMaterial:
    """One event key: its id, the Ed25519 private key's 32 bytes, and the step secret."""

    key_id: str
    private_key: bytes
    public_key: bytes
    step_secret: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class RotatingCode:
    """A parsed code, not yet checked."""

    key_id: str
    ticket_ref: str
    token: str
    signature: bytes
    step: int
    otp: str


@dataclasses.dataclass(frozen=True, slots=True)
class StaticCode:
    """A parsed static signed code, not yet checked."""

    key_id: str
    ticket_ref: str
    token: str
    signature: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SignedTicket:
    """What a holder's page needs to draw the live code of one ticket."""

    key_id: str
    ticket_ref: str
    token: str
    signature: str
    step_key: str  # base64url
    period_seconds: int

    def code_at(self, step: int) -> str:
        otp = one_time_code(unb64(self.step_key), step)
        return ".".join((PREFIX, self.key_id, self.ticket_ref, self.token, self.signature,
                         str(step), otp))


def new_key() -> KeyMaterial:
    """A fresh event key: a random id, an Ed25519 key pair, and a 256-bit step secret."""
    private = Ed25519PrivateKey.generate()
    return KeyMaterial(
        key_id=secrets.token_hex(4),
        private_key=private.private_bytes_raw(),
        public_key=private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
        step_secret=secrets.token_bytes(32),
    )


def token_of(barcode: str) -> str:
    """The public name of a barcode: it cannot be turned back into the barcode."""
    digest = hashlib.sha256(b"ticketbot-entry:" + barcode.encode()).digest()[:16]
    return base64.b32encode(digest).decode().rstrip("=")


def signed_text(event_id: str, ticket_ref: str, token: str) -> bytes:
    return f"{PREFIX}|{event_id}|{ticket_ref}|{token}".encode()


def static_signed_text(event_id: str, ticket_ref: str, token: str) -> bytes:
    return f"{PREFIX}S|{event_id}|{ticket_ref}|{token}".encode()


def static_code(key_id: str, private_key: bytes, event_id: str, ticket_ref: str,
                barcode: str) -> str:
    """The still code a static event's ticket shows: its token signed by the event key.
    Ed25519 signs deterministically, so a ticket's code is the same each time it is drawn."""
    token = token_of(barcode)
    signature = Ed25519PrivateKey.from_private_bytes(private_key).sign(
        static_signed_text(event_id, ticket_ref, token))
    return ".".join((PREFIX, key_id, ticket_ref, token, b64(signature)))


def parse_static(text: str) -> StaticCode | None:
    """The parts of a static signed code, or None if ``text`` is not one."""
    match = _STATIC.fullmatch(text)
    if match is None:
        return None
    return StaticCode(match["key"], match["ref"], match["token"], unb64(match["signature"]))


def static_genuine(code: StaticCode, event_id: str, public_key: bytes) -> bool:
    """Whether the event's key signed the static code's token."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            code.signature, static_signed_text(event_id, code.ticket_ref, code.token))
    except InvalidSignature:
        return False
    return True


def step_key(step_secret: bytes, token: str) -> bytes:
    return hmac.new(step_secret, token.encode(), hashlib.sha256).digest()


def one_time_code(key: bytes, step: int) -> str:
    """RFC 4226's HOTP over the time step (RFC 6238), with SHA-256 and 8 digits."""
    digest = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha256).digest()
    offset = digest[-1] & 0x0F
    value = int.from_bytes(digest[offset:offset + 4], "big") & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def step_at(unix_seconds: float, period_seconds: int) -> int:
    return int(unix_seconds // period_seconds)


def sign_ticket(key: KeyMaterial, event_id: str, ticket_ref: str, barcode: str,
                period_seconds: int) -> SignedTicket:
    """What the holder of the ticket whose current barcode is ``barcode`` is given."""
    token = token_of(barcode)
    private = Ed25519PrivateKey.from_private_bytes(key.private_key)
    signature = private.sign(signed_text(event_id, ticket_ref, token))
    return SignedTicket(key.key_id, ticket_ref, token, b64(signature),
                        b64(step_key(key.step_secret, token)), period_seconds)


def looks_rotating(text: str) -> bool:
    return text.startswith(PREFIX + ".")


def parse(text: str) -> RotatingCode | None:
    """The code's parts, or None if it is not a well-formed rotating code."""
    match = _CODE.fullmatch(text)
    if match is None:
        return None
    return RotatingCode(match["key"], match["ref"], match["token"], unb64(match["signature"]),
                        int(match["step"]), match["otp"])


def genuine(code: RotatingCode, event_id: str, public_key: bytes, step_secret: bytes) -> bool:
    """Whether the server signed the code's token and its one-time code fits its step."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            code.signature, signed_text(event_id, code.ticket_ref, code.token))
    except InvalidSignature:
        return False
    expected = one_time_code(step_key(step_secret, code.token), code.step)
    return hmac.compare_digest(expected, code.otp)


def live(code: RotatingCode, unix_seconds: float, period_seconds: int) -> bool:
    """Whether the code's step is the step of ``unix_seconds`` or one either side."""
    return abs(code.step - step_at(unix_seconds, period_seconds)) <= TOLERANCE_STEPS


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


