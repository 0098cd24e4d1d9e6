"""Test support that users of bqrepo can reuse: the local BigQuery stand-in."""
