"""Video (sequence → one): a variable-length clip of frames in, an activity label out."""
