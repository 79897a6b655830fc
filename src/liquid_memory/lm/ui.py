"""``liquid-memory lm ui``: a small Gradio page (like the seed's) to try a checkpoint; 127.0.0.1 by default."""

from __future__ import annotations

import os

from liquid_memory.lm.chat import Generator
from liquid_memory.lm.errors import LMError


def build_app(gen: Generator):
    """The Blocks app: prompt, sampling controls, streamed completion; bad input shows as a Gradio error."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    import gradio as gr

    def complete(prompt: str, max_new_tokens: float, temperature: float, top_k: float):
        text = ""
        try:
            for piece in gen.reply(
                prompt, max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_k=int(top_k) or None
            ):
                text += piece
                yield text
        except LMError as err:
            raise gr.Error(err.detail + (f" — {err.remedy}" if err.remedy else "")) from None
        if not text:
            yield "(the model ended the text at once)"

    with gr.Blocks(title="LiquidLM") as app:
        gr.Markdown(f"## LiquidLM\n{gen.describe()} · prompt limit {gen.max_prompt_tokens} tokens")
        prompt = gr.Textbox(label="Prompt", lines=4, elem_id="prompt", placeholder="Start a text to continue…")
        with gr.Row():
            max_new = gr.Slider(1, 1000, value=120, step=1, label="Max new tokens", elem_id="max-new-tokens")
            temperature = gr.Slider(
                0.0, 2.0, value=0.8, step=0.05, label="Temperature (0 = greedy)", elem_id="temperature"
            )
            top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k (0 = off)")
        button = gr.Button("Generate", variant="primary", elem_id="generate")
        output = gr.Textbox(label="Completion", lines=10, elem_id="completion", interactive=False)
        button.click(complete, inputs=[prompt, max_new, temperature, top_k], outputs=output)
        prompt.submit(complete, inputs=[prompt, max_new, temperature, top_k], outputs=output)
    return app


def serve(gen: Generator, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Serve until interrupted; ``share`` stays off (no tunnel) unless asked for."""
    app = build_app(gen)
    app.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, share=share, show_error=True)
