"""Risk-averse training: the soft-risk schedule, tail selection of RA-RLHF, and the selector
plug point."""

from .schedule import soft_risk_batch_size
from .selection import Selector, SoftRiskSelector, build_selector, select_tail, soft_risk

__all__ = ["Selector", "SoftRiskSelector", "build_selector", "select_tail", "soft_risk",
           "soft_risk_batch_size"]
