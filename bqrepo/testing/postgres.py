"""Start a throwaway PostgreSQL 15 server on 127.0.0.1 in a temporary directory.

Why: the back-fill reads the old TimescaleDB/PostgreSQL database, and the
only honest test of that is a real server. TimescaleDB itself is not
packaged by Debian; its hypertables are plain PostgreSQL tables to a reader,
so PostgreSQL 15 (Debian's ``postgresql-15``) stands in for it.

``initdb`` refuses to run as root, so when the current user is root the
server runs as the ``postgres`` system user (created by Debian's package)
through ``runuser``. The superuser gets a random password and connections
over TCP use scram-sha-256, so URLs carry a password exactly as production
ones do (and tests can check that it is never printed).

Use it from Python::

    with LocalPostgres() as server:
        engine = sqlalchemy.create_engine(server.url)

or from a shell: ``python -m bqrepo.testing.postgres serve`` prints the URL
and serves until interrupted.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from sqlalchemy.engine import URL

__all__ = ["LocalPostgres", "PostgresError", "find_bindir"]

DEFAULT_BINDIR = Path("/usr/lib/postgresql/15/bin")
DATABASE = "legacy"
SUPERUSER = "bqrepo"


class PostgresError(RuntimeError):
    """The server could not be started. The message says why."""


def find_bindir() -> Path:
    """Where ``initdb`` and ``pg_ctl`` live: ``$BQREPO_PG_BINDIR`` or Debian's path."""
    bindir = Path(os.environ.get("BQREPO_PG_BINDIR", DEFAULT_BINDIR))
    if not (bindir / "initdb").is_file():
        raise PostgresError(
            f"PostgreSQL 15 is not installed ({bindir / 'initdb'} is missing): "
            "apt-get install postgresql-15, or set BQREPO_PG_BINDIR"
        )
    return bindir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """One PostgreSQL server with one database, ``legacy``, owned by ``bqrepo``."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.password = secrets.token_urlsafe(16)
        self._dir: Path | None = None
        self._as_user: list[str] = []

    @property
    def url(self) -> str:
        """A SQLAlchemy URL (psycopg 3) with the password in it."""
        return URL.create(
            "postgresql+psycopg",
            username=SUPERUSER,
            password=self.password,
            host="127.0.0.1",
            port=self.port,
            database=DATABASE,
        ).render_as_string(hide_password=False)

    def _run(self, *args: str | Path, timeout: float = 120) -> None:
        command = [*self._as_user, *(str(a) for a in args)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise PostgresError(
                f"{Path(str(args[0])).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def start(self) -> LocalPostgres:
        """initdb, start on 127.0.0.1:port, create the database; raise PostgresError."""
        bindir = find_bindir()
        self._dir = Path(tempfile.mkdtemp(prefix="bqrepo-pg-"))
        data, sockets = self._dir / "data", self._dir / "sock"
        sockets.mkdir()
        pwfile = self._dir / "pw"
        pwfile.write_text(self.password + "\n")
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise PostgresError("running as root needs runuser to start PostgreSQL as 'postgres'")
            try:
                import pwd

                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresError("running as root needs a 'postgres' system user") from None
            os.chmod(self._dir, 0o700)
            for path in (self._dir, sockets, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            bindir / "initdb",
            "-D", data,
            "-U", SUPERUSER,
            "--pwfile", pwfile,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {sockets} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c TimeZone=UTC"
        )
        self._run(
            bindir / "pg_ctl", "-D", data, "-l", self._dir / "server.log", "-o", options,
            "-w", "-t", "60", "start",
        )
        self._run(bindir / "createdb", "-h", sockets, "-p", str(self.port), "-U", SUPERUSER, DATABASE)
        return self

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self._dir is None:
            return
        data = self._dir / "data"
        if (data / "postmaster.pid").exists():
            try:
                self._run(find_bindir() / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
            except (PostgresError, subprocess.TimeoutExpired):
                pid = int((data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bqrepo.testing.postgres")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--load", action="store_true", help="create and fill the Django-like schema")
    args = parser.parse_args()

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # stop the server on `kill` too, not only Ctrl-C
    with LocalPostgres(args.port) as server:
        if args.load:
            from bqrepo.testing.django_source import load_sample

            load_sample(server.url)
        print(server.url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    _main()
