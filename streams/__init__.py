"""The Faust worker application: topics and the execution agent."""
