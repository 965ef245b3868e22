"""diarist: self-hosted speech transcription jobs on Kafka, Faust and Whisper."""
__version__ = "0.1.0"
