"""touchpoint control plane and the `touchpoint` command line."""
