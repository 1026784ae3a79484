"""Risk-averse training: the soft-risk schedule and tail selection of RA-RLHF."""

from .schedule import soft_risk_batch_size
from .selection import SoftRiskSelector, select_tail

__all__ = ["SoftRiskSelector", "select_tail", "soft_risk_batch_size"]
