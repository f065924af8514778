"""Corpus: per-request settings (R3Context as a caller passes it), the HTTP server graph's client
context, and the agent-tool example's arguments."""

from __future__ import annotations

from langchain_core.tools import ToolException

from r3graph import R3ConfigError, R3InputError
from tests.reliability.corpus import GOOD, Case

C = R3ConfigError


def tool_args(image: str) -> object:
    return lambda env: {"image": image, "instruction": "Describe.", "max_rounds": 1}


CASES: list[Case] = [
    # -- malformed context objects ----------------------------------------------------------------------
    Case("context a string", "context", GOOD, "fast", C, "context must be an R3Context or a dict"),
    Case("context an int", "context", GOOD, 42, C, "context must be an R3Context or a dict"),
    Case("context a list", "context", GOOD, [("max_rounds", 1)], C, "context must be an R3Context or a dict"),
    Case("context with a non-string key", "context", GOOD, {1: 2}, C, "keys must be field names"),
    Case("context with a None key", "context", GOOD, {None: 2, "max_rounds": 1}, C, "keys must be field names"),
    Case("context unknown field", "context", GOOD, {"max_round": 2}, C, "max_round"),
    Case("max_rounds negative", "context", GOOD, {"max_rounds": -1}, C, "max_rounds"),
    Case("max_rounds huge", "context", GOOD, {"max_rounds": 10**9}, C, "max_rounds"),
    Case("max_rounds 2^63", "context", GOOD, {"max_rounds": 2**63}, C, "max_rounds"),
    Case("max_rounds fractional", "context", GOOD, {"max_rounds": 2.5}, C, "max_rounds"),
    Case("max_rounds a word", "context", GOOD, {"max_rounds": "three"}, C, "max_rounds"),
    Case("max_rounds None", "context", GOOD, {"max_rounds": None}, C, "max_rounds"),
    Case("num_questions 0", "context", GOOD, {"num_questions": 0}, C, "num_questions"),
    Case("num_questions 1000", "context", GOOD, {"num_questions": 1000}, C, "num_questions"),
    Case("reflect_passes 0", "context", GOOD, {"reflect_passes": 0}, C, "reflect_passes"),
    Case("select unknown", "context", GOOD, {"select": "worst"}, C, "select"),
    Case("call_timeout_s 0", "context", GOOD, {"call_timeout_s": 0}, C, "call_timeout_s"),
    Case("call_timeout_s NaN", "context", GOOD, {"call_timeout_s": float("nan")}, C, "call_timeout_s"),
    Case("call_timeout_s infinite", "context", GOOD, {"call_timeout_s": float("inf")}, C, "call_timeout_s"),
    Case("run_timeout_s negative", "context", GOOD, {"run_timeout_s": -5}, C, "run_timeout_s"),
    Case("image_timeout_s 0", "context", GOOD, {"image_timeout_s": 0}, C, "image_timeout_s"),
    Case("image_timeout_s an hour", "context", GOOD, {"image_timeout_s": 3600}, C, "image_timeout_s"),
    Case("sampling not a dict", "context", GOOD, {"sampling": "hot"}, C, "sampling"),
    Case("sampling unknown stage", "context", GOOD, {"sampling": {"dream": {}}}, C, "sampling.dream"),
    Case("sampling temperature 5", "context", GOOD, {"sampling": {"reason": {"temperature": 5}}}, C,
         "sampling.reason.temperature"),
    Case("sampling max_tokens 0", "context", GOOD, {"sampling": {"judge": {"max_tokens": 0}}}, C,
         "sampling.judge.max_tokens"),
    Case("sampling unknown key", "context", GOOD, {"sampling": {"reason": {"logit_bias": {}}}}, C,
         "sampling.reason.logit_bias"),
    Case("sampling seed 2^64", "context", GOOD, {"sampling": {"reason": {"seed": 2**64}}}, C,
         "sampling.reason.seed"),
    Case("sampling seed -2^63-1", "context", GOOD, {"sampling": {"reason": {"seed": -(2**63) - 1}}}, C,
         "sampling.reason.seed"),
    Case("sampling 10000 stop strings", "context", GOOD, {"sampling": {"reason": {"stop": ["x"] * 10000}}}, C,
         "sampling.reason.stop"),
    Case("sampling a 1 MB stop string", "context", GOOD, {"sampling": {"reason": {"stop": ["x" * 2**20]}}}, C,
         "sampling.reason.stop"),
    Case("image seed 2^64", "context", GOOD, {"image": {"seed": 2**64}}, C, "image.seed"),
    Case("max_image_bytes 0", "context", GOOD, {"max_image_bytes": 0}, C, "max_image_bytes"),
    Case("max_image_pixels over 2^28", "context", GOOD, {"max_image_pixels": 2**30}, C, "max_image_pixels"),
    Case("max_image_side 10", "context", GOOD, {"max_image_side": 10}, C, "max_image_side"),
    Case("max_request_pixels 0", "context", GOOD, {"max_request_pixels": 0}, C, "max_request_pixels"),
    Case("capture_content a word", "context", GOOD, {"capture_content": "maybe"}, C, "capture_content"),
    Case("image_root not a string", "context", GOOD, {"image_root": 5}, C, "image_root"),
    Case("image_root with a NUL byte", "context", GOOD, {"image_root": "/srv/images\x00/x"}, C,
         "image_root: Value error, must be a folder path"),
    Case("image_root empty", "context", GOOD, {"image_root": ""}, C, "image_root"),
    Case("reflect unknown name", "context", GOOD, {"reflect": "telepathy"}, C, "unknown reflect strategy"),
    Case("reflect a number", "context", GOOD, {"reflect": 42}, C, "reflect must be a strategy name"),
    Case("pack unknown", "context", GOOD, {"pack": "klingon"}, C, "unknown prompt pack"),
    Case("pack path traversal", "context", GOOD, {"pack": "../../../../etc/passwd"}, C, "unknown prompt pack"),
    Case("pack a path to a .json file", "context", GOOD, {"pack": "/etc/r3/mine.json"}, C, "unknown prompt pack"),
    Case("review without a checkpointer", "context", GOOD, {"review": True}, C, "needs a checkpointer"),
    # -- the HTTP server graph: what a client may set -------------------------------------------------------
    Case("server: max_rounds over the operator's limit", "server", GOOD, {"max_rounds": 99}, C,
         "refused by this server: max_rounds", "server"),
    Case("server: allow_remote_images from a client", "server", GOOD, {"allow_remote_images": True}, C,
         "refused by this server: allow_remote_images", "server"),
    Case("server: image_root from a client", "server", GOOD, {"image_root": "/"}, C,
         "refused by this server: image_root", "server"),
    Case("server: reflect as an import path", "server", GOOD, {"reflect": "my.module:Strategy"}, C,
         "refused by this server: reflect", "server"),
    Case("server: context a string", "server", GOOD, "fast", C, "context must be a dict", "server"),
    Case("server: file path with no image_root", "server",
         lambda env: {"instruction": "Describe.", "images": ["/etc/hostname"]}, None, R3InputError,
         "file paths are not accepted", "server"),
    # -- the agent-tool example: arguments written by a model -------------------------------------------------
    Case("tool: image name with a NUL byte", "agent tool", tool_args("example.png\x00../../etc/passwd"), None,
         ToolException, "refused: .*not a file name", "tool"),
    Case("tool: image name 5000 characters", "agent tool", tool_args("a" * 5000 + ".png"), None, ToolException,
         "refused: .*not a file name", "tool"),
    Case("tool: image outside its folder", "agent tool", tool_args("../../../../etc/passwd"), None, ToolException,
         "refused: .*outside the allowed image folder", "tool"),
    Case("tool: image a URL", "agent tool", tool_args("http://169.254.169.254/latest"), None, ToolException,
         "refused:", "tool"),
]
