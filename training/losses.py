"""DiceBCE: BCE for per-pixel calibration plus soft Dice for the overlap the metrics reward."""

import torch
import torch.nn.functional as F
from torch import nn


class DiceBCELoss(nn.Module):
    def __init__(self, bce_weight: float = 1.0, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.bce_weight, self.dice_weight, self.smooth = bce_weight, dice_weight, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), target.float()
        bce = F.binary_cross_entropy_with_logits(logits, target)
        probs = torch.sigmoid(logits).flatten(1)
        target = target.flatten(1)
        intersection = (probs * target).sum(1)
        dice = 1 - (2 * intersection + self.smooth) / (probs.sum(1) + target.sum(1) + self.smooth)
        return self.bce_weight * bce + self.dice_weight * dice.mean()
