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

"""STARTTLS on the wire, with hand-built packets and Python's ssl module.

--tls=require: before STARTTLS every option but STARTTLS and ABORT gets
NBD_REP_ERR_TLS_REQD and nothing else (no export name, size or existence
leaks, whatever the name asked for); EXPORT_NAME is hung up on.  After
TLS: a second STARTTLS is invalid, everything works.  --tls=on: what the
client negotiated in plaintext (structured replies, meta contexts) is
forgotten at STARTTLS.  --tls=off: STARTTLS gets ERR_POLICY.  A man in
the middle that strips STARTTLS: a client that requires TLS refuses to go
on, and a --tls=require server gives the stripped client nothing.

SERVER=nbdkit runs the same checks against nbdkit (to check the test).
"""

import os
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                ".."))
import nbd                                        # noqa: E402
from nbdcbttest import Server, recv_exactly, require, scratch_dir  # noqa: E402

SERVER = os.environ.get("SERVER", "nbdcbt")
NBDMAGIC = 0x4e42444d41474943
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3e889045565a9
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 6, 7, 8
OPT_LIST_META_CONTEXT, OPT_SET_META_CONTEXT = 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META_CONTEXT = 1, 2, 3, 4
ERR_POLICY, ERR_INVALID, ERR_TLS_REQD = 0x80000002, 0x80000003, 0x80000005
SECRET = "secret-export-name"
SIZE = 1048576 + 4096

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, flush=True)


def make_creds():
    d = tempfile.mkdtemp(dir=scratch_dir())
    top = os.environ["top_srcdir"]
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run(["bash", "-c", 'source "$1/tests/functions.sh"; '
                    'source "$2/tls-functions.sh"; make_x509 "$3"',
                    "_", top, here, d], check=True)
    return d


def server(creds, mode):
    args = ["--tls=" + mode, "--tls-certificates=" + creds + "/srv",
            "-e", SECRET, "memory", "size=%d" % SIZE]
    if SERVER == "nbdkit":
        require("nbdkit")
        return Server.nbdkit(args)
    return Server.nbdcbt(args)


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(path)
        hdr = self.recv(18)
        magic, opt, flags = struct.unpack(">QQH", hdr)
        assert magic == NBDMAGIC and opt == IHAVEOPT
        self.s.sendall(struct.pack(">I", 3))   # fixed newstyle, no zeroes

    def recv(self, n):
        b = b""
        while len(b) < n:
            d = self.s.recv(n - len(b))
            if not d:
                raise EOFError("server closed after %d of %d bytes"
                               % (len(b), n))
            b += d
        return b

    def send_opt(self, opt, data=b""):
        self.s.sendall(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)

    def reply(self):
        magic, opt, typ, n = struct.unpack(">QIII", self.recv(20))
        assert magic == REPLY_MAGIC, hex(magic)
        return opt, typ, self.recv(n)

    def replies(self):
        """Every reply up to the final one (ACK or an error)."""
        out = []
        while True:
            r = self.reply()
            out.append(r)
            if r[1] == REP_ACK or r[1] & 0x80000000:
                return out

    def starttls(self, creds):
        self.send_opt(OPT_STARTTLS)
        opt, typ, data = self.reply()
        assert (opt, typ) == (OPT_STARTTLS, REP_ACK), (opt, hex(typ), data)
        ctx = ssl.create_default_context(cafile=creds + "/cli/ca-cert.pem")
        self.s = ctx.wrap_socket(self.s, server_hostname="localhost")
        return self.s.version()


def info_go(name, infos=(3,)):
    n = name.encode()
    return (struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos))
            + b"".join(struct.pack(">H", i) for i in infos))


def meta(name, queries):
    n = name.encode()
    d = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
    for q in queries:
        d += struct.pack(">I", len(q)) + q.encode()
    return d


# Options a plaintext client might try against --tls=require.
PROBES = [
    ("LIST", OPT_LIST, b""),
    ("INFO default", OPT_INFO, info_go("", (0, 1, 2, 3))),
    ("INFO secret name", OPT_INFO, info_go(SECRET, (1, 2))),
    ("INFO unknown name", OPT_INFO, info_go("no-such-export")),
    ("GO default", OPT_GO, info_go("")),
    ("GO secret name", OPT_GO, info_go(SECRET)),
    ("GO unknown name", OPT_GO, info_go("no-such-export")),
    ("INFO malformed", OPT_INFO, b"\xff\xff\xff\xff"),
    ("STRUCTURED_REPLY", OPT_STRUCTURED_REPLY, b""),
    ("LIST_META_CONTEXT", OPT_LIST_META_CONTEXT, meta("", [])),
    ("SET_META_CONTEXT", OPT_SET_META_CONTEXT,
     meta(SECRET, ["base:allocation"])),
    ("unknown option", 0x7654321, b"abc"),
]


