"""PyTorch float64 reference for ss_tico (tests/test_tico.c).

lightly_tico_step is a replica of lightly's TiCoLoss.forward (normalise,
B = a^T a / N, C = beta C_old + (1 - beta) B, loss, C.detach() stored),
returning per-sample losses (their mean is lightly's loss) and the new C.
Each case runs `steps` consecutive batches through one state, from zeros
(lightly's first call) or from a given C0, with autograd gradients per step.
Fields c<k>_: N, D, steps, beta, rho, C0 (D, D), za, zb (steps, N, D),
loss (steps), losses (steps, N), dza, dzb (steps, N, D), C (steps, D, D).
Usage: tico.py [--seed S] [--out DIR].
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture

torch.set_default_dtype(torch.float64)


def lightly_tico_step(za, zb, C_old, beta=0.9, rho=8.0):
    """One TiCoLoss.forward call: (per-sample losses, new detached C)."""
    a = F.normalize(za, dim=1)
    b = F.normalize(zb, dim=1)
    B = torch.mm(a.T, a) / a.shape[0]
    C = beta * C_old + (1 - beta) * B
    losses = 1 - (a * b).sum(dim=1) + rho * (torch.mm(a, C) * a).sum(dim=1)
    return losses, C.detach()


def make_case(rng, N, D, steps, beta, rho, init):
    if init:
        A = rng.standard_normal((D, D)) * 0.1
        C = torch.tensor(A @ A.T)
    else:
        C = torch.zeros(D, D)
    out = {"N": [N], "D": [D], "steps": [steps], "beta": [beta],
           "rho": [rho], "C0": C.clone()}
    zas, zbs, ls, lss, dzas, dzbs, Cs = [], [], [], [], [], [], []
    for _ in range(steps):
        za = torch.tensor(rng.standard_normal((N, D)), requires_grad=True)
        zb = torch.tensor(rng.standard_normal((N, D)) + 0.5 * za.detach().numpy(),
                          requires_grad=True)
        losses, C = lightly_tico_step(za, zb, C, beta, rho)
        loss = losses.mean()
        loss.backward()
        zas.append(za.detach()), zbs.append(zb.detach())
        ls.append(loss.item()), lss.append(losses.detach())
        dzas.append(za.grad), dzbs.append(zb.grad), Cs.append(C)
    out.update({"za": torch.stack(zas), "zb": torch.stack(zbs), "loss": ls,
                "losses": torch.stack(lss), "dza": torch.stack(dzas),
                "dzb": torch.stack(dzbs), "C": torch.stack(Cs)})
    return out


def main():
    args = fixture.parse_args(default_seed=20261205)
    rng = np.random.default_rng(args.seed)

    def n(lo, hi):
        return int(rng.integers(lo, hi + 1))

    specs = [  # (N, D, steps, beta, rho, init)
        (n(2, 9), n(2, 12), 3, 0.9, 8.0, 0),     # lightly defaults, from zeros
        (n(2, 6), n(1, 3), 2, 0.9, 8.0, 0),
        (2, n(3, 8), 2, 0.9, 8.0, 0),            # N = 2
        (n(5, 12), n(3, 9), 2, 0.5, 20.0, 1),    # old lightly rho, given C0
        (n(3, 8), n(10, 20), 2, 0.0, 1.0, 1),    # beta = 0: C = B
        (n(3, 8), n(2, 6), 2, 1.0, 3.0, 1),      # beta = 1: C fixed
    ]
    entries = {"ncases": [len(specs)]}
    for k, spec in enumerate(specs):
        for name, value in make_case(rng, *spec).items():
            entries["c%d_%s" % (k, name)] = value
    fixture.write(args.out, "tico", entries)


if __name__ == "__main__":
    main()
