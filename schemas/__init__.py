"""runstream wire contract: JSON Schemas, models and the orjson codec."""
