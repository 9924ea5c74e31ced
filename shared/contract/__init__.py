"""The contract between services: event models, subjects and stream/bucket names, enumerations."""
