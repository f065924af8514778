"""Limits that the input checks, the in-process engine and the vLLM server must agree on.

A request the checks accept must not be refused later by the engine (vLLM's
``limit_mm_per_prompt``), after model calls were already made; so every one of them reads this.
"""

MAX_IMAGES_PER_REQUEST = 8
