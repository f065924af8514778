"""A small world of coloured shapes with exactly known truth: scenes, captions, metrics, questions, edits.

Quick start::

    from r3graph_scenes import generate_scenes, render, caption, score_caption
    scene = generate_scenes(seed=0, n=1)[0]
    render(scene).save("scene.png")          # 64x64 model input; render(scene, 256) for people
    text = caption(scene)                     # "a large red circle and a small blue square . ..."
    score_caption(text, scene).exact_match   # True
"""

from r3graph_scenes.edits import ERROR_KINDS, corrupt_caption, edit_instruction
from r3graph_scenes.language import (
    ObjectRef,
    ParsedCaption,
    ParsedObject,
    ParsedRelation,
    caption,
    format_caption,
    parse_caption,
    scene_content,
)
from r3graph_scenes.metrics import CaptionScore, aggregate, score_caption
from r3graph_scenes.questions import (
    FAMILIES,
    Question,
    answer_yes_no,
    questions_for,
    verify_answer,
    yes_no_questions_for_caption,
)
from r3graph_scenes.world import (
    COLOURS,
    RELATIONS,
    SHAPES,
    SIZES,
    Relation,
    Scene,
    SceneObject,
    generate_scene,
    generate_scenes,
    render,
)

__all__ = [
    "COLOURS",
    "ERROR_KINDS",
    "FAMILIES",
    "RELATIONS",
    "SHAPES",
    "SIZES",
    "CaptionScore",
    "ObjectRef",
    "ParsedCaption",
    "ParsedObject",
    "ParsedRelation",
    "Question",
    "Relation",
    "Scene",
    "SceneObject",
    "aggregate",
    "answer_yes_no",
    "caption",
    "corrupt_caption",
    "edit_instruction",
    "format_caption",
    "generate_scene",
    "generate_scenes",
    "parse_caption",
    "questions_for",
    "render",
    "scene_content",
    "score_caption",
    "verify_answer",
    "yes_no_questions_for_caption",
]
