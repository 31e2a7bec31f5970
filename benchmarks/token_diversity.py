"""Are a fresh VT-ResNet's visual tokens distinct? Every module, for each kind of recurrent query.

    python benchmarks/token_diversity.py                      # 224×224 noise, eval and train mode
    python benchmarks/token_diversity.py --models vt_resnet18 --modes train --batch 8 --queries tokens both
    python benchmarks/token_diversity.py --queries both --softmax-over tokens   # tokens compete for pixels
    python benchmarks/token_diversity.py --checkpoint runs/cls/vt_resnet34/version_0/checkpoints/last.ckpt

For each model, query kind and module it prints `vt.analysis.TokenDiversity`: the mean pairwise
cosine of the tokenizer's attention maps, how many different pixels they peak on, the mean
pairwise cosine of the module's output tokens and their effective rank. The query kinds are the
recurrent tokenizer's ``queries`` (`vt.nn.tokenizer`): ``tokens`` (Eq. 3, normalised),
``centred`` and ``both`` (the default). ``eval``: BatchNorm with its initial running
statistics (identity); ``train``: BatchNorm with batch statistics, what the first training step
sees. Trained models: ``--checkpoint`` takes a ``vt`` training checkpoint and measures its
model (eval mode, the weights it was saved with) on ``--batch`` validation images of the
synthetic shapes at the checkpoint's training size (``--objects`` per image); ``benchmarks/accuracy.py``
reports the same numbers after each of its runs.

``--diagnose`` follows the second module's queries step by step (docs/method.md §8): the pairwise
cosine of the first module's tokens before and after its transformer, how much longer their mean
is than their spread around it, and the pairwise cosine of ``T_in W_{T->R}`` as it is, after the
query LayerNorm, and centred.
"""

from __future__ import annotations

import argparse
import sys

import torch

from vt.analysis import TokenDiversity, mean_pairwise_cosine, module_token_diversity
from vt.checkpoint import read_checkpoint
from vt.data import SHAPES, SyntheticShapes
from vt.data.transforms import synthetic_eval
from vt.inference import load_model
from vt.models import create_model
from vt.nn.tokenizer import QUERY_KINDS, SOFTMAX_AXES

MODELS = ["vt_resnet18", "vt_resnet34", "vt_resnet50", "vt_resnet101"]


@torch.no_grad()
def diagnose(name: str, images: torch.Tensor, seed: int) -> str:
    """The second module's query construction on a fresh ``name`` (eval mode), as one table row."""
    torch.manual_seed(seed)
    model = create_model(name, queries="both").eval()
    first = model.forward_modules(images)[0]
    pooled, _ = model.layer4.blocks[0].tokenizer(model.forward_levels(images, "c4")["c4"])
    tokens = first.tokens
    mean = tokens.mean(dim=1, keepdim=True)
    spread = (tokens - mean).norm(dim=-1).mean()
    tokenizer = model.layer4.blocks[1].tokenizer
    raw = tokenizer.token_to_filter(tokens)
    centred = tokenizer.token_to_filter(tokens - mean)
    cos = lambda x: f"{mean_pairwise_cosine(x).mean().item():.3f}"  # noqa: E731
    return (f"| {name} | {cos(pooled)} | {cos(tokens)} | {(mean.norm(dim=-1).mean() / spread).item():.1f} "
            f"| {cos(raw)} | {cos(tokenizer.norm(raw))} | {cos(tokenizer.norm(centred))} "
            f"| {cos(tokenizer.norm(raw) + tokenizer.norm_centred(centred))} |")


def row(name: str, queries: str, mode: str, module: int, s: TokenDiversity) -> str:
    return (f"| {name} | {queries} | {mode} | {module} | {s.attention_cosine:.3f} "
            f"| {s.distinct_argmax:.1f} of {s.num_maps} ({s.num_pixels} px) | {s.token_cosine:.3f} | {s.effective_rank:.2f} |")


