"""Data: corpus sources, the tokeniser, token shards, evaluation sets and downstream task files,
and the embedded demo corpus.

May import only the shared helpers (regmix.config, files, tables, progress, ...).
"""
