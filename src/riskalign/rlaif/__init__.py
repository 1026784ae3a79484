"""RLAIF: constitutional SFT, AI-judged preferences per aspect, and PPO on their reward models."""
