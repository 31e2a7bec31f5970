"""``predict``: a trained checkpoint on the user's own images, through the Lightning Trainer.

    python experiments/cls.py predict --ckpt_path last photos/ cat.jpg --out-dir predictions
    python experiments/seg.py predict --ckpt_path runs/seg/.../last.ckpt people/ --overlay
    python experiments/predict.py --checkpoint model.ckpt a.jpg b.png        # the same code

Inputs are image files and folders (searched recursively), any size, any mode the loaders accept
(`vt.data.files`), EXIF orientation applied. The task is rebuilt from the checkpoint (its saved
hyper-parameters; its ``predict_step`` is the one that runs) and fed in batches:

* classifiers: the top-k classes by name, printed and written to ``<out-dir>/predictions.csv``
  and ``predictions.json``. An image of the training size is used as it is, any other resized and
  centre-cropped as in ImageNet evaluation (shorter side ``S/0.875``, centre crop ``S``);
* segmenters: an 8-bit PNG of class ids per image at its original resolution,
  ``<out-dir>/<relative path>.png`` (optionally ``.overlay.png``, the colours over the image),
  made by `vt.tasks.SegmentationTask.predict_step` under the test protocol (`vt.tasks.seg_eval`;
  ``--tta flip``, ``--scales``).

Output names keep each image's path relative to the inputs' common folder, so ``a/x.jpg`` and
``b/x.jpg`` never collide; two inputs of one folder sharing a stem (``x.jpg``, ``x.png``) keep
their extension (``x.jpg.png``). ``--attention`` adds, for VT-ResNets, a figure per image of what
each visual token of the first VT module attends to (`vt.viz.plot_token_attention`).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import inspect
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch.callbacks import BasePredictionWriter
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from vt.cli import report_unexpected
from vt.checkpoint import MODEL_KEY, load_checkpoint_file
from vt.data.files import is_image_file, load_rgb
from vt.data.transforms import classification_eval, finalize
from vt.evaluate import CONFIG_NAME, find_checkpoint
from vt.models import model_task
from vt.run_dir import check_writable

SHORT = {"classification": "cls", "segmentation": "seg"}
DEFAULT_SIZE = 224  # a checkpoint without a datamodule's image_size


def collect_images(inputs: Sequence[str]) -> list[tuple[str, str]]:
    """``(path, output name without extension)`` of every image in ``inputs`` (files and folders).

    Names are relative to the inputs' common folder; raises a one-line ``ValueError`` for an input
    that is missing, not an image, or a folder without images.
    """
    found: list[str] = []
    roots: list[str] = []
    for item in inputs:
        if os.path.isdir(item):
            images = sorted(
                os.path.join(folder, name)
                for folder, _, names in os.walk(item) for name in names if is_image_file(name)
            )
            if not images:
                raise ValueError(f"folder {item} holds no images ({', '.join(('.jpg', '.png', '...'))})")
            found += images
            roots.append(os.path.abspath(item))
        elif os.path.isfile(item):
            found.append(item)
            roots.append(os.path.dirname(os.path.abspath(item)))
        else:
            raise ValueError(f"no such image or folder: {item}")
    base = os.path.commonpath(roots)
    stems = [os.path.splitext(os.path.relpath(os.path.abspath(p), base))[0] for p in found]
    clash = {s for s in stems if stems.count(s) > 1}
    names = [os.path.relpath(os.path.abspath(p), base) if s in clash else s for p, s in zip(found, stems)]
    seen: set[str] = set()
    unique = []
    for path, name in zip(found, names):
        if name not in seen:  # the same file given twice (as a file and inside its folder)
            seen.add(name)
            unique.append((path, name))
    return unique


class ImagePaths(Dataset[dict[str, Any]]):
    """The user's images: ``{"image": float (3, H, W), "size": (2,), "index": int}``.

    Classifiers (``size`` given) get the evaluation transform unless the image already is
    ``size x size``; segmenters (``size=None``) get the image at its original size, normalised.
    """

    def __init__(self, paths: Sequence[str], size: int | None) -> None:
        self.paths = list(paths)
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = load_rgb(self.paths[index])
        original = torch.tensor(image.shape[-2:])
        if self.size is not None and tuple(image.shape[-2:]) != (self.size, self.size):
            image = classification_eval(self.size)({"image": image})["image"]
        else:
            image = v2.Compose(finalize())({"image": image})["image"]
        return {"image": image, "size": original, "index": index}


def collate(samples: list[dict[str, Any]]) -> dict[str, Tensor]:
    """Pads images of different sizes (bottom and right) into one batch; ``size`` keeps each one's.

    ``image``: ``(B, 3, H_max, W_max)``; ``size``: ``(B, 2)`` original ``(height, width)`` (for a
    segmenter, the unpadded part of each image); ``index``: ``(B,)``.
    """
    height = max(s["image"].shape[-2] for s in samples)
    width = max(s["image"].shape[-1] for s in samples)
    images = [F.pad(s["image"], (0, width - s["image"].shape[-1], 0, height - s["image"].shape[-2])) for s in samples]
    return {
        "image": torch.stack(images),
        "size": torch.stack([s["size"] for s in samples]),
        "index": torch.tensor([s["index"] for s in samples]),
    }


class PredictData(L.LightningDataModule):
    """The images to predict, as the task's evaluation expects them: ``image_size`` (the training
    size, which the segmentation protocol resizes inputs to) and the dataset's flip ``swap_pairs``."""

    def __init__(self, paths: Sequence[str], image_size: int, classify: bool, batch_size: int,
                 num_workers: int, swap_pairs: Sequence[tuple[int, int]] = ()) -> None:
        super().__init__()
        self.image_size = image_size
        self.swap_pairs = tuple(swap_pairs)
        self.dataset = ImagePaths(paths, image_size if classify else None)
        self.batch_size, self.num_workers = batch_size, num_workers

    def predict_dataloader(self) -> DataLoader[dict[str, Any]]:
        return DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers, collate_fn=collate)


