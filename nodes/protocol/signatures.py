"""ed25519 keys and signatures of devices (``cryptography``, and libsodium through PyNaCl when it
is installed).

A device registers a 32-byte raw public key in base64 and signs each update body with its private
key; the signature travels base64 in ``X-Client-Signature``. Ed25519 signs the message itself (no
pre-hash), so ``verify`` needs the whole body as one buffer: ``verify_file`` maps the spooled file
into memory instead of reading it, so the body is paged in from the file rather than copied.

Nearly all of a verification's time over a large body is one hash, ``SHA-512(R || A || body)``
(RFC 8032 section 5.1.7: R is the signature's first half, A the public key). Both are known before
the body arrives, so the server hashes the body as it is received (``prehash``) and then only
checks the equation ``[S]B = R + [k]A`` with ``k`` that hash (``verify_prehashed``, libsodium's
point arithmetic, a fraction of a millisecond). It accepts exactly when OpenSSL's verification
(``cryptography``) does: the same canonical ``S < L`` check, the same cofactorless equation, the
recomputed R compared as bytes with the signature's. Whatever it does not accept (including keys
libsodium refuses, such as points of small order) is left to ``verify`` over the whole body, so the
fast path can only ever save time, never change an answer.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import mmap
from typing import BinaryIO

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

try:  # optional: without it every signature is checked by cryptography over the whole body
    from nacl import bindings as _sodium
    from nacl.exceptions import CryptoError as _SodiumError
except ImportError:  # pragma: no cover - exercised by the tests with the fast path switched off
    _sodium = None
    _SodiumError = Exception

KEY_BYTES = 32
SIGNATURE_BYTES = 64
# The order of ed25519's base point: a signature's S must be below it (RFC 8032 5.1.7 step 1).
GROUP_ORDER = 2 ** 252 + 27742317777372353535851937790883648493


def _b64decode(value: str) -> bytes | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        padded = (value + "=" * (-len(value) % 4)).encode("ascii")
    except UnicodeEncodeError:
        return None
    altchars = b"-_" if (b"-" in padded or b"_" in padded) else None
    try:
        return base64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_public_key(value: str) -> str | None:
    """The key in canonical base64 if ``value`` is a valid ed25519 public key (32 raw bytes in
    base64, standard or URL-safe alphabet), else None."""
    raw = _b64decode(value) if isinstance(value, str) else None
    if raw is None or len(raw) != KEY_BYTES:
        return None
    try:
        Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None
    return base64.b64encode(raw).decode("ascii")


def raw_public_key(public_key_b64: str) -> bytes | None:
    """The 32 raw bytes of a stored (base64) public key, or None."""
    raw = _b64decode(public_key_b64) if isinstance(public_key_b64, str) else None
    return raw if raw is not None and len(raw) == KEY_BYTES else None


def parse_signature(value: str) -> bytes | None:
    raw = _b64decode(value) if isinstance(value, str) else None
    return raw if raw is not None and len(raw) == SIGNATURE_BYTES else None


def verify(public_key_b64: str, signature: bytes, message) -> bool:
    """Whether ``signature`` is the key's signature of ``message`` (any bytes-like object)."""
    try:
        Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64)).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_file(public_key_b64: str, signature: bytes, fh: BinaryIO) -> bool:
    """``verify`` over the whole content of a real file, mapped rather than read into memory."""
    fh.flush()
    fh.seek(0, 2)
    if fh.tell() == 0:
        return verify(public_key_b64, signature, b"")
    with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        return verify(public_key_b64, signature, mapped)


def prehash(public_key: bytes, signature: bytes):
    """A SHA-512 hasher primed with ``R || A``: feed it the body, then ``verify_prehashed`` with its
    digest. ``public_key`` and ``signature`` are raw bytes (32 and 64)."""
    return hashlib.sha512(bytes(signature[:32]) + bytes(public_key))


def fast_path_available() -> bool:
    return _sodium is not None


def verify_prehashed(public_key: bytes, signature: bytes, digest: bytes) -> bool:
    """True when ``signature`` is the key's signature of the message whose ``prehash`` digest is
    ``digest``: ``[S]B - [k]A`` encodes to R, ``k = digest mod L``, ``S < L``. False means "not
    shown here", not "forged": the caller then runs ``verify`` over the message."""
    if _sodium is None or len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES or len(digest) != 64:
        return False
    r, s = bytes(signature[:32]), bytes(signature[32:])
    if int.from_bytes(s, "little") >= GROUP_ORDER:
        return False
    try:
        k = _sodium.crypto_core_ed25519_scalar_reduce(digest)
        s_b = _sodium.crypto_scalarmult_ed25519_base_noclamp(s)  # refuses S = 0 (the identity)
        k_a = _sodium.crypto_scalarmult_ed25519_noclamp(k, bytes(public_key))  # refuses small-order / invalid A
        expected_r = _sodium.crypto_core_ed25519_sub(s_b, k_a)
    except (_SodiumError, ValueError, TypeError):
        return False
    return hmac.compare_digest(expected_r, r)


# ---- for devices, tests and the SDK's examples ------------------------------------------------------

def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    return base64.b64encode(private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def sign_b64(private_key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message)).decode("ascii")
