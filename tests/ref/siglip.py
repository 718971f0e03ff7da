"""PyTorch float64 reference for ss_siglip: the sigmoid loss as written in
big_vision (trainers/proj/image_text siglip: logits = zimg @ ztxt.T * t + b,
labels 2 I - 1, nll = -sum_j log_sigmoid(labels * logits), loss = mean_i nll)
with t = exp(t') and, when cosine, L2-normalised embeddings as the model
returns them. Writes <out>/siglip.bin (format: fixture.py)."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fixture  # noqa: E402


def sigmoid_loss(zimg, ztxt, t_prime, bias):
    """Returns (mean loss, per-row nll)."""
    logits = zimg @ ztxt.T * t_prime.exp() + bias
    n = logits.shape[0]
    m1_diag1 = -torch.ones_like(logits) + 2 * torch.eye(n, dtype=logits.dtype)
    nll = -torch.sum(F.logsigmoid(m1_diag1 * logits), dim=-1)
    return nll.mean(), nll


# (N, D, cosine, t', bias, dloss, input std)
CASES = [
    (8, 16, 1, 2.302585092994046, -10.0, 1.0, 1.0),  # paper init: t = 10, b = -10
    (6, 5, 1, 1.0, 0.5, 0.75, 1.0),
    (7, 9, 0, -0.3, -1.0, 1.25, 0.5),                 # raw dot products
    (1, 3, 1, 2.0, -3.0, 1.0, 1.0),                   # one positive, no negatives
    (10, 4, 1, 4.0, 20.0, -0.5, 1.0),                 # saturated negatives
]


def main():
    args = fixture.parse_args(default_seed=4321)
    g = torch.Generator().manual_seed(args.seed)
    out = {"ncases": [len(CASES)]}
    for c, (N, D, cosine, tp0, b0, dloss, std) in enumerate(CASES):
        # inputs and parameters rounded to float32, as the C side reads them
        a = (torch.randn(N, D, generator=g, dtype=torch.float64) * std).float().double()
        b = (torch.randn(N, D, generator=g, dtype=torch.float64) * std).float().double()
        a.requires_grad_()
        b.requires_grad_()
        tp = torch.tensor(tp0, dtype=torch.float32).double().requires_grad_()
        bias = torch.tensor(b0, dtype=torch.float32).double().requires_grad_()
        dl = float(torch.tensor(dloss, dtype=torch.float32))
        fa, fb = (F.normalize(a, dim=-1), F.normalize(b, dim=-1)) if cosine else (a, b)
        loss, nll = sigmoid_loss(fa, fb, tp, bias)
        (loss * dl).backward()
        p = "c%d_" % c
        out.update({p + "N": [N], p + "D": [D], p + "cosine": [cosine],
                    p + "log_t": [tp.item()], p + "bias": [bias.item()],
                    p + "dloss": [dl], p + "a": a, p + "b": b,
                    p + "loss": [loss.item()], p + "losses": nll,
                    p + "da": a.grad, p + "db": b.grad,
                    p + "dlog_t": [tp.grad.item()], p + "dbias": [bias.grad.item()]})
    print(fixture.write(args.out, "siglip", out))


if __name__ == "__main__":
    main()
