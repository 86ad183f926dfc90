"""Backups: policies, the manifest and catalog, the object writer and the backup service."""
