"""NATS plumbing: topology, client tuning, publishing, consuming, settling, KV state, timers."""
