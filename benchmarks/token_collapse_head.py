"""Does the classifier's head cause the trained tokens' collapse? (method §8, issue 12)

    python benchmarks/token_collapse_head.py --steps 120

The VT-ResNet head averages the last module's tokens, so every token receives the same gradient.
This trains a narrow VT-ResNet-18 (C_T = 256) on scenes of three shapes at 112 px (a 7×7 map) for
``--steps`` AdamW steps, once with that head and once with a head that reads the last projector's
map instead (global average pool, LayerNorm, linear: every pixel reads the tokens through its own
attention), each with Eq. 3's queries (``tokens``) and the default (``both``), and prints module 2's
diversity on validation scenes (`vt.analysis.module_token_diversity`). The map head is an
experiment here, not a model option.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vt.analysis import module_token_diversity
from vt.data import SyntheticShapes
from vt.data.transforms import synthetic_eval, synthetic_train
from vt.models import create_model
from vt.models.vt_resnet import VTResNet


class MapHead(nn.Module):
    """Classifies from the last projector's map ``(B, C_out, h, w)`` instead of the mean token."""

    def __init__(self, model: VTResNet, num_classes: int) -> None:
        super().__init__()
        self.model = model
        channels = model.layer4.blocks[-1].out_channels
        self.norm = nn.LayerNorm(channels)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """``x: (B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        features = self.model.forward_tokens(x, project_last=True).features
        return self.fc(self.norm(features.mean(dim=(2, 3))))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size, classes = 112, 4
    print("| head | queries | module 2: map cosine | distinct argmax | token cosine | seconds |")
    print("|---|---|---|---|---|---|")
    for head in ("mean token", "projected map"):
        for queries in ("tokens", "both"):
            start = time.perf_counter()
            torch.manual_seed(args.seed)
            train = SyntheticShapes(args.steps * args.batch_size, size, classes,
                                    transform=synthetic_train("standard"), objects=3)
            val = SyntheticShapes(32, size, classes, split="val", transform=synthetic_eval(), objects=3)
            model = create_model("vt_resnet18", num_classes=classes, token_channels=256, queries=queries)
            trained: nn.Module = model if head == "mean token" else MapHead(model, classes)
            optimizer = torch.optim.AdamW(trained.parameters(), lr=5e-4, weight_decay=0.05)
            trained.train()
            for batch in torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True):
                optimizer.zero_grad()
                F.cross_entropy(trained(batch["image"]), batch["label"]).backward()
                optimizer.step()
            images = torch.stack([val[i]["image"] for i in range(len(val))])
            s = module_token_diversity(model.eval(), images)[1]
            print(f"| {head} | {queries} | {s.attention_cosine:.3f} | {s.distinct_argmax:.1f} of {s.num_maps} "
                  f"({s.num_pixels} px) | {s.token_cosine:.3f} | {time.perf_counter() - start:.0f} |", flush=True)
    print(f"\nvt_resnet18 (C_T = 256), three shapes per 112-px scene, {args.steps} steps of batch "
          f"{args.batch_size}, seed {args.seed}; 32 validation scenes.")


if __name__ == "__main__":
    main()
