"""What operators see: Prometheus metrics (`metrics`), structured logs (`logs`), rate-limited
Kubernetes Events (`events`), the one observation per Mount that feeds all three (`observe`) and
the HTTP servers for probes and scrapes (`health`). Nothing here ever receives a secret value.
"""
