"""``lm chat``: streams the model's own greedy continuation; clear errors for bad prompts and checkpoints."""

from __future__ import annotations

import io

import torch

from liquid_memory.cli import main
from liquid_memory.lm.chat import Generator, chat_loop
from liquid_memory.lm.checkpoint import load_checkpoint, save_checkpoint
from liquid_memory.lm.tokenizer import StreamDecoder, TextCodec


def _cli(capsys, args) -> tuple[int, str, str]:
    code = main(args)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


def test_chat_streams_the_greedy_continuation(tiny_run, capsys):
    ckpt = tiny_run / "checkpoint.pt"
    code, out, _ = _cli(capsys, ["lm", "chat", "--checkpoint", str(ckpt), "--backend", "chunked", "--prompt",
                                 "The river", "--max-new-tokens", "12", "--temperature", "0"])  # fmt: skip
    assert code == 0
    gen = Generator(ckpt, backend="chunked")
    ids = torch.tensor([gen.codec.encode("The river")])
    continuation = gen.model.generate(ids, 12, temperature=0)[0, ids.shape[1] :].tolist()
    if gen.codec.eos_id in continuation:
        continuation = continuation[: continuation.index(gen.codec.eos_id)]
    assert out == gen.codec.decode(continuation) + "\n"
    assert out.strip()  # a trained word-salad model answers with letters, not nothing


def test_chat_reads_prompts_from_stdin_and_survives_a_bad_one(tiny_run, capsys):
    gen = Generator(tiny_run / "checkpoint.pt", backend="chunked", max_prompt_tokens=8)
    stdin = io.StringIO("the stone\n" + "word " * 40 + "\nthe road\n\n")
    stdout = io.StringIO()
    assert chat_loop(gen, prompt=None, stdin=stdin, stdout=stdout, max_new_tokens=4, temperature=0) == 0
    assert len(stdout.getvalue().splitlines()) == 2
    assert "more than the limit of 8" in capsys.readouterr().err


def test_bad_prompts_and_checkpoints_are_clear_errors(tiny_run, tmp_path, capsys):
    ckpt = str(tiny_run / "checkpoint.pt")
    base = ["lm", "chat", "--backend", "chunked"]
    code, _, err = _cli(capsys, base + ["--checkpoint", ckpt, "--prompt", "word " * 100])
    assert code == 2 and "[LM604]" in err and "more than the limit of 32" in err
    code, _, err = _cli(capsys, base + ["--checkpoint", ckpt, "--prompt", "   "])
    assert code == 2 and "[LM604]" in err and "empty" in err
    code, _, err = _cli(capsys, base + ["--checkpoint", str(tmp_path / "none.pt"), "--prompt", "x"])
    assert code == 2 and "[LM602]" in err and "does not exist" in err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    code, _, err = _cli(capsys, base + ["--checkpoint", str(tmp_path / "junk.pt"), "--prompt", "x"])
    assert code == 2 and "[LM602]" in err and "not a readable checkpoint" in err
    other = load_checkpoint(ckpt)  # weights of one configuration under the label of another
    other.config.d_model = 64
    save_checkpoint(tmp_path / "other.pt", other)
    code, _, err = _cli(capsys, base + ["--checkpoint", str(tmp_path / "other.pt"), "--prompt", "x"])
    assert code == 2 and "[LM602]" in err and "do not fit" in err


def test_stream_decoder_reassembles_multibyte_text():
    codec = TextCodec.train(["plain words and ümlauts, 日本語, emoji 🙂 " * 20], vocab_size=300)
    text = "ümlauts 日本語 🙂 and words"
    decoder = StreamDecoder(codec)
    pieces = [decoder.push(token) for token in codec.encode(text)]
    assert "".join(pieces) == text
    assert all("\ufffd" not in piece for piece in pieces)
