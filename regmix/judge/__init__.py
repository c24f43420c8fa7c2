"""Judging the choice at scale: scoring the large runs, the comparison of every compared mixture
with intervals and tests, the report and the headline metrics.

May import the shared helpers, regmix.data, regmix.train and regmix.choose.
"""
