"""Training: the proxy model and its training loop, the proxy swarm (local pool, Ray, Slurm),
the large runs (checkpoints, data parallel), scoring a trained model, and the machine store that
keeps finished work across runs.

May import the shared helpers (regmix.config, files, tables, progress, ...) and regmix.data.
"""
