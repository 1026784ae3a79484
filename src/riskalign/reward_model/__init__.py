"""Reward models: preference data, Bradley-Terry training, ensembles, synthetic preferences."""

from .loss import bradley_terry_loss, pairwise_accuracy

__all__ = ["bradley_terry_loss", "pairwise_accuracy"]
