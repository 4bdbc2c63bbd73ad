"""Named-entity recognition (sequence → sequence): text in, tokens, BIO tags and entity spans out."""
