"""Bundled real datasets (installed as annkit._bundled); see README.md here."""
