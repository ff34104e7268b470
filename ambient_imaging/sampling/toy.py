"""An analytic Gaussian toy for posterior samplers: exact denoisers and exact posteriors.

Prior ``x ~ N(μ, Σ)`` on small images (real, or complex as ``[Re, Im]``), any linear operator
``y = A x + ε``. Everything a sampler needs has a closed form:

* :meth:`GaussianToy.denoiser`: the plain prior's denoiser ``E[x | x_t]``
  (``x_t = x + σ η``; complex images get variance σ² in each of the real and imaginary parts),
  a :class:`~ambient_imaging.sampling.Denoiser` (``net(x, sigma, mask)``, the mask is ignored);
* :meth:`GaussianToy.ambient_denoiser`: the mask-conditioned *ambient* prior
  ``E[x | Ã x_t, Ã]`` a network trained with the ambient loss converges to (Daras et al. 2023,
  Thm 4.1). Like the real networks it sees only ``u = Ã^H Ã x_t`` and ``Ã.mask_channels()``
  (pixel masks; the k-space mask for MRI), rebuilds ``Ã`` from the mask and conditions the
  Gaussian on the rows of ``Ã``: with ``Ã^H Ã = V Λ V^T`` (real form), the observed
  coordinates are ``V_S^T x_t = Λ_S^{-1} V_S^T u`` with noise σ² I, so
  ``E[x | u] = μ + Σ V_S (V_S^T Σ V_S + σ² I)^{-1} (V_S^T x_t − V_S^T μ)``;
* :meth:`GaussianToy.posterior`: the exact ``E[x | y]`` and ``Cov[x | y]``;
* :meth:`GaussianToy.row_space_posterior`: what any sampler can reach when it evaluates an
  ambient prior only through ``Ã ⊆ A`` (see ``docs/sampling.md``).

Vectors are in the real form of :func:`to_real`: ``(B, n)`` for real images,
``(B, 2n)`` = ``[Re, Im]`` for complex ones. Used by the tests and ``docs/sampling.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ambient_imaging.operators import LinearOperator, MultiCoilMRI, PixelMask
from ambient_imaging.operators.base import expand_sigma

__all__ = [
    "GaussianToy",
    "GaussianDenoiser",
    "AmbientGaussianDenoiser",
    "to_real",
    "from_real",
    "real_matrix",
    "moment_errors",
    "smooth_covariance",
    "toy_problem",
]


def to_real(x: Tensor) -> Tensor:
    """``(B, ...)`` real or complex → ``(B, n)`` real (complex: ``[Re, Im]``)."""
    v = x.reshape(x.shape[0], -1)
    return torch.cat([v.real, v.imag], dim=1) if x.is_complex() else v


def from_real(v: Tensor, shape: tuple[int, ...], is_complex: bool) -> Tensor:
    """Inverse of :func:`to_real`: ``(B, n)`` → ``(B, *shape)``."""
    if is_complex:
        n = v.shape[1] // 2
        return torch.complex(v[:, :n], v[:, n:]).reshape(v.shape[0], *shape)
    return v.reshape(v.shape[0], *shape)


def real_matrix(op: LinearOperator, shape: tuple[int, ...], is_complex: bool, dtype=torch.float64) -> Tensor:
    """``A`` (batch-1 operator) as a real matrix on the measured entries: ``(m, n)``.

    Rows are the real components (``[Re, Im]`` for complex data) of the entries that
    ``op.restrict`` keeps; columns the real form of the image.
    """
    n = int(math.prod(shape)) * (2 if is_complex else 1)
    eye = torch.eye(n, dtype=dtype)
    imgs = from_real(eye, shape, is_complex)
    cols = to_real(op.forward(imgs))  # (n, m_all): row j is A e_j
    return cols[:, _measured(op, op.forward(imgs[:1]))].T.contiguous()


def _measured(op: LinearOperator, y: Tensor) -> Tensor:
    """Boolean ``(m_all,)``: the real components of ``y`` (batch 1) that ``op`` measures."""
    probe = op.restrict(torch.ones_like(y))
    return to_real(probe + (1j * probe if probe.is_complex() else 0)).reshape(-1) != 0


def _noise_var(op: LinearOperator, y: Tensor, floor: float) -> Tensor:
    """Noise variance per measured real component of ``y`` (batch 1): σ², or σ²/2 for complex data."""
    sig = torch.as_tensor(expand_sigma(op.noise_sigma, y), dtype=torch.float64)
    var = torch.broadcast_to(sig, y.shape).clamp_min(floor).reshape(1, -1) ** 2
    var = torch.cat([var / 2, var / 2], dim=1) if y.is_complex() else var
    return var.reshape(-1)[_measured(op, y)]


def smooth_covariance(shape: tuple[int, ...], is_complex: bool, length: float = 1.5, nugget: float = 0.05,
                      scale: float = 0.3, coupling: float = 0.3) -> Tensor:
    """A smooth (squared-exponential over pixel positions) covariance in real form.

    Complex images: real and imaginary parts share the spatial kernel and are correlated
    with coefficient ``coupling`` (so the toy is not two independent real problems).
    """
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    pos = torch.stack([yy.reshape(-1), xx.reshape(-1)], 1).repeat(c, 1)
    chan = torch.arange(c).repeat_interleave(h * w)
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    k = scale * torch.exp(-d2 / (2 * length**2)) * (1.0 + 0.5 * (chan[:, None] == chan[None]))
    k = k + nugget * torch.eye(k.shape[0], dtype=torch.float64)
    if not is_complex:
        return k
    return torch.cat([torch.cat([k, coupling * k], 1), torch.cat([coupling * k, k], 1)], 0)


class GaussianDenoiser(nn.Module):
    """Exact ``E[x | x_t]`` for ``x ~ N(μ, Σ)``: ``μ + Σ (Σ + σ² I)^{-1} (x_t − μ)`` (mask ignored)."""

    def __init__(self, toy: GaussianToy):
        super().__init__()
        self.toy = toy
        self.calls = 0
        self.mask_channels = 0
        self._lam, self._u = torch.linalg.eigh(toy.cov)

    def forward(self, x: Tensor, sigma: Tensor, mask: Tensor | None = None) -> Tensor:
        self.calls += 1
        v = to_real(x).to(torch.float64)
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(v.shape[0])
        mu, lam, u = self.toy.mu, self._lam, self._u  # Σ (Σ + σ² I)^{-1} = U diag(λ / (λ + σ²)) U^T
        out = mu + (((v - mu) @ u) * (lam / (lam + s[:, None] ** 2))) @ u.T
        return from_real(out, tuple(x.shape[1:]), x.is_complex()).to(x.dtype)


class AmbientGaussianDenoiser(nn.Module):
    """Exact ambient denoiser ``E[x | Ã x_t, Ã]``: input ``u = Ã^H Ã x_t`` and ``Ã``'s mask channels.

    ``make_op(mask_channels) -> Ã`` rebuilds the operator from the mask (the toy knows the
    coil maps, as a trained network knows the data distribution). Eigendecompositions are
    cached per mask batch (samplers keep ``Ã`` fixed for a run). ``masks`` records every
    distinct mask batch it was called with (for tests on the conditioning).
    """

    def __init__(self, toy: GaussianToy, make_op: Callable[[Tensor], LinearOperator], mask_channels: int = 1):
        super().__init__()
        self.toy = toy
        self.make_op = make_op
        self.mask_channels = mask_channels
        self.calls = 0
        self.masks: list[Tensor] = []
        self._key: Tensor | None = None
        self._cache: tuple[Tensor, Tensor, tuple[Tensor, Tensor], Tensor] | None = None

    def _geometry(self, mask: Tensor, like: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor], Tensor]:
        if self._key is not None and self._key.shape == mask.shape and torch.equal(self._key, mask):
            return self._cache  # type: ignore[return-value]
        self.masks.append(mask.detach().clone())
        op = self.make_op(mask)
        shape, cplx = tuple(like.shape[1:]), like.is_complex()
        n = self.toy.cov.shape[0]
        b = mask.shape[0]
        eye = from_real(torch.eye(n, dtype=torch.float64), shape, cplx)
        # P_b = Ã_b^T Ã_b (real form), column by column: (b, n, n)
        p = torch.stack([to_real(op.normal(eye[j : j + 1].expand(b, *shape).to(like.dtype))).to(torch.float64)
                         for j in range(n)], dim=2)
        lam, vec = torch.linalg.eigh(0.5 * (p + p.transpose(1, 2)))
        obs = lam > 1e-9 * lam.amax(dim=1, keepdim=True).clamp_min(1e-30)
        wv = vec * obs[:, None, :]  # V W
        lam_inv = torch.where(obs, 1.0 / lam.clamp_min(1e-30), torch.zeros_like(lam))
        k = wv.transpose(1, 2) @ self.toy.cov @ wv  # W V^T Σ V W = E diag(κ) E^T
        kappa, e = torch.linalg.eigh(0.5 * (k + k.transpose(1, 2)))
        self._key, self._cache = mask.detach().clone(), (wv, lam_inv, (kappa.clamp_min(0), e), self.toy.cov @ wv)
        return self._cache

    def forward(self, u: Tensor, sigma: Tensor, mask: Tensor | None = None) -> Tensor:
        if mask is None:
            raise ValueError("AmbientGaussianDenoiser: an ambient prior needs mask channels")
        self.calls += 1
        b = u.shape[0]
        mask = mask.expand(b, *mask.shape[1:])
        wv, lam_inv, k, sig_wv = self._geometry(mask, u)
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(b)
        v = to_real(u).to(torch.float64)
        z = lam_inv * (wv.transpose(1, 2) @ v[..., None])[..., 0]  # W V^T x_t from u
        z = z - (wv.transpose(1, 2) @ self.toy.mu)  # − W V^T μ
        kappa, e = k  # (W V^T Σ V W + σ² I)^{-1} z = E diag(1 / (κ + σ²)) E^T z
        coef = e @ ((e.transpose(1, 2) @ z[..., None]) / (kappa + s.reshape(-1, 1) ** 2)[..., None])
        out = self.toy.mu + (sig_wv @ coef)[..., 0]
        return from_real(out, tuple(u.shape[1:]), u.is_complex()).to(u.dtype)


@dataclass
class GaussianToy:
    """``x ~ N(μ, Σ)`` on images of shape ``image_shape`` (real form ``(n,)``, ``(n, n)``)."""

    mu: Tensor
    cov: Tensor
    image_shape: tuple[int, int, int]
    is_complex: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return torch.complex128 if self.is_complex else torch.float64

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` prior images ``(n, C, H, W)``."""
        chol = torch.linalg.cholesky(self.cov)
        z = torch.randn(n, self.cov.shape[0], dtype=torch.float64, generator=generator)
        return from_real(self.mu + z @ chol.T, self.image_shape, self.is_complex)

    def denoiser(self) -> GaussianDenoiser:
        """The plain prior's exact denoiser ``E[x | x_t]``."""
        return GaussianDenoiser(self)

    def ambient_denoiser(self, make_op: Callable[[Tensor], LinearOperator], mask_channels: int = 1):
        """The exact mask-conditioned ambient denoiser ``E[x | Ã x_t, Ã]``."""
        return AmbientGaussianDenoiser(self, make_op, mask_channels)

    def posterior(self, y: Tensor, op: LinearOperator, floor: float = 0.0) -> tuple[Tensor, Tensor]:
        """Exact ``(E[x | y], Cov[x | y])`` (real form) for one measurement ``y`` (batch 1).

        The noise is ``op.noise_sigma`` (complex data: σ²/2 per real component), floored at ``floor``.
        """
        a = real_matrix(op, self.image_shape, self.is_complex)
        yv = to_real(op.restrict(y)).reshape(-1).to(torch.float64)
        keep = _measured(op, y)
        var = _noise_var(op, y, floor)
        s = a @ self.cov @ a.T + torch.diag(var)
        gain = self.cov @ a.T @ torch.linalg.inv(s)
        mean = self.mu + gain @ (yv[keep] - a @ self.mu)
        cov = self.cov - gain @ a @ self.cov
        return mean, 0.5 * (cov + cov.T)

    def row_space_posterior(self, y: Tensor, op: LinearOperator, floor: float = 0.0) -> tuple[Tensor, Tensor]:
        """The law ``w ~ p(w | y)``, ``x = E[x | w]`` with ``w`` the row-space coordinates of ``A``.

        This is the exact limit of a posterior ODE driven by ``E[x | A x_t, y]`` (an ambient prior
        evaluated with ``A``'s own mask): same mean as :meth:`posterior`, covariance smaller by
        ``Cov[x | A x]`` (the prior's conditional covariance given every row of ``A``, which no
        evaluation through ``Ã ⊆ A`` can reveal).
        """
        mean, cov = self.posterior(y, op, floor)
        return mean, cov - self.conditional_covariance(op)

    def conditional_covariance(self, op: LinearOperator) -> Tensor:
        """``Cov[x | A x]`` (noiseless rows), real form."""
        a = real_matrix(op, self.image_shape, self.is_complex)
        s = a @ self.cov @ a.T
        gain = self.cov @ a.T @ torch.linalg.pinv(s, hermitian=True, rtol=1e-10)
        c = self.cov - gain @ a @ self.cov
        return 0.5 * (c + c.T)


