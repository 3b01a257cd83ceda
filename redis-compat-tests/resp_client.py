"""A minimal RESP2/RESP3 client that keeps every reply's exact type.

redis-py turns ``+OK`` and ``$2\\r\\nOK`` into the same ``b"OK"``; the parity tests must tell
them apart, so this client parses replies into tagged tuples:

    ("simple", b"OK")  ("error", b"ERR ...")  ("int", 3)  ("bulk", b"..")
    ("nullbulk",)  ("nullarray",)  ("null",)  ("array", [...])  ("map", [(k, v), ...])
    ("set", [...])  ("double", b"1.5")  ("bool", True)  ("bignum", b"..")
    ("verbatim", b"txt", b"..")  ("push", [...])

Nothing here is specific to ringkv or to Redis.
"""

import socket


class ConnectionClosed(Exception):
    """The server closed the connection."""


def encode(args):
    """One request as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = str(arg).encode()
        elif isinstance(arg, float):
            arg = repr(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class RespClient:
    """A blocking connection speaking RESP2 (default) or RESP3 (after ``HELLO 3``)."""

    def __init__(self, port, protocol=2, timeout=10.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.protocol = protocol
        if protocol == 3:
            hello = self.call("HELLO", "3")
            if hello[0] != "map":
                raise AssertionError("HELLO 3 did not return a map: %r" % (hello,))

    def close(self):
        self.reader.close()
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def call(self, *args):
        self.sock.sendall(encode(args))
        return self.read()

    def _line(self):
        line = self.reader.readline()
        if not line:
            raise ConnectionClosed()
        if not line.endswith(b"\r\n"):
            raise AssertionError("reply line without CRLF: %r" % line)
        return line[:-2]

    def _exact(self, n):
        data = self.reader.read(n + 2)
        if len(data) != n + 2:
            raise ConnectionClosed()
        if data[-2:] != b"\r\n":
            raise AssertionError("payload without CRLF")
        return data[:-2]

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return ("simple", rest)
        if kind == b"-":
            return ("error", rest)
        if kind == b":":
            return ("int", int(rest))
        if kind == b"$":
            n = int(rest)
            return ("nullbulk",) if n < 0 else ("bulk", self._exact(n))
        if kind == b"*":
            n = int(rest)
            return ("nullarray",) if n < 0 else ("array", [self.read() for _ in range(n)])
        if kind == b"_":
            return ("null",)
        if kind == b"%":
            return ("map", [(self.read(), self.read()) for _ in range(int(rest))])
        if kind == b"~":
            return ("set", [self.read() for _ in range(int(rest))])
        if kind == b">":
            return ("push", [self.read() for _ in range(int(rest))])
        if kind == b",":
            return ("double", rest)
        if kind == b"#":
            return ("bool", rest == b"t")
        if kind == b"(":
            return ("bignum", rest)
        if kind == b"!":
            return ("error", self._exact(int(rest)))
        if kind == b"=":
            payload = self._exact(int(rest))
            return ("verbatim", payload[:3], payload[4:])
        if kind == b"|":
            for _ in range(int(rest)):
                self.read()
                self.read()
            return self.read()
        raise AssertionError("unknown reply type %r in %r" % (kind, line))


def as_python(frame):
    """A frame without its type tags, for shape checks."""
    kind = frame[0]
    if kind in ("array", "set", "push"):
        return [as_python(f) for f in frame[1]]
    if kind == "map":
        return {as_python(k): as_python(v) for k, v in frame[1]}
    if kind in ("nullbulk", "nullarray", "null"):
        return None
    if kind == "verbatim":
        return frame[2]
    return frame[1]
