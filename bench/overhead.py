"""Graph overhead: a full R3 run (3 rounds, self_questions k=3) through the LangGraph graph with
tracing on, against the same calls written as a plain asyncio loop, both on a zero-latency model.

    .venv/bin/python bench/overhead.py [--runs 200]

Targets (issue 2): <= 5 ms per run and <= 1.5x the plain loop. Prints the figures and writes
bench/results/overhead.json and overhead.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from r3graph import R3Context, build_r3_graph, load_pack
from r3graph.messages import stage_messages

RESULTS = Path(__file__).parent / "results"
ROUNDS = 3
K = 3
PNG = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


class InstantModel(BaseChatModel):
    """Replies at once; never passes so every run takes all rounds."""

    @property
    def _llm_type(self) -> str:
        return "instant"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        text = messages[-1].content[-1]["text"]  # type: ignore[index]
        if "yes/no questions" in text:
            reply = "is it red?\nis it big?\nis it round?"
        elif text.startswith("Look at the image and answer"):
            reply = "no"
        else:
            reply = f"draft {time.perf_counter_ns()}"
        usage = {"input_tokens": 10, "output_tokens": 3, "total_tokens": 13}
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply, usage_metadata=usage))])

    async def _agenerate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                         **kw: Any) -> ChatResult:
        return self._generate(messages, stop, **kw)


async def plain_loop(model: InstantModel) -> str:
    """The same model calls, hand-written: what the graph's overhead is measured against."""
    pack = load_pack("default")
    instruction = "Describe the image."

    async def ask(text: str) -> str:
        reply = await model.ainvoke(stage_messages(pack, [PNG], text), temperature=0.0, max_tokens=64)
        return str(reply.content)

    draft = await ask(pack.render("reason", instruction=instruction))
    for _ in range(ROUNDS):
        questions = (await ask(pack.render("questions", instruction=instruction, draft=draft, k=K))).splitlines()
        answers = await asyncio.gather(
            *(ask(pack.render("answer", instruction=instruction, question=q)) for q in questions)
        )
        findings = pack.render_findings([(q, a, a.startswith("yes")) for q, a in zip(questions, answers, strict=True)])
        draft = await ask(pack.render("refine", instruction=instruction, draft=draft, findings=findings))
    return draft


async def measure(runs: int) -> dict[str, Any]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    model = InstantModel()
    graph = build_r3_graph(model).compile()
    context = R3Context(max_rounds=ROUNDS, num_questions=K)
    inputs = {"instruction": "Describe the image.", "images": [PNG]}

    async def graph_run() -> None:
        result = await graph.ainvoke(inputs, context=context)
        assert len(result["rounds"]) == ROUNDS + 1

    for _ in range(10):  # warm-up: imports, caches, first compile of pydantic validators
        await graph_run()
        await plain_loop(model)
    exporter.clear()
    graph_times, plain_times = [], []
    for _ in range(runs):  # interleaved so machine noise hits both alike
        t0 = time.perf_counter()
        await graph_run()
        graph_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await plain_loop(model)
        plain_times.append(time.perf_counter() - t0)
    spans_per_run = len(exporter.get_finished_spans()) / runs
    graph_ms = statistics.median(graph_times) * 1000
    plain_ms = statistics.median(plain_times) * 1000
    return {
        "runs": runs,
        "rounds": ROUNDS,
        "questions": K,
        "model_calls_per_run": 1 + ROUNDS * (2 + K),
        "spans_per_run": spans_per_run,
        "graph_ms_median": round(graph_ms, 3),
        "graph_ms_p90": round(sorted(graph_times)[int(runs * 0.9)] * 1000, 3),
        "plain_ms_median": round(plain_ms, 3),
        "overhead_ms_per_run": round(graph_ms - plain_ms, 3),
        "ratio": round(graph_ms / plain_ms, 3),
        "target_ms": 5.0,
        "target_ratio": 1.5,
        "machine": f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}".strip(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.runs))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overhead.json").write_text(json.dumps(figures, indent=2) + "\n")
    rows = "\n".join(f"| {k} | {v} |" for k, v in figures.items())
    (RESULTS / "overhead.md").write_text(
        "# Graph overhead (bench/overhead.py)\n\n"
        f"Zero-latency model, {ROUNDS} rounds of self_questions (k={K}), tracing on (SDK, in-memory exporter).\n\n"
        f"| figure | value |\n| --- | --- |\n{rows}\n"
    )
    for key, value in figures.items():
        print(f"{key:>22}: {value}")
    ok_ms = figures["graph_ms_median"] <= figures["target_ms"]
    ok_ratio = figures["ratio"] <= figures["target_ratio"]
    verdict = {True: "met", False: "MISSED"}
    print(f"target <= 5 ms per run: {verdict[ok_ms]}; target <= 1.5x plain: {verdict[ok_ratio]}")


if __name__ == "__main__":
    main()
