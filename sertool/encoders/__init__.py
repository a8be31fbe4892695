"""Frozen encoders (Whisper encoder, WavLM, RoBERTa) and Whisper ASR, as models only: they know nothing
of the catalog, the store's layout or the environment. `registry` finds them by kind."""
