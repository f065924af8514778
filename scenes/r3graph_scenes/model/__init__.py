"""The shipped tiny scenes VLM: tokenizer, architecture, multi-task data, training, evaluation, parity."""
