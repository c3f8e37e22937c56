"""The completion engine: graph, retrieval, the GNN and the linear scorer, training, scoring, model directories."""
