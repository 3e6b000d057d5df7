"""Flax models: landmark encoders (BiLSTM, Transformer), the visual stream, fusion and heads."""

from asl_jax.models.hybrid import HybridModel, count_params, create_model, named_leaves

__all__ = ["HybridModel", "count_params", "create_model", "named_leaves"]
