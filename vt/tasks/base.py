"""What both tasks share: model from the registry, recipe, optimizer and schedule, EMA, logging, faults.

A task owns the training concerns (loss, metrics, optimizer, schedule, weight averaging) and knows
its model only as ``images -> logits`` built by name through :func:`vt.models.create_model`.
Subclasses state their loss target (``target_key``), metrics and the recipes they accept.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, is_dataclass
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.rank_zero import rank_zero_info
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MetricCollection

from vt.checkpoint import restore_rng, upgrade_checkpoint, write_checkpoint
from vt.models import create_model, list_models, model_task
from vt.models.registry import builder_signature
from vt.tasks.callbacks import preemption_signalled, stop_if_preempted
from vt.tasks.ema import EMA
from vt.tasks.optim import from_torch_rmsprop
from vt.tasks.recipes import Recipe, build_optimizer, parameter_groups, resolve_recipe

Batch = dict[str, Tensor]


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or an infinity; the run stops without writing it into a checkpoint."""


class NonFiniteLossError(NonFiniteError):
    """The training loss became NaN or infinite; raised before the optimizer step can spread it."""


class NonFiniteStateError(NonFiniteError):
    """A weight, buffer (BatchNorm statistics) or optimizer state became NaN or infinite, the loss finite."""


_FIX = (
    "Lower the learning rate (--model.lr), train in full precision (--trainer.precision 32) or check the data"
)


