"""Ed25519 keys and signatures for release approvals (the `cryptography` package). A key is named by
its id, the first 16 hex digits of the sha256 of its raw public bytes; what is signed is the
release's content hash, so one byte changed in a bundle invalidates every approval of it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from engine.errors import UsageError

__all__ = [
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "public_hex",
    "sign_release",
    "signature_holds",
    "trusted_keys",
]

_CONTEXT = b"credo-release/1\n"  # a release approval cannot be replayed as any other signature


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(key)).hexdigest()[:16]


def public_hex(key: Ed25519PublicKey) -> str:
    return _raw(key).hex()


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def generate_key(stem: Path | str) -> tuple[Path, Path]:
    """Write STEM.key (private, PKCS#8 PEM, mode 0600) and STEM.pub (public, PEM)."""
    private = Ed25519PrivateKey.generate()
    key_path, pub_path = Path(f"{stem}.key"), Path(f"{stem}.pub")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path.touch(mode=0o600, exist_ok=False)
    key_path.write_bytes(pem)
    pub_path.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key_path, pub_path


def load_private_key(path: Path | str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise UsageError(f"{path}: not a readable unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path | str) -> Ed25519PublicKey:
    """A PEM public key, or the public half of a PEM private key."""
    data = Path(path).read_bytes()
    try:
        if b"PRIVATE KEY" in data:
            return load_private_key(path).public_key()
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise UsageError(f"{path}: not a PEM public key ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise UsageError(f"{path}: not an Ed25519 key")
    return key


def trusted_keys(path: Path | str) -> dict[str, Ed25519PublicKey]:
    """The trusted approvers: every *.pub under a folder, or one .pub file; by key id."""
    root = Path(path)
    files = sorted(root.glob("*.pub")) if root.is_dir() else [root]
    if not files or not all(f.is_file() for f in files):
        raise UsageError(f"--trust {path}: no public keys (*.pub) found")
    keys = [load_public_key(f) for f in files]
    return {key_id(k): k for k in keys}


def sign_release(key: Ed25519PrivateKey, release_id: str) -> bytes:
    return key.sign(_CONTEXT + release_id.encode("ascii"))


def signature_holds(public: Ed25519PublicKey, signature: bytes, release_id: str) -> bool:
    try:
        public.verify(signature, _CONTEXT + release_id.encode("ascii"))
    except InvalidSignature:
        return False
    return True
