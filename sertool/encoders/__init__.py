"""Frozen encoders (Whisper encoder, WavLM, RoBERTa) and Whisper ASR behind one interface."""
