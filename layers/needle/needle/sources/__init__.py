"""EDR sources: one subpackage per vendor API (client + normalizer), shared HTTP plumbing."""
