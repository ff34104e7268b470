"""The TV baseline's solver converges in its default iterations (ADMM), unlike sigpy's PDHG default."""

import numpy as np


def _problem(seed: int = 0, n: int = 32, coils: int = 4):
    rng = np.random.default_rng(seed)
    img = np.zeros((n, n), np.complex64)
    img[8:24, 6:20] = 1.0
    img[12:18, 14:28] += 0.6
    yy, xx = np.mgrid[:n, :n] / n
    maps = np.stack([np.exp(1j * (2 * np.pi * (c / coils) + 3 * yy * c - 2 * xx)) * (0.6 + 0.4 * yy ** c)
                     for c in range(coils)]).astype(np.complex64)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0, keepdims=True))
    w = (rng.random(n) < 0.3).astype(np.float32)
    w[n // 2 - 3 : n // 2 + 3] = 1
    weights = np.broadcast_to(w[None], (n, n)).copy()
    k = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(maps * img, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    k = (k + 0.01 * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))) * weights
    return k.astype(np.complex64), maps, weights


def _objective(x, y, maps, weights, lam):
    import sigpy as sp

    from ambient_imaging.sampling.sparse_mri import sense_linop

    a = sense_linop(maps, weights)
    g = sp.linop.FiniteDifference(a.ishape, axes=(-2, -1))
    return 0.5 * np.linalg.norm(a(x) - y * weights) ** 2 + lam * np.abs(g(x)).sum()


def test_tv_admm_reaches_the_minimum_in_its_default_iterations_where_pdhg_does_not():
    import sigpy as sp

    from ambient_imaging.sampling.sparse_mri import sense_linop, solve_tv

    y, maps, weights = _problem()
    lam = 0.01
    x = solve_tv(y, maps, weights, lam)  # 100 iterations, the TV baseline's default
    a = sense_linop(maps, weights)
    g = sp.linop.FiniteDifference(a.ishape, axes=(-2, -1))

    def pdhg(iters):
        return sp.app.LinearLeastSquares(a, y * weights, proxg=sp.prox.L1Reg(g.oshape, lam), G=g, max_iter=iters,
                                         show_pbar=False).run()

    f_admm, f_pdhg100, f_ref = (_objective(v, y, maps, weights, lam) for v in (x, pdhg(100), pdhg(5000)))
    assert f_admm <= 1.002 * f_ref  # at the minimum (PDHG after 5,000 iterations)
    assert f_pdhg100 > 1.01 * f_ref  # the old default was not
