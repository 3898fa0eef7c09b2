"""FTP and FTPS targets (aioftp): the broadcasters' watch folders that still speak FTP.

- ``ftps``: explicit TLS (``AUTH TLS``, then ``PBSZ 0`` / ``PROT P`` so the data channel
  is encrypted too), the certificate verified against the system store or ``ca_bundle``;
  ``verify_tls: false`` (or ``DAMFLEET_DISTRIBUTION_VERIFY_TLS=false``) is the explicit
  opt-out. Data connections reuse the control channel's TLS session (servers such as
  vsftpd require it). ``ftp``: the same without TLS, for partners on a private link.
- Passive mode only (EPSV, then PASV); the address in a PASV reply is ignored and the
  data connection goes to the control connection's host, so a hostile server cannot
  point damfleet elsewhere. Every connection's address is checked by the SSRF policy.
- **Resumable and atomic** through :mod:`damfleet.delivery.remote`: the held size comes
  from ``SIZE`` (``MLST`` where SIZE is missing); the upload resumes with ``REST`` +
  ``STOR``, or ``APPE`` where REST is refused, or starts over where neither works.
- **Replies**: 4xx (421 too many sessions, 425/426 data connection, 450/451/452) and
  network errors are retryable; 5xx (530 login, 550 permission, 553 name) are not, and
  every message names the target and quotes the server's reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aioftp
from aioftp.common import SSLSessionBoundContext

from damfleet.delivery.base import DeliveryContext, DeliveryItem, DeliveryResult, TargetType
from damfleet.delivery.netguard import OutboundPolicy, checked_addresses
from damfleet.delivery.remote import (
    RemoteTargetConfig,
    ResumeUnsupportedError,
    network_error,
    upload_atomically,
)
from damfleet.errors import ConfigurationError, DamfleetError, TargetRejectedError, TargetUnavailableError

__all__ = ["FTPS_TARGET_TYPE", "FTP_TARGET_TYPE", "FtpTargetConfig", "deliver_ftp"]

DEFAULT_PORT = 21


class FtpTargetConfig(RemoteTargetConfig):
    """An FTP (``type: ftp``) or explicit-TLS FTPS (``type: ftps``) server with a password login."""

    verify_tls: bool = True
    ca_bundle: str = ""


class _GuardedClient(aioftp.Client):
    """aioftp's client with every connection (control and data) resolved and checked by the
    SSRF policy, and TLS data connections verified against the configured host name."""

    def __init__(self, policy: OutboundPolicy, *, timeout: float | None) -> None:
        super().__init__(socket_timeout=timeout, connection_timeout=timeout, path_timeout=timeout,
                         passive_commands=("epsv", "pasv"))
        self._policy = policy

    async def _open_connection(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        tls: Any = None
        if self._stream is not None:   # a data connection: reuse the control channel's TLS session
            ssl_object = self._stream.writer.transport.get_extra_info("ssl_object")
            if ssl_object is not None:
                tls = SSLSessionBoundContext(ssl.PROTOCOL_TLS_CLIENT, context=ssl_object.context,
                                             session=ssl_object.session)
        addresses = await checked_addresses(self._policy, host, port, self.connection_timeout)
        return await asyncio.wait_for(
            asyncio.open_connection(addresses[0], port, ssl=tls, server_hostname=host if tls else None),
            self.connection_timeout,
        )


class _FtpSession:
    """One logged-in FTP session as :class:`~damfleet.delivery.remote.RemoteSession`."""

    resume_margin = 0   # one ordered stream: the server holds exactly a prefix

    def __init__(self, client: _GuardedClient) -> None:
        self.client = client

    async def size(self, path: str) -> int | None:
        try:
            _, info = await self.client.command(f"SIZE {path}", "213")
            return int(info[-1].strip().split()[-1])
        except aioftp.StatusCodeError as exc:
            if exc.received_codes[-1].matches("550"):
                return None
            if not exc.received_codes[-1].matches("50x"):
                raise
        try:   # no SIZE: MLST / LIST
            stat = await self.client.stat(path)
        except aioftp.StatusCodeError:
            return None
        return int(stat.get("size", 0))

    async def makedirs(self, path: str) -> None:
        if path not in (".", "/"):
            await self.client.make_directory(path, parents=True)

    async def write(self, path: str, offset: int, chunks: AsyncIterator[bytes]) -> None:
        if offset:
            try:
                stream = await self.client.upload_stream(path, offset=offset)           # REST + STOR
            except aioftp.StatusCodeError as exc:
                if "350" not in exc.expected_codes or not exc.received_codes[-1].matches("5xx"):
                    raise   # not REST's refusal (STOR's own error, or a 4xx worth retrying)
                try:
                    stream = await self.client.append_stream(path)                      # APPE
                except aioftp.StatusCodeError as appe:
                    if appe.received_codes[-1].matches("50x"):
                        raise ResumeUnsupportedError(f"neither REST nor APPE: {' '.join(appe.info)}") from appe
                    raise
        else:
            stream = await self.client.upload_stream(path)
        async with stream:
            async for chunk in chunks:
                await stream.write(chunk)

    async def rename(self, source: str, destination: str) -> None:
        try:
            await self.client.rename(source, destination)
        except aioftp.StatusCodeError as exc:
            if not exc.received_codes[-1].matches("550"):
                raise
            # Some servers refuse to rename over an existing file: remove it, then rename.
            await self.remove(destination)
            await self.client.rename(source, destination)

    async def remove(self, path: str) -> None:
        try:
            await self.client.remove_file(path)
        except aioftp.StatusCodeError as exc:
            if not exc.received_codes[-1].matches("550"):
                raise


def _tls_context(config: FtpTargetConfig, ctx: DeliveryContext) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=config.ca_bundle or None)
    except OSError as exc:
        raise ConfigurationError(f"target {config.name!r}: cannot read ca_bundle {config.ca_bundle}: {exc}") from exc
    if not (config.verify_tls and ctx.settings.verify_tls):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.asynccontextmanager
async def _session(config: FtpTargetConfig, ctx: DeliveryContext) -> AsyncIterator[_FtpSession]:
    client = _GuardedClient(ctx.policy, timeout=config.timeout_seconds or None)
    try:
        await client.connect(config.host, config.port or DEFAULT_PORT)
        if config.type == "ftps":
            await client.upgrade_to_tls(_tls_context(config, ctx))
        await client.login(config.username, config.password.get_secret_value())
        await client.command("TYPE I", "200")
        yield _FtpSession(client)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.quit(), 10)
    finally:
        client.close()


def _translate(exc: BaseException, config: FtpTargetConfig) -> DamfleetError:
    """Map FTP replies, TLS and socket errors to retryable or permanent errors naming the target."""
    where = f"target {config.name!r} ({config.host}:{config.port or DEFAULT_PORT})"
    if isinstance(exc, aioftp.StatusCodeError):
        code = str(exc.received_codes[-1])
        reply = f"{code} {' '.join(line.strip() for line in exc.info)}".strip()
        if code.startswith("4"):
            return TargetUnavailableError(f"{where}: the server answered {reply}")
        if code == "530":
            return TargetRejectedError(f"{where}: login refused for user {config.username!r}: {reply}")
        return TargetRejectedError(f"{where}: the server answered {reply}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return TargetRejectedError(
            f"{where}: TLS certificate not trusted: {exc.verify_message}; give the partner's CA as ca_bundle"
        )
    if isinstance(exc, ssl.SSLError):
        return TargetUnavailableError(f"{where}: TLS failed: {exc}")
    return network_error(where, exc, config.timeout_seconds)


async def deliver_ftp(config: FtpTargetConfig, item: DeliveryItem, ctx: DeliveryContext) -> DeliveryResult:
    """Log in, upload to the temporary name (resuming where possible), verify, rename."""
    server_url = f"{config.type}://{config.host}:{config.port or DEFAULT_PORT}"
    try:
        async with _session(config, ctx) as session:
            return await upload_atomically(session, config, item, ctx, server_url)
    except (DamfleetError, asyncio.CancelledError):
        raise
    except Exception as exc:
        raise _translate(exc, config) from exc


FTP_TARGET_TYPE = TargetType("ftp", FtpTargetConfig, deliver=deliver_ftp)
FTPS_TARGET_TYPE = TargetType("ftps", FtpTargetConfig, deliver=deliver_ftp)
