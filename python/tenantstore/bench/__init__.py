"""Measurement tools behind `tenantstore bench ...`: the scale harness."""
