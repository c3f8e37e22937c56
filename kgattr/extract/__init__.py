"""Values read in a product's text: span extraction and the token tagger."""
