"""Training loop: DiceBCE, AdamW with warm-up + cosine schedule, optional weight EMA, AMP on CUDA,
DistributedDataParallel when launched with torchrun, exact --resume, per-epoch val IoU on one or more folders,
optional distillation from a teacher model's cached soft mattes.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.distributed as dist
from segedge.training.backbones import load_pretrained
from segedge.training.checkpoint import load_model, read_checkpoint, save_checkpoint
from segedge.training.data import SegmentationDataset, find_pairs, find_split, read_pair
from segedge.training.distill import cache_teacher_mattes, cache_teacher_mattes_isolated
from segedge.training.losses import DiceBCELoss, DistillLoss
from segedge.training.model import build_model
from segedge.training.thin import recalibrate_batchnorm, thin
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

import segedge
from segedge.errors import SegedgeError
from segedge.metrics import MetricAverager
from segedge.preprocess import to_model_input
from segedge.scoring import person_mask
from segedge.spec import ModelSpec

log = logging.getLogger("segedge.train")
DEFAULT_SIZE = 256  # input size of a model trained from scratch when --size is not given


@dataclass
class TrainConfig:
    data: Path
    out: Path
    backbone: str = "mobilenet_v2"
    size: int | None = None  # None: the --init/--resume model's input size, else DEFAULT_SIZE
    crop: int | None = None
    epochs: int = 30
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    head_channels: int = 256
    separable: bool = False
    head: str = "deeplabv3plus"
    aspp_rates: tuple[int, ...] = (6, 12, 18)
    decoder_convs: int = 2
    low_level_channels: int = 48
    teacher: Path | None = None  # distil from this model's soft mattes (any model segedge runs)
    distill_weight: float = 1.0
    teacher_cache: Path = Path("runs/teacher-mattes")
    ema: float = 0.0
    pretrained: Path | None = None
    resume: Path | None = None
    init: Path | None = None
    thin: tuple[int, ...] = ()  # cut the --init model's depthwise widths to these (training/thin.py)
    repeat: dict[str, int] = field(default_factory=dict)
    val: list[Path] = field(default_factory=list)
    workers: int = 2
    seed: int = 0
    threads: int | None = None
    quiet: bool = False


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); initialises the process group when launched by torchrun."""
    if "RANK" not in os.environ:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    cv2.setNumThreads(1)  # workers share the few cores with the training step
    np.random.seed((torch.initial_seed() + worker_id) % 2**32)


