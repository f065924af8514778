"""A learned image generator for the scene world: an image tokenizer (fsq) and a small causal LM over its codes."""
