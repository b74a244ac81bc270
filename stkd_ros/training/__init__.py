"""Training: data pipelines, tasks (loss dicts), the loop, checkpoints and evaluation."""