def moment_errors(samples: Tensor, mean: Tensor, cov: Tensor) -> dict[str, float]:
    """Sample moments of ``samples`` ``(K, ...)`` against ``(mean, cov)`` (real form).

    ``mean_rel`` = ‖m̂ − m‖/‖m‖, ``mean_z`` = max |m̂ − m| / sqrt(diag Σ / K) (a z-score: ≲ 4 for
    a correct sampler), ``diag_rel`` = max |diag Σ̂ / diag Σ − 1|, ``diag_ratio`` = mean of
    diag Σ̂ / diag Σ, ``cov_rel`` = ‖Σ̂ − Σ‖_F / ‖Σ‖_F.
    """
    v = to_real(samples).to(torch.float64)
    k = v.shape[0]
    m = v.mean(0)
    c = torch.cov(v.T)
    d, dh = cov.diagonal(), c.diagonal()
    return {
        "mean_rel": float(torch.linalg.vector_norm(m - mean) / torch.linalg.vector_norm(mean).clamp_min(1e-30)),
        "mean_z": float(((m - mean).abs() / (d.clamp_min(1e-30) / k).sqrt()).max()),
        "diag_rel": float((dh / d.clamp_min(1e-30) - 1).abs().max()),
        "diag_ratio": float((dh / d.clamp_min(1e-30)).mean()),
        "cov_rel": float(torch.linalg.matrix_norm(c - cov) / torch.linalg.matrix_norm(cov)),
    }