def _lr_lambda(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


def val_folders(cfg: TrainConfig) -> list[Path]:
    """DATA/val (or test) when present, then the extra --val folders."""
    default = find_split(cfg.data, "val")
    folders = ([default] if default else []) + [Path(p) for p in cfg.val]
    return list(dict.fromkeys(p.resolve() for p in folders))


@torch.no_grad()
def evaluate_folder(model: torch.nn.Module, spec: ModelSpec, pairs, device: torch.device) -> dict[str, float]:
    """Mean per-image metrics, prediction upsampled bilinearly to the original mask size (segedge.scoring, as
    `segedge eval --no-refine` scores)."""
    model.eval()
    scores = MetricAverager()
    for image_path, mask_path in pairs:
        image, mask = read_pair(image_path, mask_path)
        output = model(torch.from_numpy(to_model_input(image, spec)).to(device)).float()[0, 0].cpu().numpy()
        scores.add(person_mask(output, spec, image, guided=False), mask)
    return scores.result()


def _plot_curves(history: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib not installed; no curve plot written")
        return
    epochs = [row["epoch"] for row in history]
    fig, (ax_loss, ax_iou) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [row["train_loss"] for row in history], marker="o")
    ax_loss.set(title="train loss", xlabel="epoch")
    for key in history[-1]:
        if key.endswith("/iou"):
            ax_iou.plot(epochs, [row.get(key, float("nan")) for row in history], marker="o", label=key)
    ax_iou.set(title="val foreground IoU", xlabel="epoch")
    if ax_iou.lines:
        ax_iou.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def oversample(pairs: list, repeat: dict[str, int]) -> list:
    """Each pair whose image name starts with a `repeat` prefix, that many times (rare sources seen more often)."""
    unknown = [prefix for prefix in repeat if not any(image.name.startswith(prefix) for image, _ in pairs)]
    if unknown:
        raise SegedgeError(f"--repeat {', '.join(unknown)}: no training image name starts with it")
    out = []
    for pair in pairs:
        times = next((n for prefix, n in repeat.items() if pair[0].name.startswith(prefix)), 1)
        out.extend([pair] * times)
    return out


def _make_spec(cfg: TrainConfig, train_folder: Path, init_spec: ModelSpec | None = None) -> ModelSpec:
    if init_spec is not None:  # fine-tuning keeps the architecture of the checkpoint it starts from
        spec = ModelSpec.from_dict(init_spec.to_dict())
        spec.input_size, spec.metrics = (cfg.size, cfg.size), {}
    else:
        spec = ModelSpec(backbone=cfg.backbone, head_channels=cfg.head_channels, separable=cfg.separable,
                         head=cfg.head, aspp_rates=tuple(cfg.aspp_rates), decoder_convs=cfg.decoder_convs,
                         low_level_channels=cfg.low_level_channels, input_size=(cfg.size, cfg.size))
        spec.validate()
    spec.training = {"data": str(train_folder), "epochs": cfg.epochs, "crop": cfg.crop or cfg.size,
                     "batch_size": cfg.batch_size, "lr": cfg.lr, "ema": cfg.ema,
                     "pretrained": str(cfg.pretrained) if cfg.pretrained else None,
                     "init": str(cfg.init) if cfg.init else None, "repeat": cfg.repeat}
    if cfg.teacher:
        spec.training.update(teacher=str(cfg.teacher), distill_weight=cfg.distill_weight)
    spec.versions = {"segedge": segedge.__version__, "torch": str(torch.__version__)}
    return spec


def train(cfg: TrainConfig) -> Path:
    """Train, writing RUN_DIR/{last,best}.pth, metrics.jsonl and curves.png; returns the best checkpoint path."""
    rank, world, local_rank = _distributed()
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    _seed_everything(cfg.seed + rank)
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    use_amp = device.type == "cuda"

    if cfg.init and cfg.pretrained:
        raise SegedgeError("--init already holds trained weights; drop --pretrained")
    train_folder = find_split(cfg.data, "train")
    if train_folder is None:
        raise SegedgeError(f"{cfg.data} has no train/ folder (expected {cfg.data}/train/images and /masks)")
    train_pairs = oversample(find_pairs(train_folder), cfg.repeat)
    val_sets = {folder.name: find_pairs(folder) for folder in val_folders(cfg)}

    resume_state = read_checkpoint(cfg.resume) if cfg.resume else None
    init_model, init_spec, _ = load_model(cfg.init) if cfg.init and not resume_state else (None, None, None)
    if cfg.thin and init_model is not None:
        init_model, init_spec = thin(init_model, init_spec, cfg.thin)
        log.info("thinned %s to depthwise widths %s", cfg.init, ",".join(map(str, init_spec.depthwise_widths)))
    elif cfg.thin and not resume_state:
        raise SegedgeError("--thin cuts a trained model: give it with --init")
    if cfg.size is None:  # resuming or fine-tuning keeps the input size the model was trained at
        known = ModelSpec.from_dict(resume_state["spec"]) if resume_state else init_spec
        cfg = replace(cfg, size=known.input_size[0] if known else DEFAULT_SIZE)
    if not ModelSpec.fits_size(cfg.size) or (cfg.crop and not ModelSpec.fits_size(cfg.crop)):
        raise SegedgeError(f"--size {cfg.size} and --crop must be multiples of {ModelSpec.SIZE_MULTIPLE}")
    spec = ModelSpec.from_dict(resume_state["spec"]) if resume_state else _make_spec(cfg, train_folder, init_spec)
    if resume_state and spec.training.get("epochs") != cfg.epochs:  # the cosine is recomputed for the new length
        log.info("schedule changed at resume: %s -> %d epochs", spec.training.get("epochs"), cfg.epochs)
        spec.training["epochs"] = cfg.epochs
    model = build_model(spec) if init_model is None else init_model
    if init_model is not None:
        log.info("fine-tuning from the weights of %s", cfg.init)
    elif cfg.pretrained and not resume_state:
        report = load_pretrained(model.backbone, cfg.pretrained)
        log.info("pretrained %s: %d tensors loaded, %d missing, %d unexpected", cfg.pretrained,
                 len(report["loaded"]), len(report["missing"]), len(report["unexpected"]))
        for key in report["missing"] + report["unexpected"]:
            log.info("  not loaded: %s", key)
    model.to(device)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True) if cfg.ema else None
    train_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if use_amp else None) \
        if world > 1 else model

    mattes = None
    if cfg.teacher:
        if rank == 0:  # computed once, then read by every rank's data loader
            mattes = cache_teacher_mattes_isolated(cfg.teacher, train_pairs, cfg.teacher_cache,
                                                   threads=cfg.threads, quiet=cfg.quiet)
        if world > 1:
            dist.barrier()
        mattes = cache_teacher_mattes(cfg.teacher, train_pairs, cfg.teacher_cache, quiet=True)
        log.info("distilling from %s (weight %g), mattes in %s", cfg.teacher, cfg.distill_weight, mattes)
    dataset = SegmentationDataset(train_pairs, cfg.size, spec.mean, spec.std, crop=cfg.crop, train=True,
                                  mattes=mattes)
    sampler = DistributedSampler(dataset, seed=cfg.seed) if world > 1 else None
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=cfg.workers, worker_init_fn=_worker_init, drop_last=True,
                        pin_memory=use_amp, persistent_workers=cfg.workers > 0)
    if len(loader) == 0:
        raise SegedgeError(f"{len(dataset)} training pairs are fewer than one batch of {cfg.batch_size}")
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(steps, max(1, int(cfg.warmup_epochs * len(loader)))))
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    criterion = DistillLoss(cfg.distill_weight) if mattes is not None else DiceBCELoss()

    start_epoch, best, history = 0, -1.0, []
    if resume_state:
        model.load_state_dict(resume_state["model"])
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if ema is not None and resume_state.get("ema_state"):
            ema.load_state_dict(resume_state["ema_state"])
        start_epoch, best, history = resume_state["epoch"], resume_state["best_metric"], resume_state["history"]
        torch.set_rng_state(resume_state["rng"]["torch"])
        log.info("resumed %s at epoch %d (best val IoU %.4f)", cfg.resume, start_epoch, best)
    elif cfg.thin:  # before the first step, so the EMA copy starts from the recalibrated statistics too
        seen = recalibrate_batchnorm(model, (batch[0].to(device) for batch in itertools.islice(loader, 16)))
        log.info("batch-norm statistics re-estimated on %d training images", seen)

    cfg.out.mkdir(parents=True, exist_ok=True)
    for epoch in range(start_epoch, cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        train_model.train()
        started, total_loss = time.perf_counter(), 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=cfg.quiet or rank != 0, unit="batch")
        for step, batch in enumerate(bar):
            images, *targets = (t.to(device, non_blocking=True) for t in batch)  # mask [, teacher matte]
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss = criterion(train_model(images), *targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            total_loss += loss.item()
            bar.set_postfix(loss=f"{total_loss / (step + 1):.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")

        if rank == 0:
            row = {"epoch": epoch + 1, "train_loss": total_loss / len(loader),
                   "epoch_seconds": round(time.perf_counter() - started, 1)}
            eval_model = ema.module if ema is not None else model
            for name, pairs in val_sets.items():
                for key, value in evaluate_folder(eval_model, spec, pairs, device).items():
                    row[f"{name}/{key}"] = round(float(value), 5)  # plain floats: weights-only loadable
            ious = [row[f"{name}/iou"] for name in val_sets]
            row["val_iou"] = round(sum(ious) / len(ious), 5) if ious else None
            history.append(row)
            with open(cfg.out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(row) + "\n")
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v}" for k, v in row.items() if k != "epoch"))
            # No val data: the latest epoch is the best we know.
            improved = row["val_iou"] is None or row["val_iou"] > best
            if improved:
                best = row["val_iou"] if row["val_iou"] is not None else best
                spec.metrics = {k: v for k, v in row.items() if "/" in k or k == "val_iou"}
            state = {
                "model": model.state_dict(), "ema": ema.module.state_dict() if ema is not None else None,
                "ema_state": ema.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch + 1, "best_metric": best, "history": history, "spec": spec.to_dict(),
                "rng": {"torch": torch.get_rng_state()},
            }
            save_checkpoint(cfg.out / "last.pth", state)
            if improved:
                save_checkpoint(cfg.out / "best.pth", state)
        if world > 1:
            dist.barrier()

    if rank == 0 and history:
        _plot_curves(history, cfg.out / "curves.png")
    if world > 1:
        dist.destroy_process_group()
    return cfg.out / "best.pth"


__all__ = ["TrainConfig", "train", "evaluate_folder", "load_model", "oversample"]
