"""NumPy layer, errors, dtypes, devices and state_dict round trips."""
import os
import tempfile
import unittest

import common  # noqa: F401  (sets sys.path)
from common import TOL, rel_err

import numpy as np
import torch

import refs
import selfsup
import selfsup.torch as st
from selfsup import _lib


class NumpyLayer(unittest.TestCase):
    def test_no_copy_for_float32_contiguous(self):
        z = np.zeros((2, 3, 4), np.float32)
        self.assertIs(_lib.as_array(z), z)
        zt = np.asfortranarray(z)
        self.assertIsNot(_lib.as_array(zt), zt)
        self.assertTrue(_lib.as_array(zt).flags.c_contiguous)
        self.assertEqual(_lib.as_array(z.astype(np.float64)).dtype, np.float32)

    def test_ntxent_matches_reference(self):
        rng = np.random.default_rng(0)
        z = rng.standard_normal((2, 7, 5))  # float64: converted
        loss, dz = selfsup.ntxent(z, temperature=0.3, grad=True)
        zt = torch.tensor(z, requires_grad=True)
        ref = refs.ntxent(zt[0], zt[1], 0.3)
        ref.backward()
        self.assertAlmostEqual(loss, ref.item(), delta=TOL * abs(ref.item()))
        self.assertLess(rel_err(torch.from_numpy(dz), zt.grad), TOL)
        self.assertIsInstance(selfsup.ntxent(z), float)

    def test_moco_matches_reference(self):
        rng = np.random.default_rng(1)
        q, k = rng.standard_normal((2, 6, 4))
        bank = rng.standard_normal((9, 4))
        bank /= np.linalg.norm(bank, axis=1, keepdims=True)
        loss, dq, dk = selfsup.moco(q, k, bank, grad=True)
        qt = torch.tensor(q, requires_grad=True)
        kt = torch.tensor(k, requires_grad=True)
        ref = refs.ntxent_bank(qt, kt, torch.tensor(bank))
        ref.backward()
        self.assertAlmostEqual(loss, ref.item(), delta=TOL * abs(ref.item()))
        self.assertLess(rel_err(torch.from_numpy(dq), qt.grad), TOL)
        self.assertLess(rel_err(torch.from_numpy(dk), kt.grad), TOL)

    def test_every_function_runs(self):
        rng = np.random.default_rng(2)
        r = rng.standard_normal
        z = r((2, 6, 4))
        self.assertEqual(len(selfsup.supcon(z, np.arange(6), grad=True)), 2)
        self.assertEqual(len(selfsup.dcl(z, grad=True)), 2)
        self.assertEqual(len(selfsup.dclw(z, grad=True)), 2)
        self.assertEqual(len(selfsup.clip(z[0], z[1], grad=True)), 4)
        self.assertEqual(len(selfsup.siglip(z[0], z[1], grad=True)), 5)
        self.assertEqual(len(selfsup.dino(r((2, 6, 5)), r((3, 6, 5)),
                                          np.zeros(5), grad=True)), 2)
        mask = np.array([[1, 0, 1], [0, 1, 0]], np.uint8)
        self.assertEqual(len(selfsup.ibot(r((3, 5)), r((3, 5)), mask,
                                          grad=True)), 2)
        self.assertEqual(len(selfsup.swav(r((2, 6, 5)), grad=True)), 3)
        out = selfsup.msn(r((2, 6, 4)), r((6, 4)), r((5, 4)), grad=True)
        self.assertEqual([g.shape for g in out[1:]], [(2, 6, 4), (5, 4)])
        self.assertIsInstance(selfsup.pmsn(r((2, 6, 4)), r((6, 4)), r((5, 4))),
                              float)

    def test_queue_and_center_objects(self):
        q = selfsup.Queue(4, 3, seed=7)
        self.assertTrue(np.allclose(np.linalg.norm(q.read(), axis=1), 1, atol=1e-5))
        keys = np.arange(18, dtype=np.float32).reshape(6, 3)
        q.enqueue(keys)  # 6 keys into 4 slots: the last 4 remain
        np.testing.assert_array_equal(q.read(), keys[2:])
        self.assertEqual(q.count, 6)
        c = selfsup.Center(3, [1, 2, 3])
        c.accumulate(np.ones((2, 3)))
        c.update(0.5)
        np.testing.assert_allclose(c.value, [1, 1.5, 2])
        with tempfile.TemporaryDirectory() as d:
            q.save(os.path.join(d, "q"))
            np.testing.assert_array_equal(selfsup.Queue.load(
                os.path.join(d, "q")).read(), q.read())
            c.save(os.path.join(d, "c"))
            np.testing.assert_array_equal(selfsup.Center.load(
                os.path.join(d, "c")).value, c.value)
            with self.assertRaises(OSError) as cm:
                selfsup.Center.load(os.path.join(d, "missing"))
            self.assertIn("ss_center_load", str(cm.exception))
            with open(os.path.join(d, "bad"), "wb") as f:
                f.write(b"garbage!" * 4)
            with self.assertRaises(ValueError) as cm:
                selfsup.Queue.load(os.path.join(d, "bad"))
            self.assertEqual(cm.exception.status, "SS_ERR_FORMAT")

    def test_threads(self):
        z = np.random.default_rng(3).standard_normal((2, 300, 16))
        selfsup.set_num_threads(1)
        a = selfsup.ntxent(z)
        selfsup.set_num_threads(2)
        b = selfsup.ntxent(z)
        selfsup.set_num_threads(0)
        self.assertAlmostEqual(a, b, delta=1e-5 * abs(a))
        with self.assertRaises(ValueError):
            selfsup.set_num_threads(-1)


