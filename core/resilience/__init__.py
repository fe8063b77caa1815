"""Bounded, fair work against upstreams: per-mount deadlines (`deadline`), retries with
backoff and a budget (`retry`), rate limits (`ratelimit`), the identity-scoped value cache
(`cache`), single-flight de-duplication (`singleflight`) and the fetcher that combines them for
every object of a Mount (`fetcher`).
"""
