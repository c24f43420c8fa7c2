"""Thin stage entry points: `python -m stages.<name>` reads params.yaml and calls regmix."""
