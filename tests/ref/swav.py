"""PyTorch float64 reference for ss_swav and the log-domain Sinkhorn
(tests/test_swav.c).

lightly_sinkhorn() / lightly_swav() replicate lightly's sinkhorn and
SwaVLoss.forward (high-resolution list, low-resolution list, optional
queue_outputs list). log_sinkhorn() is the same algorithm in the log
domain; for moderate scores both agree to rounding (asserted), and the
"big" cases (scores / epsilon ~ 2000, where exp overflows even in float64)
use log_sinkhorn only. Cases c<k>_<field>: high (H,N,K), low (L,N,K),
queue (H,Q,K), H, L, N, Q, K, temperature, iterations, epsilon, loss,
losses (N), dhigh, dlow, codes (H,N,K).
Usage: swav.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


@torch.no_grad()
def lightly_sinkhorn(out, iterations=3, epsilon=0.05):
    Q = torch.exp(out / epsilon).t()
    Q /= torch.sum(Q)
    B, K = Q.shape[1], Q.shape[0]
    for _ in range(iterations):
        Q /= torch.sum(Q, dim=1, keepdim=True)
        Q /= K
        Q /= torch.sum(Q, dim=0, keepdim=True)
        Q /= B
    Q *= B
    return Q.t()


@torch.no_grad()
def log_sinkhorn(out, iterations=3, epsilon=0.05):
    """lightly_sinkhorn with every normalisation a logsumexp."""
    A = out / epsilon
    R, K = A.shape
    L = A - torch.logsumexp(A.reshape(-1), 0)
    for _ in range(iterations):
        L = L - torch.logsumexp(L, dim=0, keepdim=True) - np.log(K)
        L = L - torch.logsumexp(L, dim=1, keepdim=True) - np.log(R)
    return torch.exp(L + np.log(R))


def lightly_swav(high, low, queue, temperature, iterations, epsilon, sk):
    """lightly SwaVLoss.forward; returns loss, per-sample losses, codes."""
    n_crops = len(high) + len(low)

    def subloss(z, q):
        return -torch.sum(q * F.log_softmax(z / temperature, dim=1), dim=1)

    loss, per, codes = 0.0, 0.0, []
    for i in range(len(high)):
        with torch.no_grad():
            outputs = high[i].detach()
            if queue is not None:
                outputs = torch.cat((outputs, queue[i].detach()))
            q = sk(outputs, iterations=iterations, epsilon=epsilon)
            if queue is not None:
                q = q[: len(high[i])]
        codes.append(q)
        sub, subp = 0.0, 0.0
        for v in range(len(high)):
            if v != i:
                sub += subloss(high[v], q).mean()
                subp = subp + subloss(high[v], q)
        for v in range(len(low)):
            sub += subloss(low[v], q).mean()
            subp = subp + subloss(low[v], q)
        loss += sub / (n_crops - 1)
        per = per + subp / (n_crops - 1)
    return loss / len(high), per / len(high), torch.stack(codes)


def make_case(rng, H, L, N, Q, K, t, iters, eps, scale=1.0, big=False):
    high = torch.tensor(rng.uniform(-1, 1, (H, N, K)) * scale,
                        requires_grad=True)
    low = torch.tensor(rng.uniform(-1, 1, (L, N, K)) * scale,
                       requires_grad=True)
    queue = torch.tensor(rng.uniform(-1, 1, (H, Q, K)) * scale) if Q else None
    sk = log_sinkhorn if big else lightly_sinkhorn
    loss, per, codes = lightly_swav(list(high), list(low),
                                    list(queue) if Q else None, t, iters, eps,
                                    sk)
    if not big:
        _, _, codes2 = lightly_swav(list(high), list(low),
                                    list(queue) if Q else None, t, iters, eps,
                                    log_sinkhorn)
        assert torch.allclose(codes, codes2, rtol=1e-9, atol=1e-12)
    loss.backward()
    assert torch.isfinite(loss)
    return {"high": high, "low": low,
            "queue": queue if Q else torch.zeros(0), "H": [H], "L": [L],
            "N": [N], "Q": [Q], "K": [K], "temperature": [t],
            "iterations": [iters], "epsilon": [eps], "loss": [loss.item()],
            "losses": per,
            # H = 1: the only high crop just gives codes, so no gradient
            "dhigh": high.grad if high.grad is not None
            else torch.zeros_like(high),
            "dlow": low.grad if L else torch.zeros(0), "codes": codes}


def main():
    args = fixture.parse_args(default_seed=20261207)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # H, L, N, Q, K, temperature, iterations, epsilon, scale, big
        (2, 0, n(3, 8), 0, n(3, 12), 0.1, 3, 0.05, 1.0, False),  # defaults
        (2, 4, n(3, 6), 0, n(3, 10), 0.1, 3, 0.05, 1.0, False),  # multi-crop
        (2, 2, n(2, 5), n(3, 9), n(3, 10), 0.1, 3, 0.05, 1.0, False),  # queue
        (3, 1, n(2, 5), 0, n(2, 8), 0.2, 0, 0.05, 1.0, False),   # no iters
        (1, 2, n(2, 5), 0, n(2, 8), 0.1, 5, 0.1, 1.0, False),
        (2, 2, n(3, 6), n(2, 5), n(3, 9), 0.1, 3, 0.01, 1.0, False),  # eps .01
        (2, 1, n(3, 6), n(2, 5), n(3, 9), 0.1, 3, 0.01, 20.0, True),  # huge
        (2, 0, 1, 0, 1, 0.1, 3, 0.05, 1.0, False),                # N = K = 1
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "swav", entries)


if __name__ == "__main__":
    main()
