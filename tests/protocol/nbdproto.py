# nbdcbt
# Copyright (C) 2026 the nbdcbt authors
# All rights reserved.
#
# Redistribution and use in source and binary forms, with or without
# modification, are permitted provided that the following conditions are
# met:
#
# * Redistributions of source code must retain the above copyright
# notice, this list of conditions and the following disclaimer.
#
# * Redistributions in binary form must reproduce the above copyright
# notice, this list of conditions and the following disclaimer in the
# documentation and/or other materials provided with the distribution.
#
# * Neither the name of the nbdcbt authors nor the names of its
# contributors may be used to endorse or promote products derived from
# this software without specific prior written permission.
#
# THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
# "AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
# LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR A
# PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
# HOLDER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
# SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
# LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
# DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
# THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
# (INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
# OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.

"""Helpers for the NBD protocol suite (tests/protocol).

The server under test is chosen with env SERVER=nbdcbt (default) | nbdkit |
qemu-nbd, so that every test can first be validated against a reference
server.  Tests of nbdcbt-specific behaviour call only("nbdcbt").

    from nbdproto import *
    with memory("1M") as srv:       # the selected server, memory-like export
        h = srv.connect()
        raw = Raw(srv.sock)          # hand-built packets over the socket
        size, eflags = raw.handshake()

Everything on the wire is big-endian (proto.md).
"""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import nbd                      # noqa: E402
import nbdcbttest               # noqa: E402
from nbdcbttest import Server, scratch_dir, skip, require  # noqa: E402,F401

SERVER = os.environ.get("SERVER", "nbdcbt")
if SERVER not in ("nbdcbt", "nbdkit", "qemu-nbd"):
    print("SERVER must be nbdcbt, nbdkit or qemu-nbd, not %r" % SERVER)
    sys.exit(1)

# Constants from the NBD spec (proto.md).
NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3e889045565a9
REQUEST_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
STRUCTURED_MAGIC = 0x668e33ef

FLAG_FIXED_NEWSTYLE = 1
FLAG_NO_ZEROES = 2

OPT_EXPORT_NAME = 1
OPT_ABORT = 2
OPT_LIST = 3
OPT_STARTTLS = 5
OPT_INFO = 6
OPT_GO = 7
OPT_STRUCTURED_REPLY = 8
OPT_LIST_META_CONTEXT = 9
OPT_SET_META_CONTEXT = 10

REP_ACK = 1
REP_SERVER = 2
REP_INFO = 3
REP_META_CONTEXT = 4
ERR_UNSUP = 0x80000001
ERR_POLICY = 0x80000002
ERR_INVALID = 0x80000003
ERR_PLATFORM = 0x80000004
ERR_TLS_REQD = 0x80000005
ERR_UNKNOWN = 0x80000006
ERR_SHUTDOWN = 0x80000007
ERR_BLOCK_SIZE_REQD = 0x80000008
ERR_TOO_BIG = 0x80000009

INFO_EXPORT = 0
INFO_NAME = 1
INFO_DESCRIPTION = 2
INFO_BLOCK_SIZE = 3

EF_HAS_FLAGS = 1 << 0
EF_READ_ONLY = 1 << 1
EF_SEND_FLUSH = 1 << 2
EF_SEND_FUA = 1 << 3
EF_ROTATIONAL = 1 << 4
EF_SEND_TRIM = 1 << 5
EF_SEND_WRITE_ZEROES = 1 << 6
EF_SEND_DF = 1 << 7
EF_CAN_MULTI_CONN = 1 << 8
EF_SEND_RESIZE = 1 << 9
EF_SEND_CACHE = 1 << 10
EF_SEND_FAST_ZERO = 1 << 11

CMD_READ = 0
CMD_WRITE = 1
CMD_DISC = 2
CMD_FLUSH = 3
CMD_TRIM = 4
CMD_CACHE = 5
CMD_WRITE_ZEROES = 6
CMD_BLOCK_STATUS = 7

CMD_FLAG_FUA = 1 << 0
CMD_FLAG_NO_HOLE = 1 << 1
CMD_FLAG_DF = 1 << 2
CMD_FLAG_REQ_ONE = 1 << 3
CMD_FLAG_FAST_ZERO = 1 << 4

REPLY_FLAG_DONE = 1
REPLY_TYPE_NONE = 0
REPLY_TYPE_OFFSET_DATA = 1
REPLY_TYPE_OFFSET_HOLE = 2
REPLY_TYPE_BLOCK_STATUS = 5
REPLY_TYPE_ERROR = 0x8001
REPLY_TYPE_ERROR_OFFSET = 0x8002

