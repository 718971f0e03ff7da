"""PyTorch float64 reference for the training engine's layers (train/layers.c).

Every case draws its sizes from the seed, runs the torch module in float64,
back-propagates a random upstream gradient gy (loss = sum(y * gy)) and
stores inputs, outputs and gradients as <layer>.<i>.<field>. The C tests
loop over i until <layer>.<i>.dims is absent.
"""
import numpy as np
import torch
import torch.nn.functional as F

import fixture


def t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def run(y, gy, *leaves):
    (y * gy).sum().backward()
    return [l.grad for l in leaves]


def linear_cases(rng, out, n=3):
    for i in range(n):
        N, D, O = rng.integers(1, 6), rng.integers(1, 9), rng.integers(1, 7)
        bias = i != 1
        x, w, b = t(rng.normal(size=(N, D))), t(rng.normal(size=(O, D))), t(rng.normal(size=O))
        y = F.linear(x, w, b if bias else None)
        gy = torch.tensor(rng.normal(size=(N, O)))
        dx, dw, db = run(y, gy, x, w, b)
        p = "linear.%d." % i
        out.update({p + "dims": [N, D, O, int(bias)], p + "x": x, p + "w": w, p + "b": b,
                    p + "y": y, p + "gy": gy, p + "dx": dx, p + "dw": dw,
                    p + "db": db if bias else np.zeros(O)})


def conv_cases(rng, out, n=5):
    for i in range(n):
        while True:
            N, Cin, Cout = rng.integers(1, 4), rng.integers(1, 4), rng.integers(1, 5)
            KH, KW = int(rng.choice([1, 2, 3])), int(rng.choice([1, 3]))
            if i == 0:
                KH = KW = 3
            H, W = rng.integers(2, 9), rng.integers(2, 9)
            stride = int(rng.integers(1, 3))
            pad = int(rng.integers(0, min(KH, KW)))
            if H + 2 * pad >= KH and W + 2 * pad >= KW:
                break
        bias = i != 2
        x = t(rng.normal(size=(N, Cin, H, W)))
        w, b = t(rng.normal(size=(Cout, Cin, KH, KW))), t(rng.normal(size=Cout))
        y = F.conv2d(x, w, b if bias else None, stride=stride, padding=pad)
        gy = torch.tensor(rng.normal(size=tuple(y.shape)))
        dx, dw, db = run(y, gy, x, w, b)
        p = "conv.%d." % i
        out.update({p + "dims": [N, Cin, H, W, Cout, KH, KW, stride, pad, int(bias)],
                    p + "x": x, p + "w": w, p + "b": b, p + "y": y, p + "gy": gy,
                    p + "dx": dx, p + "dw": dw, p + "db": db if bias else np.zeros(Cout)})


def bn_cases(rng, out):
    # (N, C, S, train): 2d train, 1d train, 2d eval
    shapes = [(rng.integers(2, 5), rng.integers(1, 5), rng.integers(3, 13), 1),
              (rng.integers(4, 9), rng.integers(1, 6), 1, 1),  # N = 2 gives dx = 0
              (rng.integers(1, 4), rng.integers(1, 4), rng.integers(1, 10), 0)]
    for i, (N, C, S, train) in enumerate(shapes):
        x = t(rng.normal(size=(N, C, S)) * 2 + 0.5)
        g, b = t(rng.normal(size=C)), t(rng.normal(size=C))
        rm0, rv0 = rng.normal(size=C), rng.uniform(0.5, 2, size=C)
        rm, rv = torch.tensor(rm0), torch.tensor(rv0)
        y = F.batch_norm(x, rm, rv, g, b, training=bool(train), momentum=0.1, eps=1e-5)
        gy = torch.tensor(rng.normal(size=(N, C, S)))
        dx, dg, db = run(y, gy, x, g, b)
        p = "bn.%d." % i
        out.update({p + "dims": [N, C, S, train], p + "x": x, p + "gamma": g,
                    p + "beta": b, p + "rm0": rm0, p + "rv0": rv0, p + "rm": rm,
                    p + "rv": rv, p + "y": y, p + "gy": gy, p + "dx": dx,
                    p + "dgamma": dg, p + "dbeta": db})


def ln_cases(rng, out, n=2):
    for i in range(n):
        N, D = rng.integers(1, 6), rng.integers(4, 20)  # D = 2 gives dx = 0
        x = t(rng.normal(size=(N, D)) * 3 + 1)
        g, b = t(rng.normal(size=D)), t(rng.normal(size=D))
        y = F.layer_norm(x, (D,), g, b, eps=1e-5)
        gy = torch.tensor(rng.normal(size=(N, D)))
        dx, dg, db = run(y, gy, x, g, b)
        p = "ln.%d." % i
        out.update({p + "dims": [N, D], p + "x": x, p + "gamma": g, p + "beta": b,
                    p + "y": y, p + "gy": gy, p + "dx": dx, p + "dgamma": dg,
                    p + "dbeta": db})


def act_cases(rng, out):
    for name, f in (("relu", F.relu), ("gelu", F.gelu)):
        n = int(rng.integers(5, 60))
        x = t(rng.normal(size=n) * 2)
        y = f(x)
        gy = torch.tensor(rng.normal(size=n))
        (dx,) = run(y, gy, x)
        p = name + ".0."
        out.update({p + "dims": [n], p + "x": x, p + "y": y, p + "gy": gy, p + "dx": dx})


def pool_cases(rng, out, n=3):
    for name in ("maxpool", "avgpool"):
        for i in range(n):
            P = int(rng.integers(1, 5))
            K = int(rng.integers(1, 4))
            H, W = int(rng.integers(K, 9)), int(rng.integers(K, 9))
            s = int(rng.integers(1, 3))
            if i < 2:  # the encoder's 2x2 / 2 pool (a fast path), odd sizes too
                K, s = 2, 2
                H, W = int(rng.integers(2, 10)), int(rng.integers(2, 10))
            xs = rng.normal(size=(1, P, H, W))
            if name == "maxpool" and i == 0:
                xs = np.maximum(xs, 0)  # ReLU output: ties at zero
            x = t(xs)
            if name == "maxpool":
                y = F.max_pool2d(x, K, s)
            else:
                y = F.avg_pool2d(x, K, s)
            gy = torch.tensor(rng.normal(size=tuple(y.shape)))
            (dx,) = run(y, gy, x)
            p = "%s.%d." % (name, i)
            out.update({p + "dims": [P, H, W, K, s], p + "x": x, p + "y": y,
                        p + "gy": gy, p + "dx": dx})
    P, S = int(rng.integers(1, 9)), int(rng.integers(1, 30))
    x = t(rng.normal(size=(P, S)))
    y = x.mean(dim=1)
    gy = torch.tensor(rng.normal(size=P))
    (dx,) = run(y, gy, x)
    out.update({"gap.0.dims": [P, S], "gap.0.x": x, "gap.0.y": y, "gap.0.gy": gy,
                "gap.0.dx": dx})


def main():
    args = fixture.parse_args(default_seed=6)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)
    out = {}
    linear_cases(rng, out)
    conv_cases(rng, out)
    bn_cases(rng, out)
    ln_cases(rng, out)
    act_cases(rng, out)
    pool_cases(rng, out)
    print(fixture.write(args.out, "layers", out))


if __name__ == "__main__":
    main()
