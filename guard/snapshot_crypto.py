"""The encrypted snapshot format and the files snapshots are written through.

Encrypted files (AES-256-GCM, format version 2; also described in docs/snapshots.md)::

    header = b"GUARDENC" | version (1 byte: 2) | scrypt log2(N), r, p (1 byte each)
             | salt (16 bytes) | key check (16 bytes) | chunk size (4 bytes, big-endian)
    frame  = final flag (1 byte) | sealed length (4 bytes) | nonce (12 bytes)
             | ciphertext + 16-byte tag            (repeated; the last frame is final=1)
    AAD    = header | frame index (8 bytes, big-endian) | final flag

The passphrase goes through scrypt with the file's random salt to 64 bytes: the first 32 are
the AES key, the next 16 the key check, so a wrong key is told apart from a damaged file.
Split from guard.snapshot (which re-exports these names) to keep each module readable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from guard.errors import GuardError

MAGIC = b"GUARDENC"
ENC_VERSION = 2
CHUNK = 1 << 20
MAX_CHUNK = 1 << 26  # a header asking for bigger chunks is damaged, not a reason to allocate
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 15, 8, 1  # 32 MiB and ~0.1 s per derivation
SALT_BYTES, CHECK_BYTES, NONCE_BYTES, TAG_BYTES = 16, 16, 12, 16
HEADER_BYTES = len(MAGIC) + 4 + SALT_BYTES + CHECK_BYTES + 4
FRAME_HEAD = struct.Struct(">BI")  # final flag, sealed length


class SnapshotError(GuardError):
    """A snapshot that cannot be read or trusted (damaged, wrong key, restore failed): exit 1."""

    exit_code = 1  # what a failed drill exits with


# ---------------------------------------------------------------------- encryption


def _derive(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    # The header is read before anything authenticates it: parameters each in range could still
    # ask scrypt for 16 GiB (128 * N * r bytes) or a minute of CPU (N * r * p) before the key
    # check. Bounded at 8x the memory and 16x the work guard writes with (256 MiB, ~1.5 s).
    if (not 10 <= log2_n <= 22 or not 1 <= r <= 32 or not 1 <= p <= 16
            or 128 * r << log2_n > 1 << 28 or r * p << log2_n > 1 << 22):
        raise SnapshotError("the encrypted file's key derivation parameters are damaged "
                            "(they ask for more memory or time than guard ever writes with)")
    derived = Scrypt(salt=salt, length=64, n=1 << log2_n, r=r, p=p).derive(passphrase.encode("utf-8"))
    return derived[:32], derived[32:32 + CHECK_BYTES]


def encryption_info() -> dict[str, Any]:
    """What the manifest records about an encrypted file: algorithm and parameters, no key."""
    return {"algorithm": "AES-256-GCM", "kdf": "scrypt",
            "kdf_params": {"n": 1 << SCRYPT_LOG2_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "chunk_bytes": CHUNK, "framing": f"guard-enc v{ENC_VERSION} (docs/snapshots.md)"}


def encrypt_chunks(chunks: Iterable[bytes], passphrase: str) -> Iterator[bytes]:
    """The encrypted file, piece by piece: the header, then one frame per chunk (each at
    most CHUNK bytes), then an empty final frame."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = os.urandom(SALT_BYTES)
    key, check = _derive(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    header = MAGIC + bytes([ENC_VERSION, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P]) + salt + check + struct.pack(">I", CHUNK)
    aead = AESGCM(key)
    yield header
    index = 0

    def frame(data: bytes, final: bool) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        sealed = aead.encrypt(nonce, data, header + struct.pack(">QB", index, final))
        return FRAME_HEAD.pack(final, len(sealed)) + nonce + sealed

    for chunk in chunks:
        for start in range(0, len(chunk), CHUNK):
            yield frame(chunk[start:start + CHUNK], False)
            index += 1
    yield frame(b"", True)


def decrypt_chunks(source: IO[bytes], passphrase: str, name: str) -> Iterator[bytes]:
    """The plaintext of an encrypted file, chunk by chunk.

    SnapshotError for a wrong key, an unknown format, or any damage: altered, reordered,
    dropped or appended frames, a file cut short. Plaintext is only yielded once its frame
    authenticated; a caller must still discard everything when an error comes later.
    """
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    header = source.read(HEADER_BYTES)
    if not header.startswith(MAGIC):
        raise SnapshotError(f"{name} is not a guard-encrypted snapshot")
    if len(header) < len(MAGIC) + 1:
        raise SnapshotError(f"{name} is truncated (incomplete header)")
    if header[len(MAGIC)] != ENC_VERSION:
        raise SnapshotError(f"{name} uses an encryption format this guard does not read "
                            f"(format byte {header[len(MAGIC)]:#04x}; this guard reads {ENC_VERSION})")
    if len(header) < HEADER_BYTES:
        raise SnapshotError(f"{name} is truncated (incomplete header)")
    log2_n, r, p = header[9], header[10], header[11]
    salt = header[12:12 + SALT_BYTES]
    check = header[12 + SALT_BYTES:12 + SALT_BYTES + CHECK_BYTES]
    (chunk_size,) = struct.unpack(">I", header[-4:])
    if not 0 < chunk_size <= MAX_CHUNK:
        raise SnapshotError(f"{name} has a damaged header (chunk size {chunk_size})")
    key, expected_check = _derive(passphrase, salt, log2_n, r, p)
    if not hmac.compare_digest(check, expected_check):
        raise SnapshotError(f"cannot decrypt {name}: wrong key (snapshot.key / GUARD_SNAPSHOT_KEY)")
    aead = AESGCM(key)
    index = 0
    while True:
        head = source.read(FRAME_HEAD.size)
        if len(head) < FRAME_HEAD.size:
            raise SnapshotError(f"{name} is truncated: it ends after {index} chunk(s) without its final chunk")
        final, size = FRAME_HEAD.unpack(head)
        if final not in (0, 1) or not TAG_BYTES <= size <= chunk_size + TAG_BYTES:
            raise SnapshotError(f"{name} is damaged in chunk {index} (impossible frame header)")
        nonce = source.read(NONCE_BYTES)
        sealed = source.read(size)
        if len(nonce) < NONCE_BYTES or len(sealed) < size:
            raise SnapshotError(f"{name} is truncated in chunk {index}")
        try:
            plain = aead.decrypt(nonce, sealed, header + struct.pack(">QB", index, final))
        except InvalidTag:
            raise SnapshotError(
                f"{name} is damaged: chunk {index} fails authentication (altered, reordered or truncated)"
            ) from None
        if plain:
            yield plain
        if final:
            if source.read(1):
                raise SnapshotError(f"{name} has data after its final chunk")
            return
        index += 1


def encrypt_file(source: Path, target: Path, passphrase: str) -> None:
    """Encrypt a plain dump into ``target`` (created 0600; written whole or not at all)."""
    with source.open("rb") as src:
        with _PartialFile(target) as out:
            for piece in encrypt_chunks(iter(lambda: src.read(CHUNK), b""), passphrase):
                out.write(piece)
            out.commit()


def decrypt_file(source: Path, target: Path, passphrase: str) -> None:
    """Decrypt into ``target`` (created 0600); on any error nothing is left at ``target``.

    SnapshotError for a wrong key or a damaged file (see `decrypt_chunks`).
    """
    with source.open("rb") as src, _PartialFile(target) as out:
        for plain in decrypt_chunks(src, passphrase, source.name):
            out.write(plain)
        out.commit()


# ---------------------------------------------------------------------- files


class _PartialFile:
    """``<target>.partial``, mode 0600, hashed as written; renamed to ``target`` by commit(),
    removed when the block ends without it."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.partial = target.with_name(target.name + ".partial")
        self.digest = hashlib.sha256()
        self.size = 0
        self._fd = -1

    def __enter__(self) -> _PartialFile:
        self.partial.unlink(missing_ok=True)
        self._fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return self

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.digest.update(data)
        self.size += len(data)

    def commit(self) -> None:
        os.fsync(self._fd)  # a backup that exists only in the page cache is no backup
        os.close(self._fd)
        self._fd = -1
        os.replace(self.partial, self.target)

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.partial.unlink(missing_ok=True)


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sha256(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
