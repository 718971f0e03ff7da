#!/usr/bin/python3
"""scaling_model.py - step time and memory per rank of the distributed
contrastive losses (all-gather vs ring) for SimCLR (NT-Xent, V = 2,
D = 128) and CLIP (D = 512) at global batch 32k and 1M over 8 to 512 ranks.
Inputs: per-rank compute rates MEASURED on this machine (see
docs/SCALING.md: bench/dist_ring_timer.c on the one-process comm) and an
alpha-beta network model. Stdlib only; prints Markdown tables.

usage: /usr/bin/python3 bench/scaling_model.py [--rank cpu|accel]
           [--rate-ntx-ag G] [--rate-ntx-ring G] [--rate-clip G]
           [--alpha US] [--bw GBPS ...]

Model (n local samples, B = W n global, bytes are float32):
  time(all-gather of S bytes)  = (W-1) alpha + (W-1)/W S / bw   (ring algorithm)
  time(small all-reduce)       = 2 log2(W) alpha                  (agreements)
  time(ring step of b bytes)   = alpha + b / bw
  ring, blocking (as built):   compute + sum of the steps' transfers
  ring, overlapped (a non-blocking sendrecv, double-buffered):
                               c + (W-1) max(c, step),  c = compute / W
"""
import argparse
import math

# Per-rank compute rates in GMAC/s (multiply-adds per second under the
# MAC models below), measured with bench/dist_ring_timer.c on the
# one-process comm, 2 threads of the shared 2-core machine; the least
# contended of the runs in docs/SCALING.md (others were 2-3x slower).
MEASURED = {
    "ntx_ag": 42.7,    # ss_dist_ntxent (all-gather), N 4096, D 128; 3 M^2 D
    "ntx_ring": 43.2,  # ss_dist_ntxent_ring, N 4096, D 128; 3 M^2 D
    "clip": 34.6,      # ss_dist_clip_ring, N 2048, D 512; 4 N^2 D
}
# An accelerator-class rank: an ASSUMPTION (not measured): 100 TMAC/s
# (200 TFLOP/s) on these kernels, for where the balance moves.
ACCEL_GMACS = 100e3

RANKS = [8, 16, 32, 64, 128, 256, 512]
BATCHES = [32 * 1024, 1024 * 1024]
THREADS = 2          # tile workspace per thread
TILE_BYTES = 4 * (256 * 256 + 128 * 272 + 8192)  # tile, B^T tile, scratch
F = 4                # bytes per float


def allgather_t(S, W, alpha, bw):
    return (W - 1) * alpha + (W - 1) / W * S / bw


def small_t(k, W, alpha):
    return k * 2 * math.log2(W) * alpha


def ring_t(steps, comp, alpha, bw, overlap):
    """steps: list of bytes per sendrecv; comp: compute of the whole pass."""
    W = len(steps)  # W sendrecvs at most (the last may carry 0 bytes)
    c = comp / W
    msgs = [alpha + b / bw for b in steps if b > 0]
    if not overlap:
        return comp + sum(msgs)
    t = c
    for k in range(W - 1):
        t += max(c, msgs[k] if k < len(msgs) else 0.0)
    if len(msgs) == W:  # the accumulator's trip home, after the last step
        t += msgs[-1]
    return t


def simclr(B, W, D, rates, alpha, bw, overlap):
    """NT-Xent, V = 2: rows m = 2n local, M = 2B global."""
    n = B / W
    m, M = 2 * n, 2 * B
    macs = 3 * m * M * D
    out = {"n": n}
    # all-gather: rows in forward and again in backward, lse in backward
    comp = macs / (rates["ntx_ag"] * 1e9)
    comm = (2 * allgather_t(M * D * F, W, alpha, bw)
            + allgather_t(M * F, W, alpha, bw) + small_t(6, W, alpha))
    out["ag"] = (comp, comm, comp + comm)
    out["ag_mem"] = (2 * M * D + M + 2 * m * D) * F + THREADS * TILE_BYTES
    # ring: forward W-1 steps of m D, backward W-1 steps of m (D + 1)
    comp = macs / (rates["ntx_ring"] * 1e9)
    fwd = [m * D * F] * (W - 1) + [0]
    bwd = [m * (D + 1) * F] * (W - 1) + [0]
    comm = (sum(alpha + b / bw for b in fwd + bwd if b)
            + small_t(6, W, alpha))
    t = (ring_t(fwd, comp / 3, alpha, bw, overlap)
         + ring_t(bwd, 2 * comp / 3, alpha, bw, overlap)
         + small_t(6, W, alpha))
    out["ring"] = (comp, comm, t)
    out["ring_mem"] = (2 * m * (D + 1) + 2 * m * D + 3 * m) * F \
        + THREADS * TILE_BYTES
    return out


