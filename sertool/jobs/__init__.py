"""Floor 4: the workflows that combine rooms (DESIGN.md §2).

`embed` (and its parallel form, `embed_parts`) runs corpus audio through the encoders into the store;
`transcribe` fills missing transcripts with ASR; `predict` runs tracked models on new audio; `demo`
runs the whole workflow on a synthetic corpus. The CLI calls these; so can any Python program.
"""