def palette(num_classes: int) -> np.ndarray:
    """A fixed colour per class id, ``(256, 3)`` uint8 (PASCAL VOC's bit pattern); 255 is white."""
    colours = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours[i] = (r, g, b)
    colours[255] = 255
    return colours


class PredictionWriter(BasePredictionWriter):
    """Writes each batch's predictions as it comes (masks), and the classifiers' tables at the end."""

    def __init__(self, out_dir: Path, names: list[str], paths: list[str], class_names: list[str], top_k: int,
                 overlay: bool, attention: bool) -> None:
        super().__init__(write_interval="batch")
        self.out_dir, self.names, self.paths, self.class_names = out_dir, names, paths, class_names
        self.top_k, self.overlay, self.attention = top_k, overlay, attention
        self.rows: list[dict[str, Any]] = []

    def write_on_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, prediction: Any,
                           batch_indices: Sequence[int] | None, batch: dict[str, Tensor], batch_idx: int,
                           dataloader_idx: int = 0) -> None:
        indices = batch["index"].tolist()
        if isinstance(prediction, Tensor):  # classifier probabilities (B, C)
            top = prediction.float().topk(min(self.top_k, prediction.shape[1]), dim=1)
            for i, p, c in zip(indices, top.values.tolist(), top.indices.tolist()):
                row = {"path": self.paths[i], "top_k": [
                    {"class": self.class_names[k], "index": k, "probability": q} for k, q in zip(c, p)]}
                self.rows.append(row)
                print(f"{self.paths[i]}: " + ", ".join(f"{t['class']} ({t['probability']:.1%})" for t in row["top_k"]))
            if self.attention:
                self._attention(pl_module, batch, indices)
            return
        colours = palette(len(self.class_names))
        for i, mask in zip(indices, prediction):  # segmenter: class ids (H_i, W_i) per image
            out = self.out_dir / f"{self.names[i]}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            ids = mask.to(torch.uint8).cpu().numpy()
            Image.fromarray(ids, mode="L").save(out)
            written = [str(out)]
            if self.overlay:
                image = load_rgb(self.paths[i]).permute(1, 2, 0).numpy().astype(np.float32)
                blend = (0.5 * image + 0.5 * colours[ids]).astype(np.uint8)
                overlay_path = out.with_name(out.name[: -len(".png")] + ".overlay.png")
                Image.fromarray(blend).save(overlay_path)
                written.append(str(overlay_path))
            self.rows.append({"path": self.paths[i], "mask": written[0], "size": list(ids.shape)})
            print(f"{self.paths[i]}: mask written to {' and '.join(written)}")

    def _attention(self, task: L.LightningModule, batch: dict[str, Tensor], indices: list[int]) -> None:
        """One figure per image: the first VT module's tokenizer attention, one panel per token."""
        from matplotlib import pyplot as plt

        from vt.viz import plot_token_attention

        model = task.eval_model
        if not hasattr(model, "forward_tokens"):
            return
        out = model.forward_tokens(batch["image"], return_attention=True)
        attention = out.attention[0]["tokenizer"]  # (B, HW, L) on the stride-16 map
        side = batch["image"].shape[-1] // 16
        for b, i in enumerate(indices):
            figure = plot_token_attention(batch["image"][b].cpu(), attention[b].cpu(), (side, side), title=self.paths[i])
            path = self.out_dir / f"{self.names[i]}.attention.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            figure.savefig(path, dpi=100)
            plt.close(figure)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        suffix = f".rank{trainer.global_rank}" if trainer.world_size > 1 else ""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"predictions{suffix}.json").write_text(json.dumps(self.rows, indent=2) + "\n")
        if self.rows and "top_k" in self.rows[0]:
            with open(self.out_dir / f"predictions{suffix}.csv", "w", newline="") as file:
                writer = csv.writer(file)
                k = len(self.rows[0]["top_k"])  # --top-k capped at the number of classes, as each row is
                writer.writerow(["path"] + [f"{key}_{r}" for r in range(1, k + 1) for key in ("class", "prob")])
                for row in self.rows:
                    writer.writerow([row["path"]] + [v for t in row["top_k"] for v in (t["class"], f"{t['probability']:.6f}")])


