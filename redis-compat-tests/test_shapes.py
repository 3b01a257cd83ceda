"""Replies that legitimately differ between ringkv and redis-server (server version, ids,
counters, the command table, cursors, limits, commands ringkv leaves out on purpose): their
shape is checked, and against redis-server where the shape is shared. Also keys that expire
in real time, and SCAN's full-iteration contract."""

import socket
import time

import pytest

from resp_client import ConnectionClosed, RespClient, as_python


def test_hello_reply_shape(raw_pair):
    redis_reply = raw_pair.redis.run(("HELLO", str(raw_pair.protocol)))
    ringkv_reply = raw_pair.ringkv.run(("HELLO", str(raw_pair.protocol)))
    assert ringkv_reply[0] == redis_reply[0]
    expected, got = as_python(redis_reply), as_python(ringkv_reply)
    if isinstance(expected, list):
        expected = dict(zip(expected[::2], expected[1::2]))
        got = dict(zip(got[::2], got[1::2]))
    assert list(got) == list(expected)
    for field in (b"server", b"proto", b"mode", b"role", b"modules"):
        assert got[field] == expected[field], field
    assert isinstance(got[b"id"], int)
    assert got[b"version"].startswith(b"7.")


def test_client_id_list_info(ringkv_port):
    client = RespClient(ringkv_port)
    client.call("CLIENT", "SETNAME", "shape-test")
    client_id = client.call("CLIENT", "ID")
    assert client_id[0] == "int" and client_id[1] > 0
    listing = client.call("CLIENT", "LIST")
    assert listing[0] == "bulk"
    lines = listing[1].decode().strip().split("\n")
    mine = [line for line in lines if "name=shape-test" in line]
    assert len(mine) == 1, lines
    fields = dict(part.split("=", 1) for part in mine[0].split())
    assert fields["id"] == str(client_id[1])
    assert fields["addr"].startswith("127.0.0.1:")
    assert "db" in fields and "cmd" in fields
    info = client.call("CLIENT", "INFO")
    assert info[0] == "bulk" and b"name=shape-test" in info[1]
    assert client.call("CLIENT", "SETINFO", "LIB-NAME", "mylib") == ("simple", b"OK")
    assert client.call("CLIENT", "SETINFO", "LIB-VER", "1.0") == ("simple", b"OK")
    assert client.call("CLIENT", "SETINFO", "LIB-NAME", "bad name")[0] == "error"
    client.close()


def test_info_sections(ringkv_port):
    client = RespClient(ringkv_port)
    client.call("SET", "a", "1")
    info = client.call("INFO")
    assert info[0] in ("bulk", "verbatim")
    text = as_python(info).decode()
    for section in ("Server", "Clients", "Memory", "Persistence", "Stats", "Replication",
                    "Keyspace"):
        assert "# %s" % section in text, section
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    assert fields["redis_version"].startswith("7.")
    assert int(fields["connected_clients"]) >= 1
    assert fields["db0"].startswith("keys=1,")
    # The engine's figures (`INFO ringkv`): writes and the WAL write(2) calls they took, point
    # reads and the tables they probed, the tables per level.
    assert client.call("GET", "a") == ("bulk", b"1")
    engine = dict(line.split(":", 1)
                  for line in as_python(client.call("INFO", "ringkv")).decode().splitlines()
                  if ":" in line)
    assert 1 <= int(engine["wal_writes"]) <= int(engine["writes"])
    assert int(engine["gets"]) >= 1
    assert engine["level0"].startswith("tables=")
    assert int(fields["ringkv_wal_writes"]) >= 1
    server_only = as_python(client.call("INFO", "server")).decode()
    assert "# Server" in server_only and "# Clients" not in server_only
    client.close()


def test_config_get_shape(raw_pair):
    for param in ("maxclients", "timeout", "save", "appendonly"):
        expected = as_python(raw_pair.redis.run(("CONFIG", "GET", param)))
        got = as_python(raw_pair.ringkv.run(("CONFIG", "GET", param)))
        if isinstance(got, dict):
            got = [x for kv in got.items() for x in kv]
            expected = [x for kv in expected.items() for x in kv]
        assert got[0::2] == expected[0::2], param
    got = as_python(raw_pair.ringkv.run(("CONFIG", "GET", "no-such-param")))
    assert not got
    assert raw_pair.ringkv.run(("CONFIG", "GET"))[0] == "error"


def test_command_table_shape(ringkv_port):
    client = RespClient(ringkv_port)
    count = client.call("COMMAND", "COUNT")
    assert count[0] == "int" and count[1] >= 60
    info = as_python(client.call("COMMAND", "INFO", "get", "set", "mset", "nosuch"))
    assert info[0][:6] == [b"get", 2, info[0][2], 1, 1, 1]
    assert info[1][:2] == [b"set", -3]
    assert info[2][:6] == [b"mset", -3, info[2][2], 1, -1, 2]
    assert info[3] is None
    everything = as_python(client.call("COMMAND"))
    assert len(everything) == count[1]
    names = {entry[0] for entry in everything}
    for name in (b"get", b"set", b"expire", b"scan", b"ping", b"consistency", b"krange"):
        assert name in names, name
    docs = client.call("COMMAND", "DOCS", "get")
    assert docs[0] in ("array", "map")
    client.close()


