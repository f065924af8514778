"""The in-process engine must produce what the model produces: greedy tokens through ChatVLLMEngine
(LangChain messages -> vLLM's chat renderer) equal transformers' on the same image and prompt.

This caught a missing assistant-turn opening (add_generation_prompt) that left the model continuing
the user's turn: every engine answer was wrong while a vLLM server's were right.
"""

from __future__ import annotations

from typing import Any

import pytest

from r3graph import load_pack
from r3graph.messages import stage_messages
from r3graph_scenes.world import generate_scenes

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def reference(model_dir: str) -> Any:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    torch.set_num_threads(2)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()

    def generate(image: Any, text: str, max_new_tokens: int) -> str:
        msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
        prompt = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[prompt], images=[[image]], return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
        return str(processor.tokenizer.decode(out[0, enc.input_ids.shape[1]:], skip_special_tokens=True)).strip()

    return generate


async def test_engine_greedy_output_equals_transformers(engine: Any, model_dir: str, reference: Any) -> None:
    import base64
    import io

    from r3graph_scenes.world import render

    if "scenes" not in model_dir:
        pytest.skip("the parity check needs the shipped scenes-vlm (random weights give noise)")
    pack = load_pack("scenes")
    mismatches = []
    for scene in generate_scenes(777, 2):
        image = render(scene)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        for text in (pack.render("reason"), pack.render("answer", question="is there a red circle?"),
                     pack.render("judge", draft="a large red circle .")):
            reply = await engine.ainvoke(stage_messages(pack, [url], text), temperature=0.0, max_tokens=24)
            expected = reference(image, text, 24)
            if str(reply.content).strip() != expected:
                mismatches.append((text, reply.content, expected))
    assert not mismatches, mismatches
