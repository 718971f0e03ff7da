"""Shared test helpers: import path and float64 comparison."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(_ROOT, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

TOL = 1e-4  # float32 against float64, as the C tests


def rel_err(a, b):
    """Normwise relative error of a against the reference b (absolute when
    the reference is zero)."""
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).norm() / max(float(b.norm()), 1e-30)) \
        if float(b.norm()) > 1e-12 else float((a - b).norm())


def compare(tc, ss_fn, ref_fn, inputs, needs_grad, tol=TOL):
    """Runs ss_fn on float32 copies and ref_fn on float64 copies of inputs,
    backpropagates both and checks the loss and every gradient."""
    ref_in = [x.detach().double().clone().requires_grad_(g)
              for x, g in zip(inputs, needs_grad)]
    ss_in = [x.detach().float().clone().requires_grad_(g)
             for x, g in zip(inputs, needs_grad)]
    ref = ref_fn(*ref_in)
    ref.backward()
    out = ss_fn(*ss_in)
    out.backward()
    tc.assertEqual(out.dtype, torch.float32)
    tc.assertLessEqual(abs(out.item() - ref.item()),
                       tol * max(1.0, abs(ref.item())),
                       "loss %r vs reference %r" % (out.item(), ref.item()))
    for i, (a, b, g) in enumerate(zip(ss_in, ref_in, needs_grad)):
        if not g:
            continue
        tc.assertIsNotNone(a.grad, "input %d got no gradient" % i)
        e = rel_err(a.grad, b.grad)
        tc.assertLessEqual(e, tol, "gradient of input %d: rel err %g" % (i, e))
    return out, ref
