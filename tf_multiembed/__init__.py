"""tf-multiembed."""