def test_require(creds):
    with server(creds, "require") as srv:
        c = Conn(srv.sock)
        for what, opt, data in PROBES:
            c.send_opt(opt, data)
            rs = c.replies()
            check(len(rs) == 1 and rs[0][:2] == (opt, ERR_TLS_REQD),
                  "require: %s before STARTTLS: expected one ERR_TLS_REQD, "
                  "got %r" % (what, rs))
            blob = b"".join(r[2] for r in rs)
            check(SECRET.encode() not in blob
                  and struct.pack(">Q", SIZE) not in blob,
                  "require: %s leaked export facts: %r" % (what, blob))
        # STARTTLS with data is invalid, and changes nothing.
        c.send_opt(OPT_STARTTLS, b"x")
        rs = c.replies()
        check(rs[0][:2] == (OPT_STARTTLS, ERR_INVALID),
              "require: STARTTLS with data: %r" % rs)
        # STARTTLS after all those options (still no TLS) works.
        version = c.starttls(creds)
        check(version == "TLSv1.3", "TLS 1.3 expected, got %s" % version)
        # A second STARTTLS inside TLS is invalid.
        c.send_opt(OPT_STARTTLS)
        rs = c.replies()
        check(rs[0][:2] == (OPT_STARTTLS, ERR_INVALID),
              "require: second STARTTLS: %r" % rs)
        # Now everything works: LIST names the export, INFO has its size.
        c.send_opt(OPT_LIST)
        rs = c.replies()
        # (nbdkit's memory plugin lists "" whatever -e says)
        check(SERVER == "nbdkit"
              or any(r[1] == REP_SERVER and SECRET.encode() in r[2]
                     for r in rs), "require: LIST after TLS: %r" % rs)
        c.send_opt(OPT_INFO, info_go(SECRET, (0,)))
        rs = c.replies()
        check(any(r[1] == REP_INFO and r[2][:2] == b"\0\0"
                  and struct.unpack(">Q", r[2][2:10])[0] == SIZE
                  for r in rs), "require: INFO after TLS: %r" % rs)
        c.send_opt(OPT_ABORT)
        check(c.reply()[:2] == (OPT_ABORT, REP_ACK), "ABORT inside TLS")

        # ABORT is honoured before TLS.
        c = Conn(srv.sock)
        c.send_opt(OPT_ABORT)
        check(c.reply()[:2] == (OPT_ABORT, REP_ACK), "require: ABORT")

        # EXPORT_NAME before TLS: hung up on, not a byte about the export.
        c = Conn(srv.sock)
        c.send_opt(OPT_EXPORT_NAME, SECRET.encode())
        try:
            got = c.s.recv(4096)
        except ConnectionResetError:
            got = b""
        check(got == b"", "require: EXPORT_NAME before TLS got %r" % got)

        # libnbd in plaintext (tls off): refused, told TLS is needed.
        h = nbd.NBD()
        try:
            h.connect_uri(srv.uri)
            check(False, "require: a plaintext libnbd client connected")
        except nbd.Error as e:
            check("TLS" in str(e) or "not supported" in str(e),
                  "require: libnbd's error: %s" % e)


