"""Backends: an etcd-shaped KV contract, its implementations, and the store over it."""
