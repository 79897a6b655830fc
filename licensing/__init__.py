"""Vendor side of Liquid Memory licensing: keys, licences, revocation, releases (CLI ``lm-vendor``)."""
