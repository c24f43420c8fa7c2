"""Corpus sources, tokeniser and token shards."""
