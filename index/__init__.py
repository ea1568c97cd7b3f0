"""The index stage: embed passages, store them in FAISS, and retrieve them for questions."""
