"""Choosing the mixture: sampling the swarm's mixtures, the regression from mixture to target,
the search over simulated mixtures, the decision and its steps, active rounds, the proxies' seed
noise, verify's check on fresh seeds, the cheap baselines and the compared-mixture files.

May import the shared helpers, regmix.data and regmix.train.
"""
