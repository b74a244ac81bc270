"""Distillation losses, one family per module; pure functions with documented shapes."""
