"""The PyTorch backend: a model file's module rebuilt, or a module in memory (training)."""

import numpy as np
from stkd_ros.model_file import load_model_file
import torch


class TorchModel:
    """A module in eval mode on ``device``; the argmax runs where the logits are."""

    precision = 'f32'   # the model file's weights, run as they are

    def __init__(self, model, device='cpu'):
        self.model, self.device = model, torch.device(device)

    @classmethod
    def load(cls, path, device='cpu', threads: int = 0):
        """Rebuild the model file at ``path``; returns (backend, metadata)."""
        if threads:
            torch.set_num_threads(threads)
        model, meta = load_model_file(path, device)
        return cls(model, device), meta

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).to(self.device)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(x)['logits']

    def logits(self, out: torch.Tensor) -> np.ndarray:
        return out.float().cpu().numpy()

    def argmax(self, out: torch.Tensor) -> np.ndarray:
        # On a GPU only the uint8 ids travel back.
        return out.argmax(1).to(torch.uint8).cpu().numpy()

    def probabilities(self, out: torch.Tensor) -> np.ndarray:
        return out.float().softmax(1).cpu().numpy()
