"""Graph builders."""

from r3graph.graphs.r3 import build_r3_graph, default_retry_policy

__all__ = ["build_r3_graph", "default_retry_policy"]
