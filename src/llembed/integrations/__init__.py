"""Bridges to other tools of the field (sentence-transformers, mteb, Ray); they use only the public API."""
