"""Community Edge Gateway service."""
