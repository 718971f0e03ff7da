"""selfsup.torch modules against float64 lightly-style references."""
import functools
import unittest

import common  # noqa: F401  (sets sys.path)
from common import compare, rel_err

import torch
import torch.nn.functional as F

import refs
import selfsup.torch as st


def randn(*shape, seed=None):
    g = torch.Generator().manual_seed(seed if seed is not None else sum(shape))
    return torch.randn(*shape, generator=g, dtype=torch.float64)


class Contrastive(unittest.TestCase):
    def test_ntxent(self):
        for n, d, t in [(7, 5, 0.5), (1, 3, 0.5), (16, 32, 0.1)]:
            loss = st.NTXentLoss(temperature=t)
            compare(self, loss, lambda a, b: refs.ntxent(a, b, t),
                    [randn(n, d, seed=1), randn(n, d, seed=2)], [True, True])

    def test_ntxent_memory_bank(self):
        n, d, k = 6, 5, 10
        loss = st.NTXentLoss(memory_bank_size=(k, d))
        for step in range(3):  # the third step wraps the ring buffer
            bank = loss.bank.clone()
            ptr = int(loss.bank_ptr)
            a, b = randn(n, d, seed=3 + step), randn(n, d, seed=9 + step)
            compare(self, loss,
                    lambda x, y: refs.ntxent_bank(x, y, bank.double()),
                    [a, b], [True, True])
            idx = (torch.arange(n) + ptr) % k
            self.assertLess(rel_err(loss.bank[idx], F.normalize(b, dim=1)), 1e-6)
            self.assertEqual(int(loss.bank_ptr), (ptr + n) % k)

    def test_ntxent_bank_frozen_without_grad(self):
        loss = st.NTXentLoss(memory_bank_size=8)
        a, b = torch.randn(4, 3), torch.randn(4, 3)
        loss(a, b)  # lazily created, not updated: out0 needs no grad
        bank = loss.bank.clone()
        loss(a, b)
        self.assertTrue(torch.equal(bank, loss.bank))
        self.assertEqual(tuple(bank.shape), (8, 3))

    def test_dcl(self):
        a, b = randn(9, 6, seed=4), randn(9, 6, seed=5)
        compare(self, st.DCLLoss(), lambda x, y: refs.dcl(x, y, 0.1), [a, b],
                [True, True])
        compare(self, st.DCLLoss(temperature=0.3),
                lambda x, y: refs.dcl(x, y, 0.3), [a, b], [True, False])

    def test_dclw(self):
        a, b = randn(9, 6, seed=6), randn(9, 6, seed=7)
        compare(self, st.DCLWLoss(),
                lambda x, y: refs.dcl(x, y, 0.1, sigma=0.5), [a, b], [True, True])
        fn = functools.partial(st.negative_mises_fisher_weights, sigma=0.7)
        compare(self, st.DCLLoss(temperature=0.2, weight_fn=fn),
                lambda x, y: refs.dcl(x, y, 0.2, sigma=0.7), [a, b], [True, True])

    def test_supcon(self):
        a, b = randn(10, 4, seed=8), randn(10, 4, seed=9)
        labels = torch.tensor([3, -1, 3, 0, 0, 7, -1, 2, 3, 0])
        compare(self, lambda x, y: st.SupConLoss()(x, y, labels),
                lambda x, y: refs.supcon(x, y, labels), [a, b], [True, True])
        compare(self, st.SupConLoss(temperature=0.1, rescale=False),
                lambda x, y: refs.supcon(x, y, None, 0.1, False), [a, b],
                [True, True])

    def test_clip(self):
        a, b = randn(8, 5, seed=10), randn(8, 5, seed=11)
        t = torch.tensor(2.3, dtype=torch.float64)
        compare(self, lambda x, y, s: st.CLIPLoss()(x, y, s.exp()),
                lambda x, y, s: refs.clip(x, y, s.exp()), [a, b, t],
                [True, True, True])

    def test_siglip(self):
        a, b = randn(8, 5, seed=12), randn(8, 5, seed=13)
        t = torch.tensor(2.3, dtype=torch.float64)
        bias = torch.tensor(-3.0, dtype=torch.float64)
        compare(self, lambda x, y, s, c: st.SigLIPLoss()(x, y, s.exp(), c),
                lambda x, y, s, c: refs.siglip(x, y, s.exp(), c),
                [a, b, t, bias], [True, True, True, True])


