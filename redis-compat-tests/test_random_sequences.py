"""Seeded random command sequences over a small key space, sent to redis-server and ringkv with
every reply compared (TTLs within a tolerance). A failure names the seed and the step; rerun
with the same seed to replay it.

TTLs are long (100 s and more) so nothing expires mid-run: the two servers see each command a
few microseconds apart, and a key expiring in between would make them differ legitimately. For
the same reason no two expiry times in a run are closer than half a second (each is drawn once
from a shuffled pool), so NX/XX/GT/LT comparisons never hinge on those microseconds."""

import random

import pytest

from conftest import Approx

KEYS = ["k%d" % i for i in range(6)] + ["{t}a", "{t}b"]
VALUES = ["", "0", "1", "-7", "42", "9223372036854775806", "abc", "hello world", "3.5", "x" * 40]


class Lifetimes:
    """Distinct lifetimes: whole seconds for EX/EXPIRE, and seconds and a half, in ms, for
    PX/PEXPIRE."""

    def __init__(self, rng):
        self.pool = list(range(100, 1000))
        rng.shuffle(self.pool)

    def seconds(self):
        return str(self.pool.pop())

    def millis(self):
        return str(self.pool.pop() * 1000 + 500)


def random_step(rng, lifetimes):
    key = rng.choice(KEYS)
    other = rng.choice(KEYS)
    value = rng.choice(VALUES)
    op = rng.randrange(32)
    if op == 0:
        args = ["SET", key, value]
        args += rng.choice([[], ["NX"], ["XX"], ["GET"], ["XX", "GET"], ["KEEPTTL"]])
        args += rng.choice([[], [], ["EX", lifetimes.seconds], ["PX", lifetimes.millis]])
        args = [a() if callable(a) else a for a in args]
        return tuple(args)
    table = [
        lambda: ("GET", key),
        lambda: ("INCR", key),
        lambda: ("DECR", key),
        lambda: ("INCRBY", key, str(rng.randint(-1000, 1000))),
        lambda: ("DECRBY", key, str(rng.choice([1, 10, -5, 9223372036854775807]))),
        lambda: ("APPEND", key, value),
        lambda: ("DEL", key, other),
        lambda: ("UNLINK", key),
        lambda: ("EXISTS", key, other, key),
        lambda: ("EXPIRE", key, lifetimes.seconds(),
                 *rng.choice([[], ["NX"], ["XX"], ["GT"], ["LT"]])),
        lambda: ("PEXPIRE", key, lifetimes.millis(),
                 *rng.choice([[], ["NX"], ["XX"], ["GT"], ["LT"]])),
        lambda: Approx(1, "TTL", key),
        lambda: Approx(1000, "PTTL", key),
        lambda: ("PERSIST", key),
        lambda: ("GETRANGE", key, str(rng.randint(-12, 12)), str(rng.randint(-12, 12))),
        lambda: ("SETRANGE", key, str(rng.randint(0, 20)), value),
        lambda: ("MSET", key, value, other, rng.choice(VALUES)),
        lambda: ("MGET", key, other, rng.choice(KEYS)),
        lambda: ("STRLEN", key),
        lambda: ("GETDEL", key),
        lambda: ("GETSET", key, value),
        lambda: ("SETNX", key, value),
        lambda: ("MSETNX", key, value, other, value),
        lambda: ("TYPE", key),
        lambda: ("RENAME", key, other),
        lambda: ("RENAMENX", key, other),
        lambda: ("COPY", key, other, *rng.choice([[], ["REPLACE"]])),
        lambda: ("SETBIT", key, str(rng.randint(0, 40)), str(rng.randint(0, 1))),
        lambda: ("GETBIT", key, str(rng.randint(0, 40))),
        lambda: ("BITCOUNT", key),
        lambda: ("INCRBYFLOAT", key, rng.choice(["0.5", "-1.25", "10", "3e2"])),
    ]
    return table[op - 1]()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_sequence(pair, seed):
    rng = random.Random(seed)
    lifetimes = Lifetimes(rng)
    for i in range(300):
        step = random_step(rng, lifetimes)
        try:
            pair.run([step])
        except AssertionError as e:
            raise AssertionError("seed %d, step %d: %s" % (seed, i, e)) from None
    # The final state agrees too.
    pair.check("DBSIZE")
    for key in KEYS:
        pair.check("GET", key)
        pair.check_approx(1, "TTL", key)
