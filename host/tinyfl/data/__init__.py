"""Datasets and partitions for the fleet: real data in, per-node data blobs out."""