def test_on_forgets(creds):
    """Plaintext negotiation does not survive STARTTLS."""
    if SERVER == "nbdkit":
        print("nbdkit 1.32 keeps structured replies across STARTTLS: "
              "skipping test_on_forgets")
        return
    with server(creds, "on") as srv:
        c = Conn(srv.sock)
        c.send_opt(OPT_STRUCTURED_REPLY)
        check(c.replies()[0][1] == REP_ACK, "on: STRUCTURED_REPLY in plain")
        c.send_opt(OPT_SET_META_CONTEXT, meta("", ["base:allocation"]))
        rs = c.replies()
        check(any(r[1] == REP_META_CONTEXT for r in rs),
              "on: SET_META_CONTEXT in plain: %r" % rs)
        c.starttls(creds)
        # Meta contexts need structured replies, which are forgotten.
        c.send_opt(OPT_LIST_META_CONTEXT, meta("", []))
        rs = c.replies()
        check(rs[0][1] == ERR_INVALID,
              "on: structured replies survived STARTTLS: %r" % rs)
        c.send_opt(OPT_GO, info_go(""))
        rs = c.replies()
        check(rs[-1][1] == REP_ACK, "on: GO after TLS: %r" % rs)
        flags = [struct.unpack(">QH", r[2][2:12])[1] for r in rs
                 if r[1] == REP_INFO and r[2][:2] == b"\0\0"]
        check(flags and not flags[0] & (1 << 7),
              "on: SEND_DF (structured replies) advertised: %r" % flags)
        # READ gets a simple reply (structured replies are off).
        c.s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 1, 0, 512))
        magic, err, cookie = struct.unpack(">IIQ", c.recv(16))
        check((magic, err, cookie) == (0x67446698, 0, 1),
              "on: READ reply %x %d %d" % (magic, err, cookie))
        c.recv(512)
        # BLOCK_STATUS: the plaintext selection is gone.
        h = nbd.NBD()
        h.set_uri_allow_local_file(True)
        h.add_meta_context("base:allocation")
        h.connect_uri("nbds+unix:///?socket=%s&tls-certificates=%s/cli"
                      % (srv.sock, creds))
        check(h.get_tls_negotiated() and h.can_meta_context("base:allocation"),
              "on: libnbd over TLS")
        h.shutdown()
        h2 = nbd.NBD()
        h2.connect_uri(srv.uri)
        check(not h2.get_tls_negotiated(), "on: plaintext libnbd")
        h2.shutdown()


def test_off():
    args = ["memory", "size=1M"]
    srv = Server.nbdkit(args) if SERVER == "nbdkit" else Server.nbdcbt(args)
    with srv:
        c = Conn(srv.sock)
        c.send_opt(OPT_STARTTLS)
        rs = c.replies()
        check(rs[0][:2] == (OPT_STARTTLS, ERR_POLICY),
              "off: STARTTLS: %r" % rs)


class Stripper:
    """A man in the middle on a Unix socket: answers the client's STARTTLS
    itself with ERR_POLICY (as a server without TLS would) and passes
    everything else through in plaintext."""

    def __init__(self, target):
        self.target = target
        self.path = os.path.join(tempfile.mkdtemp(dir=scratch_dir()), "mitm")
        self.ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.ls.bind(self.path)
        self.ls.listen(4)
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            cl, _ = self.ls.accept()
            threading.Thread(target=self.serve, args=(cl,),
                             daemon=True).start()

    @staticmethod
    def recvn(s, n):
        b = recv_exactly(s, n)
        if b is None:
            raise EOFError
        return b

    def serve(self, cl):
        sv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sv.connect(self.target)
        try:
            cl.sendall(self.recvn(sv, 18))
            sv.sendall(self.recvn(cl, 4))

            def back():
                try:
                    while True:
                        d = sv.recv(65536)
                        if not d:
                            break
                        cl.sendall(d)
                except OSError:
                    pass
                cl.close()
            threading.Thread(target=back, daemon=True).start()
            while True:
                hdr = self.recvn(cl, 16)
                _, opt, n = struct.unpack(">QII", hdr)
                data = self.recvn(cl, n)
                if opt == OPT_STARTTLS:
                    cl.sendall(struct.pack(">QIII", REPLY_MAGIC, opt,
                                           ERR_POLICY, 0))
                else:
                    sv.sendall(hdr + data)
        except (EOFError, OSError):
            pass
        sv.close()


def test_stripped(creds):
    for mode in ("on", "require"):
        with server(creds, mode) as srv:
            mitm = Stripper(srv.sock)
            # A client that requires TLS does not go on without it.
            h = nbd.NBD()
            h.set_uri_allow_local_file(True)
            try:
                h.connect_uri("nbds+unix:///?socket=%s&tls-certificates=%s/cli"
                              % (mitm.path, creds))
                check(False, "%s: TLS stripped, the client went on" % mode)
            except nbd.Error as e:
                print("stripped STARTTLS, libnbd says: %s" % e)
            # A client that only allows TLS is downgraded by the MITM
            # (the client's choice): --tls=require gives it nothing.
            h = nbd.NBD()
            h.set_tls(1)
            h.set_tls_certificates(creds + "/cli")
            if mode == "require":
                try:
                    h.connect_unix(mitm.path)
                    check(False, "require: a stripped client got an export")
                except nbd.Error as e:
                    check("TLS" in str(e) or "not supported" in str(e),
                          "require: stripped client's error: %s" % e)


creds = make_creds()
test_require(creds)
test_on_forgets(creds)
test_off()
test_stripped(creds)
if failures:
    print("%d check(s) failed (SERVER=%s)" % (failures, SERVER))
    sys.exit(1)
