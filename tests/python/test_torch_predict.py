"""Predictive modules (skipped where the loaded library lacks the loss)."""
import unittest

import common  # noqa: F401  (sets sys.path)
from common import compare

import torch
import torch.nn.functional as F

import refs
import selfsup
import selfsup.torch as st


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def needs(name):
    return unittest.skipUnless(selfsup.available(name),
                               "libselfsup has no ss_%s yet" % name)


TARGETS = torch.tensor([1, -100, 4, 0, 4, 2, -100])


class Predictive(unittest.TestCase):
    @needs("mlm")
    def test_masked_cross_entropy(self):
        x = randn(7, 5, seed=1)
        w = torch.rand(5, dtype=torch.float64) + 0.5
        for kw in [{}, {"label_smoothing": 0.1}, {"weight": w},
                   {"weight": w, "label_smoothing": 0.2}]:
            ss_kw = dict(kw)
            if "weight" in ss_kw:
                ss_kw["weight"] = ss_kw["weight"].float()
            compare(self, lambda v: st.MaskedCrossEntropyLoss(**ss_kw)(v, TARGETS),
                    lambda v: F.cross_entropy(v, TARGETS, **kw), [x], [True])
        y = randn(2, 5, 3, seed=2)  # (N, C, d1): classes on dim 1
        t = torch.tensor([[0, 4, -100], [3, 3, 1]])
        compare(self, lambda v: st.MaskedCrossEntropyLoss()(v, t),
                lambda v: F.cross_entropy(v, t), [y], [True])
        with self.assertRaises(ValueError) as cm:
            st.MaskedCrossEntropyLoss()(torch.randn(2, 3), torch.tensor([0, 7]))
        self.assertEqual(cm.exception.status, "SS_ERR_LABEL")

    @needs("fused_ce")
    def test_fused_linear_cross_entropy(self):
        h, W, b = randn(7, 4, seed=3), randn(5, 4, seed=4), randn(5, seed=5)
        compare(self, lambda x, w, c: st.FusedLinearCrossEntropyLoss()(
                    w, x, TARGETS, c),
                lambda x, w, c: F.cross_entropy(x @ w.T + c, TARGETS),
                [h, W, b], [True, True, True])
        compare(self, lambda x, w: st.FusedLinearCrossEntropyLoss(
                    label_smoothing=0.1)(w, x, TARGETS),
                lambda x, w: F.cross_entropy(x @ w.T, TARGETS,
                                             label_smoothing=0.1),
                [h, W], [True, True])

    @needs("mae")
    def test_mae(self):
        imgs = randn(2, 3, 4, 6, seed=6)
        pred = randn(2, 6, 12, seed=7)
        mask = torch.tensor([[1, 0, 1, 1, 0, 0], [0, 0, 0, 1, 0, 1]],
                            dtype=torch.float64)
        for norm in (True, False):
            compare(self, lambda pr: st.MAELoss(2, norm)(imgs.float(), pr, mask),
                    lambda pr: refs.mae(imgs, pr, mask, 2, norm), [pred], [True])


if __name__ == "__main__":
    unittest.main()
