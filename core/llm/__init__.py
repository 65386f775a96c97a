"""The explainer language models: the from-scratch art expert, the GPT-2 hooks, tokenizers, training, generation."""