def clip(B, W, D, rates, alpha, bw, overlap):
    """CLIP: n local pairs, B global."""
    n = B / W
    out = {"n": n}
    # all-gather (modelled: a and b gathered in forward and backward, the
    # lse recomputation of the NT-Xent all-gather path on both towers):
    # 6 n B D MACs; gathered a, b and their transposes
    comp = 6 * n * B * D / (rates["clip"] * 1e9)
    comm = (4 * allgather_t(B * D * F, W, alpha, bw)
            + 2 * allgather_t(B * F, W, alpha, bw) + small_t(9, W, alpha))
    out["ag"] = (comp, comm, comp + comm)
    out["ag_mem"] = (4 * B * D + 2 * B + 3 * n * D) * F + THREADS * TILE_BYTES
    # ring: forward W-1 steps of n (D floats + 1 double), then the column
    # lse accumulator home (n doubles); backward W-1 steps of n (2 D + 1)
    # floats (rows, db accumulator, column lse), then db home (n D)
    macs = 4 * n * B * D
    comp = macs / (rates["clip"] * 1e9)
    fwd = [n * (D * F + 8)] * (W - 1) + [n * 8]
    bwd = [n * (2 * D + 1) * F] * (W - 1) + [n * D * F]
    comm = (sum(alpha + b / bw for b in fwd + bwd if b)
            + small_t(9, W, alpha))
    t = (ring_t(fwd, comp / 4, alpha, bw, overlap)
         + ring_t(bwd, 3 * comp / 4, alpha, bw, overlap)
         + small_t(9, W, alpha))
    out["ring"] = (comp, comm, t)
    # copies of a, b; two ring buffers; ga and weights (2 n (D + 1)); the
    # cross engine's per-thread dA, dB accumulators
    out["ring_mem"] = ((2 + 2 * (2 * D + 1) / D + 2 + 2 * THREADS) * n * D
                       + 4 * n) * F + THREADS * TILE_BYTES
    return out


def fmt_t(s):
    if s >= 100:
        return "%.0f s" % s
    if s >= 1:
        return "%.1f s" % s
    if s >= 1e-3:
        return "%.1f ms" % (s * 1e3)
    return "%.0f us" % (s * 1e6)


def fmt_b(b):
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if b >= k:
            return "%.1f %s" % (b / k, unit)
    return "%.0f B" % b


def table(name, fn, B, D, rates, alpha, bws):
    """One row per W: compute, communication at each bandwidth (a / b),
    step time at the first bandwidth, memory per rank."""
    print("\n#### %s, global batch %s, D = %d\n" % (name, "{:,}".format(B), D))
    g = " / ".join("%g" % (bw / 1e9) for bw in bws) + " GB/s"
    g0 = "%g GB/s" % (bws[0] / 1e9)
    hdr = ["W", "n/rank", "compute AG", "compute ring", "comm AG " + g,
           "comm ring " + g, "step AG " + g0,
           "step ring " + g0 + " blocking / overlapped", "mem AG", "mem ring"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for W in RANKS:
        rs = [fn(B, W, D, rates, alpha, bw, False) for bw in bws]
        o = fn(B, W, D, rates, alpha, bws[0], True)
        r = rs[0]
        row = ["%d" % W, "%d" % r["n"], fmt_t(r["ag"][0]), fmt_t(r["ring"][0]),
               " / ".join(fmt_t(x["ag"][1]) for x in rs),
               " / ".join(fmt_t(x["ring"][1]) for x in rs),
               fmt_t(r["ag"][2]),
               fmt_t(r["ring"][2]) + " / " + fmt_t(o["ring"][2]),
               fmt_b(r["ag_mem"]), fmt_b(r["ring_mem"])]
        print("| " + " | ".join(row) + " |")


def crossover(fn, B, D, rates, alpha, bw):
    """Largest W = 2^k <= 2^16 where the all-gather's communication stays
    below its compute (beyond it, adding ranks no longer halves the step)."""
    last = None
    for k in range(1, 17):
        r = fn(B, 2 ** k, D, rates, alpha, bw, False)
        if r["ag"][1] <= r["ag"][0]:
            last = 2 ** k
    return last


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rank", choices=["cpu", "accel"], default="cpu")
    ap.add_argument("--rate-ntx-ag", type=float, default=MEASURED["ntx_ag"])
    ap.add_argument("--rate-ntx-ring", type=float,
                    default=MEASURED["ntx_ring"])
    ap.add_argument("--rate-clip", type=float, default=MEASURED["clip"])
    ap.add_argument("--alpha", type=float, default=5.0, help="latency, us")
    ap.add_argument("--bw", type=float, nargs="+", default=[25.0, 100.0],
                    help="link bandwidths, GB/s per direction")
    a = ap.parse_args()
    rates = {"ntx_ag": a.rate_ntx_ag, "ntx_ring": a.rate_ntx_ring,
             "clip": a.rate_clip}
    if a.rank == "accel":
        rates = {k: ACCEL_GMACS for k in rates}
    alpha, bws = a.alpha * 1e-6, [b * 1e9 for b in a.bw]
    print("### rank = %s: rates (GMAC/s) %s; alpha %g us; links %s GB/s"
          % (a.rank, ", ".join("%s %g" % kv for kv in rates.items()),
             a.alpha, ", ".join("%g" % b for b in a.bw)))
    for B in BATCHES:
        table("SimCLR (NT-Xent, V = 2)", simclr, B, 128, rates, alpha, bws)
        table("CLIP", clip, B, 512, rates, alpha, bws)
    print("\n#### Largest W (power of 2, <= 65536) where the all-gather's "
          "communication stays below its compute\n")
    print("| loss | batch | " + " | ".join("%g GB/s" % (b / 1e9) for b in bws)
          + " |")
    print("|---|---|" + "---|" * len(bws))
    for name, fn, D in (("SimCLR", simclr, 128), ("CLIP", clip, 512)):
        for B in BATCHES:
            ws = [crossover(fn, B, D, rates, alpha, bw) for bw in bws]
            print("| %s | %s | %s |" % (name, "{:,}".format(B), " | ".join(
                "none" if w is None else (">= 65536" if w == 65536 else str(w))
                for w in ws)))


if __name__ == "__main__":
    main()
