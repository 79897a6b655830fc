"""Costs of licensing: the licensed path's checks, the per-call re-check, a release install's first call."""
