"""Export a ``vt`` model for use outside this repository: ONNX, TorchScript or ``torch.export``.

Every exported file takes a batch of any size and images of any height and width from
`min_export_size` up (a classifier's global pooling and a segmenter's resizing to the input make
every larger size valid; no multiple of 32 is needed):

* ``onnx``: an ONNX graph (input ``image (batch, 3, height, width)``, output ``logits``, both
  with those axes dynamic) that onnxruntime runs. Two exporters, ``onnx_exporter``:

  - ``"torchscript"`` (the default): PyTorch's TorchScript-based exporter. It traces the model
    once, recording the shapes as graph computations (``Shape``/``Gather``), so height and width
    stay dynamic. PyTorch marks it deprecated since 2.9, but on our models it exports many
    times faster than the other (the README's "Use it elsewhere" has the timings) and needs no
    package beyond PyTorch. The model's Python-side checks (`vt.models.features.check_input`) are
    not in the graph: the ONNX file trusts its input.
  - ``"dynamo"``: the ``torch.export``-based exporter (``torch.onnx.export``'s default since
    PyTorch 2.9); it needs ``onnxscript`` and has the same size range as ``exported``. The one
    to use once the TorchScript exporter is removed.

* ``torchscript``: ``torch.jit.trace`` saved with ``torch.jit.save``, loaded by ``torch.jit.load``
  (also without ``vt``). Sizes are traced like the ONNX exporter's.
* ``exported``: ``torch.export.export`` with ``Dim`` dynamic batch, height and width, saved with
  ``torch.export.save``; ``torch.export.load(path).module()`` runs it. ``torch.export`` records
  the size range as guards: an input outside it raises an error when the program runs.

Size range. A model's ``min_input_size`` is the size at which its coarsest map is one pixel (a
VT-ResNet: 16, its VT stage on the stride-16 map; a ResNet and the segmenters: 32). Exporters
treat a dimension of size 1 as a constant (it broadcasts, any other size does not), so an
exported graph needs every map at least 2 pixels wide: `min_export_size` is
``min_input_size + 1``, for the example input the exporter traces as for the inputs it runs on.

Agreement with eager PyTorch is measured as `relative_error`, ``max |exported - eager| /
max |eager|`` over the whole output, on random inputs of two batch sizes and two image sizes
(`check_export`); `TOLERANCE` is the bound the tests and ``experiments/export.py`` hold it to.
While exporting, ``vt.nn.attention`` records the fused attention op and leaves the kernel to the
runtime (see its module docstring).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from vt.checkpoint import read_checkpoint
from vt.inference import load_model
from vt.models import create_model

Format = Literal["onnx", "torchscript", "exported"]
FORMATS: tuple[str, ...] = ("onnx", "torchscript", "exported")
ONNX_EXPORTERS: tuple[str, ...] = ("torchscript", "dynamo")
TOLERANCE = 1e-4  # max |exported - eager| / max |eager|
ONNX_OPSET = 18
INPUT_NAME, OUTPUT_NAME = "image", "logits"
EXPORT_EXTRA = 'pip install -e ".[export]"'


def min_export_size(model: nn.Module) -> int:
    """The smallest height and width an exported ``model`` takes: its ``min_input_size`` + 1.

    At ``min_input_size`` the coarsest map is one pixel, a size exporters fix (module docstring).
    """
    return int(model.min_input_size) + 1


def check_size(model: nn.Module, size: int, name: str = "the model") -> None:
    """A one-line ``ValueError`` unless ``size`` is a height/width the exported ``model`` takes."""
    least = min_export_size(model)
    if isinstance(size, bool) or not isinstance(size, int) or size < least:
        raise ValueError(f"image size {size!r} is too small for an exported {name}: its coarsest map "
                         f"needs 2 pixels, so height and width must be >= {least}; pass --image-size {least} "
                         f"or more")


def check_shapes(model: nn.Module, size: int) -> list[tuple[int, int, int, int]]:
    """The inputs `check_export` compares on: batches 1 and 3 at ``size``² and at a smaller, odd, non-square size."""
    least = min_export_size(model)
    other = (max(least, size * 3 // 4 + 1), max(least, size // 2 + 3))
    return [(b, 3, h, w) for b in (1, 3) for h, w in ((size, size), other)]


def build_model(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    num_classes: int | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[nn.Module, str]:
    """The model to export, in eval mode, and its registered name.

    Without ``checkpoint``: ``create_model(name, num_classes=..., **options)`` (random weights).
    With a ``vt`` training checkpoint: the model it describes, through `vt.load_model` (its EMA
    weights when it kept them); ``name``, ``num_classes`` and ``options``, if given, must agree
    with it. With a plain state dict (torchvision's format): ``name`` (and the builder arguments
    it was trained with) say what to build, and every weight must fit.

    Raises one-line ``ValueError`` / ``FileNotFoundError`` naming what was wrong.
    """
    options = dict(options or {})
    if num_classes is not None:
        options["num_classes"] = num_classes
    if checkpoint is None:
        if name is None:
            raise ValueError("give --model NAME, or --checkpoint with a vt training checkpoint")
        return create_model(name, **options).eval(), name
    info = _checkpoint_info(checkpoint)
    if info is None:  # a plain state dict: the caller says what it is
        if name is None:
            raise ValueError(f"{checkpoint} is a plain state dict, not a vt training checkpoint; "
                             f"pass --model NAME (and --num-classes N) to say which model it holds")
        try:
            return load_model(checkpoint, name, **options), name
        except ValueError as e:
            raise ValueError(" ".join(str(e).split())) from e
    if name is not None and name != info.name:
        raise ValueError(f"{checkpoint} holds a {info.name}, not a {name}; pass --model {info.name} or "
                         f"leave --model out")
    differ = [k for k, v in options.items() if k not in info.model_args or info.model_args[k] != v]
    if differ:
        trained = (f"{k}={info.model_args[k]!r}" if k in info.model_args else f"the default {k}" for k in differ)
        raise ValueError(f"{checkpoint} was trained with {', '.join(trained)}; drop {', '.join(differ)} "
                         f"(a checkpoint's model is rebuilt as it was trained)")
    return load_model(checkpoint), info.name


def _checkpoint_info(checkpoint: str | Path) -> Any:
    """`CheckpointInfo` of a ``vt`` training checkpoint; ``None`` for any other readable file."""
    try:
        return read_checkpoint(checkpoint)[0]
    except FileNotFoundError:
        raise
    except ValueError as e:
        if "not a vt training checkpoint" in str(e):
            return None
        raise
    except Exception as e:  # torch.load's errors for a file that is not a checkpoint at all
        raise ValueError(f"cannot read {checkpoint} as a checkpoint: {' '.join(str(e).split())[:200]}") from e


def _dims(size: int) -> dict[int, Any]:
    """``torch.export`` dynamic dimensions of an image batch: batch >= 1, height/width >= ``size``."""
    from torch.export import Dim

    return {0: Dim("batch", min=1), 2: Dim("height", min=size), 3: Dim("width", min=size)}


def export_model(
    model: nn.Module,
    path: str | Path,
    fmt: Format,
    image_size: int = 224,
    onnx_exporter: str = "torchscript",
) -> Path:
    """Write ``model`` (in eval mode; a copy is exported) to ``path`` in ``fmt`` (module docstring).

    ``image_size`` is the example input traced (batch 2, ``image_size``² images); the file takes
    any batch and any height/width >= `min_export_size`. Returns ``path``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if onnx_exporter not in ONNX_EXPORTERS:
        raise ValueError(f"unknown ONNX exporter {onnx_exporter!r}; choose one of {', '.join(ONNX_EXPORTERS)}")
    check_size(model, image_size, getattr(model, "name", "model"))
    path = Path(path)
    model = copy.deepcopy(model).eval().requires_grad_(False)
    # Batch 2, not 1: exporters fix a dimension seen at size 1 (module docstring).
    example = torch.randn(2, 3, image_size, image_size, device=next(model.parameters()).device)
    dense = model(example).dim() == 4  # a segmenter's logits have the input's height and width
    with warnings.catch_warnings():
        # The tracers warn that Python-side checks and sizes become constants of the graph: the
        # checks are `check_input`'s (the range is the exporter's), and every size the graph needs
        # dynamic is traced as a graph computation (`check_export` runs two other sizes).
        warnings.simplefilter("ignore")
        if fmt == "exported":
            program = torch.export.export(model, (example,), dynamic_shapes=(_dims(min_export_size(model)),))
            torch.export.save(program, path)
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(model, example), str(path))
        elif onnx_exporter == "dynamo":
            _require("onnxscript", "the dynamo ONNX exporter")
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, external_data=False,
                dynamic_shapes=(_dims(min_export_size(model)),),
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False,
            )
        else:
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(
                model, (example,), str(path), dynamo=False, opset_version=ONNX_OPSET,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes if dense else {0: "batch"}},
            )
    return path


