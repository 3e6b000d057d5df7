"""asl_jax: word-level American Sign Language recognition on WLASL features with JAX/Flax."""

__version__ = "0.1.0"
