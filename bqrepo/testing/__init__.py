"""Test support that users of bqrepo can reuse: the local BigQuery stand-in
(:mod:`bqrepo.testing.standin`) and a proxy that makes it misbehave like real
BigQuery (:mod:`bqrepo.testing.faults`)."""
