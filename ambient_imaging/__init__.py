"""ambient-imaging: diffusion priors learned from corrupted measurements, and
posterior sampling with them, for scientific imaging inverse problems."""

__version__ = "0.1.0"
