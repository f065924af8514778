"""Measuring whether the loop helps on the scene world: the quality harnesses of ``bench/quality.py``
(text) and ``bench/image_quality.py`` (images). The world-free statistics stay in the core
(:mod:`r3graph.evaluation.stats`)."""
