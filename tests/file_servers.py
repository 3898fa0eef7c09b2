"""Real file servers for the SFTP/FTP delivery tests and the benchmark, on loopback ports.

- :class:`SshServer`: OpenSSH ``sshd`` (Debian ``openssh-server``) with a generated host
  key, key-only login, ``internal-sftp`` forced, and (when run as root, as in CI) the
  login chrooted into a root-owned folder holding ``upload/``.
- :class:`FtpServer`: pyftpdlib with explicit TLS (``AUTH TLS``, control and data
  protected), a generated CA and server certificate, a session limit (``max_cons``,
  answering 421 beyond it) and optionally read-only permissions (550 on upload).

Both run as child processes that a test can kill -9 (with every per-connection child)
and start again on the same port with the same keys: the interruption tests need a
server that really disappears mid-transfer.

``python -m tests.file_servers ftp ...`` is the FTP server's own entry point;
``python -m tests.file_servers serve --dir D`` starts one sshd and one FTPS server, writes
their target definitions (``playout-sftp``, ``playout-ftps``) to ``D/targets.json`` for
``DAMFLEET_DISTRIBUTION_TARGETS_FILE`` and serves until interrupted (a fleet demo).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Self

SSHD = "/usr/sbin/sshd"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f}s")


def _kill_tree(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the server and every child it forked (sshd's per-connection children call
    setsid, so a process-group kill would miss them)."""
    if process is None or process.poll() is not None:
        return
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.kill()
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=30)
    psutil.wait_procs(children, timeout=30)


class SshServer:
    """sshd on a loopback port; ``upload`` is the folder deliveries land in."""

    def __init__(self, *, read_only: bool = False, max_sessions: int = 100) -> None:
        if not Path(SSHD).exists():
            raise RuntimeError(f"{SSHD} is missing: apt-get install openssh-server (scripts/bootstrap.sh does)")
        self.port = free_port()
        self.read_only = read_only
        self.max_sessions = max_sessions
        self.chrooted = os.geteuid() == 0
        if self.chrooted:
            # sshd refuses a chroot with any group/world-writable component, so not under /tmp.
            base = Path("/run/damfleet-test-sshd")
            base.mkdir(mode=0o755, exist_ok=True)
            self.home = base / uuid.uuid4().hex[:12]
            self.home.mkdir(mode=0o755)
        else:
            self.home = Path(tempfile.mkdtemp(prefix="damfleet-sshd-"))
        self.state = self.home / "etc"        # keys and config: inside the chroot but not writable over SFTP
        self.state.mkdir(mode=0o755)
        self.upload = self.home / "upload"
        self.upload.mkdir(mode=0o755)
        #: remote_dir root as the client sees it (inside the chroot: "/upload")
        self.remote_root = "/upload" if self.chrooted else str(self.upload)
        self.username = "root" if self.chrooted else os.environ.get("USER", "root")
        self.host_key = self.state / "ssh_host_ed25519_key"
        self.client_key = self.state / "client_ed25519"
        for path in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                           capture_output=True, timeout=60)
        shutil.copy(f"{self.client_key}.pub", self.state / "authorized_keys")
        self.log = self.state / "sshd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host_key_line(self) -> str:
        """The known_hosts line ``ssh-keyscan`` would print."""
        return f"[127.0.0.1]:{self.port} " + Path(f"{self.host_key}.pub").read_text().strip()

    @property
    def private_key(self) -> str:
        return self.client_key.read_text()

    def _config(self) -> Path:
        force = "internal-sftp -R" if self.read_only else "internal-sftp"
        lines = [
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"PidFile {self.state / 'sshd.pid'}", f"AuthorizedKeysFile {self.state / 'authorized_keys'}",
            "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", f"AllowUsers {self.username}",
            f"Subsystem sftp {force}", f"ForceCommand {force}", "LogLevel ERROR",
            f"MaxStartups {self.max_sessions}", f"MaxSessions {self.max_sessions}",
        ]
        if self.chrooted:
            lines.append(f"ChrootDirectory {self.home}")
        path = self.state / "sshd_config"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> Self:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)   # privilege-separation directory
        config = self._config()
        with self.log.open("ab") as log:
            self._process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                                             stdin=subprocess.DEVNULL)
        _wait_listening(self.port, self._process, "sshd", self.log)
        return self

    def kill(self) -> None:
        _kill_tree(self._process)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.home, ignore_errors=True)

    def target(self, **overrides: object) -> dict[str, object]:
        """A target definition for this server (pinned host key, key login)."""
        definition: dict[str, object] = {
            "type": "sftp", "host": "127.0.0.1", "port": self.port, "username": self.username,
            "private_key": self.private_key, "host_key": self.host_key_line,
            "remote_dir": self.remote_root + "/{asset_id}", "timeout_seconds": 60,
        }
        definition.update(overrides)
        return definition


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1, made with cryptography."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "damfleet test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class FtpServer:
    """pyftpdlib (explicit TLS unless ``tls=False``) in a child process on a loopback port."""

    username = "partner"
    password = "ftp-pass-1"

    def __init__(self, folder: Path, *, tls: bool = True, max_cons: int = 64, read_only: bool = False) -> None:
        self.port = free_port()
        self.tls = tls
        self.max_cons = max_cons
        self.read_only = read_only
        self.root = folder / "ftp-root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.upload = self.root / "upload"
        self.upload.mkdir(exist_ok=True)
        self.remote_root = "/upload"
        self.ca, self.cert, self.key = make_tls_files(folder) if tls else (Path(), Path(), Path())
        self.log = folder / f"ftpd-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        command = [sys.executable, "-m", "tests.file_servers", "ftp", "--port", str(self.port),
                   "--root", str(self.root), "--user", self.username, "--password", self.password,
                   "--max-cons", str(self.max_cons)]
        if self.tls:
            command += ["--cert", str(self.cert), "--key", str(self.key)]
        if self.read_only:
            command.append("--read-only")
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                             cwd=ROOT)
        _wait_listening(self.port, self._process, "ftp server", self.log)
        return self

    def kill(self) -> None:
        _kill_tree(self._process)

    def stop(self) -> None:
        self.kill()

    def target(self, **overrides: object) -> dict[str, object]:
        definition: dict[str, object] = {
            "type": "ftps" if self.tls else "ftp", "host": "127.0.0.1", "port": self.port,
            "username": self.username, "password": self.password,
            "remote_dir": self.remote_root + "/{asset_id}", "timeout_seconds": 60,
        }
        if self.tls:
            definition["ca_bundle"] = str(self.ca)
        definition.update(overrides)
        return definition


