"""Side-by-side benchmark: selfsup Barlow Twins / VICReg versus the PyTorch
formula (lightly's code, float32), forward + backward, same thread count.

Each measurement runs in a fresh process so that peak RSS (VmHWM) reflects
only that run: growth = VmHWM at the end - VmRSS after the inputs exist.
For selfsup the gradient buffers and the cache are allocated after that
baseline, so they count against it; for PyTorch the autograd graph and the
.grad tensors count.

usage: python3 bench/redundancy_bench.py [--lib build/libselfsup.so]
           [--threads 2] [--reps 3] [--sizes 256x2048,2048x8192]
           [--losses barlow,vicreg]

Napkin math (multiply-adds, fwd + bwd): PyTorch does 3 N D^2 for Barlow
(C = A^T B, then dA = B G^T, dB = A G) and 6 N D^2 for VICReg (one
covariance einsum per view and its two-sided backward); selfsup does
3 N^2 D for both through the N x N Gram matrices (SYRK for the Grams at
half a GEMM each, then one GEMM per view), i.e. 4x and 8x less work when
D = 4 N.
"""
import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rss_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def inputs(N, D):
    """The same float32 views for both sides: b correlated with a."""
    import numpy as np
    rng = np.random.default_rng(0)
    a = rng.standard_normal((N, D), dtype=np.float32)
    b = 0.6 * a + 0.8 * rng.standard_normal((N, D), dtype=np.float32)
    return a, b.astype(np.float32)


def run_torch(loss, N, D, threads, reps):
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
    import barlow as bref
    import vicreg as vref
    torch.set_num_threads(threads)
    a, b = inputs(N, D)
    a = torch.from_numpy(a).requires_grad_()
    b = torch.from_numpy(b).requires_grad_()
    fn = bref.barlow_loss if loss == "barlow" else vref.vicreg_loss
    base = rss_kb("VmRSS")
    times = []
    for _ in range(reps + 1):  # the first run warms up and is dropped
        a.grad = b.grad = None
        t0 = time.perf_counter()
        out = fn(a, b)
        out.backward()
        times.append(time.perf_counter() - t0)
        value = out.item()
        del out
    return {"times": times[1:], "peak_mib": (rss_kb("VmHWM") - base) / 1024.0,
            "loss": value}


def run_selfsup(loss, N, D, threads, reps, lib):
    import numpy as np
    ss = ctypes.CDLL(lib)
    f32p = ctypes.POINTER(ctypes.c_float)
    i64 = ctypes.c_int64

    class Opts(ctypes.Structure):  # ss_barlow_opts / ss_vicreg_opts
        _fields_ = ([("lambda_", ctypes.c_float), ("bn_eps", ctypes.c_float),
                     ("form", ctypes.c_int)] if loss == "barlow" else
                    [("lambda_", ctypes.c_float), ("mu", ctypes.c_float),
                     ("nu", ctypes.c_float), ("eps", ctypes.c_float),
                     ("form", ctypes.c_int)])
    pre = "ss_" + loss
    getattr(ss, pre + "_defaults").restype = Opts
    cache_size = getattr(ss, pre + "_cache_size")
    cache_size.restype = ctypes.c_size_t
    cache_size.argtypes = [i64, i64, ctypes.POINTER(Opts)]
    fwd, bwd = getattr(ss, pre + "_forward"), getattr(ss, pre + "_backward")
    fwd.argtypes = [f32p, f32p, ctypes.c_void_p, f32p, f32p, i64, i64, ctypes.POINTER(Opts)]
    bwd.argtypes = [f32p, f32p, ctypes.c_float, ctypes.c_void_p, f32p, f32p, i64, i64,
                    ctypes.POINTER(Opts)]
    ss.ss_last_error.restype = ctypes.c_char_p
    ss.ss_set_num_threads(threads)
    a, b = inputs(N, D)
    P = lambda x: x.ctypes.data_as(f32p)  # noqa: E731
    opts = getattr(ss, pre + "_defaults")()
    base = rss_kb("VmRSS")
    cache = ctypes.create_string_buffer(cache_size(N, D, ctypes.byref(opts)))
    da = np.zeros((N, D), np.float32)
    db = np.zeros((N, D), np.float32)
    lossv = ctypes.c_float()
    times = []
    for _ in range(reps + 1):
        da.fill(0.0), db.fill(0.0)  # touched before timing, like torch's zero grads
        t0 = time.perf_counter()
        st = fwd(ctypes.byref(lossv), None, cache, P(a), P(b), N, D, ctypes.byref(opts))
        if st == 0:
            st = bwd(P(da), P(db), 1.0, cache, P(a), P(b), N, D, ctypes.byref(opts))
        times.append(time.perf_counter() - t0)
        if st != 0:
            raise SystemExit("selfsup error: " + ss.ss_last_error().decode())
    return {"times": times[1:], "peak_mib": (rss_kb("VmHWM") - base) / 1024.0,
            "loss": lossv.value}


def child(args):
    if args.side == "torch":
        r = run_torch(args.loss, args.N, args.D, args.threads, args.reps)
    else:
        r = run_selfsup(args.loss, args.N, args.D, args.threads, args.reps, args.lib)
    print(json.dumps(r))


def measure(side, loss, N, D, args):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    if args.passive:  # both sides: OpenMP waiters sleep instead of spinning
        env["OMP_WAIT_POLICY"] = "passive"
    cmd = [sys.executable, os.path.abspath(__file__), "--child", side, "--loss", loss,
           "--N", str(N), "--D", str(D), "--threads", str(args.threads),
           "--reps", str(args.reps), "--lib", args.lib]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--lib", default=os.path.join(ROOT, "build", "libselfsup.so"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--sizes", default="256x2048,2048x8192")
    p.add_argument("--losses", default="barlow,vicreg")
    p.add_argument("--passive", action="store_true",
                   help="OMP_WAIT_POLICY=passive for both sides (helps on a loaded machine)")
    p.add_argument("--child", dest="side", default=None)
    p.add_argument("--loss", default="barlow")
    p.add_argument("--N", type=int, default=0)
    p.add_argument("--D", type=int, default=0)
    args = p.parse_args()
    if args.side:
        return child(args)
    print("threads=%d reps=%d (median of reps after one warm-up), float32, fresh process "
          "per row, OMP_WAIT_POLICY=%s" % (args.threads, args.reps,
                                         "passive" if args.passive else "default"))
    print("%-7s %5s %5s | %9s %9s %6s | %9s %9s %6s | %8s" % (
        "loss", "N", "D", "torch s", "selfsup s", "speed", "torch MiB", "ss MiB",
        "mem", "rel dL"))
    for loss in args.losses.split(","):
        for size in args.sizes.split(","):
            N, D = (int(v) for v in size.split("x"))
            t = measure("torch", loss, N, D, args)
            s = measure("selfsup", loss, N, D, args)
            tt, st = statistics.median(t["times"]), statistics.median(s["times"])
            rel = abs(s["loss"] - t["loss"]) / max(abs(t["loss"]), 1e-30)
            print("%-7s %5d %5d | %9.4f %9.4f %5.1fx | %9.1f %9.1f %5.2fx | %8.1e" % (
                loss, N, D, tt, st, tt / st, t["peak_mib"], s["peak_mib"],
                t["peak_mib"] / max(s["peak_mib"], 1e-9), rel), flush=True)


if __name__ == "__main__":
    main()
