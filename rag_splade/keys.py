"""Scoped API keys: a file of key hashes, each with the tenants it may use and a role.

The file (`RAG_SPLADE_KEYS_FILE`) is JSON, written by `rag-splade keys add|list|revoke`:

    {"keys": [{"id": "k-3f9a", "hash": "sha256:<hex>", "tenants": ["acme"],
               "role": "read", "created": "2026-12-02T10:00:00Z"}]}

Only a key's SHA-256 is stored: the keys are 32 random bytes, so a fast hash is enough
(nothing is gained by guessing against it), and the key is shown once, when it is made.
A presented key is hashed and compared with every entry in constant time. `tenants` is
a list of tenant ids, or `["*"]` for every tenant. Roles nest: `read` searches, fetches
and lists; `write` also adds and deletes; `admin` also reaches snapshots, restore and the
statistics of every tenant.

The service re-reads the file when its modification time or size changes, checked at
most once a second; a file that does not parse or validate is refused whole and the keys
read before stay in force (the error is logged), so a bad edit never opens or closes the
service by accident.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from rag_splade.store.tenants import ALL_TENANTS, check_tenant

__all__ = [
    "ROLES",
    "KeyEntry",
    "KeyFile",
    "KeyFileError",
    "Principal",
    "Role",
    "hash_key",
    "new_key",
    "read_entries",
    "write_entries",
]

Role = Literal["read", "write", "admin"]
ROLES: tuple[str, ...] = get_args(Role)
RECHECK_SECONDS = 1.0
logger = logging.getLogger("rag_splade.api")


class KeyFileError(ValueError):
    """A key file that cannot be used, naming the file, the entry and what is wrong."""


@dataclass(frozen=True)
class KeyEntry:
    """One key as the file holds it (its hash, never the key)."""

    id: str
    hash: str
    tenants: tuple[str, ...]
    role: Role
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hash": self.hash,
            "tenants": list(self.tenants),
            "role": self.role,
            "created": self.created,
        }


@dataclass(frozen=True)
class Principal:
    """Who a request is: which key (by id, for the server's own use), its role and the
    tenants it may use."""

    key_id: str
    role: Role
    tenants: tuple[str, ...]

    def may(self, role: Role) -> bool:
        """Whether this principal's role includes `role` (read < write < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def may_use(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key() -> str:
    """A new key: `rsk_` and 32 random bytes, URL-safe."""
    return "rsk_" + secrets.token_urlsafe(32)


def read_entries(path: str | Path) -> list[KeyEntry]:
    """The entries of a key file, checked whole.

    Raises:
        KeyFileError: the file is unreadable, not JSON, or an entry is malformed.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise KeyFileError(f"no key file at {path}") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise KeyFileError(f"key file {path} cannot be read as JSON: {e}") from e
    rows = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise KeyFileError(f'key file {path}: expected {{"keys": [...]}}')
    entries: list[KeyEntry] = []
    seen: set[str] = set()
    for n, row in enumerate(rows):
        entry = _entry(row, f"key file {path}: keys[{n}]")
        if entry.id in seen or any(e.hash == entry.hash for e in entries):
            raise KeyFileError(f"key file {path}: keys[{n}] repeats id or hash {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def write_entries(path: str | Path, entries: Sequence[KeyEntry]) -> None:
    """Write the key file whole (a temporary file renamed over it, readable by its owner
    only), so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    body = json.dumps({"keys": [e.to_json() for e in entries]}, indent=2, ensure_ascii=False)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(body + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)


def _entry(row: Any, where: str) -> KeyEntry:
    if not isinstance(row, dict):
        raise KeyFileError(f"{where}: an entry is an object")
    unknown = set(row) - {"id", "hash", "tenants", "role", "created"}
    if unknown:
        raise KeyFileError(f"{where}: unknown fields {sorted(unknown)}")
    key_id, digest, tenants, role = (row.get(k) for k in ("id", "hash", "tenants", "role"))
    if not isinstance(key_id, str) or not key_id:
        raise KeyFileError(f"{where}: 'id' must be a non-empty string")
    if not (
        isinstance(digest, str)
        and digest.startswith("sha256:")
        and len(digest) == 71
        and all(c in "0123456789abcdef" for c in digest[7:])
    ):
        raise KeyFileError(f"{where} ({key_id}): 'hash' must be sha256:<64 hex digits>")
    if role not in ROLES:
        raise KeyFileError(f"{where} ({key_id}): 'role' must be one of {ROLES}, got {role!r}")
    if not isinstance(tenants, list) or not tenants:
        raise KeyFileError(f"{where} ({key_id}): 'tenants' must be a non-empty list")
    try:
        checked = tuple(check_tenant(t, allow_all=True) for t in tenants)
    except (TypeError, ValueError) as e:
        raise KeyFileError(f"{where} ({key_id}): {e}") from e
    return KeyEntry(key_id, digest, checked, role, str(row.get("created") or ""))


class KeyFile:
    """The keys of `path`, re-read when the file changes; thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries = read_entries(self.path)  # a bad file at start-up is an error
        self._tenants = _named_tenants(self._entries)
        self._stamp = self._stat()
        self._checked = time.monotonic()

    def principal(self, key: str | None) -> Principal | None:
        """The principal of `key`, or None for no key or an unknown one."""
        if key is None:
            return None
        self._maybe_reload()
        digest = hash_key(key).encode("ascii")
        found = None
        for entry in self._entries:  # every entry compared: the time says nothing
            if hmac.compare_digest(digest, entry.hash.encode("ascii")):
                found = entry
        if found is None:
            return None
        return Principal(found.id, found.role, found.tenants)

    def tenants(self) -> frozenset[str]:
        """Every tenant a key names (the bounded set metrics may carry)."""
        self._maybe_reload()
        return self._tenants

    def _stat(self) -> tuple[float, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_SECONDS:
            return
        with self._lock:
            self._checked = now
            stamp = self._stat()
            if stamp == self._stamp:
                return
            try:
                entries = read_entries(self.path)
            except KeyFileError as e:
                logger.error("key file not reloaded, the keys read before stay: %s", e)
                self._stamp = stamp  # logged once per change, not once per request
                return
            self._entries, self._stamp = entries, stamp
            self._tenants = _named_tenants(entries)
            logger.info("key file reloaded: %d keys", len(entries))


def _named_tenants(entries: Sequence[KeyEntry]) -> frozenset[str]:
    return frozenset(t for e in entries for t in e.tenants if t != ALL_TENANTS)