def build_task(checkpoint: Path, **overrides: Any) -> L.LightningModule:
    """The checkpoint's task, rebuilt from its saved hyper-parameters (weights not loaded yet).

    Typed settings saved as dicts (``vt``, ``neck``) become their dataclasses again; a teacher,
    backbone initialisation and compilation are off, none of them matter for predicting.
    """
    from vt.tasks import TASKS

    saved = load_checkpoint_file(checkpoint)
    if MODEL_KEY not in saved:
        raise ValueError(f"{checkpoint} is not a vt training checkpoint (written by experiments/cls.py or seg.py)")
    cls = TASKS[model_task(saved[MODEL_KEY]["name"])]
    params = inspect.signature(cls.__init__).parameters
    hparams = dict(saved.get("hyper_parameters", {}))
    for key, value in hparams.items():
        default = params[key].default if key in params else None
        if isinstance(value, dict) and dataclasses.is_dataclass(default):
            hparams[key] = type(default)(**value)
    quiet = {"teacher": None, "backbone_weights": None, "compile": False}
    hparams.update({k: v for k, v in quiet.items() if k in params or k in hparams})
    hparams.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**hparams)


def _swap_pairs(checkpoint: Path) -> tuple[tuple[int, int], ...]:
    """The flip label pairs of the run's datamodule (LIP's left/right parts), from its config.yaml."""
    from vt.data import DATAMODULES

    for folder in (checkpoint.parent.parent, checkpoint.parent):
        if (folder / CONFIG_NAME).is_file():
            data = (yaml.safe_load((folder / CONFIG_NAME).read_text()) or {}).get("data") or {}
            name = str(data.get("class_path", "")).rsplit(".", 1)[-1]
            for cls in DATAMODULES.values():
                if cls.__name__ == name:
                    return tuple(tuple(p) for p in getattr(cls, "swap_pairs", ()))
    return ()