def toy_problem(kind: str = "pixel", *, is_complex: bool | None = None, coils: int = 2, noise_sigma: float = 0.1,
                shape: tuple[int, int] = (4, 8), seed: int = 0):
    """A ready toy: ``(toy, op, x, y, make_op)`` with ``make_op(mask_channels) -> Ã`` for the ambient denoiser.

    ``kind="pixel"``: a random pixel mask (half the pixels), real images unless ``is_complex``.
    ``kind="mri"``: complex images, ``coils``-coil Cartesian MRI with a line mask (3 of 8 lines,
    the 2 centre lines protected as ACS), so ``A`` has a null space.
    """
    g = torch.Generator().manual_seed(seed)
    h, w = shape
    if kind == "pixel":
        cplx = bool(is_complex)
        cov = smooth_covariance((1, h, w), cplx)
        toy = GaussianToy(0.3 * torch.randn(cov.shape[0], dtype=torch.float64, generator=g), cov, (1, h, w), cplx)
        mask = torch.rand(1, 1, h, w, generator=g) < 0.5
        op: LinearOperator = PixelMask(mask, noise_sigma=noise_sigma)

        def make_op(m: Tensor) -> LinearOperator:
            return PixelMask(m > 0.5)
    elif kind == "mri":
        cov = smooth_covariance((1, h, w), True)
        toy = GaussianToy(0.3 * torch.randn(cov.shape[0], dtype=torch.float64, generator=g), cov, (1, h, w), True)
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64),
                                torch.linspace(-1, 1, w, dtype=torch.float64), indexing="ij")
        maps = []
        for c in range(coils):
            ang = 2 * math.pi * c / max(coils, 1)
            mag = torch.exp(-((yy - math.sin(ang)) ** 2 + (xx - math.cos(ang)) ** 2) / 2.0) if coils > 1 else 1 + 0 * xx
            maps.append(mag * torch.exp(1j * (0.4 * c + 0.3 * xx)))
        s = torch.stack(maps)
        s = (s / torch.sqrt((s.abs() ** 2).sum(0, keepdim=True)))[None].to(torch.complex128)
        lines = torch.zeros(1, w, dtype=torch.bool)
        lines[0, [0, 3, 4]] = True  # 3 of 8 phase-encode lines, the centre pair (3, 4) protected
        acs = torch.zeros(1, w, dtype=torch.bool)
        acs[0, [3, 4]] = True
        op = MultiCoilMRI(s, lines, noise_sigma=noise_sigma, acs=acs)

        def make_op(m: Tensor) -> LinearOperator:
            return MultiCoilMRI(s, m[:, 0] > 0.5)
    else:
        raise ValueError(f"toy_problem: kind must be 'pixel' or 'mri', got {kind!r}")
    x = toy.sample(1, g)
    y = op.measure(x, g)
    return toy, op, x, y, make_op
