"""One model's update: its optimizer, learning-rate schedule and gradient scaler, together."""

import torch
import torch.distributed as dist


def average_over_ranks(params):
    """Average the gradients of ``params`` over the processes of a distributed run (no DDP)."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= dist.get_world_size()


class Update:
    """
    An optimizer stepped on a learning-rate factor, under autocast with a gradient scaler.

    ``lr_factor``: step -> the factor of the optimizer's rate (a ``LambdaLR``); ``amp``: the
    steps' forward passes run under autocast on ``device_type`` and the loss is scaled. The
    state a resume needs is all three: optimizer, schedule and scaler.
    """

    def __init__(self, optimizer, lr_factor, *, amp: bool, device_type: str):
        self.optimizer, self.amp, self.device_type = optimizer, amp, device_type
        self.schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        self.scaler = torch.amp.GradScaler(device_type, enabled=amp)

    def autocast(self):
        """Return the context a forward pass of this update runs in."""
        return torch.autocast(self.device_type, enabled=self.amp)

    def lr(self) -> float:
        """Return the rate of the next step."""
        return self.schedule.get_last_lr()[0]

    def step(self, loss, average=None):
        """Back-propagate ``loss``, average the gradients of ``average`` over ranks, step."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if average is not None:
            average_over_ranks(average)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()

    def state_dict(self) -> dict:
        return {'optimizer': self.optimizer.state_dict(),
                'schedule': self.schedule.state_dict(), 'scaler': self.scaler.state_dict()}

    def load_state_dict(self, state: dict):
        self.optimizer.load_state_dict(state['optimizer'])
        self.schedule.load_state_dict(state['schedule'])
        self.scaler.load_state_dict(state['scaler'])
