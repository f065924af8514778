"""MODEL_CARD.md of scenes-imagegen, written from training_log.json (so the card's figures are the measured ones)."""

from __future__ import annotations

from pathlib import Path


def _fmt(r: dict) -> str:
    return f"{r['rate']:.3f} ({r['k']}/{r['n']}, 95% CI {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f})"


def _table(held: dict) -> list[str]:
    modes = [m for m in ("greedy", "sampled", "tokenizer_ceiling") if m in held]
    lines = ["| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    lines.append("| generation, overall exact | "
                 + " | ".join(_fmt(held[m]["generation"]["overall"]) for m in modes) + " |")
    for cat in held[modes[0]]["generation"]["per_category"]:
        lines.append(f"| &nbsp; {cat} | "
                     + " | ".join(_fmt(held[m]["generation"]["per_category"][cat]) for m in modes) + " |")
    lines.append("| edit: fixes the painting | " + " | ".join(_fmt(held[m]["edit"]["fixed"]) for m in modes) + " |")
    lines.append("| edit: reads as the exact editor's result | "
                 + " | ".join(_fmt(held[m]["edit"]["target"]) for m in modes) + " |")
    return lines


def threads_line(result: dict) -> str:
    later = result.get("threads_later") or {}
    if later.get("from_step") is None:
        return f"{result['torch_threads']} torch threads"
    return (f"{result['torch_threads']} torch thread(s) beside the understanding model's training, then"
            f" {later['threads']} from step {later['from_step']}; 1 and 2 threads give bit-identical steps here")


def write_card(out: Path, result: dict) -> None:
    a, d = result["args"], result["data"]
    held = result["held_out"]
    text = [
        "# scenes-imagegen",
        "",
        "A tiny text-to-image and image-editing model trained from scratch, on CPU, for r3graph's synthetic",
        "shapes world (`scenes/r3graph_scenes/`). **It knows only that world**: 64x64 images of 1-4 coloured shapes.",
        "It is a plain Llama (`LlamaForCausalLM`, so vLLM serves it) over a word-level vocabulary plus one token",
        "per image code; the image tokenizer in `tokenizer/` (FSQ, 8x8 codes, `scenes/r3graph_scenes/imagegen/fsq.py`)",
        "turns the 64 codes it writes into pixels. `r3graph.json` gives the prompt formats and code-token ids.",
        "",
        "- generation: `<bos> <gen> {prompt} <boi>` -> 64 codes, `<eoi>`",
        "- edit: `<bos> <edit> <boi> {64 source codes} <eoi> {one edit sentence} <boi>` -> 64 codes, `<eoi>`",
        "",
        "Decode with sampling restricted to the code tokens (ids `code_token_offset` .. `+codebook_size`) for",
        "exactly 64 tokens.",
        "",
        "## Training",
        "",
        f"Command: `{result['command']}` (seed {a['seed']}, data seed {d['seed']}; {threads_line(result)}).",
        "Trained by `make train` (`python -m r3graph_scenes.train_all`) beside scenes-vlm and after the tokenizer;"
        " `../training_schedule.json` records when each model trained. The schedule runs on steps, so the same"
        " command gives the same weights on any machine with this CPU's kernels.",
        f"{result['parameters']:,} parameters ({a['layers']} layers, hidden {a['hidden']}, head size 64, MLP"
        f" {a['intermediate']}); {result['steps_done']} steps of batch {a['batch_size']}"
        + (f" (STOPPED EARLY by --max-minutes {a['max_minutes']}, before the {a['steps']} steps the schedule is for)"
           if result["stopped_by"] == "time" else " (the learning-rate schedule runs on steps alone)")
        + f"; edit share {a['edit_share']}, AdamW peak lr {a['lr']}, cosine to 10%.",
        f"Wall time: {result['train_minutes']} min training (of which {result['setup_seconds']} s loading the"
        " examples and encoding their images),"
        f" {result['total_minutes']} min with the held-out evaluation, on a 2-core machine.",
        "",
        f"Data (`scenes/r3graph_scenes/imagegen/data.py`): {d['generation_sequences']:,} generation pairs (world captions"  # noqa: E501
        f" of {d['captions']:,} random scenes, half with sizes dropped; GenEval-template prompts laid out by the"
        " painter, unsized and sized) and"
        f" {d['edit_sequences']:,} edit triples (a painting with one mistake and the judge's fixing sentence;"
        " random change/remove/add/relation edits). Loss on the target tokens only.",
        "",
        "**Held out**: every prompt `geneval_prompts(600)` can draw at its default seed is excluded from training",
        "by content, not only by string: its objects (and relation) never appear in the GenEval template, with",
        "or without sizes. That holds out ALL of single_object, two_object and counting in that template; their",
        "content is seen only in the world's caption grammar (`a large red circle .`). The benchmark therefore",
        "measures the move from caption grammar to GenEval phrasing as well as drawing.",
        "",
        "## Held-out scores",
        "",
        f"{held['prompts']}, one image per prompt; edits: {held['edits']} (seed 7707, half world captions, half",
        "GenEval prompts laid out). Every image is scored from its PIXELS by the scene world's detector",
        "(`scenes/r3graph_scenes/detector.py`), never from a stored scene. Sampled: temperature 1, no top-k, seed 9001.",  # noqa: E501
        "The ceiling column scores right images passed through the image tokenizer (what the detector can read",
        "after encode+decode: no generator using this tokenizer can do better).",
        "",
        *_table(held),
        "",
        f"Untrained model of the same architecture (chance): generation exact greedy"
        f" {_fmt(held['untrained_baseline']['greedy']['overall'])}, sampled"
        f" {_fmt(held['untrained_baseline']['sampled']['overall'])}. Returning the painting"
        f" unchanged fixes {_fmt(held['copy_source_baseline']['edit']['fixed'])} of the edits.",
        "",
        "Edit columns: *fixes* = the edited image satisfies the prompt the painting was for; *exact editor's",
        "result* = same objects, sizes and pairwise relations as `painter.apply_edit` gives (for `add` that is",
        "one of many right places, so this is a lower bound).",
        "",
        "Reproduce: `python -m r3graph_scenes.imagegen.evaluate_generator --model scenes/r3graph_scenes/models/scenes-imagegen`.",  # noqa: E501
        "",
    ]
    (out / "MODEL_CARD.md").write_text("\n".join(text))