class Errors(unittest.TestCase):
    def test_bad_parameter_carries_c_message(self):
        with self.assertRaises(ValueError) as cm:
            st.NTXentLoss(temperature=-0.5)(torch.randn(4, 3), torch.randn(4, 3))
        self.assertIn("ss_ntxent_forward: temperature must be finite and > 0, "
                      "got -0.5", str(cm.exception))
        self.assertEqual(cm.exception.status, "SS_ERR_PARAM")
        self.assertIsInstance(cm.exception, selfsup.SelfsupError)
        with self.assertRaises(ValueError) as cm:
            selfsup.dcl(np.ones((2, 3, 4)), temperature=float("nan"))
        self.assertIn("ss_dcl_forward", str(cm.exception))

    def test_nonfinite_input_names_index(self):
        a = torch.randn(4, 3)
        a[2, 1] = float("nan")
        with self.assertRaises(ValueError) as cm:
            st.NTXentLoss()(a, torch.randn(4, 3))
        self.assertEqual(cm.exception.status, "SS_ERR_NONFINITE")
        self.assertIn("z[7] is nan", str(cm.exception))  # flat (0, 2, 1)

    def test_sizes(self):
        with self.assertRaises(ValueError) as cm:
            st.DCLLoss()(torch.randn(1, 3), torch.randn(1, 3))  # N = 1
        self.assertEqual(cm.exception.status, "SS_ERR_SIZE")
        with self.assertRaises(ValueError):
            selfsup.supcon(np.ones((2, 3, 4)), np.arange(4))
        with self.assertRaises(ValueError):
            st.MSNLoss()(torch.randn(7, 4), torch.randn(3, 4), torch.randn(5, 4))

    def test_labels_and_mask(self):
        with self.assertRaises(ValueError) as cm:
            selfsup.supcon(np.ones((2, 3, 4)), [0, -2, 1])
        self.assertEqual(cm.exception.status, "SS_ERR_LABEL")
        with self.assertRaises(ValueError) as cm:  # M != ones in the mask
            selfsup.ibot(np.ones((2, 5)), np.ones((2, 5)), [[1, 0, 0]])
        self.assertIn("ss_ibot_forward", str(cm.exception))

    def test_lightly_constructor_checks(self):
        with self.assertRaises(ValueError):
            st.NTXentLoss(temperature=0.0)
        with self.assertRaises(NotImplementedError):
            st.NTXentLoss(gather_distributed=True)
        with self.assertRaises(NotImplementedError):
            st.SwaVLoss(sinkhorn_gather_distributed=True)
        with self.assertRaises(NotImplementedError):
            st.DCLLoss(weight_fn=lambda a, b: 1.0)
        with self.assertRaises(ValueError):
            st.DINOLoss(output_dim=4, center_mode="median")

    def test_non_cpu_tensor(self):
        a = torch.empty(4, 3, device="meta")
        with self.assertRaises(RuntimeError) as cm:
            st.NTXentLoss()(a, a)
        self.assertIn("no GPU backend", str(cm.exception))


