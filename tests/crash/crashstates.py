# Crash states from a crashrec log (see crashrec.c), in the spirit of
# CrashMonkey/ALICE.
#
# Model of what survives a power loss:
#   - data writes (W, Z) to a file are pending until an fsync/fdatasync of
#     that file (S); any subset of the pending ones may have reached the
#     disk, in any order;
#   - writes made durable by RWF_DSYNC/O_DSYNC (D) and size changes (T)
#     are durable when they return;
#   - namespace operations (create, rename, unlink) persist in program
#     order (nbdcbt fsyncs a file before renaming it into place and the
#     directory after).
# Crash points: just before and just after every sync and every durable
# write, and the end.

import os
import random


class File:
    def __init__(self, data=b""):
        self.data = bytearray(data)
        self.pending = []           # ("W", off, bytes) / ("Z", off, len)


def apply(data, op):
    kind, off, x = op
    if kind == "W":
        end = off + len(x)
        if len(data) < end:
            data.extend(b"\0" * (end - len(data)))
        data[off:end] = x
    elif kind == "Z":
        end = min(off + x, len(data))
        if end > off:
            data[off:end] = b"\0" * (end - off)


def parse(logpath):
    """The log as a list of (kind, args) with write data loaded."""
    with open(logpath + ".data", "rb") as f:
        blob = f.read()
    ops = []
    with open(logpath) as f:
        for line in f:
            p = line.rstrip("\n").split(" ")
            k = p[0]
            if k in ("W", "D"):
                off, n, d = int(p[2]), int(p[3]), int(p[4])
                ops.append((k, p[1], off, blob[d:d + n]))
            elif k == "Z":
                ops.append((k, p[1], int(p[2]), int(p[3])))
            elif k == "T":
                ops.append((k, p[1], int(p[2])))
            elif k in ("S", "C", "U"):
                ops.append((k, p[1]))
            elif k == "R":
                ops.append((k, p[1], p[2]))
    return ops


class Replay:
    """Replays ops over the initial directory contents."""

    def __init__(self, initial):
        self.names = {n: File(d) for n, d in initial.items()}

    def step(self, op):
        k = op[0]
        names = self.names
        if k == "C":
            names[op[1]] = File()
        elif k in ("W", "D", "Z", "T") and op[1] not in names:
            names[op[1]] = File()   # opened without O_CREAT logged
        if k == "W":
            names[op[1]].pending.append(("W", op[2], op[3]))
        elif k == "Z":
            names[op[1]].pending.append(("Z", op[2], op[3]))
        elif k == "D":
            f = names[op[1]]
            apply(f.data, ("W", op[2], op[3]))
        elif k == "T":
            f = names[op[1]]
            f.data = f.data[:op[2]] + b"\0" * max(0, op[2] - len(f.data))
            f.pending = [p for p in f.pending]
        elif k == "S":
            f = names.get(op[1])
            if f is not None:
                for p in f.pending:
                    apply(f.data, p)
                f.pending = []
        elif k == "R":
            if op[1] in names:
                names[op[2]] = names.pop(op[1])
        elif k == "U":
            names.pop(op[1], None)


def materialize(files, choice, rng):
    """File contents for one crash state.  CHOICE: "none", "all" or
    "random" (a random subset of each file's pending writes, shuffled).
    """
    out = {}
    for n, f in files.items():
        if n == ".":
            continue
        data = bytearray(f.data)
        pend = list(f.pending)
        if choice == "all":
            pass
        elif choice == "none":
            pend = []
        else:
            pend = [p for p in pend if rng.random() < 0.5]
            rng.shuffle(pend)
        for p in pend:
            apply(data, p)
        out[n] = bytes(data)
    return out


def crash_states(initial, ops, nrandom, rng, limit=None):
    """Yields (label, {name: bytes}) crash states.  The states are chosen
    first and built one at a time while the log is replayed once more:
    a long log has thousands of crash points, and a copy of every file at
    each of them does not fit in memory.
    """
    points = set()
    for i, op in enumerate(ops):
        if op[0] in ("S", "D"):
            points.add(i)
            points.add(i + 1)
    points.add(len(ops))
    points = sorted(points)
    states = []
    r = Replay(initial)
    done = 0
    for p in points:
        while done < p:
            r.step(ops[done])
            done += 1
        has_pending = any(f.pending for f in r.names.values())
        states.append(("%d:none" % p, p, "none"))
        if has_pending:
            states.append(("%d:all" % p, p, "all"))
            for j in range(nrandom):
                states.append(("%d:random%d" % (p, j), p, "random"))
    if limit and len(states) > limit:
        # Keep the last state and a spread of the others.
        keep = rng.sample(states[:-1], limit - 1) + [states[-1]]
        states = sorted(keep, key=lambda s: s[1])
    r = Replay(initial)
    done = 0
    for label, p, choice in states:
        while done < p:
            r.step(ops[done])
            done += 1
        yield label, materialize(r.names, choice, rng)


def read_dir(d):
    out = {}
    for n in os.listdir(d):
        p = os.path.join(d, n)
        if os.path.isfile(p):
            with open(p, "rb") as f:
                out[n] = f.read()
    return out


def write_dir(d, files):
    os.makedirs(d, exist_ok=True)
    for n in os.listdir(d):
        os.unlink(os.path.join(d, n))
    for n, data in files.items():
        with open(os.path.join(d, n), "wb") as f:
            f.write(data)
