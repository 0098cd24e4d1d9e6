"""Install, start and stop local-bigquery, a BigQuery API server on 127.0.0.1.

Why a separate venv: local-bigquery needs Python >= 3.13 while bqrepo
supports 3.11, and it needs DuckDB's extensions installed from PyPI
packages because DuckDB's own download of them needs the internet. The venv
lives in ``$BQREPO_STANDIN_HOME`` (default ``~/.cache/bqrepo/standin``) and
is rebuilt when the pins below change.

Use it from Python::

    with LocalBigQuery() as server:
        client = server.client()

or from a shell: ``python -m bqrepo.testing.standin serve`` prints the
``BIGQUERY_EMULATOR_HOST`` to export and serves until interrupted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LocalBigQuery", "StandinError", "ensure_installed"]

LOCAL_BIGQUERY = "local-bigquery==0.4.0"
# local-bigquery 0.4.0 declares duckdb>=2, but extensions for DuckDB 2 are not
# on PyPI; 1.5.5 is the newest with every extension it loads packaged there.
DUCKDB_PINS = (
    "duckdb==1.5.5",
    "duckdb-extensions==1.5.5",
    "duckdb-extension-icu==1.5.5",
    "duckdb-extension-ducklake==1.5.5",
    "duckdb-extension-spatial==1.5.5",
)
EXTENSIONS = ("icu", "ducklake", "spatial")
DEFAULT_PROJECT = "test-project"
_PINS_KEY = hashlib.sha256(" ".join((LOCAL_BIGQUERY, *DUCKDB_PINS)).encode()).hexdigest()[:16]


class StandinError(RuntimeError):
    """The stand-in could not be installed or started. The message says why."""


def standin_home() -> Path:
    """Where the stand-in's venv and DuckDB extensions live."""
    default = Path.home() / ".cache" / "bqrepo" / "standin"
    return Path(os.environ.get("BQREPO_STANDIN_HOME", default))


def _python_ok(python: str) -> bool:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info >= (3, 13))"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "True"


def find_python() -> str:
    """A Python >= 3.13 interpreter: ``$BQREPO_STANDIN_PYTHON``, PATH, or pyenv."""
    candidates: list[str] = []
    if os.environ.get("BQREPO_STANDIN_PYTHON"):
        candidates.append(os.environ["BQREPO_STANDIN_PYTHON"])
    for name in ("python3.13", "python3.14", "python3.15"):
        if found := shutil.which(name):
            candidates.append(found)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    for root in (pyenv_root, Path("/root/.pyenv")):
        candidates.extend(str(p) for p in sorted((root / "versions").glob("3.1[3-9]*/bin/python3")))
    for candidate in candidates:
        if _python_ok(candidate):
            return candidate
    raise StandinError(
        "local-bigquery needs Python >= 3.13 and none was found (looked at "
        f"$BQREPO_STANDIN_PYTHON, python3.13+ on PATH and pyenv: {candidates or 'nothing'}). "
        "Install one, or point BQREPO_STANDIN_PYTHON at it."
    )


def _run(args: list[str], **kwargs: Any) -> None:
    result = subprocess.run(args, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise StandinError(
            f"command failed ({result.returncode}): {' '.join(args)}\n{result.stderr[-4000:]}"
        )


def ensure_installed(home: Path | None = None) -> Path:
    """Create the stand-in venv if missing or stale; return its ``local-bigquery`` path."""
    home = home or standin_home()
    venv = home / "venv"
    marker = home / f"installed-{_PINS_KEY}"
    executable = venv / "bin" / "local-bigquery"
    if marker.exists() and executable.exists():
        return executable
    shutil.rmtree(venv, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    _run([find_python(), "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, LOCAL_BIGQUERY])
    # Installed second, on purpose: pip reports the duckdb>=2 conflict and exits 0.
    _run([*pip, *DUCKDB_PINS])
    load = "import duckdb_extensions as d\n" + "".join(
        f"d.import_extension({name!r})\n" for name in EXTENSIONS
    )
    _run([str(venv / "bin" / "python"), "-c", load], env={**os.environ, "HOME": str(home)})
    marker.touch()
    return executable


def _die_with_parent() -> None:
    """Linux: have the kernel SIGTERM the server when the process that started it dies.

    Without this, a test run killed by a timeout (which skips fixture
    teardown) leaves a server behind eating CPU and memory.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalBigQuery:
    """A running local-bigquery server; a context manager that stops it on exit."""

    def __init__(self, project: str = DEFAULT_PROJECT, data_dir: Path | None = None) -> None:
        self.project = project
        self._data_dir = data_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path: Path | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the value for ``BIGQUERY_EMULATOR_HOST``."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """The API endpoint URL, for ``client_options``."""
        return f"http://{self.host}"

    def start(self, timeout: float = 90.0) -> LocalBigQuery:
        """Install if needed, start on free ports, and wait until it answers."""
        home = standin_home()
        executable = ensure_installed(home)
        if self._data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="bqrepo-standin-")
            self._data_dir = Path(self._tmp.name)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self.port, grpc_port = _free_port(), _free_port()
        self.log_path = self._data_dir / "server.log"
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [
                str(executable), "serve",
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--grpc-port", str(grpc_port),
                "--project", self.project,
                "--data-dir", str(self._data_dir / "data"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(home)},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        url = f"{self.endpoint}/bigquery/v2/projects/{self.project}/datasets"
        deadline = time.monotonic() + timeout
        assert self._process is not None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self.stop()
                raise StandinError(f"local-bigquery exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        self.stop()
        raise StandinError(f"local-bigquery did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its temp data."""
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=10)
        self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._data_dir = None

    def client(self, project: str | None = None) -> Any:
        """A ``google.cloud.bigquery.Client`` talking to this server anonymously."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=project or self.project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=self.endpoint),
        )

    def __enter__(self) -> LocalBigQuery:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """``install`` the stand-in, or ``serve`` it until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bqrepo.testing.standin", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["install", "serve"])
    parser.add_argument("--project", default=DEFAULT_PROJECT)
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            print(ensure_installed())
            return 0
        with LocalBigQuery(project=args.project) as server:
            print(f"export BIGQUERY_EMULATOR_HOST={server.host}", flush=True)
            print(f"export GCP_PROJECT_ID={server.project}", flush=True)
            print("serving; Ctrl-C stops", file=sys.stderr, flush=True)
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while True:
                time.sleep(3600)
    except StandinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