EPERM = 1
EIO = 5
ENOMEM = 12
EINVAL = 22
ENOSPC = 28
EOVERFLOW = 75
ENOTSUP = 95
ESHUTDOWN = 108

ERRNAMES = {0: "OK", 1: "EPERM", 5: "EIO", 12: "ENOMEM", 22: "EINVAL",
            28: "ENOSPC", 75: "EOVERFLOW", 95: "ENOTSUP", 108: "ESHUTDOWN"}

_failures = 0


def _short(v, limit=300):
    s = repr(v)
    return s if len(s) <= limit else s[:limit] + "... (%d chars)" % len(s)


def check(cond, what, expected=None, got=None):
    """Record a failed expectation (the test goes on, and exits 1 at
    the end via finish())."""
    global _failures
    if not cond:
        _failures += 1
        msg = "FAIL: " + what
        if expected is not None or got is not None:
            msg += "\n  expected: %s\n  got:      %s" % (_short(expected),
                                                      _short(got))
        print(msg, flush=True)
    return cond


def check_eq(got, expected, what):
    return check(got == expected, what, expected, got)


def finish():
    if _failures:
        print("%d check(s) failed against SERVER=%s" % (_failures, SERVER))
        sys.exit(1)
    sys.exit(0)


def only(*servers):
    """Skip unless the selected server is one of SERVERS."""
    if SERVER not in servers:
        skip("this test is for %s only (SERVER=%s)"
             % (" or ".join(servers), SERVER))


def _size_bytes(size):
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    s = str(size)
    if s[-1].upper() in mult:
        return int(s[:-1]) * mult[s[-1].upper()]
    return int(s)


def _common_opts(readonly, export):
    opts = []
    if readonly:
        opts.append("-r")
    if export is not None:
        opts += ["-e", export]
    return opts


class _Server(Server):
    """nbdcbttest.Server that also checks nbdcbt shuts down cleanly on
    SIGTERM (exit status 0: no crash, and under ASan no leak)."""

    def __exit__(self, *exc):
        rc = self.stop()
        if SERVER == "nbdcbt" and rc != 0:
            print("FAIL: nbdcbt exited with status %d on SIGTERM (expected 0)"
                  % rc, flush=True)
            sys.exit(1)
        return False


def memory(size="1M", readonly=False, export=None):
    """The selected server exporting SIZE bytes of zeroed, sparse,
    writable storage: the memory plugin for nbdcbt and nbdkit, a sparse
    raw file for qemu-nbd."""
    exp = export or ""
    if SERVER == "nbdcbt":
        return _Server.nbdcbt(["memory", "size=%s" % size], exp,
                             extra=_common_opts(readonly, export))
    if SERVER == "nbdkit":
        return _Server.nbdkit(_common_opts(readonly, export) +
                             ["memory", str(size)], exp)
    path = os.path.join(scratch_dir(), "mem-%d.raw" % time.monotonic_ns())
    with open(path, "wb") as f:
        f.truncate(_size_bytes(size))
    return file(path, readonly, export)


def file(path, readonly=False, export=None):
    """The selected server exporting the raw file PATH."""
    exp = export or ""
    if SERVER == "nbdcbt":
        return _Server.nbdcbt(["file", path], exp,
                             extra=_common_opts(readonly, export))
    if SERVER == "nbdkit":
        return _Server.nbdkit(_common_opts(readonly, export) +
                             ["file", path], exp)
    opts = ["-f", "raw", "-t", "--shared=0", "--discard=unmap"]
    if readonly:
        opts.append("-r")
    if export is not None:
        opts += ["-x", export]
    return _Server.qemu_nbd(opts + [path], exp)


def still_serving(srv, what="after the previous test"):
    """Prove the server still serves a fresh connection: handshake,
    one read, clean disconnect."""
    try:
        h = srv.connect()
        h.pread(512, 0)
        h.shutdown()
        del h
        return True
    except Exception as e:
        check(False, "server no longer serves a fresh connection " + what,
              "a working connection", repr(e))
        return False


def errno_of(exc):
    """The errno of an nbd.Error (0 if none)."""
    return getattr(exc, "errnum", None) or 0


def expect_errno(fn, expected, what):
    """Call FN; check it fails with errno EXPECTED (a set or int)."""
    import errno as _e
    want = expected if isinstance(expected, (set, tuple)) else {expected}
    try:
        fn()
    except nbd.Error as e:
        got = errno_of(e)
        return check(got in want, what,
                     "fails with " + "/".join(_e.errorcode[x] for x in want),
                     "%s (%s)" % (_e.errorcode.get(got, got), e.string))
    check(False, what,
          "fails with " + "/".join(_e.errorcode[x] for x in want),
          "succeeded")
    return False


