"""Text features of a product: BERT embeddings (cached) and lexical features."""
