"""R3 as a LangChain tool that an agent calls: ``describe_image_carefully(image, instruction, max_rounds)``.

    python examples/r3_as_tool.py                       # scripted agent, scripted R3 model
    python examples/r3_as_tool.py --engine              # scripted agent, R3 on the shipped model (vLLM)

The agent loop is a small StateGraph: ``agent`` (a chat model with the tool bound) -> ``tools``
(LangGraph's prebuilt ``ToolNode``) -> back to ``agent`` until it answers (``tools_condition``).

The tool-calling LLM here is SCRIPTED (``ScriptedToolCaller``): the tiny scenes VLM cannot call
tools, so a stand-in plays the agent's part (call the tool once with the image named in the request,
then answer with its result). Swap in any tool-calling chat model; the tool does not change.

Image paths come from an LLM and so are UNTRUSTED: the tool reads only image files that resolve
(symlinks and ``..`` included) inside one allowed folder, by default the bundled assets folder.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from r3graph import R3Context, R3Error, build_r3_graph
from r3graph.backends import Backend, BackendKind, make_backend
from r3graph_scenes.assets import ASSETS_DIR

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
MAX_ROUNDS_LIMIT = 3  # an agent must not be able to run up unbounded model calls


def safe_image_path(image: str, allowed_dir: Path) -> Path:
    """The image's real path if it is an image file inside ``allowed_dir``; ToolException otherwise."""
    if not isinstance(image, str) or not image or any(ord(ch) < 0x20 for ch in image) or len(image) > 1024:
        raise ToolException(f"refused: {image!r:.80} is not a file name (empty, too long or control characters)")
    root = allowed_dir.resolve()
    try:
        candidate = Path(image).expanduser()
        resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
        if not resolved.is_relative_to(root):
            raise ToolException(f"refused: {image!r} is outside the allowed image folder")
        if resolved.suffix.lower() not in IMAGE_SUFFIXES or not resolved.is_file():
            raise ToolException(f"refused: {image!r} is not an image file in the allowed folder")
    except (OSError, ValueError, RuntimeError) as exc:  # a symlink loop, a name too long for the OS...
        raise ToolException(f"refused: {image!r:.80} cannot be used as an image path ({exc})") from exc
    # A first check for a clear answer to the agent; R3's image_root walk is what makes it safe
    # (the folder could change between this check and the read).
    return resolved


def make_describe_tool(backend: Backend, allowed_dir: Path = ASSETS_DIR) -> BaseTool:
    """The R3 loop behind a tool. One compiled graph serves every call."""
    graph = build_r3_graph(backend.model, pack=backend.pack).compile()
    root = str(allowed_dir.resolve())

    async def describe_image_carefully(image: str, instruction: str, max_rounds: int = 1) -> str:
        """Describe an image carefully: draft a description, check it against the image with
        self-questions, fix what is wrong (Reason -> Reflect -> Refine).

        `image` is UNTRUSTED (it comes from the model): only image files that resolve inside the
        allowed folder are read; a path that resolves outside it (through `..`, an absolute path or a
        symlink), or that is not a .png/.jpg/.jpeg/.webp file, is refused. `instruction`: what to describe.
        `max_rounds`: refine steps, 0 (one pass) to 3."""
        resolved = safe_image_path(image, allowed_dir)
        context = R3Context(max_rounds=max(0, min(int(max_rounds), MAX_ROUNDS_LIMIT)), allow_remote_images=False,
                            image_root=root)  # R3 checks the folder again itself
        try:
            result = await graph.ainvoke({"instruction": instruction, "images": [str(resolved)]}, context=context)
        except R3Error as exc:
            raise ToolException(f"R3 failed: {exc}") from exc
        return f"{result['output']}\n(R3: {len(result['rounds'])} round(s), stopped: {result['stop_reason']})"

    return StructuredTool.from_function(
        coroutine=describe_image_carefully,
        name="describe_image_carefully",
        description=" ".join(str(describe_image_carefully.__doc__).split())
        + f" The allowed folder is {allowed_dir.name}/; give file names relative to it.",
        handle_tool_error=True,  # refusals go back to the agent as the tool's answer, not a crash
    )


class ScriptedToolCaller(BaseChatModel):
    """SCRIPTED agent LLM (not a model): first turn calls the tool on the image named in the user's
    request; after the tool answers, it replies with the tool's result."""

    max_rounds: int = 2

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolCaller:
        return self

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            return AIMessage(content=f"[scripted agent] The tool says: {last.content}")
        request = next(m for m in reversed(messages) if isinstance(m, HumanMessage))
        text = str(request.content)
        match = re.search(r"[\w./~-]+\.(?:png|jpe?g|webp)", text)
        if match is None:
            return AIMessage(content="[scripted agent] Which image? Name a .png/.jpg/.webp file.")
        call = {"name": "describe_image_carefully", "id": "call_1",
                "args": {"image": match.group(0), "instruction": "Describe the image.", "max_rounds": self.max_rounds}}
        return AIMessage(content="", tool_calls=[call])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages))])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._generate(messages)


def build_agent(llm: BaseChatModel, tools: list[BaseTool]) -> CompiledStateGraph[Any, Any, Any, Any]:
    bound = llm.bind_tools(tools)

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)  # -> "tools" when it called one, else END
    graph.add_edge("tools", "agent")
    return graph.compile()


async def ask(backend: Backend, request: str, allowed_dir: Path = ASSETS_DIR) -> list[BaseMessage]:
    agent = build_agent(ScriptedToolCaller(), [make_describe_tool(backend, allowed_dir)])
    result = await agent.ainvoke({"messages": [HumanMessage(content=request)]})
    return list(result["messages"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--request", default="Please describe example.png carefully.")
    parser.add_argument("--allowed-dir", type=Path, default=ASSETS_DIR, help="the only folder the tool reads")
    parser.add_argument("--engine", action="store_true", help="R3 on the shipped model in an in-process vLLM engine")
    parser.add_argument("--model", help="model directory for --engine (default: the shipped scenes-vlm)")
    parser.add_argument("--base-url", help="R3 on a running vLLM server instead")
    args = parser.parse_args(argv)
    kind: BackendKind = "server" if args.base_url else "engine" if args.engine else "scripted"
    backend = make_backend(kind, base_url=args.base_url, model_dir=args.model)
    print("agent LLM: SCRIPTED tool caller (the tiny VLM cannot call tools)")
    print(f"R3 model inside the tool: {backend.label}")
    try:
        messages = asyncio.run(ask(backend, args.request, args.allowed_dir))
    finally:
        if backend.kind == "engine":
            from r3graph.serving import shutdown_engines

            shutdown_engines()
    for message in messages:
        calls = getattr(message, "tool_calls", None)
        shown = f"tool call {calls[0]['name']}({calls[0]['args']})" if calls else str(message.content)
        print(f"{message.type:>5}: {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
