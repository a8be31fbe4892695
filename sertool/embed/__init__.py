"""The embedding pipeline: catalog clips -> (augmented) audio or transcripts -> frozen encoders -> store."""
