"""Sentiment (sequence → one): text in, a 1-5 rating and a positive/negative score out."""
