"""SFTP target (asyncssh): a partner's watch folder over SSH, host key pinned.

- **Pinned**: the definition carries the server's host key (``host_key``: a known_hosts
  line or ``"<type> <base64>"``, as ``ssh-keyscan`` prints it) or its fingerprint
  (``host_key_fingerprint``: ``"SHA256:..."``, as ``ssh-keygen -lf`` prints it). No pin,
  no connection: a target without one fails validation. A server presenting another key
  is refused before any credential is sent, non-retryably, naming both fingerprints;
  ``~/.ssh/known_hosts``, ``~/.ssh/config`` and an ssh-agent are never consulted.
- **Credentials** from settings or Secrets only: ``password`` / ``private_key`` (the key's
  text; ``private_key_env`` names the variable a Kubernetes Secret fills).
- **Resumable and atomic** through :mod:`damfleet.delivery.remote`; writes go at explicit
  offsets in blocks of ``write_block_bytes``, each block pipelined by asyncssh, so after
  an interruption only the last block may have holes: that is the resume margin.
- **Sessions**: connections are pooled per target and reused; at most ``concurrency``
  are open (the Distributor's per-target limit), so a partner allowing N logins gets N.
- **Outbound safety**: the host is resolved once and every address checked against the
  SSRF policy (:func:`~damfleet.delivery.netguard.checked_addresses`) before connecting.

Retryable: refused/reset connections, timeouts, a lost connection, a full disk.
Not retryable: a host-key mismatch, refused credentials, permission denied, a missing
folder that cannot be made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Self

import asyncssh
from pydantic import Field, SecretStr, model_validator

from damfleet.delivery.base import DeliveryContext, DeliveryItem, DeliveryResult, TargetType
from damfleet.delivery.netguard import checked_addresses
from damfleet.delivery.remote import RemoteTargetConfig, network_error, upload_atomically
from damfleet.errors import DamfleetError, TargetRejectedError, TargetUnavailableError

__all__ = ["TARGET_TYPE", "SftpClient", "SftpTargetConfig", "deliver_sftp", "fingerprint"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 22


def _public_key(text: str) -> asyncssh.SSHKey:
    """The key of a known_hosts line (``[host]:port type base64 [comment]``) or ``type base64``."""
    parts = text.split()
    for i, word in enumerate(parts[:-1]):
        if word.startswith(("ssh-", "ecdsa-", "sk-")):
            return asyncssh.import_public_key(f"{word} {parts[i + 1]}")
    raise ValueError(f"host_key is not a known_hosts line or an OpenSSH public key: {text[:60]!r}")


def fingerprint(key: asyncssh.SSHKey) -> str:
    """The ``SHA256:...`` fingerprint OpenSSH prints for ``key``."""
    return str(key.get_fingerprint("sha256"))


class SftpTargetConfig(RemoteTargetConfig):
    """An SFTP server: ``host``, ``username``, a pinned host key and a password or private key."""

    host_key: str = ""                          # known_hosts line or "ssh-ed25519 AAAA..."
    host_key_fingerprint: str = ""              # "SHA256:..."
    private_key: SecretStr = SecretStr("")      # OpenSSH/PEM private key text (private_key_env: a Secret)
    private_key_passphrase: SecretStr = SecretStr("")
    write_block_bytes: int = Field(default=1024 * 1024, ge=0)   # one pipelined write; also the resume margin

    @model_validator(mode="after")
    def _check_sftp(self) -> Self:
        if not self.host_key and not self.host_key_fingerprint:
            raise ValueError("no host key pinned: set host_key (a known_hosts line, see ssh-keyscan) "
                             "or host_key_fingerprint (SHA256:..., see ssh-keygen -lf)")
        if self.host_key:
            try:
                _public_key(self.host_key)
            except (ValueError, asyncssh.KeyImportError) as exc:
                raise ValueError(f"host_key: {exc}") from None
        if self.host_key_fingerprint and not self.host_key_fingerprint.startswith("SHA256:"):
            raise ValueError("host_key_fingerprint must be an OpenSSH SHA256 fingerprint (\"SHA256:...\")")
        if not self.password and not self.private_key:
            raise ValueError("give a password or a private_key (or their *_env variables)")
        try:
            self.client_key()
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise ValueError(f"private_key cannot be read: {exc}") from None
        if self.write_block_bytes < 32 * 1024:
            raise ValueError("write_block_bytes must be at least 32 KiB")
        return self

    def client_key(self) -> asyncssh.SSHKey | None:
        """The login key (None: password login), the one place its secret text is read."""
        if not self.private_key:
            return None
        passphrase = self.private_key_passphrase.get_secret_value() or None
        return asyncssh.import_private_key(self.private_key.get_secret_value(), passphrase)

    def pins(self) -> tuple[frozenset[str], list[str]]:
        """(accepted fingerprints, host key algorithms to ask for; empty: asyncssh's defaults)."""
        fingerprints = {self.host_key_fingerprint} if self.host_key_fingerprint else set()
        algorithms: list[str] = []
        if self.host_key:
            key = _public_key(self.host_key)
            fingerprints.add(fingerprint(key))
            algorithms = [a.decode() for a in key.sig_algorithms]
        return frozenset(fingerprints), algorithms


class _SftpSession:
    """One pooled connection as :class:`~damfleet.delivery.remote.RemoteSession`."""

    def __init__(self, connection: asyncssh.SSHClientConnection, sftp: asyncssh.SFTPClient, *, block: int,
                 timeout: float) -> None:
        self.connection = connection
        self.sftp = sftp
        self.resume_margin = block
        self._block = block
        self._timeout = timeout or None

    async def _op(self, awaitable: Any) -> Any:
        return await asyncio.wait_for(awaitable, self._timeout)

    async def size(self, path: str) -> int | None:
        try:
            attrs = await self._op(self.sftp.stat(path))
        except asyncssh.SFTPNoSuchFile:
            return None
        return attrs.size

    async def makedirs(self, path: str) -> None:
        if path not in (".", "/"):
            await self._op(self.sftp.makedirs(path, exist_ok=True))

    async def write(self, path: str, offset: int, chunks: AsyncIterator[bytes]) -> None:
        mode = "r+b" if offset else "wb"
        async with await self._op(self.sftp.open(path, mode)) as remote:
            position = offset
            buffer = bytearray()
            async for chunk in chunks:
                buffer += chunk
                if len(buffer) >= self._block:
                    await self._op(remote.write(bytes(buffer), position))
                    position += len(buffer)
                    buffer = bytearray()
            if buffer:
                await self._op(remote.write(bytes(buffer), position))

    async def rename(self, source: str, destination: str) -> None:
        try:
            await self._op(self.sftp.posix_rename(source, destination))   # OpenSSH: atomic replace
        except asyncssh.SFTPOpUnsupported:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await self._op(self.sftp.remove(destination))
            await self._op(self.sftp.rename(source, destination))

    async def remove(self, path: str) -> None:
        with contextlib.suppress(asyncssh.SFTPNoSuchFile):
            await self._op(self.sftp.remove(path))


class SftpClient:
    """The target's connection pool: reused sessions, each a pinned, guarded SSH connection."""

    def __init__(self, config: SftpTargetConfig, ctx: DeliveryContext) -> None:
        self.config = config
        self._policy = ctx.policy
        self._idle: list[_SftpSession] = []
        self._keep = ctx.limit   # idle sessions kept: as many as may run at once, no more
        self._fingerprints, self._algorithms = config.pins()
        self._key = config.client_key()

    @property
    def port(self) -> int:
        return self.config.port or DEFAULT_PORT

    async def _connect(self) -> _SftpSession:
        config = self.config
        timeout = config.timeout_seconds or None
        addresses = await checked_addresses(self._policy, config.host, self.port, timeout)
        presented: list[str] = []
        accepted = self._fingerprints

        class PinnedClient(asyncssh.SSHClient):
            def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
                presented.append(fingerprint(key))
                return presented[-1] in accepted

        options: dict[str, Any] = {
            "username": config.username,
            "known_hosts": lambda host, addr, port: ([], [], []),   # every key goes to PinnedClient
            "client_factory": PinnedClient,
            "config": [],                # never ~/.ssh/config
            "agent_path": None,          # never an ssh-agent
            "client_keys": [self._key] if self._key is not None else None,
            "password": config.password.get_secret_value() or None,
            "connect_timeout": timeout,
            "login_timeout": timeout,
            "keepalive_interval": 30,
        }
        if self._algorithms:
            options["server_host_key_algs"] = self._algorithms
        try:
            connection = await asyncssh.connect(addresses[0], self.port, **options)
        except asyncssh.HostKeyNotVerifiable as exc:
            pinned = ", ".join(sorted(accepted))
            raise TargetRejectedError(
                f"target {config.name!r}: host key mismatch at {config.host}:{self.port}: the server presented "
                f"{presented[-1] if presented else 'an unusable key'}, the target pins {pinned}; "
                "if the partner changed its key, update host_key/host_key_fingerprint"
            ) from exc
        try:
            sftp = await asyncio.wait_for(connection.start_sftp_client(), timeout)
        except BaseException:
            connection.close()
            raise
        return _SftpSession(connection, sftp, block=config.write_block_bytes, timeout=config.timeout_seconds)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[_SftpSession]:
        """A live session for one delivery; returned to the pool unless something failed."""
        session = None
        while self._idle and session is None:
            candidate = self._idle.pop()
            if candidate.connection.is_closed():
                continue
            session = candidate
        if session is None:
            session = await self._connect()
        try:
            yield session
        except BaseException:
            session.connection.close()
            raise
        if len(self._idle) < self._keep:
            self._idle.append(session)
        else:
            session.connection.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for session in idle:
            session.connection.close()
        for session in idle:
            with contextlib.suppress(Exception):
                await session.connection.wait_closed()


def _translate(exc: BaseException, config: SftpTargetConfig, port: int) -> DamfleetError:
    """Map asyncssh and socket errors to retryable or permanent errors naming the target."""
    where = f"target {config.name!r} ({config.host}:{port})"
    if isinstance(exc, asyncssh.PermissionDenied):
        return TargetRejectedError(f"{where}: login refused for user {config.username!r}: {exc.reason}")
    if isinstance(exc, asyncssh.SFTPPermissionDenied):
        return TargetRejectedError(f"{where}: permission denied by the server: {exc.reason}")
    if isinstance(exc, (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPNotADirectory,
                        asyncssh.SFTPInvalidFilename)):
        return TargetRejectedError(f"{where}: the server refused the path: {exc.reason}")
    if isinstance(exc, asyncssh.SFTPError):   # failure, no space, quota, connection lost: may heal
        return TargetUnavailableError(f"{where}: the server answered {type(exc).__name__}: {exc.reason}")
    if isinstance(exc, asyncssh.DisconnectError):
        return TargetUnavailableError(f"{where}: connection closed: {exc.reason}")
    return network_error(where, exc, config.timeout_seconds)


def open_client(config: SftpTargetConfig, ctx: DeliveryContext) -> SftpClient:
    return SftpClient(config, ctx)


async def deliver_sftp(config: SftpTargetConfig, item: DeliveryItem, ctx: DeliveryContext) -> DeliveryResult:
    """Upload one rendition to the temporary name, resuming if part of it is there, then rename."""
    client: SftpClient = ctx.client
    location = f"sftp://{config.host}:{client.port}"
    try:
        async with client.session() as session:
            result = await upload_atomically(session, config, item, ctx, location)
    except (DamfleetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise _translate(exc, config, client.port) from exc
    return result


TARGET_TYPE = TargetType("sftp", SftpTargetConfig, deliver=deliver_sftp, open_client=open_client)
