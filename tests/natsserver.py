"""Real NATS servers with JetStream for the tests (the Debian package `nats-server`, which .ci/run
installs): one, or a cluster of three on loopback, with user and password on; each can be killed
(SIGKILL) and started again on its port and its store."""
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

USER, PASSWORD = "touchpoint", "s3cret-bus"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_nats():
    if shutil.which("nats-server") is None:
        pytest.skip("no nats-server (apt-get install nats-server; .ci/run does)")
    pytest.importorskip("nats", reason="no nats-py (pip install nats-py)")


class Node:
    def __init__(self, directory, name: str, routes=(), cluster_port: int = 0):
        self.dir, self.name = directory, name
        self.port, self.cluster_port = free_port(), cluster_port
        self.routes = routes
        self.proc = None
        os.makedirs(directory, exist_ok=True)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> "Node":
        conf = os.path.join(self.dir, "nats.conf")
        cluster = ""
        if self.cluster_port:
            routes = ", ".join(f"nats://127.0.0.1:{p}" for p in self.routes)
            cluster = f"cluster {{ name: tp, listen: 127.0.0.1:{self.cluster_port}, routes: [{routes}] }}\n"
        with open(conf, "w") as f:
            f.write(f"server_name: {self.name}\nlisten: 127.0.0.1:{self.port}\n"
                    f"jetstream {{ store_dir: {self.dir}/js, max_memory_store: 64MB, max_file_store: 1GB }}\n"
                    f"authorization {{ user: {USER}, password: {PASSWORD} }}\n{cluster}")
        self.log = open(os.path.join(self.dir, "nats.log"), "a")
        self.proc = subprocess.Popen(["nats-server", "-c", conf], stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            assert self.proc.poll() is None, open(os.path.join(self.dir, "nats.log")).read()[-2000:]
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise AssertionError(f"nats-server {self.name} did not listen on {self.port}")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc:
            self.log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc:
            self.log.close()


def single(tmp_path) -> Node:
    need_nats()
    return Node(str(tmp_path / "nats"), "n1").start()


def credentials(tmp_path, user=USER, password=PASSWORD) -> str:
    path = tmp_path / "bus.credentials"
    path.write_text(f"{user}:{password}\n")
    return str(path)


def fetch_all(url: str, stream: str, timeout: float = 30.0) -> list:
    """Every message of the stream, in stream order: (subject, data)."""
    import nats

    async def go():
        nc = await nats.connect(url, user=USER, password=PASSWORD)
        try:
            js = nc.jetstream()
            info = await js.stream_info(stream)
            out = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                m = await js.get_msg(stream, seq)
                out.append((m.subject, m.data))
            return out
        finally:
            await nc.close()
    return asyncio.run(asyncio.wait_for(go(), timeout))


def cluster(tmp_path, n: int = 3) -> list:
    """n JetStream servers on loopback, routed to each other (a replica on each)."""
    need_nats()
    ports = [free_port() for _ in range(n)]
    nodes = [Node(str(tmp_path / f"nats-{i}"), f"n{i}", routes=[p for p in ports if p != ports[i]],
                  cluster_port=ports[i]) for i in range(n)]
    return [node.start() for node in nodes]


def stored_messages(url: str, stream: str) -> int:
    """How many messages the stream holds now (0: no stream yet)."""
    import nats
    from nats.js.errors import NotFoundError

    async def go():
        nc = await nats.connect(url, user=USER, password=PASSWORD)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        except NotFoundError:
            return 0
        finally:
            await nc.close()
    return asyncio.run(asyncio.wait_for(go(), 10))