class Distill(unittest.TestCase):
    def test_dino(self):
        G, V, N, K = 2, 4, 5, 9
        loss = st.DINOLoss(output_dim=K, warmup_teacher_temp=0.02,
                           warmup_teacher_temp_epochs=10)
        centre = randn(1, 1, K, seed=14) * 0.1
        loss.center.copy_(centre)
        teacher = randn(G, N, K, seed=15)
        student = randn(V, N, K, seed=16)
        tt = float(loss.teacher_temp_schedule[3])

        def ss(t, s):
            return loss(list(t), list(s), epoch=3)

        def ref(t, s):
            return refs.dino(list(t), list(s), centre, tt)
        compare(self, ss, ref, [teacher, student], [False, True])
        expect = centre * 0.9 + teacher.mean(dim=(0, 1), keepdim=True) * 0.1
        self.assertLess(rel_err(loss.center, expect), 1e-6)
        # explicit teacher_temp, default epoch path
        loss2 = st.DINOLoss(output_dim=K)
        compare(self, lambda t, s: loss2(list(t), list(s), teacher_temp=0.07),
                lambda t, s: refs.dino(list(t), list(s), 0 * centre, 0.07),
                [teacher, student], [False, True])

    def test_ibot(self):
        B, H, W, K = 3, 2, 3, 7
        mask = torch.zeros(B, H, W, dtype=torch.bool)
        mask[0, 0, :2] = True
        mask[0, 1, 2] = True
        mask[2] = True  # image 1 has no masked token
        M = int(mask.sum())
        loss = st.IBOTPatchLoss(output_dim=K)
        centre = randn(1, K, seed=17) * 0.1
        loss.center.center.copy_(centre)
        teacher, student = randn(M, K, seed=18), randn(M, K, seed=19)
        compare(self, lambda t, s: loss(t, s, mask),
                lambda t, s: refs.ibot(t, s, mask, centre), [teacher, student],
                [False, True])
        expect = centre * 0.9 + teacher.mean(dim=0, keepdim=True) * 0.1
        self.assertLess(rel_err(loss.center.value, expect), 1e-6)

    def test_swav(self):
        H, L, N, K, Q = 2, 3, 6, 5, 4
        high, low = randn(H, N, K, seed=20), randn(L, N, K, seed=21)
        queue = randn(H, Q, K, seed=22)
        compare(self, lambda h, lo: st.SwaVLoss()(list(h), list(lo), list(queue)),
                lambda h, lo: refs.swav(list(h), list(lo), list(queue)),
                [high, low], [True, True])
        compare(self, lambda h: st.SwaVLoss(temperature=0.2)(list(h), []),
                lambda h: refs.swav(list(h), [], None, 0.2), [high], [True])

    def test_msn(self):
        V, N, K, D = 3, 5, 7, 6
        anchors, targets = randn(V * N, D, seed=23), randn(N, D, seed=24)
        protos = randn(K, D, seed=25)
        for iters in (3, 0):
            compare(self, st.MSNLoss(sinkhorn_iterations=iters),
                    lambda a, t, p: refs.msn(a, t, p, iterations=iters),
                    [anchors, targets, protos], [True, False, True])
        compare(self, lambda a, t, p: st.MSNLoss(me_max_weight=0.5)(a, t, p, 0.5),
                lambda a, t, p: refs.msn(a, t, p, sharpen=0.5, weight=0.5),
                [anchors, targets, protos], [True, False, True])

    def test_pmsn(self):
        V, N, K, D = 2, 6, 8, 5
        anchors, targets = randn(V * N, D, seed=26), randn(N, D, seed=27)
        protos = randn(K, D, seed=28)
        compare(self, st.PMSNLoss(),
                lambda a, t, p: refs.msn(a, t, p, power_law_exponent=0.25),
                [anchors, targets, protos], [True, False, True])
        compare(self, st.PMSNLoss(power_law_exponent=0.7,
                                  regularization_weight=2.0),
                lambda a, t, p: refs.msn(a, t, p, weight=2.0,
                                         power_law_exponent=0.7),
                [anchors, targets, protos], [True, False, True])


class Training(unittest.TestCase):
    """One optimizer step on a tiny encoder moves the weights as the
    reference does."""

    def _step(self, loss_fn, ref_fn, x):
        torch.manual_seed(0)
        enc64 = torch.nn.Sequential(torch.nn.Linear(x.shape[-1], 8),
                                    torch.nn.Tanh(),
                                    torch.nn.Linear(8, 6)).double()
        enc32 = torch.nn.Sequential(torch.nn.Linear(x.shape[-1], 8),
                                    torch.nn.Tanh(), torch.nn.Linear(8, 6))
        enc32.load_state_dict({k: v.float() for k, v in enc64.state_dict().items()})
        for enc, fn, xx in ((enc64, ref_fn, x), (enc32, loss_fn, x.float())):
            opt = torch.optim.SGD(enc.parameters(), lr=0.5)
            opt.zero_grad()
            fn(enc, xx).backward()
            opt.step()
        for (name, w64), w32 in zip(enc64.named_parameters(), enc32.parameters()):
            self.assertLess(rel_err(w32, w64), 1e-5, name)

    def test_ntxent_step(self):
        x = randn(2, 12, 4, seed=29)
        ss = st.NTXentLoss()
        self._step(lambda e, v: ss(e(v[0]), e(v[1])),
                   lambda e, v: refs.ntxent(e(v[0]), e(v[1])), x)

    def test_dino_step(self):
        x = randn(3, 10, 4, seed=30)
        ss = st.DINOLoss(output_dim=6)

        def run(e, v, fn):
            with torch.no_grad():
                t = [e(v[0]), e(v[1])]
            return fn(t, [e(v[i]) for i in range(3)])
        self._step(lambda e, v: run(e, v, lambda t, s: ss(t, s, epoch=50)),
                   lambda e, v: run(e, v, lambda t, s: refs.dino(
                       t, s, torch.zeros(1, 1, 6, dtype=torch.float64))), x)


if __name__ == "__main__":
    unittest.main()