def _serve_ftp(argv: list[str]) -> None:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.servers import FTPServer

    parser = argparse.ArgumentParser(prog="python -m tests.file_servers ftp")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--max-cons", type=int, default=64)
    parser.add_argument("--cert", default="")
    parser.add_argument("--key", default="")
    parser.add_argument("--read-only", action="store_true")
    args = parser.parse_args(argv)
    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, args.password, args.root, perm="elr" if args.read_only else "elradfmwMT")
    handler: type[FTPHandler]
    if args.cert:
        class Handler(TLS_FTPHandler):
            certfile = args.cert
            keyfile = args.key
            tls_control_required = True
            tls_data_required = True
        handler = Handler
    else:
        class PlainHandler(FTPHandler):
            pass
        handler = PlainHandler
    handler.authorizer = authorizer
    handler.passive_ports = None
    handler.permit_foreign_addresses = False
    handler.auth_failed_timeout = 0.1   # pyftpdlib waits 3 s after a failed login by default
    server = FTPServer(("127.0.0.1", args.port), handler)
    server.max_cons = args.max_cons
    server.max_cons_per_ip = args.max_cons
    server.serve_forever(handle_exit=True)


def _serve_demo(argv: list[str]) -> None:
    import json
    import signal

    parser = argparse.ArgumentParser(prog="python -m tests.file_servers serve")
    parser.add_argument("--dir", required=True)
    folder = Path(parser.parse_args(argv).dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    sshd = SshServer().start()
    ftps = FtpServer(folder).start()
    try:
        targets = {"playout-sftp": sshd.target(), "playout-ftps": ftps.target(checksum_sidecar="md5")}
        (folder / "targets.json").write_text(json.dumps(targets, indent=2))
        print(json.dumps({"targets_file": str(folder / "targets.json"), "sftp_folder": str(sshd.upload),
                          "ftps_folder": str(ftps.upload)}), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        sshd.stop()
        ftps.stop()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ftp":
        _serve_ftp(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "serve":
        _serve_demo(sys.argv[2:])
    else:
        raise SystemExit("usage: python -m tests.file_servers ftp --port N --root DIR --user U --password P\n"
                         "       python -m tests.file_servers serve --dir DIR")
