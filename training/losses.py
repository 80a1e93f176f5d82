"""DiceBCE: BCE for per-pixel calibration plus soft Dice for the overlap the metrics reward.

DistillLoss adds a teacher term: BCE between the student's probabilities and a teacher's soft matte."""

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


class DistillLoss(nn.Module):
    """DiceBCE against the ground truth + `weight` x BCE against the teacher's soft matte (probabilities in [0, 1]).

    The soft targets carry what a 0/1 mask cannot: how sure the teacher is at edges and on ambiguous regions."""

    def __init__(self, weight: float = 1.0):
        super().__init__()
        self.weight = weight
        self.truth = DiceBCELoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
        loss = self.truth(logits, target)
        if self.weight:
            loss = loss + self.weight * F.binary_cross_entropy_with_logits(logits.float(), soft.float())
        return loss
