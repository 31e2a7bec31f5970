"""Are a fresh VT-ResNet's visual tokens distinct? Every module, for each kind of recurrent query.

    python benchmarks/token_diversity.py                      # 224×224 noise, eval and train mode
    python benchmarks/token_diversity.py --models vt_resnet18 --modes train --batch 8 --queries tokens both

For each model, query kind and module it prints `vt.analysis.TokenDiversity`: the mean pairwise
cosine of the tokenizer's attention maps, how many different pixels they peak on, the mean
pairwise cosine of the module's output tokens and their effective rank. The query kinds are the
recurrent tokenizer's ``queries`` (`vt.nn.tokenizer`): ``tokens`` (Eq. 3, normalised),
``centred`` and ``both`` (the default). ``eval``: BatchNorm with its initial running
statistics (identity); ``train``: BatchNorm with batch statistics, what the first training step
sees. Trained models: ``benchmarks/accuracy.py`` reports the same numbers after training.

``--diagnose`` follows the second module's queries step by step (docs/method.md §8): the pairwise
cosine of the first module's tokens before and after its transformer, how much longer their mean
is than their spread around it, and the pairwise cosine of ``T_in W_{T->R}`` as it is, after the
query LayerNorm, and centred.
"""

from __future__ import annotations

import argparse

import torch

from vt.analysis import mean_pairwise_cosine, module_token_diversity
from vt.models import create_model
from vt.nn.tokenizer import QUERY_KINDS

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--modes", nargs="+", choices=["eval", "train"], default=["eval", "train"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", nargs="+", choices=QUERY_KINDS, default=list(QUERY_KINDS))
    parser.add_argument("--diagnose", action="store_true", help="the second module's queries, step by step")
    args = parser.parse_args(argv)

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
    print("| model | queries | BN | module | map cosine | distinct argmax | token cosine | effective rank |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        for queries in args.queries:
            for mode in args.modes:
                torch.manual_seed(args.seed)
                model = create_model(name, queries=queries).train(mode == "train")
                for i, s in enumerate(module_token_diversity(model, images), 1):
                    print(f"| {name} | {queries} | {mode} | {i} "
                          f"| {s.attention_cosine:.3f} | {s.distinct_argmax:.1f} of {s.num_maps} ({s.num_pixels} px) "
                          f"| {s.token_cosine:.3f} | {s.effective_rank:.2f} |", flush=True)
    print(f"\n{args.batch} images of N(0, 1) noise at {args.image_size}×{args.image_size}, seed {args.seed}; "
          "means over the images. Module 1 has a filter tokenizer (the query kind does not apply).")


if __name__ == "__main__":
    main()
