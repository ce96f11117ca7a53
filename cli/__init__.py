"""annkit command layer (installed as annkit.cli)."""
