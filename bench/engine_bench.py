"""PyTorch twin of bench/engine_bench.c: forward + backward images/s of the
small CNN encoder (same layers, batch, threads; float32, train-mode BN).

usage: python3 bench/engine_bench.py [iters=20] [threads=2] [batch=256]
"""
import sys
import time

import torch
import torch.nn as nn


def encoder():
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]
    return nn.Sequential(*block(1, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2),
                         *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def main():
    iters = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model = encoder().train()
    x = torch.rand(n, 1, 28, 28)
    dout = torch.randn(n, 128)
    best, total, cpu = 1e30, 0.0, 0.0
    for it in range(-2, iters):
        t0, c0 = time.perf_counter(), time.process_time()
        model.zero_grad(set_to_none=False)
        model(x).backward(dout)
        t = time.perf_counter() - t0
        if it >= 0:
            total += t
            cpu += time.process_time() - c0
            best = min(best, t)
    print("pytorch %s: batch %d, %d threads, %d iters: mean %.1f ms/iter, best %.1f ms "
          "-> %.0f images/s (mean), %.0f (best); %.0f images per CPU-second" % (
              torch.__version__, n, threads, iters, 1e3 * total / iters, 1e3 * best,
              n * iters / total, n / best, n * iters / cpu))


if __name__ == "__main__":
    main()
