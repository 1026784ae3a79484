"""KL coefficient controllers (Ziegler et al. 2019, section 2.2)."""

from __future__ import annotations


class FixedKLController:
    """Constant beta."""

    def __init__(self, kl_coef: float):
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """e = clip((KL - target) / target, -0.2, 0.2);  beta <- beta * (1 + e * n_steps / horizon)."""

    def __init__(self, init_kl_coef: float, target: float, horizon: float):
        super().__init__(init_kl_coef)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max((current_kl - self.target) / self.target, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
