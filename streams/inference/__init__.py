"""Inference: the inference worker, its engine process, the pipeline (media, speech, diarization) and the ASR engines."""
