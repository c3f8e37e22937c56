"""kgattr: complete missing product attributes with an ontology, a co-occurrence graph, a GNN fused with
BERT text embeddings, FAISS retrieval and SHACL rules."""
from .completer import AttributeCompleter
from .engine.completion import Completion, ProductCompletion
from .exceptions import KgattrError
from .io.catalog import Catalog, Product, read_catalog
from .io.writers import write_catalog
from .ontology.ontology import Ontology
from .ontology.rules import RuleSet

__version__ = "0.1.0"
__all__ = ["AttributeCompleter", "Catalog", "Completion", "KgattrError", "Ontology", "Product",
           "ProductCompletion", "RuleSet", "read_catalog", "write_catalog", "__version__"]
