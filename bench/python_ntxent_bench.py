#!/usr/bin/python3
"""selfsup.torch.NTXentLoss against lightly's pure-PyTorch NT-Xent.

Forward + backward from Python at N = 4096, D = 128 (two views), 2 threads.
Each variant runs in its own process so that its peak memory is its own:
the peak resident set (VmHWM, reset through /proc/self/clear_refs) above the
resident set just before the timed calls, i.e. what the loss itself needs.

    SELFSUP_LIB=build/libselfsup.so /usr/bin/python3 bench/python_ntxent_bench.py

Napkin math for the PyTorch formula: four (N, N) logit blocks and their
(2N, 2N-1) concatenation, log-softmax and gradients are each 64-256 MB in
float32, so its peak is around 1 GB; selfsup keeps per-row statistics
(O(N) floats) and tiles of the similarity matrix, so its extra memory is
about the size of the gradients (2 N D floats = 4 MB).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))


def lightly_ntxent(out0, out1, temperature=0.5):
    """lightly.loss.NTXentLoss (memory_bank_size=0, single process)."""
    import torch
    import torch.nn.functional as F
    n = out0.shape[0]
    out0, out1 = F.normalize(out0, dim=1), F.normalize(out1, dim=1)
    diag = torch.eye(n, dtype=torch.bool)
    l00 = torch.einsum("nc,mc->nm", out0, out0) / temperature
    l01 = torch.einsum("nc,mc->nm", out0, out1) / temperature
    l10 = torch.einsum("nc,mc->nm", out1, out0) / temperature
    l11 = torch.einsum("nc,mc->nm", out1, out1) / temperature
    l00 = l00[~diag].view(n, -1)
    l11 = l11[~diag].view(n, -1)
    logits = torch.cat([torch.cat([l01, l00], 1), torch.cat([l10, l11], 1)], 0)
    labels = torch.arange(n).repeat(2)
    return F.cross_entropy(logits, labels)


def _status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def run_variant(variant, n, d, threads, iters):
    import torch
    torch.set_num_threads(threads)
    if variant == "selfsup":
        import selfsup
        import selfsup.torch as st
        selfsup.set_num_threads(threads)
        loss_fn = st.NTXentLoss()
    else:
        loss_fn = lightly_ntxent
    g = torch.Generator().manual_seed(0)
    out0 = torch.randn(n, d, generator=g).requires_grad_()
    out1 = torch.randn(n, d, generator=g).requires_grad_()

    def step():
        out0.grad = out1.grad = None
        loss = loss_fn(out0, out1)
        loss.backward()
        return loss.item()

    loss = step()  # warm-up: allocator, BLAS and OpenMP thread pools
    out0.grad = out1.grad = None
    reset_ok = _reset_peak()
    base = _status_kb("VmRSS")
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak = _status_kb("VmHWM")
    return {"variant": variant, "loss": loss, "median_s": statistics.median(times),
            "min_s": min(times), "times_s": times,
            "peak_extra_mb": (peak - base) / 1024.0 if reset_ok else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--variant", choices=["selfsup", "pytorch"])
    args = ap.parse_args()
    if args.variant:  # child process
        print(json.dumps(run_variant(args.variant, args.n, args.d,
                                     args.threads, args.iters)))
        return
    res = {}
    for v in ("selfsup", "pytorch"):
        out = subprocess.run([sys.executable, __file__, "--variant", v,
                              "--n", str(args.n), "--d", str(args.d),
                              "--threads", str(args.threads),
                              "--iters", str(args.iters)],
                             check=True, capture_output=True, text=True)
        res[v] = json.loads(out.stdout.strip().splitlines()[-1])
    s, p = res["selfsup"], res["pytorch"]
    print("NT-Xent fwd+bwd from Python, N = %d, D = %d (2N = %d rows), "
          "%d threads, median of %d" % (args.n, args.d, 2 * args.n,
                                        args.threads, args.iters))
    for r in (s, p):
        mem = ("%.1f MB" % r["peak_extra_mb"]) if r["peak_extra_mb"] is not None \
            else "n/a"
        print("  %-8s %8.1f ms (min %.1f)  peak extra memory %s  loss %.6f"
              % (r["variant"], 1e3 * r["median_s"], 1e3 * r["min_s"], mem,
                 r["loss"]))
    print("  speed-up %.1fx (target >= 5x); loss difference %.2e"
          % (p["median_s"] / s["median_s"], abs(p["loss"] - s["loss"])))


if __name__ == "__main__":
    main()
