"""Redundancy-reduction and geometry modules (tests skip where the loaded
library does not have the loss yet)."""
import os
import tempfile
import unittest

import common  # noqa: F401  (sets sys.path)
from common import compare, rel_err

import numpy as np
import torch

import refs
import selfsup
import selfsup.torch as st


def randn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def needs(name):
    return unittest.skipUnless(selfsup.available(name),
                               "libselfsup has no ss_%s yet" % name)


class Redundancy(unittest.TestCase):
    @needs("negcos")
    def test_negative_cosine(self):
        a, b = randn(7, 5, seed=1), randn(7, 5, seed=2)
        compare(self, st.NegativeCosineSimilarity(), refs.negcos, [a, b],
                [True, True])
        compare(self, st.NegativeCosineSimilarity(), refs.negcos, [a, b],
                [True, False])

    @needs("barlow")
    def test_barlow(self):
        for n, d in [(8, 5), (5, 9)]:  # D x D and Gram forms
            a, b = randn(n, d, seed=3), randn(n, d, seed=4)
            compare(self, st.BarlowTwinsLoss(), refs.barlow, [a, b], [True, True])
            compare(self, st.BarlowTwinsLoss(lambda_param=0.1),
                    lambda x, y: refs.barlow(x, y, 0.1), [a, b], [True, True])

    @needs("vicreg")
    def test_vicreg(self):
        for n, d in [(8, 5), (5, 9)]:
            a, b = randn(n, d, seed=5) * 0.3, randn(n, d, seed=6) * 0.3
            compare(self, st.VICRegLoss(), refs.vicreg, [a, b], [True, True])
            compare(self, st.VICRegLoss(2.0, 3.0, 4.0, eps=1e-3),
                    lambda x, y: refs.vicreg(x, y, 2.0, 3.0, 4.0, 1e-3), [a, b],
                    [True, True])


class Geometry(unittest.TestCase):
    @needs("tico")
    def test_tico_steps_and_state(self):
        n, d = 6, 4
        loss = st.TiCoLoss()
        C = torch.zeros(d, d, dtype=torch.float64)
        for step in range(3):
            a, b = randn(n, d, seed=7 + step), randn(n, d, seed=17 + step)
            C_old = C
            compare(self, loss, lambda x, y: refs.tico(x, y, C_old)[0], [a, b],
                    [True, True])
            C = refs.tico(a, b, C_old)[1]
            self.assertLess(rel_err(loss.C, C), 1e-5)
        fresh = st.TiCoLoss()
        fresh.load_state_dict(loss.state_dict())
        self.assertTrue(torch.equal(fresh.C, loss.C))
        frozen = st.TiCoLoss(update_covariance_matrix=False)
        frozen(torch.randn(n, d), torch.randn(n, d))
        self.assertEqual(frozen.C.numel(), 0)

    @needs("hypersphere")
    def test_hypersphere(self):
        a, b = randn(9, 5, seed=8), randn(9, 5, seed=9)
        compare(self, st.HypersphereLoss(), refs.hypersphere, [a, b],
                [True, True])
        compare(self, st.HypersphereLoss(t=2.0, lam=0.5, alpha=3.0),
                lambda x, y: refs.hypersphere(x, y, 2.0, 0.5, 3.0), [a, b],
                [True, True])

    @needs("koleo")
    def test_koleo(self):
        compare(self, st.KoLeoLoss(), refs.koleo, [randn(10, 6, seed=10)],
                [True])

    @needs("mmcr")
    def test_mmcr(self):
        base = randn(4, 1, 6, seed=11)
        on = base + 0.5 * randn(4, 3, 6, seed=12)
        mo = base + 0.5 * randn(4, 3, 6, seed=13)
        compare(self, st.MMCRLoss(), refs.mmcr, [on, mo], [True, True])

    @needs("wmse")
    def test_wmse(self):
        n, d, w = 16, 3, 8
        x = randn(2 * n, d, seed=14)
        for it in (1, 2):
            torch.manual_seed(5)
            perms = [torch.randperm(n) for _ in range(it)]
            loss = st.WMSELoss(embedding_dim=d, w_size=w, w_iter=it)
            torch.manual_seed(5)
            compare(self, loss, lambda v: refs.wmse(v, perms, 2, w), [x], [True])
        with self.assertRaises(ValueError):
            st.WMSELoss(embedding_dim=8, w_size=8)


class NumpyGeometry(unittest.TestCase):
    @needs("tico")
    def test_tico_state_object(self):
        r = np.random.default_rng(0).standard_normal
        state = selfsup.TicoState(4)
        a, b = r((6, 4)), r((6, 4))
        loss, dza, dzb = selfsup.tico(a, b, state, grad=True)
        ref, C = refs.tico(torch.tensor(a), torch.tensor(b),
                           torch.zeros(4, 4, dtype=torch.float64))
        self.assertAlmostEqual(loss, ref.item(), delta=1e-4 * abs(ref.item()))
        self.assertEqual(state.steps, 1)
        self.assertLess(rel_err(torch.from_numpy(state.read()), C), 1e-5)
        with tempfile.TemporaryDirectory() as d:
            state.save(os.path.join(d, "c"))
            back = selfsup.TicoState.load(os.path.join(d, "c"))
            np.testing.assert_array_equal(back.read(), state.read())

    @needs("mmcr")
    def test_mmcr_without_momentum(self):
        on = np.random.default_rng(1).standard_normal((3, 2, 5))
        loss, don, dmo = selfsup.mmcr(on, grad=True)
        self.assertIsNone(dmo)
        self.assertEqual(don.shape, on.shape)

    @needs("empssl")
    def test_empssl_runs(self):
        z = np.random.default_rng(2).standard_normal((3, 6, 4))
        loss, dz = selfsup.empssl(z, grad=True)
        self.assertEqual(dz.shape, z.shape)
        self.assertTrue(np.isfinite(loss))


if __name__ == "__main__":
    unittest.main()
