"""Fused linear + cross-entropy: selfsup vs PyTorch Linear + CrossEntropyLoss.

Same run, same sizes, side by side (default T = 2048 scored tokens,
H = 768, V = 30522, 2 threads). Times forward + backward (median of
--reps) and the extra memory: peak RSS growth beyond inputs and gradient
buffers, each side in its own process. The C side is
bench/fused_ce_timer.c, compiled here against the static library in
--build (cmake --build build --target selfsup_static).

usage: python3 bench/fused_ce_bench.py [--build build] [--T 2048] ...
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build_timer(build):
    exe = os.path.join(build, "fused_ce_timer")
    lib = os.path.join(build, "libselfsup.a")
    cmd = ["cc", "-O3", "-march=native", "-fopenmp", "-I",
           os.path.join(ROOT, "include"), os.path.join(HERE, "fused_ce_timer.c"),
           lib, "-lopenblas", "-lm", "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def torch_side(T, H, V, threads, reps):
    """Runs in a child process so that its peak RSS is its own."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(1)
    h = torch.randn(T, H, generator=g).requires_grad_()
    w = (torch.randn(V, H, generator=g) * 0.02).requires_grad_()
    b = (torch.randn(V, generator=g) * 0.02).requires_grad_()
    y = torch.randint(0, V, (T,), generator=g)
    for p in (h, w, b):  # gradient buffers exist before the baseline
        p.grad = torch.zeros_like(p)
    # warm-up on a small problem (thread pools, allocator), as the C side
    F.cross_entropy(F.linear(h[:64], w[:1024], b[:1024]),
                    y[:64] % 1024).backward()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        loss = F.cross_entropy(F.linear(h, w, b), y)
        loss.backward()
        times.append(time.perf_counter() - t0)
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    return {"loss": loss.item(), "fwd_bwd_s": statistics.median(times),
            "extra_mib": extra}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--T", type=int, default=2048)
    ap.add_argument("--H", type=int, default=768)
    ap.add_argument("--V", type=int, default=30522)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--torch-child", action="store_true")
    a = ap.parse_args()
    if a.torch_child:
        print(json.dumps(torch_side(a.T, a.H, a.V, a.threads, a.reps)))
        return
    exe = build_timer(a.build)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    args = [str(v) for v in (a.T, a.H, a.V, a.threads, a.reps)]
    c = json.loads(subprocess.run([exe] + args, check=True, env=env,
                                  capture_output=True, text=True).stdout)
    t = json.loads(subprocess.run(
        [sys.executable, __file__, "--torch-child", "--T", str(a.T), "--H",
         str(a.H), "--V", str(a.V), "--threads", str(a.threads), "--reps",
         str(a.reps)], check=True, capture_output=True, text=True).stdout)
    gf = 6.0 * a.T * a.H * a.V / 1e9
    print("T=%d H=%d V=%d threads=%d reps=%d (median)" %
          (a.T, a.H, a.V, a.threads, a.reps))
    print("%-38s %9s %9s %11s" % ("", "time s", "GFLOP/s", "extra MiB"))
    print("%-38s %9.3f %9.1f %11.1f" % ("torch Linear + CrossEntropyLoss",
                                        t["fwd_bwd_s"], gf / t["fwd_bwd_s"],
                                        t["extra_mib"]))
    print("%-38s %9.3f %9.1f %11.1f" % ("selfsup fused_ce_forward_backward",
                                        c["one_pass_s"], gf / c["one_pass_s"],
                                        c["extra_mib"]))
    print("%-38s %9.3f %9.1f %11s" % ("selfsup fused_ce forward + backward",
                                      c["pair_s"], gf / c["pair_s"], "same"))
    print("loss: torch %.6f, selfsup %.6f (same distribution, different "
          "draws)" % (t["loss"], c["loss"]))


if __name__ == "__main__":
    main()
