"""MongoDB: raw-BSON dumps and restores on the shared backup pipeline."""
