"""Tests of the examples that are more than scripts (servers driven over HTTP)."""
