"""What a deployment needs around the code: the Kafka broker, its topics, and the settings."""
