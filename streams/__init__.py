"""The Faust workers: job state (jobs/) and inference (inference/), on the topics and blob store they share."""
