"""The recipe format: models, commerce-safe YAML loading and the validating loader."""
