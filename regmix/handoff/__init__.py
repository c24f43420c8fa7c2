"""`regmix export`: a compared mixture handed to the trainers pre-training teams already run.

planning.py reads the compared mixture and plans it: the token budget and repeat cap, each
domain's planned tokens and epochs, and where the trainer reads each domain (prefixes).
formats.py writes the plan in a trainer's format: Megatron-LM / NeMo, OLMo-core, litdata or
Hugging Face datasets. The `regmix export` command (regmix.cli) and `regmix.api.export` use both.
"""
