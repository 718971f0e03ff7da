"""PyTorch float64 reference for ss_negcos / ss_negcos_sym: lightly's
NegativeCosineSimilarity (torch cosine_similarity, dim 1, eps 1e-8) and the
symmetric SimSiam form 0.5 * (D(p1, z2) + D(p2, z1)).
Writes <out>/negcos.bin (format: fixture.py). Importable: negcos_loss,
negcos_sym_loss."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402


def negcos_loss(p, z, eps=1e-8, reduction="mean"):
    """lightly NegativeCosineSimilarity: -cos(p, z), mean over rows."""
    c = -F.cosine_similarity(p, z, dim=1, eps=eps)
    return c.mean() if reduction == "mean" else c


def negcos_sym_loss(p1, p2, z1, z2, eps=1e-8):
    """SimSiam: 0.5 * (D(p1, z2.detach()) + D(p2, z1.detach()))."""
    return 0.5 * (negcos_loss(p1, z2.detach(), eps) + negcos_loss(p2, z1.detach(), eps))


# (N, D, eps, dloss, p scale, z scale); tiny scales exercise the eps clamp
CASES = [
    (8, 16, 1e-8, 1.0, 1.0, 1.0),
    (5, 3, 1e-8, -0.7, 2.0, 0.5),
    (1, 7, 1e-8, 1.3, 1.0, 1.0),
    (6, 2, 1e-8, 1.0, 1.0, 1.0),   # D = 1 has cos = +-1 and a zero gradient
    (4, 5, 1e-3, 0.9, 1e-4, 1.0),   # ||p|| < eps: clamped norm
    (3, 9, 1e-2, 1.0, 1e-3, 1e-3),  # both clamped
]


def rnd(g, shape, scale):
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * scale
    return x.float().double().requires_grad_()  # the C side reads float32


def main():
    args = fixture.parse_args(default_seed=4321)
    g = torch.Generator().manual_seed(args.seed)
    out = {"ncases": [len(CASES)]}
    for c, (N, D, eps, dloss, sp, sz) in enumerate(CASES):
        p, z = rnd(g, (N, D), sp), rnd(g, (N, D), sz)
        # no detach here: dz is the gradient when the caller asks for it
        loss = negcos_loss(p, z, eps)
        (loss * dloss).backward()
        q = "c%d_" % c
        out.update({q + "N": [N], q + "D": [D], q + "eps": [eps], q + "dloss": [dloss],
                    q + "p": p, q + "z": z, q + "loss": [loss.item()],
                    q + "losses": negcos_loss(p, z, eps, "none"),
                    q + "dp": p.grad, q + "dz": z.grad})
        # symmetric form on fresh views
        p1, p2, z1, z2 = (rnd(g, (N, D), s) for s in (sp, sp, sz, sz))
        ls = negcos_sym_loss(p1, p2, z1, z2, eps)
        (ls * dloss).backward()
        out.update({q + "p1": p1, q + "p2": p2, q + "z1": z1, q + "z2": z2,
                    q + "sym_loss": [ls.item()], q + "dp1": p1.grad, q + "dp2": p2.grad})
    print(fixture.write(args.out, "negcos", out))


if __name__ == "__main__":
    main()
