"""Fixture writer shared by the PyTorch reference scripts in tests/ref/.

Format (little-endian), read by tests/fixture.c:
  magic b"SSFIXT01", u32 version = 1, u32 count, then per entry
  u32 name_len, name, u32 dtype (0 float64, 1 int64), u32 ndim, i64 dims, data.

Every reference script takes --seed S (random cases; default: the committed
seed) and --out DIR (default: tests/fixtures) and writes DIR/<group>.bin.
"""
import argparse
import os
import struct
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), "fixtures")


def parse_args(default_seed=0):
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=default_seed)
    p.add_argument("--out", default=DEFAULT_OUT)
    return p.parse_args()


def _as_array(v):
    if hasattr(v, "detach"):  # torch tensor
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if a.dtype.kind in "iub":
        return np.ascontiguousarray(a, dtype="<i8"), 1
    return np.ascontiguousarray(a, dtype="<f8"), 0


def write(out_dir, group, entries):
    """entries: dict name -> array-like (float -> f64, int/bool -> i64)."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, group + ".bin")
    chunks = [b"SSFIXT01", struct.pack("<II", 1, len(entries))]
    for name, value in entries.items():
        a, dtype = _as_array(value)
        nb = name.encode()
        chunks.append(struct.pack("<I", len(nb)) + nb)
        chunks.append(struct.pack("<II", dtype, a.ndim))
        chunks.append(struct.pack("<%dq" % a.ndim, *a.shape))
        chunks.append(a.tobytes())
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix="." + group)
    with os.fdopen(fd, "wb") as f:
        f.write(b"".join(chunks))
    os.replace(tmp, path)  # atomic: a crash never leaves half a fixture
    return path
