"""The example campaigns, places, contact policy, lists and stories: what `touchpoint demo` runs and
the docs describe. Data only; shipped with the package so the demo runs outside a checkout."""
