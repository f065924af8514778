"""World-free statistics for measuring whether the loop helps (:mod:`r3graph.evaluation.stats`: paired
bootstrap, binomial bounds). The harnesses that score the scene world live in ``r3graph_scenes.evaluation``."""
