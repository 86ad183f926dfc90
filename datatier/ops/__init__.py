"""Operating datatier unattended: job outcomes, failure notifications, preflight checks."""
