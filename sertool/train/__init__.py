"""Training from the feature store: data loading, the loop, schedules and metrics."""
