"""annkit.bench."""
