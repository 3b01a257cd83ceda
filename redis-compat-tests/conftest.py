"""Fixtures for the parity tests: a real ``redis-server`` and a ringkv node, started once per
session on free loopback ports, flushed before every test, and a ``pair`` that sends one command
to both and asserts the replies are identical.

``pair`` is parametrized four ways: through the exact-type RESP client (``resp_client.py``) in
RESP2 and RESP3, and through redis-py (``protocol=2`` and ``protocol=3``), whose exceptions are
compared by class and message.

The ringkv binary is ``$RINGKV_BIN``, else the newest ``ringkv`` under ``$CARGO_TARGET_DIR`` or
``target/`` (release or debug): build it first (``cargo build --release``; ``cargo test`` also
builds the debug one). ``redis-server`` must be on PATH (``scripts/test.sh`` installs it).
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from resp_client import ConnectionClosed, RespClient

REPO = Path(__file__).resolve().parent.parent
DEADLINE_S = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ringkv_binary():
    explicit = os.environ.get("RINGKV_BIN")
    if explicit:
        return explicit
    roots = [os.environ.get("CARGO_TARGET_DIR"), str(REPO / "target")]
    found = [
        Path(root) / profile / "ringkv"
        for root in roots
        if root
        for profile in ("release", "debug")
        if (Path(root) / profile / "ringkv").is_file()
    ]
    if not found:
        raise RuntimeError(
            "no ringkv binary found under $CARGO_TARGET_DIR or target/: run `cargo build "
            "--release` (or `cargo test`) first, or set RINGKV_BIN"
        )
    return str(max(found, key=lambda p: p.stat().st_mtime))


def wait_for_ping(port, proc, log_path, name):
    started = time.monotonic()
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                "%s exited with %s before serving; log:\n%s"
                % (name, proc.returncode, Path(log_path).read_text(errors="replace"))
            )
        try:
            client = RespClient(port, timeout=2)
            try:
                if client.call("PING")[0] in ("simple", "error"):
                    return
            finally:
                client.close()
        except (OSError, ConnectionClosed):
            pass
        if time.monotonic() - started > DEADLINE_S:
            raise RuntimeError("%s did not answer PING on port %d in time" % (name, port))
        time.sleep(0.02)


class Server:
    """One server process on a free port, logging to a file in its own directory."""

    def __init__(self, name, argv_for_port, workdir):
        self.name = name
        self.dir = Path(workdir)
        self.log_path = self.dir / ("%s.log" % name)
        for _ in range(5):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    argv_for_port(self.port),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,
                )
            try:
                wait_for_ping(self.port, self.proc, self.log_path, name)
                return
            except RuntimeError:
                if "in use" not in self.log_text():
                    self.stop()
                    raise
        raise RuntimeError("no free port for %s" % name)

    def log_text(self):
        return self.log_path.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def servers():
    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed (Debian package redis-server)")
    workdir = tempfile.mkdtemp(prefix="ringkv-compat-")
    binary = ringkv_binary()
    redis_server = Server(
        "redis-server",
        lambda port: [
            "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir,
        ],
        workdir,
    )
    try:
        ringkv = Server(
            "ringkv",
            lambda port: [
                binary, "--port", str(port), "--data-dir",
                os.path.join(workdir, "ringkv-data"), "--log-level", "warn",
            ],
            workdir,
        )
    except Exception:
        redis_server.stop()
        raise
    yield {"redis": redis_server, "ringkv": ringkv}
    ringkv.stop()
    redis_server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


def flush(port):
    client = RespClient(port)
    try:
        assert client.call("FLUSHALL") == ("simple", b"OK")
    finally:
        client.close()


@pytest.fixture
def flushed(servers):
    """Both servers, emptied; after the test, checks ringkv did not die."""
    for server in servers.values():
        assert server.alive(), "%s died; log:\n%s" % (server.name, server.log_text()[-5000:])
        flush(server.port)
    yield servers
    ringkv = servers["ringkv"]
    assert ringkv.alive(), "ringkv died during the test; log:\n%s" % ringkv.log_text()[-5000:]


class RawSide:
    """One server through the exact-type client: an outcome is the reply frame."""

    def __init__(self, port, protocol):
        self.client = RespClient(port, protocol=protocol)

    def run(self, args):
        return self.client.call(*args)

    @staticmethod
    def integer(outcome):
        assert outcome[0] == "int", outcome
        return outcome[1]

    def close(self):
        self.client.close()


class PySide:
    """One server through redis-py: an outcome is ("ok", value) or ("exc", class, message)."""

    def __init__(self, port, protocol):
        # No retries: an error reply that redis-py classes as a connection error (AUTH's)
        # must be compared, not retried with back-off.
        self.client = redis.Redis(
            port=port, protocol=protocol, socket_timeout=10, retry=Retry(NoBackoff(), 0))

    def run(self, args):
        try:
            return ("ok", self.client.execute_command(*args))
        except redis.exceptions.RedisError as e:
            return ("exc", type(e).__name__, str(e))

    @staticmethod
    def integer(outcome):
        assert outcome[0] == "ok" and isinstance(outcome[1], int), outcome
        return outcome[1]

    def close(self):
        self.client.close()


class Approx:
    """A command whose integer reply may differ by ``tol`` between the servers (TTLs), but
    whose special values (-1: no TTL, -2: no key) and errors must match exactly."""

    def __init__(self, tol, *args):
        self.tol = tol
        self.args = args

    def __repr__(self):
        return "Approx(%d, %s)" % (self.tol, " ".join(map(str, self.args)))


class Pair:
    """The same command to redis-server and to ringkv, replies compared."""

    def __init__(self, kind, protocol, servers):
        side = RawSide if kind == "raw" else PySide
        self.kind = kind
        self.protocol = protocol
        self.mode = "%s%d" % (kind, protocol)
        self.redis = side(servers["redis"].port, protocol)
        self.ringkv = side(servers["ringkv"].port, protocol)

    def check(self, *args):
        """Sends ``args`` to both; asserts identical replies; returns ringkv's outcome."""
        expected = self.redis.run(args)
        got = self.ringkv.run(args)
        assert got == expected, "%s\n  redis:  %r\n  ringkv: %r" % (
            " ".join(map(str, args)), expected, got)
        return got

    def check_approx(self, tol, *args):
        expected = self.redis.run(args)
        got = self.ringkv.run(args)
        try:
            e, g = self.redis.integer(expected), self.ringkv.integer(got)
        except AssertionError:
            assert got == expected, "%s\n  redis:  %r\n  ringkv: %r" % (
                " ".join(map(str, args)), expected, got)
            return got
        ok = (e == g) if (e < 0 or g < 0) else abs(e - g) <= tol
        assert ok, "%s (tolerance %d)\n  redis:  %r\n  ringkv: %r" % (
            " ".join(map(str, args)), tol, expected, got)
        return got

    def run(self, steps):
        for step in steps:
            if isinstance(step, Approx):
                self.check_approx(step.tol, *step.args)
            else:
                self.check(*step)

    def both(self, *args):
        """Sends ``args`` to both without comparing: (redis outcome, ringkv outcome)."""
        return self.redis.run(args), self.ringkv.run(args)

    def close(self):
        self.redis.close()
        self.ringkv.close()


@pytest.fixture(params=[("raw", 2), ("raw", 3), ("py", 2), ("py", 3)],
                ids=["raw-resp2", "raw-resp3", "redispy-resp2", "redispy-resp3"])
def pair(request, flushed):
    kind, protocol = request.param
    p = Pair(kind, protocol, flushed)
    yield p
    p.close()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def raw_pair(request, flushed):
    """The exact-type client only (for tests whose steps need raw frames)."""
    p = Pair("raw", request.param, flushed)
    yield p
    p.close()


@pytest.fixture
def ringkv_port(flushed):
    return flushed["ringkv"].port