def _named_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
    """Every tensor in nested dicts, lists and tuples (a checkpoint, an optimizer state), by its path."""
    if isinstance(obj, Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _named_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _named_tensors(value, f"{prefix}.{i}" if prefix else str(i))


def first_non_finite(obj: Any) -> str | None:
    """The path of the first floating-point tensor in ``obj`` holding a NaN or inf, or ``None``.

    A sum per tensor screens them, with one host sync per device: a NaN or an inf anywhere makes
    the sum NaN or inf, whatever the order of the additions. Only a tensor whose sum is not finite
    is then checked element by element, since large finite values can also overflow a sum. The
    sums read each tensor once: the whole check of VT-ResNet-18's weights, buffers and AdamW
    moments (29 M numbers) takes 7 ms on 2 CPU cores, where a max-abs norm per tensor
    (``_foreach_norm(inf)``) took 44 ms, 4 % of a 224 px training step, every step.
    """
    by_device: dict[torch.device, list[tuple[str, Tensor]]] = defaultdict(list)
    for name, tensor in _named_tensors(obj):
        if tensor.is_floating_point() and tensor.numel():
            by_device[tensor.device].append((name, tensor.detach()))
    for named in by_device.values():
        sums = torch.stack([t.sum(dtype=torch.float32) for _, t in named])
        for index in (~torch.isfinite(sums)).nonzero().flatten().tolist():
            name, tensor = named[index]
            if not bool(torch.isfinite(tensor).all()):
                return name
    return None


def _check_rates(**given: float | None) -> None:
    """A one-line ``ValueError`` naming the flag of an out-of-range rate given explicitly (``None``: the recipe's).

    ``lr`` must be positive, ``weight_decay`` at least 0, the others in [0, 1): caught here, not as
    torch's "Invalid learning rate: -0.125" (the batch-scaled value) at the first optimizer step.
    """
    for name, value in given.items():
        if value is None:
            continue
        if name == "lr":
            bad, need = not value > 0, "a positive number"
        elif name == "weight_decay":
            bad, need = not value >= 0, "at least 0"
        else:
            bad, need = not 0 <= value < 1, "in [0, 1)"
        if bad:
            raise ValueError(f"--model.{name} must be {need}, got {value}")


def channels_last_inputs(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """A forward pre-hook: every 4-D tensor argument ``(B, C, H, W)`` in channels-last memory format.

    On a channels-last task's model it converts the batches on the device, whichever step feeds
    them (training, validation, test, predict). A hook rather than ``on_after_batch_transfer``:
    Lightning runs only one of the task's and the datamodule's, and warns about it on every fit.
    """
    return tuple(
        a.contiguous(memory_format=torch.channels_last) if isinstance(a, Tensor) and a.dim() == 4 else a for a in args
    )


def apply_configured_settings(trainer: L.Trainer, configured: list[list[dict[str, Any]]]) -> None:
    """Puts this run's optimizer settings (``configured``: each optimizer's groups, less ``params``)
    over those a resumed checkpoint restored, and sets each group's rate to what the schedule gives
    at the step it resumes from.

    Lightning restores the optimizer's groups (learning rate, weight decay, momentum) and the
    schedule's base learning rates from the checkpoint, so a ``--model.lr`` given on resume (the
    fix a non-finite loss suggests) would be silently ignored while ``config.yaml`` records it. The
    checkpoint keeps what training accumulated (weights, optimizer moments, the schedule's position);
    the settings follow the command line. What changed is logged.
    """
    changed: dict[str, tuple[Any, Any]] = {}
    for optimizer, settings in zip(trainer.optimizers, configured):
        for group, own in zip(optimizer.param_groups, settings):
            for key in own.keys() - {"lr", "initial_lr"}:
                if group.get(key) != own[key]:
                    changed.setdefault(key, (group.get(key), own[key]))
            group.update({k: v for k, v in own.items() if k != "lr"})  # lr: the schedule's, set below
    for config in trainer.lr_scheduler_configs:
        schedule = config.scheduler
        if not hasattr(schedule, "base_lrs"):
            continue
        groups = schedule.optimizer.param_groups
        base = [group["initial_lr"] for group in groups]  # this run's peak rates, set when it was built
        if base != schedule.base_lrs:
            changed.setdefault("peak lr", (schedule.base_lrs[0], base[0]))
        if isinstance(schedule, LambdaLR):  # ours: the rate the schedule gives at its position
            lrs = [b * factor(schedule.last_epoch) for b, factor in zip(base, schedule.lr_lambdas)]
        else:
            lrs = [g["lr"] * new / old if old else new for g, old, new in zip(groups, schedule.base_lrs, base)]
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        schedule.base_lrs = base
        schedule._last_lr = [group["lr"] for group in groups]  # what get_last_lr() and the logs read
    if changed:
        rank_zero_info("resumed with this run's settings (the checkpoint's replaced): " + ", ".join(
            f"{key} {old} -> {new}" for key, (old, new) in sorted(changed.items())))


class VTTask(L.LightningModule):
    """The shared base of :class:`~vt.tasks.ClassificationTask` and :class:`~vt.tasks.SegmentationTask`.

    Args:
        name: a registered model of this task (``vt.models.list_models(task)``).
        num_classes: output classes (linked from the datamodule by the CLI).
        batch_size: per-device batch (linked from the datamodule); with the device count it gives
            the global batch that scales the recipe's learning rate.
        recipe: a name from ``recipes`` (method §6); the arguments below override its fields.
        lr: peak learning rate at the recipe's reference batch (it is scaled to the global batch).
        weight_decay: L2 penalty, never on norms and biases unless the recipe says so.
        label_smoothing: cross-entropy label smoothing.
        ema_decay: exponential moving average of the weights (0 disables it). When on, validation
            and the saved model for inference use the averaged weights.
        drop_path: stochastic depth of the VT modules (models without VT modules ignore the
            recipe's value and reject an explicit one).
        dropout: dropout before the classifier (same rule).
        options: further builder arguments, e.g. ``{"frozen_bn": True}`` (see the model's builder):
            the escape hatch for what the typed settings do not cover (it overrides them).
        channels_last: the model's weights and the batches' images in channels-last memory
            format (the same numbers, another memory order), faster for the ResNet and VT-ResNet
            convolutions on CPUs and GPUs (``benchmarks/train_loop.py`` measures it).
        compile: ``torch.compile`` the trained model in place (``nn.Module.compile``), with static
            shapes so that each input shape compiles once; checkpoints keep the eager model's keys
            (the EMA's copy stays eager). Mixed precision is a Trainer flag:
            ``--trainer.precision bf16-mixed``.
        settings: builder arguments from the subclass's typed settings (``--model.vt``,
            ``--model.neck``): only what differs from their defaults.
    """

    task: ClassVar[str]
    recipes: ClassVar[dict[str, Recipe]]
    target_key: ClassVar[str]  # the batch entry the loss and metrics compare against
    class_names_key: ClassVar[str]  # the datamodule attribute that names the model's outputs
    monitor: ClassVar[str]  # the validation metric that picks the best checkpoint (higher is better)
    ignore_index: int = -100  # targets that count for nothing (cross-entropy's default: none)
    trunk_lr_mult: float = 1.0  # the ResNet trunk's learning rate over the recipe's (ClassificationTask)

    def __init__(
        self,
        name: str,
        num_classes: int,
        batch_size: int,
        recipe: str,
        lr: float | None = None,
        weight_decay: float | None = None,
        label_smoothing: float | None = None,
        ema_decay: float | None = None,
        drop_path: float | None = None,
        dropout: float | None = None,
        options: dict[str, Any] | None = None,
        channels_last: bool = True,
        compile: bool = False,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["settings"])
        # Typed settings arrive as dataclasses; checkpoints (read with weights_only) keep plain dicts.
        self.hparams.update({k: asdict(v) for k, v in self.hparams.items() if is_dataclass(v)})
        if name not in list_models():
            # The registry's own error lists every model; only this task's are an answer here.
            raise ValueError(f"unknown model {name!r}; {self.task} models: {', '.join(list_models(self.task))}")
        if model_task(name) != self.task:
            raise ValueError(
                f"{name!r} is a {model_task(name)} model; {self.task} models: {', '.join(list_models(self.task))}"
            )
        _check_rates(lr=lr, weight_decay=weight_decay, label_smoothing=label_smoothing, ema_decay=ema_decay,
                     drop_path=drop_path, dropout=dropout)
        self.recipe = resolve_recipe(
            self.recipes, recipe, lr=lr, weight_decay=weight_decay, label_smoothing=label_smoothing,
            ema_decay=ema_decay, drop_path=drop_path, dropout=dropout,
        )
        regularisation = self._regularisation(name, drop_path=drop_path, dropout=dropout)
        # Saved in checkpoints, so that `vt.load_model` rebuilds exactly this model.
        self.model_args = {"num_classes": num_classes, **regularisation, **(settings or {}), **(options or {})}
        self.model = create_model(name, **self.model_args)
        if channels_last:  # before the EMA copies the model, so the average is channels-last too
            self.model.to(memory_format=torch.channels_last)
            self.model.register_forward_pre_hook(channels_last_inputs)
        self.ema = EMA(self.model, self.recipe.ema_decay) if self.recipe.ema_decay > 0 else None
        if compile:
            # After the EMA's deep copy, which would call the original's compiled forward. In place,
            # so parameter names (checkpoints, optimizer groups, DDP) are the eager model's.
            self.model.compile(dynamic=False)
        self.train_metrics = self.make_metrics(num_classes).clone(prefix="train/")
        self.val_metrics = self.make_metrics(num_classes).clone(prefix="val/")
        self._last_batch_end: float | None = None
        self._bad_state: str | None = None  # the first non-finite tensor after the last update

    def _regularisation(self, name: str, **explicit: float | None) -> dict[str, float]:
        """The recipe's ``drop_path`` and ``dropout`` for the builder arguments it takes.

        A recipe applies where it can (a ResNet has no VT modules to drop); an explicit value goes
        to the builder, whose option check (`vt.models.create_model`) refuses one it does not take.
        """
        takes = builder_signature(name).parameters
        values = {"drop_path": self.recipe.drop_path, "dropout": self.recipe.dropout}
        return {key: value for key, value in values.items() if value > 0 and (key in takes or explicit[key])}

    def make_metrics(self, num_classes: int) -> MetricCollection:
        """The task's metrics, computed over a whole epoch (synchronised across devices)."""
        raise NotImplementedError

    @property
    def eval_model(self) -> nn.Module:
        """The model that is validated and exported: the weight average when there is one."""
        return self.model if self.ema is None else self.ema.module

    def forward(self, images: Tensor) -> Tensor:
        """``images: (B, 3, H, W)`` -> the evaluated model's logits."""
        return self.eval_model(images)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy with the recipe's label smoothing, ignoring ``ignore_index`` targets."""
        return F.cross_entropy(
            logits, target, ignore_index=self.ignore_index, label_smoothing=self.recipe.label_smoothing
        )

    def training_loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """The loss to minimise; subclasses add terms (distillation) here."""
        return self.loss(logits, batch[self.target_key])

    def training_forward(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """The trained model's logits and an extra term to add to the loss (``None``: none)."""
        return self.model(images), None

    def training_step(self, batch: Batch, batch_idx: int) -> Tensor:
        logits, extra = self.training_forward(batch["image"])
        loss = self.training_loss(logits, batch)
        if extra is not None:
            loss = loss + extra
        self._check_finite(loss)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/lr", self.optimizers().param_groups[0]["lr"])
        self.train_metrics.update(self.predictions(logits.detach()), batch[self.target_key])
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self.eval_model(batch["image"])
        target = batch[self.target_key]
        self.log("val/loss", F.cross_entropy(logits, target, ignore_index=self.ignore_index), sync_dist=True)
        self.val_metrics.update(self.predictions(logits), target)
        self.log_dict(self.val_metrics, prog_bar=True)

    def predictions(self, logits: Tensor) -> Tensor:
        """What the metrics compare with the target (the logits themselves, unless overridden)."""
        return logits

    def _check_finite(self, loss: Tensor) -> None:
        """Stop every process, before the optimizer step, if any process's loss or state is not finite.

        The state (weights, buffers, optimizer moments) was checked locally after the previous
        update (`optimizer_step`). Both, and whether this process was pre-empted (SIGTERM, recorded
        by `PreemptionCheckpoint`), go into the one collective all processes share per step: every
        process then takes the same decisions at the same step, and no signal handler needs a
        collective of its own (each extra one is a place a pre-empted run can hang in).
        """
        bad_state = self._bad_state
        loss_finite = bool(torch.isfinite(loss.detach()))
        finite = loss_finite and bad_state is None
        votes = torch.tensor([int(not finite), int(preemption_signalled(self.trainer))], device=loss.device)
        not_finite, signalled = self.trainer.strategy.reduce(votes, reduce_op="sum").tolist()  # over processes
        stop_if_preempted(self.trainer, signalled)
        if not not_finite:
            return
        if bad_state is not None or loss_finite:
            where = f"this process's {bad_state}" if bad_state else "another process's loss or state"
            raise NonFiniteStateError(
                f"non-finite weights or optimizer state after the update before epoch {self.current_epoch}, "
                f"step {self.global_step} ({where}); stopped before any checkpoint saves it. {_FIX}"
            )
        raise NonFiniteLossError(
            f"non-finite training loss at epoch {self.current_epoch}, step {self.global_step} "
            f"(this process's loss: {loss.item()}); stopped before the optimizer step, so weights and "
            f"checkpoints stay finite. {_FIX}"
        )

    def _training_state(self) -> dict[str, Any]:
        """What a checkpoint saves of the training: the modules' tensors and the optimizers' per-parameter states."""
        return {
            "state_dict": self.state_dict(),
            "optimizer_states": [list(o.state.values()) for o in self.trainer.optimizers],
        }

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        """The step, the weight average, then a local check that the state is still finite.

        A finite loss can still overflow a BatchNorm running variance or an optimizer moment. What
        this check finds stops every process at the next step's shared decision (`_check_finite`),
        and `on_save_checkpoint` refuses to write such a state in between.
        """
        super().optimizer_step(*args, **kwargs)
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self._bad_state = first_non_finite(self._training_state())

    def on_fit_start(self) -> None:
        """Logs the hyper-parameters with the recipe they resolve to (what the run really uses).

        Also keeps the optimizers' settings as this run configured them: a resume then restores the
        checkpoint's over them, and `on_train_start` puts these back.
        """
        recipe = {f"recipe/{k}": v for k, v in asdict(self.recipe).items()}
        for logger in self.loggers:
            logger.log_hyperparams({**self.hparams, **recipe})
        self._configured = [
            [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
            for optimizer in self.trainer.optimizers
        ]

    def on_train_start(self) -> None:
        """On resume, this run's optimizer settings replace the checkpoint's (see `apply_configured_settings`)."""
        if self.trainer.ckpt_path is not None:
            apply_configured_settings(self.trainer, self._configured)

    def on_train_epoch_start(self) -> None:
        self._last_batch_end = None  # the gap across validation is not training throughput

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        """Logs images/s over all devices, data loading included (the interval between batches)."""
        now = time.perf_counter()
        if self._last_batch_end is not None:
            images = len(batch["image"]) * self.trainer.world_size
            self.log("train/images_per_sec", images / (now - self._last_batch_end), prog_bar=True)
        self._last_batch_end = now

    def configure_optimizers(self) -> dict[str, Any]:
        """The recipe's optimizer at the scaled learning rate, and its schedule stepped per batch."""
        total_steps = self.trainer.estimated_stepping_batches
        if total_steps == float("inf"):
            raise ValueError(
                "the learning-rate schedule is stretched over the run's length; set --trainer.max_epochs "
                "or --trainer.max_steps"
            )
        global_batch = self.hparams.batch_size * self.trainer.world_size * self.trainer.accumulate_grad_batches
        groups = parameter_groups(
            self.model, self.recipe.weight_decay, self.recipe.norm_bias_decay, self.trunk_lr_mult
        )
        optimizer = build_optimizer(self.recipe, groups, self.recipe.peak_lr(global_batch))
        schedule = LambdaLR(optimizer, lambda step: self.recipe.lr_factor(min(step / total_steps, 1.0)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds how to rebuild the model (for `vt.load_model`) and the random state (`vt.checkpoint`).

        The names of the outputs are kept when the datamodule has them (its ``class_names_key``
        attribute, one name per output), so predictions can be printed by name. Refuses (raises
        `NonFiniteStateError`, so nothing is written) a checkpoint holding a NaN or inf: a last guard
        that needs no other process (it also runs when a pre-empted run saves).
        """
        bad = first_non_finite({k: checkpoint[k] for k in ("state_dict", "optimizer_states") if k in checkpoint})
        if bad is not None:
            raise NonFiniteStateError(
                f"refused to save a checkpoint at epoch {self.current_epoch}, step {self.global_step}: "
                f"{bad} is not finite. {_FIX}"
            )
        write_checkpoint(checkpoint, self.hparams.name, self.model_args, self._class_names())

    def _class_names(self) -> list[str] | None:
        """The datamodule's names of the outputs, or ``None`` without a datamodule or a name per output."""
        names = getattr(self.trainer.datamodule, self.class_names_key, None)
        if names is None or len(names) != self.hparams.num_classes:
            return None
        return [str(name) for name in names]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Brings a checkpoint of an older ``vt`` up to date, and restores the random state.

        Lightning calls this before it loads the weights and the optimizer's state. Refuses (one-line
        ``ValueError``) a recipe whose optimizer is not the checkpoint's: its state would not fit
        (SGD's momentum into AdamW is a ``KeyError`` mid-restore). Other settings given on resume
        apply (`apply_configured_settings`).
        """
        saved = checkpoint.get("hyper_parameters", {}).get("recipe")
        if saved in self.recipes and self.recipes[saved].optimizer != self.recipe.optimizer:
            raise ValueError(
                f"the checkpoint holds the {self.recipes[saved].optimizer} state of --model.recipe {saved}, which "
                f"{self.recipe.optimizer} (--model.recipe {self.hparams.recipe}) cannot continue: resume with "
                f"--model.recipe {saved}, or leave out --ckpt_path to train from the start"
            )
        upgrade_checkpoint(checkpoint)
        if self.recipe.optimizer == "rmsprop" and "optimizer_states" in checkpoint:
            checkpoint["optimizer_states"] = [from_torch_rmsprop(s) for s in checkpoint["optimizer_states"]]
        restore_rng(checkpoint)
