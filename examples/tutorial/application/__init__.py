"""The container component of the tutorial application."""
