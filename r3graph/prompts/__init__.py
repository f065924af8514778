"""Prompts as data: a prompt pack maps every R3 stage to a template.

Packs live as JSON files in ``packs/`` (one per model family) or are built by the user. Every stage
renders to ONE user-text string; :mod:`r3graph.messages` places it after the shared system text and
the images, so that what all stages share comes first and a vLLM prefix cache can reuse it.
"""

from r3graph.prompts.pack import STAGE_FIELDS, PromptPack, available_packs, load_named_pack, load_pack

__all__ = ["STAGE_FIELDS", "PromptPack", "available_packs", "load_named_pack", "load_pack"]