def test_time_shape(raw_pair):
    seconds, micros = as_python(raw_pair.ringkv.run(("TIME",)))
    assert abs(int(seconds) - time.time()) < 5
    assert 0 <= int(micros) < 1_000_000


def test_select_other_databases_is_a_clear_error(raw_pair):
    reply = raw_pair.ringkv.run(("SELECT", "1"))
    assert reply[0] == "error" and reply[1].startswith(b"ERR"), reply
    assert raw_pair.ringkv.run(("PING",)) == ("simple", b"PONG")


def test_unsupported_commands_get_an_error_and_the_connection_goes_on(raw_pair):
    for args in (("LPUSH", "l", "x"), ("HSET", "h", "f", "v"), ("MULTI",),
                 ("EVAL", "return 1", "0"), ("SUBSCRIBE", "c")):
        reply = raw_pair.ringkv.run(args)
        assert reply[0] == "error" and reply[1].startswith(b"ERR unknown command"), reply
    assert raw_pair.ringkv.run(("PING",)) == ("simple", b"PONG")


def test_value_limit(raw_pair):
    assert raw_pair.ringkv.run(("SETRANGE", "k", str(10 << 20), "x")) == (
        "error", b"ERR value exceeds the 10 MiB limit")
    assert raw_pair.ringkv.run(("EXISTS", "k")) == ("int", 0)


def test_quit_and_reset(raw_pair):
    for side in (raw_pair.redis, raw_pair.ringkv):
        assert side.run(("CLIENT", "SETNAME", "before")) == ("simple", b"OK")
        assert side.run(("RESET",)) == ("simple", b"RESET")
        assert side.run(("CLIENT", "GETNAME")) in (("nullbulk",), ("null",))
        assert side.run(("QUIT",)) == ("simple", b"OK")
        with pytest.raises((ConnectionClosed, OSError)):
            side.run(("PING",))


def test_keys_expire_in_real_time(raw_pair):
    for side in (raw_pair.redis, raw_pair.ringkv):
        assert side.run(("SET", "short", "v", "PX", "150")) == ("simple", b"OK")
        assert side.run(("SET", "long", "v", "EX", "100")) == ("simple", b"OK")
        assert side.run(("PEXPIRE", "other", "150")) == ("int", 0)
    deadline = time.monotonic() + 10
    while True:
        replies = [side.run(("EXISTS", "short")) for side in (raw_pair.redis, raw_pair.ringkv)]
        if replies == [("int", 0), ("int", 0)]:
            break
        assert time.monotonic() < deadline, replies
        time.sleep(0.02)
    raw_pair.check("GET", "short")
    raw_pair.check("TTL", "short")
    raw_pair.check("MGET", "short", "long")
    raw_pair.check("DBSIZE")
    raw_pair.check("KEYS", "*")


def scan_all(side, *options):
    cursor, keys, rounds = b"0", [], 0
    while True:
        reply = as_python(side.run(("SCAN", cursor, *options)))
        cursor, batch = reply
        keys.extend(batch)
        rounds += 1
        assert rounds < 10_000
        if cursor == b"0":
            return keys


def test_scan_full_iteration_and_keys(raw_pair):
    names = ["user:%d" % i for i in range(120)] + ["other:%d" % i for i in range(30)]
    for side in (raw_pair.redis, raw_pair.ringkv):
        for i in range(0, len(names), 30):
            chunk = names[i:i + 30]
            assert side.run(("MSET", *[x for n in chunk for x in (n, "v")])) == ("simple", b"OK")
    for options in ((), ("COUNT", "7"), ("MATCH", "user:1*"), ("MATCH", "user:1*", "COUNT", "1000"),
                    ("TYPE", "string"), ("TYPE", "list"), ("MATCH", "nomatch*")):
        expected = scan_all(raw_pair.redis, *options)
        got = scan_all(raw_pair.ringkv, *options)
        assert len(got) == len(set(got)) or options == (), "duplicates in SCAN %s" % (options,)
        assert sorted(set(got)) == sorted(set(expected)), options
    for pattern in ("*", "user:1?", "other:[12]*", "*:5", "nomatch"):
        expected = sorted(as_python(raw_pair.redis.run(("KEYS", pattern))))
        got = sorted(as_python(raw_pair.ringkv.run(("KEYS", pattern))))
        assert got == expected, pattern
    key = as_python(raw_pair.ringkv.run(("RANDOMKEY",)))
    assert key.decode() in names


def raw_exchange(port, data):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    out = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            out += chunk
            if out.endswith(b"\r\n") and out.startswith(b"-"):
                break
    except socket.timeout:
        pass
    sock.close()
    return out


@pytest.mark.parametrize("data", [
    b"*1\r\n" * 100, b"*1\r\n$2147483648\r\n", b"*abc\r\n", b"*1\r\n$abc\r\n",
    b"*1\r\nfoo\r\n", b"*2\r\n$3\r\nGET\r\n*1\r\n",
], ids=["nested", "huge-bulk", "bad-multibulk", "bad-bulk", "no-dollar", "nested-arg"])
def test_protocol_errors_match(flushed, data):
    expected = raw_exchange(flushed["redis"].port, data)
    got = raw_exchange(flushed["ringkv"].port, data)
    assert got == expected
