#!/usr/bin/env python3
"""Damaged qcow2 images (qcow2corpus.py) through nbdcbt-img info, check
and (for the images that cannot be opened) bitmap --add: each must be
refused with a message (never a crash or a sanitizer report), and the
file must be left exactly as it was."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qcow2corpus  # noqa: E402
from nbdcbttest import require, scratch_dir, sha256_file  # noqa: E402

require("qemu-img")
require("qemu-io")
IMG = os.path.join(os.environ["top_builddir"], "tools", "img", "nbdcbt-img")


failures = []


def run(args):
    p = subprocess.run([IMG] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60,
                       universal_newlines=True, errors="replace")
    return p.returncode, p.stdout, p.stderr



def expect(name, cond, what, out=""):
    if not cond:
        failures.append(name)
        print("FAIL %s: %s\n%s" % (name, what, out))


d = scratch_dir()
valid = qcow2corpus.make_valid(d)
rc, out, err = run(["info", "-f", "qcow2", valid])
expect("valid", rc == 0, "info failed on the valid image", err)
rc, out, err = run(["check", valid])
expect("valid", rc == 0, "check failed on the valid image", out + err)

for name, kind, make in qcow2corpus.CASES:
    path = make(d)
    before = sha256_file(path)

    rc, out, err = run(["info", "-f", "qcow2", path])
    expect(name, not qcow2corpus.crashed(rc, err), "info crashed (%d)" % rc, err)
    if name in ("backing-loop", "backing-self"):
        # info does not open the backing chain (qemu-img info neither:
        # it prints a looping image with exit 0).
        expect(name, rc == 0, "info failed (exit %d)" % rc, out + err)
    elif kind == "open":
        expect(name, rc == 1 and "nbdcbt-img:" in err,
               "info did not refuse it (exit %d)" % rc, out + err)
    print("%-32s info  exit %d  %s" % (name, rc, err.strip()[:110]))

    rc, out, err = run(["check", "-f", "qcow2", path])
    expect(name, not qcow2corpus.crashed(rc, err), "check crashed (%d)" % rc, err)
    expect(name, rc in (1, 2) and err.strip() != "",
           "check did not report it (exit %d)" % rc, out + err)
    print("%-32s check exit %d  %s" % (name, rc,
                                       err.strip().split("\n")[0][:110]))

    if kind == "open" and not name.startswith("backing-"):
        # A writable open must refuse it too, before writing anything.
        rc, out, err = run(["bitmap", "--add", "-f", "qcow2", path, "new"])
        expect(name, not qcow2corpus.crashed(rc, err),
               "bitmap --add crashed (%d)" % rc, err)
        expect(name, rc == 1 and "nbdcbt-img:" in err,
               "bitmap --add did not refuse it (exit %d)" % rc, out + err)

    expect(name, sha256_file(path) == before, "the file was modified")

if failures:
    print("%d failures: %s" % (len(failures), " ".join(failures)))
    sys.exit(1)
