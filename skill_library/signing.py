"""Signed releases: an ed25519 signature over a release manifest's hash, checked against keys the reader trusts.

Hashes alone cannot stop a re-sealed library (edit a skill, recompute every hash): a signature can, because only the
publisher holds the private key. A release ``N`` is signed by ``releases/NNNN.sig`` (JSON: release, manifest hash,
signer name, public key, key id, signature); the signed message is the canonical JSON of
``{"format", "release", "manifest_hash"}``, and the manifest hash covers every skill file's sha256 and the previous
manifest's hash, so one signature vouches for the whole history up to ``N``.

- The publisher configures a key: ``SKILLMINE_SIGNING_KEY`` (a PEM ed25519 private key file, made with
  ``skillmine skills keygen``) and ``SKILLMINE_SIGNER`` (a name, e.g. an e-mail); ``publish`` then signs each release
  and ``skillmine skills sign`` signs an existing one.
- A reader trusts public keys: ``SKILLMINE_TRUSTED_KEYS`` (comma-separated base64 public keys, or files holding
  one). ``verify`` reports who signed; with trusted keys configured a missing signature, a bad one or one by a key
  not trusted is an error; without, a valid signature is reported with the warning that its key was not checked.

``cryptography`` is imported only when a signature is made or checked.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import store
from .document import canonical_bytes, sha256_hex
from .errors import IntegrityError, SkillLibraryError

SIGNATURE_FORMAT = "skillmine.signature/1"
KEY_ENV = "SKILLMINE_SIGNING_KEY"
SIGNER_ENV = "SKILLMINE_SIGNER"
TRUST_ENV = "SKILLMINE_TRUSTED_KEYS"


class SigningError(SkillLibraryError):
    """A signing key cannot be read or used."""


def key_id(public_key: bytes) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its sha256."""
    return sha256_hex(public_key)[:16]


def _message(release: int, manifest_hash: str) -> bytes:
    return canonical_bytes({"format": SIGNATURE_FORMAT, "release": release, "manifest_hash": manifest_hash})


@dataclass(frozen=True)
class SigningKey:
    """A publisher's private key and the name its signatures carry."""

    private: Any  # cryptography's Ed25519PrivateKey
    signer: str

    @property
    def public_bytes(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    def sign(self, release: int, manifest_hash: str) -> dict[str, Any]:
        """The signature record of a release."""
        public = self.public_bytes
        return {"format": SIGNATURE_FORMAT, "release": release, "manifest_hash": manifest_hash, "signer": self.signer,
                "public_key": base64.b64encode(public).decode(), "key_id": key_id(public),
                "signature": base64.b64encode(self.private.sign(_message(release, manifest_hash))).decode()}


def generate_key(path: str | os.PathLike[str]) -> str:
    """Write a new ed25519 private key (PEM, mode 0600) to ``path``; return its base64 public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    target = Path(path)
    if target.exists():
        raise SigningError(f"{target}: already exists; not overwriting a key")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return base64.b64encode(SigningKey(private, "").public_bytes).decode()


def load_key(path: str | os.PathLike[str], signer: str | None = None) -> SigningKey:
    """The ed25519 private key in the PEM file at ``path``; the signer defaults to ``$SKILLMINE_SIGNER``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    source = Path(path)
    try:
        private = serialization.load_pem_private_key(source.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningError(f"{source}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise SigningError(f"{source}: not an ed25519 key ({type(private).__name__})")
    name = signer or os.environ.get(SIGNER_ENV) or "unnamed publisher"
    return SigningKey(private, name)


def configured_key() -> SigningKey | None:
    """The publisher's key from ``$SKILLMINE_SIGNING_KEY`` (``None`` when unset)."""
    path = os.environ.get(KEY_ENV)
    return load_key(path) if path else None


def trusted_keys(spec: str | None = None) -> set[str]:
    """Trusted base64 public keys from ``spec`` (default ``$SKILLMINE_TRUSTED_KEYS``): keys or files holding one."""
    keys: set[str] = set()
    for item in (spec if spec is not None else os.environ.get(TRUST_ENV, "")).split(","):
        item = item.strip()
        if not item:
            continue
        path = Path(item)
        text = path.read_text("utf-8").strip() if path.is_file() else item
        try:
            raw = base64.b64decode(text, validate=True)
        except ValueError:
            raw = b""
        if len(raw) != 32:
            raise SigningError(f"{TRUST_ENV}: {item!r} is not a base64 ed25519 public key (32 bytes) or a file "
                               "holding one")
        keys.add(base64.b64encode(raw).decode())
    return keys


def write_signature(root: Path, key: SigningKey, release: int, manifest_hash: str) -> dict[str, Any]:
    """Sign release ``release`` of the library directory ``root``."""
    record = key.sign(release, manifest_hash)
    store.write_atomic(root, store.signature_path(release), canonical_bytes(record))
    return record


@dataclass(frozen=True)
class SignatureCheck:
    """What a release's signature says: whether it holds, who signed, whether the key is trusted."""

    signed: bool
    valid: bool
    signer: str | None = None
    key_id: str | None = None
    trusted: bool | None = None  # None: no trusted keys were configured
    problem: str | None = None

    def describe(self) -> str:
        if not self.signed:
            return "not signed"
        if not self.valid:
            return f"signature INVALID: {self.problem}"
        trust = {True: "a trusted key", False: "a key that is NOT trusted",
                 None: "a key not checked against trusted keys (set SKILLMINE_TRUSTED_KEYS)"}[self.trusted]
        return f"signed by {self.signer} (key {self.key_id}), {trust}"


def check_signature(source: store.Source, release: int, manifest_hash: str,
                    trusted: set[str] | None = None) -> SignatureCheck:
    """Check ``release``'s signature file against its manifest hash and (when given) the trusted keys."""
    rel = store.signature_path(release)
    if not source.exists(rel):
        return SignatureCheck(signed=False, valid=False)
    try:
        record = json.loads(source.read(rel))
        public = base64.b64decode(record["public_key"], validate=True)
        signature = base64.b64decode(record["signature"], validate=True)
        signer, kid = str(record["signer"]), key_id(public)
    except (IntegrityError, ValueError, KeyError, TypeError, RecursionError) as exc:
        return SignatureCheck(signed=True, valid=False, problem=f"{source.display(rel)}: unreadable ({exc})")
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if record.get("release") != release or record.get("manifest_hash") != manifest_hash:
        return SignatureCheck(True, False, signer, kid, problem=f"{source.display(rel)}: signs release "
                              f"{record.get('release')} hash {str(record.get('manifest_hash'))[:12]}, not this one")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, _message(release, manifest_hash))
    except (InvalidSignature, ValueError):
        return SignatureCheck(True, False, signer, kid, problem=f"{source.display(rel)}: the signature does not "
                                                                "match the release manifest")
    is_trusted = None if not trusted else base64.b64encode(public).decode() in trusted
    return SignatureCheck(True, True, signer, kid, is_trusted)