HEADER = ("| model | queries | BN | module | map cosine | distinct argmax | token cosine | effective rank |\n"
          "|---|---|---|---|---|---|---|---|")


@torch.no_grad()
def trained(path: str, batch: int, objects: int, image_size: int | None) -> None:
    """The table for a training checkpoint, on synthetic validation scenes at its training size.

    Raises a one-line ``ValueError`` or ``OSError`` for a file that is not a VT classifier's checkpoint.
    """
    info, _ = read_checkpoint(path)
    model = load_model(path)
    if not hasattr(model, "forward_modules"):
        raise ValueError(f"{path} holds a {info.name}, which has no VT modules; give a vt_resnet checkpoint")
    size = image_size or info.image_size or 64
    # Scenes of the trained classes where they are shapes; other data (ImageFolder) gets all 13.
    classes = min(len(info.class_names or SHAPES), len(SHAPES))
    scenes = SyntheticShapes(batch, size, classes, split="val", transform=synthetic_eval(), objects=objects)
    images = torch.stack([scenes[i]["image"] for i in range(batch)])
    print(HEADER)
    for i, s in enumerate(module_token_diversity(model, images), 1):
        print(row(info.name, "as trained", "eval", i, s), flush=True)
    print(f"\n{path}: {batch} synthetic validation scenes ({objects} object(s), {size}×{size}); means over the images.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--modes", nargs="+", choices=["eval", "train"], default=["eval", "train"])
    parser.add_argument("--image-size", type=int, default=None,
                        help="default: 224 (fresh models), the training size (--checkpoint)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", nargs="+", choices=QUERY_KINDS, default=list(QUERY_KINDS))
    parser.add_argument("--softmax-over", choices=SOFTMAX_AXES, default="pixels",
                        help="fresh models: the tokenizers' softmax axis (VTOptions.softmax_over)")
    parser.add_argument("--diagnose", action="store_true", help="the second module's queries, step by step")
    parser.add_argument("--checkpoint", help="a VT classifier's training checkpoint: its trained model "
                        "instead of fresh ones (--models, --modes, --queries do not apply)")
    parser.add_argument("--objects", type=int, default=1, help="--checkpoint: synthetic shapes per scene")
    args = parser.parse_args(argv)
    if args.checkpoint:
        try:
            trained(args.checkpoint, args.batch, args.objects, args.image_size)
        except (OSError, ValueError) as err:  # vt's DatasetError is a ValueError
            sys.exit(f"error: {' '.join(str(err).split())}")
        return
    args.image_size = args.image_size or 224

    images = torch.randn(args.batch, 3, args.image_size, args.image_size,
                         generator=torch.Generator().manual_seed(args.seed))
    if args.diagnose:
        print("| model | module-1 tokens, pooled | after its transformer | ‖mean‖ / spread "
              "| T_in W_{T→R} | after query LN | centred, after LN | both (default) |")
        print("|---|---|---|---|---|---|---|---|")
        for name in args.models:
            print(diagnose(name, images, args.seed), flush=True)
        print("\nMean pairwise cosines over the L tokens (queries), fresh models in eval mode.")
        return
    print(HEADER)
    for name in args.models:
        for queries in args.queries:
            for mode in args.modes:
                torch.manual_seed(args.seed)
                model = create_model(name, queries=queries, softmax_over=args.softmax_over).train(mode == "train")
                label = queries if args.softmax_over == "pixels" else f"{queries}, softmax over {args.softmax_over}"
                for i, s in enumerate(module_token_diversity(model, images), 1):
                    print(row(name, label, mode, i, s), flush=True)
    print(f"\n{args.batch} images of N(0, 1) noise at {args.image_size}×{args.image_size}, seed {args.seed}; "
          "means over the images. Module 1 has a filter tokenizer (the query kind does not apply).")


if __name__ == "__main__":
    main()
