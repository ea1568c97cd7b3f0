"""Real servers the tests need, started on loopback for the test session and stopped after.

PostgreSQL comes from Debian's ``postgresql`` package (``.ci/run`` installs it). Each server
lives in a temporary folder, listens on 127.0.0.1 on a free port, and is stopped in the
fixture's teardown; every wait is bounded. A server that is not installed fails the test
in CI (``CI=true``: the run must install it) and skips it with the reason elsewhere.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, install: str) -> None:
    """Fail in CI, skip elsewhere: ``what`` is not installed."""
    message = f"{what} is not installed here ({install})"
    if IN_CI:
        pytest.fail(message + "; .ci/run must install it", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server of our own: yields the URL of its ``postgres`` database as the
    superuser ``qabot`` (trust authentication, loopback only)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        missing("PostgreSQL", "apt-get install postgresql")
    bin_dir = Path(found[-1]).parent
    as_owner: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="qabot-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own user
        shutil.chown(folder, "postgres")
        as_owner = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()

    def run(*command: str, timeout: float = 60) -> None:
        subprocess.run([*as_owner, *command], check=True, capture_output=True, timeout=timeout)

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", "qabot", "-A", "trust", "--no-sync")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"),
        "-w", "-t", "30", "start")
    try:
        yield f"postgresql://qabot@127.0.0.1:{port}/postgres"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(folder, ignore_errors=True)


def fresh_postgres_database(server_url: str, name: str) -> str:
    """A new, empty database on the server at ``server_url``; returns its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(server_url.replace("postgresql://", "postgresql+psycopg://"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextmanager
def nginx_proxy(upstreams: list[int]) -> Iterator[int]:
    """Debian's nginx as a reverse proxy on loopback in front of ``upstreams`` (ports on
    127.0.0.1), round robin, passing a request on to the next when one is down; yields its
    port."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        missing("nginx", "apt-get install nginx")
    folder = Path(tempfile.mkdtemp(prefix="qabot-nginx-"))
    folder.chmod(0o777)  # its workers run as an unprivileged user and write temp files here
    port = free_port()
    servers = "\n".join(f"    server 127.0.0.1:{p} max_fails=0;" for p in upstreams)
    temp = " ".join(f"{kind}_temp_path {folder}/{kind};" for kind in
                    ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (folder / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 512; }}
http {{
  access_log off;
  {temp}
  upstream qabot {{
{servers}
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://qabot;
      proxy_next_upstream error timeout http_502 http_503;
      proxy_set_header Host $host;
    }}
  }}
}}
""")
    process = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _until_listening(process, port, 5, "nginx", lambda: process.stderr.read().decode())
        yield port
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def milvus_server() -> Iterator[str]:
    """milvus-lite's gRPC server (the same pymilvus API as a Milvus cluster) on loopback, its
    data in a temporary folder; yields its QABOT_VECTOR_STORE address."""
    if importlib.util.find_spec("milvus_lite") is None:
        missing("milvus-lite", "pip install -e '.[test]'")
    folder = Path(tempfile.mkdtemp(prefix="qabot-milvus-"))
    port = free_port()
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(folder / "data"),
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        _until_listening(process, port, 30, "milvus-lite", (folder / "server.log").read_text)
        yield f"milvus://127.0.0.1:{port}"
    finally:
        _stop(process)
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


def _until_listening(process: subprocess.Popen, port: int, seconds: float, name: str,
                     output) -> None:
    """Wait until ``process`` accepts connections on ``port``; raise with its ``output()``
    if it exits first, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            raise RuntimeError(f"{name} did not start: {output()}")
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not listen on port {port} within {seconds} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