class Closed(Exception):
    """The server closed the connection."""


class Raw:
    """A hand-driven NBD client on a Unix socket."""

    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.structured = False

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # ---- bytes ----
    def send(self, data):
        try:
            self.s.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Closed("send: " + str(e))

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.s.recv(n - len(buf))
            except ConnectionResetError as e:
                raise Closed("recv: " + str(e))
            if not chunk:
                raise Closed("EOF after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return buf

    def closed_by_server(self, timeout=10):
        """True if the server closes the connection within TIMEOUT
        seconds (any data it still sends is discarded)."""
        self.s.settimeout(timeout)
        end = time.time() + timeout
        try:
            while time.time() < end:
                if not self.s.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False

    # ---- handshake ----
    def greeting(self):
        magic, opt, hflags = struct.unpack(">QQH", self.recv(18))
        if magic != NBDMAGIC or opt != IHAVEOPT:
            raise AssertionError("bad greeting %x %x" % (magic, opt))
        return hflags

    def client_flags(self, flags):
        self.send(struct.pack(">I", flags))

    def start(self, flags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        """Greeting and client flags; returns the server's flags."""
        hflags = self.greeting()
        self.client_flags(flags & (hflags | ~3))
        return hflags

    def send_option(self, opt, data=b"", magic=IHAVEOPT, length=None):
        if length is None:
            length = len(data)
        self.send(struct.pack(">QII", magic, opt, length) + data)

    def read_option_reply(self):
        """(option, reply type, payload) of one option reply."""
        magic, opt, rtype, ln = struct.unpack(">QIII", self.recv(20))
        if magic != REPLY_MAGIC:
            raise AssertionError("bad option reply magic 0x%x" % magic)
        return opt, rtype, self.recv(ln) if ln else b""

    def option(self, opt, data=b"", **kw):
        """Send an option, return all its replies [(type, payload)]; the
        last is the final one (ACK or an error)."""
        self.send_option(opt, data, **kw)
        out = []
        while True:
            ropt, rtype, payload = self.read_option_reply()
            if ropt != opt:
                raise AssertionError("option reply for %d, sent %d"
                                     % (ropt, opt))
            out.append((rtype, payload))
            if rtype not in (REP_SERVER, REP_INFO, REP_META_CONTEXT):
                return out

    @staticmethod
    def info_data(name=b"", infos=(INFO_BLOCK_SIZE,)):
        return (struct.pack(">I", len(name)) + name +
                struct.pack(">H", len(infos)) +
                b"".join(struct.pack(">H", i) for i in infos))

    @staticmethod
    def meta_data(name=b"", queries=()):
        return (struct.pack(">I", len(name)) + name +
                struct.pack(">I", len(queries)) +
                b"".join(struct.pack(">I", len(q)) + q for q in queries))

    def handshake(self, export=b"", structured=True, meta=(),
                  flags=FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES):
        """Negotiate with GO; returns (size, transmission flags,
        {info type: payload}, {context name: id})."""
        self.start(flags)
        if structured:
            r = self.option(OPT_STRUCTURED_REPLY)
            if r[-1][0] != REP_ACK:
                raise AssertionError("STRUCTURED_REPLY refused: %x"
                                     % r[-1][0])
            self.structured = True
        ctx = {}
        if meta:
            for rtype, p in self.option(OPT_SET_META_CONTEXT,
                                        self.meta_data(export, meta)):
                if rtype == REP_META_CONTEXT:
                    ctx[p[4:].decode()] = struct.unpack(">I", p[:4])[0]
        replies = self.option(OPT_GO, self.info_data(export))
        if replies[-1][0] != REP_ACK:
            raise AssertionError("GO failed: 0x%x %r" % replies[-1])
        infos = {}
        for rtype, p in replies:
            if rtype == REP_INFO:
                infos[struct.unpack(">H", p[:2])[0]] = p
        size, eflags = struct.unpack(">QH", infos[INFO_EXPORT][2:])
        return size, eflags, infos, ctx

    # ---- transmission ----
    def request(self, cmd, flags=0, cookie=1, offset=0, length=0, data=b"",
                magic=REQUEST_MAGIC):
        self.send(struct.pack(">IHHQQI", magic, flags, cmd, cookie, offset,
                              length) + data)

    def reply(self, read_len=0):
        """Read one whole reply: a simple reply, or structured chunks up to
        the one with DONE.  Returns (kind, cookie, error, chunks) where
        kind is 'simple' or 'structured', chunks is [(flags, type,
        payload)] for structured replies or [data] for a successful simple
        READ reply, and error is the errno (the first error chunk's for
        structured replies)."""
        magic = struct.unpack(">I", self.recv(4))[0]
        if magic == SIMPLE_MAGIC:
            err, cookie = struct.unpack(">IQ", self.recv(12))
            data = [self.recv(read_len)] if (read_len and not err) else []
            return "simple", cookie, err, data
        chunks = []
        err = 0
        cookie0 = None
        while True:
            if magic != STRUCTURED_MAGIC:
                raise AssertionError("bad reply magic 0x%x" % magic)
            flags, rtype, cookie, ln = struct.unpack(">HHQI",
                                                     self.recv(16))
            if cookie0 is None:
                cookie0 = cookie
            payload = self.recv(ln) if ln else b""
            _check_chunk(flags, rtype, cookie, cookie0, payload)
            chunks.append((flags, rtype, payload))
            if rtype & 0x8000 and not err:
                err = struct.unpack(">I", payload[:4])[0]
            if flags & REPLY_FLAG_DONE:
                return "structured", cookie0, err, chunks
            magic = struct.unpack(">I", self.recv(4))[0]

    def disc(self):
        self.request(CMD_DISC)


def _check_chunk(flags, rtype, cookie, cookie0, p):
    """The format rules every structured reply chunk must follow."""
    what = "chunk type %#x" % rtype
    check(cookie == cookie0, what + ": same cookie in every chunk",
          cookie0, cookie)
    check(flags & ~REPLY_FLAG_DONE == 0, what + ": only the DONE flag",
          "0 or 1", flags)
    if rtype == REPLY_TYPE_NONE:
        check(flags & REPLY_FLAG_DONE and not p,
              "NONE chunk: empty, with DONE", "DONE, 0 bytes",
              (flags, len(p)))
    elif rtype == REPLY_TYPE_OFFSET_DATA:
        check(len(p) >= 9, "OFFSET_DATA >= 9 bytes", ">= 9", len(p))
    elif rtype == REPLY_TYPE_OFFSET_HOLE:
        check(len(p) == 12, "OFFSET_HOLE is 12 bytes", 12, len(p))
    elif rtype == REPLY_TYPE_BLOCK_STATUS:
        check(len(p) >= 12 and (len(p) - 4) % 8 == 0,
              "BLOCK_STATUS is 4 + 8n bytes, n >= 1", "4 + 8n", len(p))
    elif rtype in (REPLY_TYPE_ERROR, REPLY_TYPE_ERROR_OFFSET):
        fixed = 6 if rtype == REPLY_TYPE_ERROR else 14
        if check(len(p) >= fixed, what + ": at least %d bytes" % fixed,
                 fixed, len(p)):
            err, mlen = struct.unpack(">IH", p[:6])
            check(err != 0, what + ": nonzero error", "!= 0", err)
            check_eq(len(p), fixed + mlen, what + ": length = fixed part "
                     "+ message length")
            try:
                p[6:6 + mlen].decode("utf-8")
            except UnicodeDecodeError:
                check(False, what + ": message is UTF-8", "UTF-8",
                      p[6:6 + mlen])
        # qemu's client drops the connection on non-data chunks > 1000.
        check(len(p) <= 1000, what + ": short enough for qemu", "<= 1000",
              len(p))
    else:
        check(False, "known reply chunk type", "0, 1, 2, 5, 0x8001, 0x8002",
              hex(rtype))


def read_data(chunks, offset, length):
    """Assemble the data of a successful structured READ from its chunks
    (holes as zeroes); None if chunks overlap or leave a gap."""
    buf = bytearray(length)
    seen = bytearray(length)
    for flags, rtype, p in chunks:
        if rtype == REPLY_TYPE_OFFSET_DATA:
            off = struct.unpack(">Q", p[:8])[0] - offset
            data = p[8:]
        elif rtype == REPLY_TYPE_OFFSET_HOLE:
            off0, n = struct.unpack(">QI", p)
            off = off0 - offset
            data = bytes(n)
        else:
            continue
        if off < 0 or off + len(data) > length:
            return None
        if any(seen[off:off + len(data)]):
            return None
        buf[off:off + len(data)] = data
        seen[off:off + len(data)] = b"\1" * len(data)
    if not all(seen):
        return None
    return bytes(buf)
