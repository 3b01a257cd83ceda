"""Cluster-aware clients against a single ringkv node: redis-py's ``RedisCluster`` (which reads
``CLUSTER SLOTS`` and ``COMMAND`` at startup and routes every key by its slot) and
``redis-cli -c``. A ringkv node always answers ``CLUSTER SLOTS``; redis-server is not in cluster
mode here, so these tests talk to ringkv alone and compare slots with redis-py's own CRC16."""

import shutil
import subprocess
import time

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def rc(request, ringkv_port):
    client = RedisCluster(
        host="127.0.0.1", port=ringkv_port, protocol=request.param, decode_responses=True)
    yield client
    client.close()


def test_redis_cluster_learns_the_node_and_routes_to_it(rc, ringkv_port):
    nodes = rc.get_nodes()
    assert [(n.host, n.port) for n in nodes] == [("127.0.0.1", ringkv_port)]
    assert rc.get_node_from_key("anything").port == ringkv_port
    assert rc.set("alpha", "1") is True
    assert rc.set("beta", "2") is True
    assert rc.get("alpha") == "1"
    # Keys in different slots: the client splits the MGET by slot.
    assert key_slot(b"alpha") != key_slot(b"beta")
    assert rc.mget_nonatomic(["alpha", "beta", "missing"]) == ["1", "2", None]
    # Keys sharing a hash tag share a slot: one MGET, one MSET.
    assert rc.mset({"{user1}:name": "ada", "{user1}:age": "36"}) is True
    assert rc.mget(["{user1}:name", "{user1}:age"]) == ["ada", "36"]
    assert rc.delete("alpha", "beta") == 2
    assert rc.exists("alpha") == 0
    assert rc.incr("counter") == 1


def test_cluster_commands_through_redis_py(rc, ringkv_port):
    default = rc.get_default_node()
    info = rc.cluster_info(target_nodes=default)
    assert info["cluster_state"] == "ok"
    assert int(info["cluster_slots_assigned"]) == 16384
    myid = rc.execute_command("CLUSTER MYID", target_nodes=default)
    slots = rc.cluster_slots(target_nodes=default)
    assert slots == {(0, 16383): {"primary": ("127.0.0.1", ringkv_port), "replicas": []}}
    nodes = rc.cluster_nodes()
    node = nodes["127.0.0.1:%d" % ringkv_port]
    assert node["node_id"] == myid
    assert "myself" in node["flags"] and "master" in node["flags"]
    assert node["connected"] is True
    assert node["slots"] == [["0", "16383"]]
    for key in ["foo", "{foo}bar", "", "user:1000", "\u00e9t\u00e9"]:
        assert rc.keyslot(key) == key_slot(key.encode()), key
    rc.set("{k}1", "v")
    rc.set("{k}2", "v")
    assert rc.cluster_countkeysinslot(key_slot(b"k")) == 2


def test_readonly_readwrite_and_asking_answer_ok(ringkv_port):
    r = redis.Redis(port=ringkv_port)
    try:
        assert r.execute_command("READONLY") is True
        assert r.execute_command("READWRITE") is True
        assert r.execute_command("ASKING") is True
        assert r.info("cluster")["cluster_enabled"] == 1
    finally:
        r.close()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_redis_cli_in_cluster_mode(ringkv_port):
    def cli(*args):
        out = subprocess.run(
            ["redis-cli", "-c", "-p", str(ringkv_port)] + list(args),
            capture_output=True, text=True, timeout=30, check=True)
        return out.stdout

    assert cli("SET", "greeting", "hello") == "OK\n"
    assert cli("GET", "greeting") == "hello\n"
    assert cli("SET", "{other}slot", "x") == "OK\n"
    assert cli("MGET", "{other}slot", "{other}missing") == "x\n\n"
    assert cli("CLUSTER", "KEYSLOT", "greeting") == "%d\n" % key_slot(b"greeting")


def node_ports_in_slots(port):
    """The client ports `CLUSTER SLOTS` on `port` names, primaries and replicas."""
    client = redis.Redis(port=port)
    try:
        ranges = client.execute_command("CLUSTER SLOTS")
    finally:
        client.close()
    return {int(node[1]) for r in ranges for node in r[2:]}


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory):
    """Three ringkv processes on loopback, replication factor 3, joined through the first
    node's bus port; yields their client ports once every node sees all three."""
    from conftest import Server, free_port, ringkv_binary

    workdir = tmp_path_factory.mktemp("ringkv-cluster")
    binary = ringkv_binary()
    buses = [free_port() for _ in range(3)]
    nodes = []
    try:
        for i, bus in enumerate(buses):
            nodes.append(Server(
                "node-%d" % i,
                lambda port, i=i, bus=bus: [
                    binary, "--port", str(port), "--bus-port", str(bus),
                    "--data-dir", str(workdir / ("node-%d" % i)), "--node-id", "node-%d" % i,
                    "--seeds", "127.0.0.1:%d" % buses[0], "--replication-factor", "3",
                    "--log-level", "warn",
                ],
                workdir,
            ))
        # Converged: every node places every slot on all three nodes (a node's tokens reach
        # the others by gossip a moment after it answers PING).
        deadline = time.monotonic() + 60
        while True:
            seen = [node_ports_in_slots(n.port) for n in nodes]
            if all(s == {n.port for n in nodes} for s in seen):
                break
            assert time.monotonic() < deadline, "the ring did not converge: %s" % seen
            time.sleep(0.2)
        yield [n.port for n in nodes]
    finally:
        for n in nodes:
            n.stop()


def test_redis_cluster_routes_over_three_nodes(three_nodes):
    rc = RedisCluster(host="127.0.0.1", port=three_nodes[0], decode_responses=True)
    try:
        assert sorted(n.port for n in rc.get_nodes()) == sorted(three_nodes)
        keys = ["user:%d" % i for i in range(200)]
        for k in keys:
            assert rc.set(k, k.upper()) is True
        assert rc.mget_nonatomic(keys) == [k.upper() for k in keys]
        # Every slot's owner is the node the client sends the key to; every node serves it too.
        for port in three_nodes:
            plain = redis.Redis(port=port, decode_responses=True)
            assert plain.get("user:7") == "USER:7"
            plain.close()
        assert rc.delete(*keys[:10]) == 10
        assert rc.incr("hits") == 1
        assert rc.incr("hits") == 2
    finally:
        rc.close()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_redis_cli_follows_the_ring(three_nodes):
    def cli(port, *args):
        return subprocess.run(
            ["redis-cli", "-c", "-p", str(port)] + list(args),
            capture_output=True, text=True, timeout=30, check=True).stdout.strip()

    assert cli(three_nodes[1], "SET", "cli:key", "v1") == "OK"
    for port in three_nodes:
        assert cli(port, "GET", "cli:key") == "v1"
