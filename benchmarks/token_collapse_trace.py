"""Where do trained tokens collapse? Module 2 of a VT-ResNet-18, dissected during training (method §8).

    python benchmarks/token_collapse_trace.py                        # the paper's loss
    python benchmarks/token_collapse_trace.py --token-diversity 1    # plus the maps' overlap
    python benchmarks/token_collapse_trace.py --softmax-over tokens  # tokens compete for pixels

Trains a narrow VT-ResNet-18 (C_T = 256) with AdamW on scenes of three shapes at 112 px (the VT
stage reads a 7×7 map) and, before training and every ``--every`` steps, takes module 2's
recurrent tokenizer apart on 32 validation scenes (eval mode):

* ``queries cos``: mean pairwise cosine of its L queries ``W_R = LN(Q) + LN_c(Q - mean_L Q)``;
  ``gains``: the mean |gain| of the two LayerNorms;
* ``peaks``: distinct argmax pixels of its maps (of 16), and those the maps would have with the
  shared term ``LN(Q)`` alone, the centred term alone, and 16 random Gaussian queries (what the
  map allows any 16 directions to find);
* ``logit spread``: standard deviation over the pixels of ``X W_Rᵀ / √C``;
* ``pixel rank``: effective rank of the map's pixels, centred over the map.

``--softmax-over tokens`` builds the model with ``VTOptions.softmax_over="tokens"`` (method §8).
``--token-diversity W`` adds ``W`` times the mean overlap of every module's maps to the loss (what
``ClassificationTask(token_diversity=W)`` does). Runs in about a minute per 120 steps on 2 cores.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor

from vt.analysis import distinct_argmax_pixels, effective_rank, mean_pairwise_cosine, module_token_diversity
from vt.data import SyntheticShapes
from vt.data.transforms import synthetic_eval, synthetic_train
from vt.models import create_model
from vt.models.vt_resnet import VTResNet
from vt.nn.tokenizer import SOFTMAX_AXES


@torch.no_grad()
def dissect(model: VTResNet, images: Tensor, labels: Tensor) -> str:
    """One row of the table: module 2's tokenizer on ``images`` (the model is put in eval mode)."""
    model.eval()
    tokenizer = model.layer4.blocks[1].tokenizer
    seen: dict[str, Tensor] = {}
    hook = tokenizer.register_forward_hook(
        lambda m, args, kwargs, out: seen.update(x=args[0], tokens=args[1]), with_kwargs=True
    )
    stats = module_token_diversity(model, images)[1]
    accuracy = (model(images).argmax(dim=1) == labels).float().mean().item()
    hook.remove()
    pixels = seen["x"].flatten(2).transpose(1, 2)  # (B, HW, C)
    q = tokenizer.token_to_filter(seen["tokens"])
    shared, own = tokenizer.norm(q), tokenizer.norm_centred(q - q.mean(dim=1, keepdim=True))
    queries = tokenizer.make_queries(seen["tokens"])
    random = torch.randn(16, pixels.shape[-1], generator=torch.Generator().manual_seed(0))

    def peaks(w: Tensor) -> float:
        return distinct_argmax_pixels(pixels @ w.transpose(-1, -2)).mean().item()

    logits = pixels @ queries.transpose(1, 2) * tokenizer.scale
    spread = logits.std(dim=1).mean().item()
    rank = effective_rank(pixels - pixels.mean(dim=1, keepdim=True)).mean().item()
    model.train()
    return (f"| {accuracy:.2f} | {stats.attention_cosine:.2f} | {mean_pairwise_cosine(queries).mean():.2f} | "
            f"{tokenizer.norm.weight.abs().mean():.2f} / {tokenizer.norm_centred.weight.abs().mean():.2f} | "
            f"{stats.distinct_argmax:.1f} | {peaks(shared):.1f} | {peaks(own):.1f} | {peaks(random):.1f} | "
            f"{spread:.2f} | {rank:.1f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--every", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--token-diversity", type=float, default=0.0)
    parser.add_argument("--softmax-over", choices=SOFTMAX_AXES, default="pixels",
                        help="the tokenizers' softmax axis (VTOptions.softmax_over)")
    args = parser.parse_args(argv)
    size, classes = 112, 4
    torch.manual_seed(args.seed)
    train = SyntheticShapes(args.steps * args.batch_size, size, classes, transform=synthetic_train("standard"),
                            objects=3, seed=args.seed)
    val = SyntheticShapes(32, size, classes, split="val", transform=synthetic_eval(), objects=3)
    images = torch.stack([val[i]["image"] for i in range(len(val))])
    labels = torch.tensor([val[i]["label"] for i in range(len(val))])
    model = create_model("vt_resnet18", num_classes=classes, token_channels=256,
                         softmax_over=args.softmax_over)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.05)
    print("| step | val acc | map cosine | queries cos | gains LN / LN_c | peaks | peaks, shared term | "
          "peaks, centred term | peaks, 16 random queries | logit spread | pixel rank |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| 0 {dissect(model, images, labels)}", flush=True)
    start = time.perf_counter()
    model.train()
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True)
    for step, batch in enumerate(loader, start=1):
        optimizer.zero_grad()
        logits, overlap = model(batch["image"], return_map_overlap=True)
        (F.cross_entropy(logits, batch["label"]) + args.token_diversity * overlap).backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            print(f"| {step} {dissect(model, images, labels)}", flush=True)
    print(f"\nvt_resnet18 (C_T = 256), three shapes per 112-px scene (7×7 map), batch {args.batch_size}, "
          f"AdamW 5e-4, token_diversity {args.token_diversity:g}, seed {args.seed}; 32 validation scenes; "
          f"{time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