class Dtypes(unittest.TestCase):
    def test_half_and_bfloat16(self):
        a32, b32 = torch.randn(8, 5), torch.randn(8, 5)
        a32.requires_grad_()
        ref = st.NTXentLoss()(a32, b32)
        ref.backward()
        for dt in (torch.float16, torch.bfloat16):
            a = a32.detach().to(dt).requires_grad_()
            out = st.NTXentLoss()(a, b32.to(dt))
            out.backward()
            self.assertEqual(a.grad.dtype, dt)
            self.assertEqual(out.dtype, dt)
            self.assertLess(rel_err(a.grad, a32.grad), 0.05)
            self.assertLess(abs(out.item() - ref.item()), 0.05 * ref.item())

    def test_float64_input(self):
        a = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
        out = st.NTXentLoss()(a, torch.randn(8, 5, dtype=torch.float64))
        out.backward()
        self.assertEqual(a.grad.dtype, torch.float64)

    def test_non_contiguous_input(self):
        x = torch.randn(5, 16)
        a = x[:, ::2].clone().requires_grad_()
        b = x[:, 1::2]
        c = x.t().contiguous().t()[:, ::2]  # same values, strided
        la = st.NTXentLoss()(a, b)
        lc = st.NTXentLoss()(c, b)
        self.assertAlmostEqual(la.item(), lc.item(), places=6)


class StateDict(unittest.TestCase):
    def test_memory_bank_round_trip(self):
        loss = st.NTXentLoss(memory_bank_size=10)
        for _ in range(2):
            loss(torch.randn(4, 3, requires_grad=True), torch.randn(4, 3))
        sd = loss.state_dict()
        self.assertEqual(set(sd), {"bank", "bank_ptr"})
        fresh = st.NTXentLoss(memory_bank_size=10)  # bank not created yet
        fresh.load_state_dict(sd)
        self.assertTrue(torch.equal(fresh.bank, loss.bank))
        self.assertEqual(int(fresh.bank_ptr), 8)
        a, b = torch.randn(4, 3), torch.randn(4, 3)
        self.assertEqual(fresh(a, b).item(), loss(a, b).item())

    def test_dino_center_round_trip(self):
        loss = st.DINOLoss(output_dim=6)
        loss([torch.randn(3, 6)], [torch.randn(3, 6), torch.randn(3, 6)])
        self.assertGreater(float(loss.center.abs().sum()), 0)
        fresh = st.DINOLoss(output_dim=6)
        fresh.load_state_dict(loss.state_dict())
        self.assertTrue(torch.equal(fresh.center, loss.center))

    def test_ibot_center_round_trip(self):
        loss = st.IBOTPatchLoss(output_dim=5)
        mask = torch.tensor([[[True, False], [True, True]]])
        loss(torch.randn(3, 5), torch.randn(3, 5), mask)
        sd = loss.state_dict()
        self.assertEqual(list(sd), ["center.center"])
        fresh = st.IBOTPatchLoss(output_dim=5)
        fresh.load_state_dict(sd)
        self.assertTrue(torch.equal(fresh.center.value, loss.center.value))


if __name__ == "__main__":
    unittest.main()
