"""The Kafka topology: client factory, topics, the worker app, the result store, the correlator."""
