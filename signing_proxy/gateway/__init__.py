"""The trading gateway: risk rules, halt, journal, admin API (issue 13; empty so far)."""
