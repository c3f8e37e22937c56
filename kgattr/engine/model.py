"""The scorer: a heterogeneous GNN whose product representation fuses text with graph evidence.

Layer 0 (value graph): value embeddings refined along PMI-weighted co-occurrence edges.
Layer 1 (value, category -> product): a product's text (BERT projection + tf-idf embedding bag) is
the root; its visible attribute values and its category path send messages (GraphSAGE, mean).
Layer 2 (product -> product): similar products found by FAISS send their layer-1 states (weighted).
Decoder: one logit per candidate value, plus learned per-attribute weights on candidate features (neighbours'
votes, among them those of the products listed next to it in SKU order; values stated in the text).
Its scores are mixed with those of :class:`~kgattr.engine.linear.LinearTextScorer` per attribute after training.
"""
from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn
from torch_geometric.nn import GraphConv, HeteroConv, SAGEConv


class FusionGNN(nn.Module):
    """Scores every candidate value of every attribute for a batch of products.

    Args:
        text_dim: width of the BERT embedding.
        lexical_size: tf-idf vocabulary size.
        num_categories, num_values, num_attributes: node counts of the catalog graph.
        value_attribute: (num_values,) attribute index of each value node.
        hidden_channels: width of every hidden state.
        num_features: candidate features per value (see :meth:`forward`).
        dropout: on inputs and hidden states, during training only.
    """

    def __init__(self, *, text_dim: int, lexical_size: int, num_categories: int, num_values: int,
                 num_attributes: int, value_attribute: list[int], hidden_channels: int = 256,
                 num_features: int = 8, dropout: float = 0.2):
        super().__init__()
        h = hidden_channels
        self.config = dict(text_dim=text_dim, lexical_size=lexical_size, num_categories=num_categories,
                           num_values=num_values, num_attributes=num_attributes,
                           value_attribute=list(value_attribute), hidden_channels=h, num_features=num_features,
                           dropout=dropout)
        self.text = nn.Linear(text_dim, h)
        # sparse gradients: a batch touches a few thousand of the vocabulary's rows
        self.lexical = nn.EmbeddingBag(max(lexical_size, 1), h, mode="sum", sparse=True)
        self.category = nn.Embedding(max(num_categories, 1), h)
        self.value = nn.Embedding(num_values, h)
        self.value_conv = GraphConv(h, h)
        # value and category nodes are only sources here; PyG warns about that, which is intended
        warnings.filterwarnings("ignore", message="There exist node types", category=UserWarning)
        self.layer1 = HeteroConv({
            ("value", "rev_has_value", "product"): SAGEConv((h, h), h),
            ("category", "rev_in", "product"): SAGEConv((h, h), h),
        }, aggr="sum")
        self.layer2 = GraphConv((h, h), h)
        self.head = nn.Linear(h, h)
        self.value_out = nn.Linear(h, h)
        self.out = nn.Embedding(num_values, h)       # free output embedding beside the graph-derived one
        self.bias = nn.Parameter(torch.zeros(num_values))
        self.feature_weight = nn.Parameter(torch.ones(num_attributes, num_features))
        self.dropout = nn.Dropout(dropout)
        for emb in (self.lexical, self.category, self.value, self.out):
            nn.init.normal_(emb.weight, std=0.1)      # unit-variance rows would make 256-d dot products explode
        self.register_buffer("value_attribute", torch.tensor(value_attribute, dtype=torch.long), persistent=False)

    def __repr__(self) -> str:
        c = self.config
        return (f"FusionGNN(text_dim={c['text_dim']}, lexical_size={c['lexical_size']}, "
                f"num_values={c['num_values']}, hidden_channels={c['hidden_channels']})")

    def get_config(self) -> dict:
        return dict(self.config)

    def value_states(self, cooccurs: Tensor, pmi: Tensor) -> Tensor:
        """(num_values, h): value embeddings after one PMI-weighted co-occurrence hop."""
        x = self.value.weight
        return x + torch.relu(self.value_conv(x, cooccurs, pmi))

    def encode(self, x_value: Tensor, text: Tensor, lexical: tuple[Tensor, Tensor, Tensor],
               has_value: Tensor, in_category: Tensor) -> Tensor:
        """(n, h) layer-1 product states.

        Args:
            x_value: (num_values, h) from :meth:`value_states`.
            text: (n, text_dim) BERT embeddings of the n products.
            lexical: (term ids, bag offsets, tf-idf weights) of the n products.
            has_value: (2, E) visible edges, value index -> local product index.
            in_category: (2, K) category index -> local product index (every level of the path).
        """
        ids, offsets, weights = lexical
        root = torch.relu(self.text(self.dropout(text)) + self.lexical(ids, offsets, per_sample_weights=weights))
        root = self.dropout(root)
        out = self.layer1(
            {"product": root, "value": x_value, "category": self.category.weight},
            {("value", "rev_has_value", "product"): has_value, ("category", "rev_in", "product"): in_category},
        )["product"]
        return root + torch.relu(out)

    def forward(self, x_value: Tensor, h1: Tensor, similar: Tensor, similar_weight: Tensor,
                num_targets: int, features: Tensor) -> Tensor:
        """(num_targets, num_values) logits for the first ``num_targets`` products of ``h1``.

        Args:
            similar: (2, S) edges, neighbour row of ``h1`` -> target row (< num_targets).
            similar_weight: (S,) edge weights, summing to 1 per target.
            features: (num_targets, num_values, num_features) per candidate value: vote shares of similar
                products (similarity-sharpened, plain), of products listed nearby (1/distance, 1/distance²; among
                all products, then among those of the same leaf category), stated in the title, in the description.
        """
        h2 = h1[:num_targets] + torch.relu(self.layer2((h1, h1[:num_targets]), similar, similar_weight))
        q = self.head(self.dropout(h2))                                   # (t, h)
        logits = q @ (self.value_out(x_value) + self.out.weight).T + self.bias
        return logits + (features * self.feature_weight[self.value_attribute]).sum(-1)