def parser(task: str | None) -> argparse.ArgumentParser:
    """The predict options (``--out-dir`` and ``--out_dir`` are the same, and so on)."""
    p = argparse.ArgumentParser(
        prog="predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("images", nargs="*", help="image files and folders (searched recursively)")
    p.add_argument("--ckpt_path", "--checkpoint", dest="ckpt_path", default=None,
                   help="a vt training checkpoint (.ckpt), or 'last' (the newest last.ckpt, or of --run_dir)")
    p.add_argument("--run_dir", default=None, help="with --ckpt_path last: the run whose last.ckpt to use")
    p.add_argument("--inputs", nargs="+", default=[], help="more image files and folders")
    p.add_argument("--out-dir", "--out_dir", dest="out_dir", default="predictions",
                   help="where masks, figures and predictions.csv/json go (created)")
    p.add_argument("--top-k", "--top_k", dest="top_k", type=int, default=5, help="classes per image (classifiers)")
    p.add_argument("--batch-size", "--batch_size", dest="batch_size", type=int, default=8)
    p.add_argument("--num-workers", "--num_workers", dest="num_workers", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--overlay", action="store_true", help="segmenters: also <name>.overlay.png, colours over the image")
    p.add_argument("--attention", action="store_true",
                   help="VT-ResNets: also <name>.attention.png, what each visual token attends to")
    p.add_argument("--tta", choices=("none", "flip"), default=None, help="segmenters: flip test-time augmentation")
    p.add_argument("--scales", type=float, nargs="+", default=None, help="segmenters: multi-scale test, e.g. 0.5 1.0 1.5")
    p.add_argument("--window", type=int, default=None, help="segmenters: sliding-window side")
    p.add_argument("--stride", type=int, default=None, help="segmenters: sliding-window step")
    p.add_argument("--config", default=None, help="a YAML file of these options (flags given override it)")
    p.add_argument("--print_config", action="store_true", help="print the resolved options as YAML and exit")
    return p


def _check(args: argparse.Namespace) -> None:
    """One-line ``ValueError`` for options that cannot work, before anything loads."""
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        raise ValueError(f"--out-dir {args.out_dir} is a file; pass a folder (it is created if missing)")
    check_writable(args.out_dir, "--out-dir")  # before the model runs on every image, not after
    device = torch.device(args.device)  # a malformed name raises RuntimeError, turned into one line below
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA GPU is visible here; use --device cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"--device {args.device}: only {torch.cuda.device_count()} CUDA GPU(s) here")
    if not args.images and not args.inputs:
        raise ValueError("no images given: pass image files or folders")


def quiet_lightning() -> None:
    """Keeps Lightning's start-up lines and warnings that do not apply here off the output.

    Scoring or predicting a checkpoint needs none of the callbacks that wrote it, and the tasks'
    ``on_after_batch_transfer`` is meant to replace the datamodule's.
    """
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Be aware that when using `ckpt_path`")
    warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
    warnings.filterwarnings("ignore", message=".*treespec.*")


def main(argv: Sequence[str] | None = None, task: str | None = None) -> int:
    """``predict`` of ``experiments/cls.py``/``seg.py`` (``task``) and of ``experiments/predict.py``.

    Returns the exit status: 0, or 2 after a one-line ``error: ...`` for bad input.
    """
    p = parser(task)
    argv = list(sys.argv[1:] if argv is None else argv)
    quiet_lightning()
    try:
        args = p.parse_args(argv)
        if args.config:
            p.set_defaults(**yaml.safe_load(Path(args.config).read_text()) or {})
            args = p.parse_args(argv)
        if args.print_config:
            print(yaml.safe_dump({k: v for k, v in vars(args).items() if k not in ("config", "print_config")}), end="")
            return 0
        _check(args)
        items = collect_images([*args.images, *args.inputs])
        checkpoint = find_checkpoint(args.ckpt_path, SHORT.get(task or "", "*"), None, args.run_dir)
        paths, names = [p for p, _ in items], [n for _, n in items]
        write(checkpoint, paths, names, args, task)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except Exception as err:
        return report_unexpected(err)
    return 0


def write(checkpoint: Path, paths: list[str], names: list[str], args: argparse.Namespace, task: str | None) -> None:
    """Rebuilds the task of ``checkpoint``, predicts ``paths`` through the Trainer, writes the outputs."""
    segment = {"tta": args.tta, "test_scales": tuple(args.scales) if args.scales else None,
               "window": args.window, "stride": args.stride}
    saved = load_checkpoint_file(checkpoint)
    kind = model_task(saved[MODEL_KEY]["name"]) if MODEL_KEY in saved else None
    if task is not None and kind is not None and kind != task:
        raise ValueError(f"{checkpoint} holds a {kind} model; use experiments/{SHORT[kind]}.py predict")
    module = build_task(checkpoint, **(segment if kind == "segmentation" else {}))
    image_size = (saved.get("datamodule_hyper_parameters") or {}).get("image_size") or DEFAULT_SIZE
    classify = kind == "classification"
    class_names = saved[MODEL_KEY].get("class_names") or [str(i) for i in range(module.hparams.num_classes)]
    data = PredictData(paths, image_size, classify, args.batch_size, args.num_workers, _swap_pairs(checkpoint))
    out_dir = Path(args.out_dir)
    writer = PredictionWriter(out_dir, names, paths, class_names, args.top_k, args.overlay, args.attention)
    device = torch.device(args.device)
    trainer = L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index or 0] if device.type == "cuda" else 1,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[writer],
    )
    trainer.predict(module, datamodule=data, ckpt_path=str(checkpoint), return_predictions=False)
    print(f"written: {out_dir / 'predictions.json'}" + (f", {out_dir / 'predictions.csv'}" if classify else ""))
