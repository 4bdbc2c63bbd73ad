"""Translation (sequence → sequence): Spanish text in, English text and its score out."""