def _require(module: str, what: str) -> None:
    """A one-line ``ImportError`` naming the extra to install when ``module`` is missing."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the {module} package: {EXPORT_EXTRA}")


def load_exported(path: str | Path, fmt: Format) -> Callable[[Tensor], Tensor]:
    """A function running the file ``path`` of ``fmt`` on a CPU batch ``(B, 3, H, W)`` -> logits.

    ONNX files run in onnxruntime (CPU), TorchScript in ``torch.jit.load``, exported programs in
    ``torch.export.load(path).module()``.
    """
    if fmt == "onnx":
        _require("onnxruntime", "running an ONNX file")
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])
    if fmt == "torchscript":
        with warnings.catch_warnings():  # PyTorch deprecates TorchScript; this format is asked for by name
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    if fmt == "exported":
        return torch.export.load(str(path)).module()
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def relative_error(out: Tensor, ref: Tensor) -> float:
    """``max |out - ref| / max |ref|``: the error as a share of the output's scale (`TOLERANCE`)."""
    if out.shape != ref.shape:
        return math.inf
    return ((out.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-12)).item()


@dataclass(frozen=True)
class Agreement:
    """One input of `check_export`: its shape and the `relative_error` of the file against eager."""

    shape: tuple[int, int, int, int]
    error: float


def check_export(
    model: nn.Module, path: str | Path, fmt: Format, image_size: int = 224, seed: int = 0
) -> list[Agreement]:
    """Run the exported file and eager ``model`` (CPU, eval) on random inputs of `check_shapes`."""
    model = copy.deepcopy(model).cpu().eval()
    run = load_exported(path, fmt)
    generator = torch.Generator().manual_seed(seed)
    rows = []
    with torch.inference_mode():
        for shape in check_shapes(model, image_size):
            x = torch.randn(shape, generator=generator)
            rows.append(Agreement(shape, relative_error(run(x), model(x))))
    return rows
