"""Temperature α of eqs. (6), (10): fixed, or set by the KL constraint of eq. (8).

See :mod:`iwx.ops.temperature` for what ε bounds and for the dual itself
(the same function as MPO's E-step dual).
"""

from __future__ import annotations

import math

import gin
import torch

from iwx.agents.base.adam import Adam
from iwx.ops.temperature import temperature_dual


@gin.configurable
class FixedTemperature:
    def __init__(self, alpha: float = 0.1):
        if alpha <= 0:
            raise ValueError(f"FixedTemperature.alpha must be > 0, got {alpha}")
        self._alpha = float(alpha)

    @property
    def alpha(self) -> float:
        return self._alpha

    def check(self, num_samples: int) -> None:
        del num_samples

    def update(self, q_values: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        del q_values, mask
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        del state


@gin.configurable
class ConstrainedTemperature:
    """α learned by gradient descent on the dual g(α) (REPS / MPO style), in log space.

    ``epsilon``: bound on the mean per-state KL(q̂ ‖ uniform over K samples), nats.
    """

    def __init__(self, epsilon: float = 0.5, initial_alpha: float = 1.0,
                 learning_rate: float = 1e-2, device: str | torch.device = "cpu"):
        if epsilon <= 0:
            raise ValueError(f"ConstrainedTemperature.epsilon must be > 0, got {epsilon}")
        self.epsilon = float(epsilon)
        self.log_alpha = torch.tensor(math.log(initial_alpha), device=device, requires_grad=True)
        self.optimizer = Adam([self.log_alpha], lr=learning_rate)

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def check(self, num_samples: int) -> None:
        if self.epsilon >= math.log(num_samples):
            raise ValueError(
                f"ConstrainedTemperature.epsilon = {self.epsilon} can never bind: the KL of "
                f"q̂ from K = {num_samples} prior samples is at most log K = "
                f"{math.log(num_samples):.3f} nats. Choose epsilon < log K (it bounds the "
                f"mean per-state KL, not a sum over tasks).")

    def update(self, q_values: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        """One gradient step on the dual for Q values [..., K] (constants) of the states
        where ``mask`` [...] is 1 (all of them when None)."""
        loss = temperature_dual(q_values.reshape(-1, q_values.shape[-1]), self.log_alpha.exp(),
                                self.epsilon, None if mask is None else mask.reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"temperature_dual": float(loss.detach())}

    def state_dict(self) -> dict:
        return {"log_alpha": self.log_alpha.detach().clone(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.optimizer.load_state_dict(state["optimizer"])
