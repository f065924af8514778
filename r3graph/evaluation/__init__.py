"""Measuring whether the loop helps: the quality harness (``bench/quality.py``) and its statistics."""
