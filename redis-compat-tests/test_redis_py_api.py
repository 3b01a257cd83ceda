"""redis-py's high-level API against ringkv alone, as an application would use it: pipelines,
scan_iter, set with ex/nx/get, counters, expiry helpers, in RESP2 and RESP3."""

import pytest
import redis


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def r(request, ringkv_port):
    client = redis.Redis(port=ringkv_port, protocol=request.param, decode_responses=True)
    yield client
    client.close()


def test_strings_and_options(r):
    assert r.ping() is True
    assert r.set("a", "1") is True
    assert r.set("a", "2", nx=True) is None
    assert r.set("a", "3", xx=True, get=True) == "1"
    assert r.set("b", "x", ex=100) is True
    assert 99 <= r.ttl("b") <= 100
    assert r.set("c", "y", px=100_000, nx=True) is True
    assert 99_000 < r.pttl("c") <= 100_000
    assert r.get("a") == "3"
    assert r.incr("n") == 1 and r.incrby("n", 9) == 10 and r.decr("n") == 9
    assert r.incrbyfloat("f", 1.5) == 1.5
    assert r.append("a", "45") == 3 and r.strlen("a") == 3
    assert r.getrange("a", 0, 1) == "34"
    assert r.mset({"m1": "1", "m2": "2"}) is True
    assert r.mget(["m1", "m2", "missing"]) == ["1", "2", None]
    assert r.getdel("m1") == "1" and r.exists("m1") == 0
    assert r.getex("m2", ex=50) == "2" and 49 <= r.ttl("m2") <= 50
    assert r.persist("m2") is True and r.ttl("m2") == -1
    assert r.expire("m2", 100, nx=True) is True
    assert r.expire("m2", 10, gt=True) is False
    assert r.type("m2") == "string"
    assert r.rename("m2", "m3") is True and r.get("m3") == "2"
    assert r.copy("m3", "m4") is True and r.get("m4") == "2"
    assert r.setbit("bits", 3, 1) == 0 and r.getbit("bits", 3) == 1 and r.bitcount("bits") == 1
    assert r.delete("a", "b", "nope") == 2
    with pytest.raises(redis.ResponseError, match="not an integer"):
        r.incr("c")


def test_pipelines(r):
    with r.pipeline(transaction=False) as pipe:
        for i in range(200):
            pipe.set("p:%d" % i, i)
        pipe.incr("p:0")
        pipe.get("p:199")
        pipe.mget(["p:1", "p:2"])
        replies = pipe.execute()
    assert replies[:200] == [True] * 200
    assert replies[200:] == [1, "199", ["1", "2"]]
    with r.pipeline(transaction=False) as pipe:
        pipe.set("q", "v").get("q").delete("q").exists("q")
        assert pipe.execute() == [True, "v", 1, 0]
    assert r.dbsize() == 200


def test_scan_iter(r):
    names = {"s:%d" % i for i in range(300)} | {"t:%d" % i for i in range(50)}
    r.mset({name: "v" for name in names})
    assert set(r.scan_iter()) == names
    assert set(r.scan_iter(match="t:*", count=10)) == {n for n in names if n.startswith("t:")}
    assert set(r.scan_iter(_type="string", count=1000)) == names
    assert set(r.scan_iter(_type="hash")) == set()
    assert sorted(r.keys("t:1*")) == sorted(n for n in names if n.startswith("t:1"))


def test_client_name_and_info(r):
    assert r.client_setname("app-1") is True
    assert r.client_getname() == "app-1"
    assert isinstance(r.client_id(), int)
    assert any(c.get("name") == "app-1" for c in r.client_list())
    info = r.info()
    assert info["redis_version"].startswith("7.")
    assert "connected_clients" in info
    assert isinstance(r.config_get("maxclients"), dict)
