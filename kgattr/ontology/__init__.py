"""The ontology and its rules: Turtle and SHACL, rule checking, mining, authoring, audits."""
